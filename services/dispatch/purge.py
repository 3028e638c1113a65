"""Purge after the outcome (issue 13 §2–4): when, what the event says, what is held where.

A case that ended (found, false report, closed) keeps its personal data for the investigation
for `purge_grace_s` (settings), then dispatch emits `homeward.case.purged.v1` and deletes the
case's data key (shared/casekeys.py): every sealed copy in every topic and DLQ is unreadable,
and each service drops what it holds. Ids, region, times, leader organ, duties, decisions and
outcomes stay (领导责任倒查, issue 13 §3).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from services.dispatch.domain import Case, Change
from shared import events as ev
from shared import topics
from shared.events import CasePurged

TIMER = "purge"  # the purge timer's task id in dispatch:timers (`<case id>|purge`)


def ended_at(case: Case) -> datetime | None:
    """When the end of the search was recorded, or None while it goes on (or nothing ended
    it). The recording time, never the `found_at` a person typed: a found dated a year back
    (a mistyped year, a child missing that long, an unidentified-child record's found time)
    would otherwise be purged at the next timer tick, and a mistaken found could no longer be
    reopened (DESIGN.md "Nothing ends a search by accident")."""
    if case.is_open:
        return None
    if case.found_recorded_at is None and case.found_at is not None:
        # A case stored before the recording time was kept: its timeline has it.
        recorded = [e.at for e in case.timeline if e.action == "found"]
        return recorded[-1] if recorded else case.found_at
    return case.found_recorded_at or case.closed_at


def purge_at(case: Case, grace_s: float) -> datetime | None:
    """When the case's personal data goes, or None (open, or already purged)."""
    ended = ended_at(case)
    if ended is None or case.purged_at is not None:
        return None
    return ended + timedelta(seconds=grace_s)


def plan_purge(case: Case, now: datetime) -> list[Change]:
    """The purge event of an ended case not purged yet (else nothing). Stable id per ending,
    so a redelivered timer publishes the same event."""
    ended = ended_at(case)
    if ended is None or case.purged_at is not None:
        return []
    data = CasePurged(case_id=case.case_id, region_code=case.region_code, actor="dispatch",
                      reason="结案后个人信息按期清除", at=now,
                      outcome=case.outcome or case.status, ended_at=ended)
    return [Change(type=ev.CASE_PURGED, event_id=f"{case.case_id}:purged:{ended.isoformat()}",
                   case_id=case.case_id, data=data.model_dump(mode="json"))]


class Store(BaseModel):
    name: str = Field(description="topic, Redis key pattern, file or directory")
    holds: str = Field(description="what of this case it holds")
    until: datetime | None = Field(description="when it is gone or unreadable; null: kept "
                                   "(non-personal) as the topic's retention declares")


class Retention(BaseModel):
    """Answer of GET /api/v1/cases/{case_id}/retention."""

    case_id: str
    status: str
    stores: list[Store]
    purged_at: datetime | None


def retention(case: Case, grace_s: float) -> Retention:
    """What of the case is held where and until when (issue 13 §4)."""
    until = case.purged_at or purge_at(case, grace_s)
    personal = "personal fields (child, reporter, tipsters), sealed with the case's data key"
    gone = "gone" if case.purged_at else "until the purge"
    stores = [
        Store(name=f"{topics.CASE_KEYS} + Redis pii:casekey:{case.case_id}",
              holds=f"the case's data key, wrapped by a master key ({gone})", until=until),
        Store(name=topics.REPORTS, holds=f"the report: {personal}; region, times, kind clear",
              until=until),
        Store(name=topics.TIPS, holds=f"tips: {personal}; times and places clear", until=until),
        Store(name=topics.DISPATCH, holds="the case history (ids, region, times, leader organ, "
              "duties, decisions, outcomes) clear and kept; child name, tips and held reports "
              "sealed", until=None),
        Store(name=f"{topics.dlq(topics.REPORTS)}, {topics.dlq(topics.TIPS)}, "
              f"{topics.dlq(topics.DISPATCH)}", holds=f"dead letters: {personal}", until=until),
        Store(name=f"{topics.ALERTS} + Redis notify:body:*",
              holds="push bodies (what notify sends), sealed; tombstoned on purge", until=until),
        Store(name="Redis dispatch:case / dispatch:stream",
              holds="the case projection; personal fields dropped on purge", until=until),
        Store(name="Redis dispatch:tips / dispatch:tip / dispatch:parked",
              holds="the case's tips beside it (contact and description replaced by markers on "
              "purge) and tips held under its ids (deleted on purge)", until=until),
        Store(name="alert outbox (SQLite)", holds="the sealed events until published and past "
              "the outbox grace; idempotency keys expire with them", until=until),
        Store(name="alert photos", holds="the child's photos; deleted on purge", until=until),
        Store(name=f"{topics.UNIDENTIFIED} + Redis dispatch:unidentified:<record id>",
              holds="unidentified-child records confirmed on the case (issue 16): personal "
              "fields sealed with each record's own key, deleted with the case's",
              until=until),
    ]
    return Retention(case_id=case.case_id, status=case.status, stores=stores,
                     purged_at=case.purged_at)
