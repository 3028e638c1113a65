"""Purge after the outcome in dispatch's domain (services/dispatch/purge.py, issue 13)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.dispatch import purge
from services.dispatch.domain import Case, Refused
from services.dispatch.ending import plan_close, plan_found, plan_reopen
from services.dispatch.reactions import plan_tip
from shared import events as ev
from shared.events import TipLocation, TipReceived
from shared.pii import PURGED
from tests.unit.test_dispatch_domain import NOW, fold, opened

GRACE = 3600.0


def with_tip(case: Case) -> Case:
    tip = TipReceived(tip_id="T1", case_id=case.case_id, seen_at=NOW, contact="13600000000",
                      location=TipLocation(lat=36.2, lon=113.1), description="在车站看见张小明",
                      received_at=NOW)
    return fold(plan_tip(case, tip, NOW), case)


@pytest.mark.parametrize("outcome", ["found_safe", "found_deceased", "false_report"])
def test_an_ended_case_is_purged_grace_after_it_ended(outcome: str) -> None:
    case = with_tip(opened())
    assert purge.purge_at(case, GRACE) is None and purge.plan_purge(case, NOW) == []
    ended = NOW + timedelta(hours=1)
    case = fold(plan_found(case, outcome, ended, "", "cmd", ended, "f"), case)  # type: ignore[arg-type]
    assert purge.purge_at(case, GRACE) == ended + timedelta(seconds=GRACE)

    [change] = purge.plan_purge(case, NOW + timedelta(days=2))
    assert change.type == ev.CASE_PURGED
    assert datetime.fromisoformat(change.data["ended_at"]) == ended
    assert purge.plan_purge(case, NOW + timedelta(days=3))[0].event_id == change.event_id
    before = case.model_copy(deep=True)
    case = fold([change], case)
    assert case.purged_at is not None and purge.purge_at(case, GRACE) is None
    assert purge.plan_purge(case, NOW + timedelta(days=3)) == []
    # Personal data gone; history kept (ids, region, times, leader, duties, outcome).
    assert case.child_name == PURGED and case.duplicate_keys == [] and case.held_reports == {}
    # The tips live beside the case, not in its document (issue 12); their purge is
    # TipStore.purge (tests/integration/test_tip_store_purge.py).
    assert "张小明" in before.model_dump_json() and "13600000000" not in before.model_dump_json()
    assert "张小明" not in case.model_dump_json() and "13600000000" not in case.model_dump_json()
    for name in ("case_id", "region_code", "leader", "duties", "tasks", "outcome", "found_at",
                 "opened_at", "status", "escalations"):
        assert getattr(case, name) == getattr(before, name), name
    assert case.timeline[-1].action == "purged"


def test_a_found_then_closed_case_counts_from_the_found_and_a_reopen_cancels_the_purge() -> None:
    case = opened()
    found = fold(plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f"), case)
    closed = fold(plan_close(found, "solved", "cmd", NOW + timedelta(hours=2), "c"), found)
    assert purge.ended_at(closed) == NOW  # the search ended when the child was found
    reopened = fold(plan_reopen(found, "wrong child", "cmd", NOW, "r"), found)
    assert purge.purge_at(reopened, GRACE) is None and purge.plan_purge(reopened, NOW) == []


@pytest.mark.parametrize("typed", [timedelta(days=-365), timedelta(days=-31),
                                   timedelta(days=-3650), timedelta(minutes=-5), timedelta(0)])
def test_the_purge_counts_from_when_the_found_was_recorded_not_the_time_typed(
        typed: timedelta) -> None:
    """A found dated long ago (a mistyped year, a child missing for years, the default time of
    an unidentified-child record) keeps the whole grace to be reopened: the purge clock is the
    found's recording time."""
    recorded = NOW + timedelta(hours=3)
    case = fold(plan_found(opened(), "found_safe", recorded + typed, "", "cmd", recorded, "f"),
                opened())
    assert case.found_at == recorded + typed  # shown as given
    assert purge.purge_at(case, GRACE) == recorded + timedelta(seconds=GRACE)
    assert purge.plan_purge(case, recorded) != []  # the timer decides when; the plan is ready
    reopened = fold(plan_reopen(case, "wrong child", "cmd", recorded + timedelta(minutes=5),
                                "r"), case)
    assert reopened.is_open and purge.purge_at(reopened, GRACE) is None


def test_a_case_stored_before_the_recording_time_was_kept_counts_from_its_timeline() -> None:
    recorded = NOW + timedelta(hours=3)
    case = fold(plan_found(opened(), "found_safe", recorded - timedelta(days=365), "", "cmd",
                           recorded, "f"), opened())
    old = case.model_copy(update={"found_recorded_at": None})
    assert purge.ended_at(old) == recorded
    assert purge.purge_at(old, GRACE) == recorded + timedelta(seconds=GRACE)


def test_retention_names_every_store_and_when_it_goes() -> None:
    case = fold(plan_found(opened(), "found_safe", NOW, "", "cmd", NOW, "f"), opened())
    answer = purge.retention(case, GRACE)
    assert answer.purged_at is None
    until = {s.name: s.until for s in answer.stores}
    assert until["homeward.dispatch.v1"] is None  # the history is kept
    assert until["homeward.reports.v1"] == NOW + timedelta(seconds=GRACE)
    purged = fold(purge.plan_purge(case, NOW + timedelta(days=1)), case)
    assert purge.retention(purged, GRACE).purged_at == purged.purged_at


@pytest.mark.parametrize("outcome", ["found_safe", "found_deceased", "false_report"])
def test_a_purged_case_cannot_be_reopened(outcome: str) -> None:
    """After the purge nothing is left to search with (the child's name, photos and
    description went with the case key), so notify could re-alert no one: a reopen is refused
    (409 case_purged, naming what to do) instead of opening a search that alerts nobody."""
    case = opened()
    ended = fold(plan_found(case, outcome, NOW, "", "cmd", NOW, "f"), case)  # type: ignore[arg-type]
    purged = fold(purge.plan_purge(ended, NOW + timedelta(days=30)), ended)
    with pytest.raises(Refused) as refused:
        plan_reopen(purged, "认错了孩子", "cmd", NOW + timedelta(days=31), "r")
    assert refused.value.status == 409 and refused.value.code == "case_purged"
    assert "new report" in str(refused.value)
    # Before the purge the same reopen goes through.
    assert plan_reopen(ended, "认错了孩子", "cmd", NOW + timedelta(days=1), "r")
