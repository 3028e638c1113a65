"""The ids of a case, its alert and an unidentified child's record: one format for every
service (alert makes them; dispatch, notify and the consoles read them).

- case: `<region>-<yyyymmdd>-<suffix>`, e.g. `140403-20261122-K7Q2MXHA`;
- alert: `A-<case id>`;
- unidentified child (来历不明儿童, issue 16): `U-<region>-<yyyymmdd>-<suffix>`.

The suffix is random, in an alphabet read aloud over the phone without doubt (no I, O, 0, 1),
and it alone makes an id unique: every alert pod and worker makes ids without asking anyone
(intake needs neither Redis nor Kafka), so two reports taken in one region on one day must not
draw the same suffix. With `n` ids in one region-day and `s` possible suffixes, the chance that
two share one is about n²/(2s):

- 6 symbols (the ids made before 2026-12-01): s = 32⁶ ≈ 1.07e9. The 40,000 reports that one
  `make bench` intake run files in one region-day give 0.75, and it happened: dispatch took the
  second child's report for a redelivery of the first, and no case group was formed for it.
- 8 symbols (made from now on): s = 32⁸ ≈ 1.1e12. 40,000 in a region-day give 7e-4; 1,000 (a
  city on its worst day, drills included) give 4.5e-7.

Ids with 6 symbols stay valid everywhere. A collision that happens all the same is not lost
silently: dispatch dead-letters the second report, naming both (services/dispatch/reports.py).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from shared.errors import HomewardError

__all__ = ["ALERT_ID", "ALPHABET", "CASE_ID", "CASE_REF", "SUFFIX_LENGTH", "UNIDENTIFIED_ID",
           "CaseIdCollision", "alert_id", "new_case_id", "new_unidentified_id"]

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols: no I/O/0/1
SUFFIX_LENGTH = 8
_SUFFIX = r"[A-Z0-9]{6}(?:[A-Z0-9]{2})?"  # 8 symbols, or 6 in ids made before
_REGION_DAY = r"[0-9]{6}-[0-9]{8}"  # ASCII digits only (\d takes any script's)

CASE_ID = rf"^{_REGION_DAY}-{_SUFFIX}$"
ALERT_ID = rf"^A-{_REGION_DAY}-{_SUFFIX}$"
UNIDENTIFIED_ID = rf"^U-{_REGION_DAY}-{_SUFFIX}$"
# A case id as dispatch's paths take it: any id it may hold, tests' and imports' included; a
# lookup of what does not exist answers 404.
CASE_REF = r"^[0-9A-Za-z-]{1,40}$"


def _suffix() -> str:
    # 32 symbols divide 256, so `byte % 32` is unbiased; one urandom call for the suffix.
    return "".join(ALPHABET[b % 32] for b in secrets.token_bytes(SUFFIX_LENGTH))


def new_case_id(region_code: str, now: datetime) -> str:
    """A new case id for a report taken in `region_code` (6 digits) at `now` (its date as
    `now` gives it)."""
    return f"{region_code}-{now:%Y%m%d}-{_suffix()}"


def new_unidentified_id(region_code: str, now: datetime) -> str:
    """A new record id for an unidentified child recorded in `region_code` at `now` (its
    date in UTC)."""
    return f"U-{region_code}-{now.astimezone(UTC):%Y%m%d}-{_suffix()}"


def alert_id(case_id: str) -> str:
    """The id of the alert notify issues for `case_id`."""
    return f"A-{case_id}"



class CaseIdCollision(HomewardError):
    """Two different reports carry one case id (`case_id`; `held_by`: the report the case id
    belongs to; `report_id`: the one that drew it again). Never retried: the consumer
    dead-letters the second report with this error, for a person to re-file it."""

    code = "case_id_collision"

    def __init__(self, case_id: str, held_by: str, report_id: str) -> None:
        super().__init__(message=f"case id {case_id} belongs to report {held_by}; report "
                         f"{report_id} drew it again and was not opened or linked: file it "
                         "again", case_id=case_id, held_by=held_by, report_id=report_id)
