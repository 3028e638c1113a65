"""The commander sees a place conflict found at intake: it travels on report.accepted, is
kept on case.opened and on the case, and is written to the case timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from services.dispatch.opening import plan_open
from services.dispatch.projection import fold
from services.dispatch.roster import load_roster
from services.dispatch.rules import load_rules
from shared import events as ev
from shared.events import CaseOpened
from shared.report import PlaceConflict, PlacePart, ReportAccepted, ResolvedReport
from tests.helpers import report_body

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
CONFLICT = PlaceConflict(chosen="address", region_code="140403", parts=[
    PlacePart(source="address", region_code="140403", name="潞州区"),
    PlacePart(source="coordinates", region_code="140105", name="小店区", distance_km=158.2),
])


def accepted(conflict: PlaceConflict | None) -> ReportAccepted:
    return ReportAccepted(report_id="R1", case_id="140403-20261122-AAAAAA", accepted_at=NOW,
                          operator="op-1", operator_region="140403",
                          report=ResolvedReport.model_validate(report_body()),
                          place_conflict=conflict)


def test_the_conflict_is_on_the_case_and_its_timeline() -> None:
    changes = plan_open(accepted(CONFLICT), load_rules(), load_roster(), NOW)
    opened = next(c for c in changes if c.type == ev.CASE_OPENED)
    assert CaseOpened.model_validate(opened.data).place_conflict == CONFLICT
    case = fold(changes)
    assert case is not None and case.place_conflict == CONFLICT
    entry = next(t for t in case.timeline if t.action == "place_conflict")
    assert "140105 小店区 (158.2 km)" in entry.what and "address 140403" in entry.why
    assert case.region_code == "140403"  # led from the address, as intake chose


def test_no_conflict_nothing_shown_and_older_events_still_replay() -> None:
    case = fold(plan_open(accepted(None), load_rules(), load_roster(), NOW))
    assert case is not None and case.place_conflict is None
    assert all(t.action != "place_conflict" for t in case.timeline)
    older = {"case_id": "c", "report_id": "r", "region_code": "140403", "opened_at": NOW,
             "priority": "p", "mechanisms": [], "leader": None}
    assert CaseOpened.model_validate(older).place_conflict is None
