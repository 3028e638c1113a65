"""Case, alert and unidentified-child ids (shared/case_ids.py): one format for every service.

The rule: `<region 6 digits>-<yyyymmdd>-<suffix>` (alert: `A-` before it; unidentified child:
`U-`), the suffix 8 symbols of an alphabet without I/O/0/1 for ids made now, 6 for ids made
before 2026-12-01, which stay valid everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.notify import domain as notify_domain
from shared.case_ids import (
    ALERT_ID,
    ALPHABET,
    CASE_ID,
    SUFFIX_LENGTH,
    UNIDENTIFIED_ID,
    CaseIdCollision,
    alert_id,
    new_case_id,
    new_unidentified_id,
)
from shared.faults import is_transient
from shared.report import TipRequest
from shared.unidentified import RECORD_ID

CASES = [
    ("140403-20261201-K7Q2MXHA", True),   # made now: 8 symbols
    ("140403-20261122-K7Q2MX", True),     # made before: 6 symbols
    ("650100-20270101-23456789", True),
    ("140403-20261201-K7Q2MXH", False),   # 7
    ("140403-20261201-K7Q2MXHAB", False),  # 9
    ("140403-20261201-K7Q2M", False),     # 5
    ("140403-20261201-k7q2mxha", False),  # lower case
    ("14040-20261201-K7Q2MXHA", False),   # region of 5 digits
    ("140403-2026121-K7Q2MXHA", False),   # date of 7 digits
    ("140403-20261201-K7Q2MXHA\n", False),
    ("140403-20261201-K7Q2-MXHA", False),
    ("A-140403-20261201-K7Q2MXHA", False),  # an alert id is not a case id
    ("١٤٠٤٠٣-20261201-K7Q2MXHA", False),  # digits of another script
    ("140403-２０２６1201-K7Q2MXHA", False),  # full-width digits
    ("", False),
]


@pytest.mark.parametrize(("case_id", "valid"), CASES)
def test_case_id_format_table(case_id: str, valid: bool) -> None:
    assert bool(re.fullmatch(CASE_ID, case_id)) is valid
    assert bool(re.fullmatch(ALERT_ID, f"A-{case_id}")) is valid
    assert bool(re.fullmatch(UNIDENTIFIED_ID, f"U-{case_id}")) is valid


@pytest.mark.parametrize(("case_id", "valid"), CASES)
def test_a_tip_names_its_case_by_the_same_format(case_id: str, valid: bool) -> None:
    body = {"case_id": case_id, "seen_at": "2026-12-01T08:00:00+08:00",
            "location": {"lat": 36.19, "lon": 113.11, "address": "长治站"},
            "description": "在候车室看到"}
    if case_id.strip() != case_id:  # a pasted id: the request's text is stripped first
        valid = bool(re.fullmatch(CASE_ID, case_id.strip()))
    if valid:
        assert TipRequest.model_validate(body).case_id == case_id.strip()
    else:
        with pytest.raises(ValidationError) as refused:
            TipRequest.model_validate(body)
        assert [e["loc"] for e in refused.value.errors()] == [("case_id",)]


def test_every_service_reads_the_one_format() -> None:
    assert notify_domain.CASE_ID == CASE_ID and notify_domain.ALERT_ID == ALERT_ID
    assert RECORD_ID == UNIDENTIFIED_ID
    assert notify_domain.alert_id_of("140403-20261201-K7Q2MXHA") == "A-140403-20261201-K7Q2MXHA"


@given(region=st.from_regex(r"[0-9]{6}", fullmatch=True),
       at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))
def test_new_ids_have_eight_readable_symbols_and_match_the_format(region: str,
                                                                  at: datetime) -> None:
    for made in (new_case_id(region, at),):
        assert re.fullmatch(CASE_ID, made) and re.fullmatch(ALERT_ID, alert_id(made))
        assert made.startswith(f"{region}-{at:%Y%m%d}-")
        suffix = made.rsplit("-", 1)[1]
        assert len(suffix) == SUFFIX_LENGTH and set(suffix) <= set(ALPHABET)
    record = new_unidentified_id(region, at)
    assert re.fullmatch(UNIDENTIFIED_ID, record) and re.fullmatch(RECORD_ID, new_unidentified_id(
        region, at))
    assert record.startswith(f"U-{region}-{at.astimezone(UTC):%Y%m%d}-")


def test_the_alphabet_reads_aloud_without_doubt_and_suffixes_are_spread() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32 and not set(ALPHABET) & set("IO01")
    # 5,000 suffixes of one region-day: every symbol in every position (a fixed or
    # truncated suffix would not be), and no two alike.
    made = [new_case_id("140403", datetime(2026, 12, 1, tzinfo=UTC))[-8:]
            for _ in range(5_000)]
    assert len(set(made)) == len(made)
    for position in range(SUFFIX_LENGTH):
        assert {m[position] for m in made} == set(ALPHABET)


def test_a_collision_is_dead_lettered_not_retried_and_names_both_reports() -> None:
    error = CaseIdCollision("140403-20261201-K7Q2MXHA", "R1", "R2")
    assert not is_transient(error)
    assert error.code == "case_id_collision"
    assert "R1" in str(error) and "R2" in str(error) and "140403-20261201-K7Q2MXHA" in str(error)
