"""Sightings (issue 16 §1–3) as pure rules: where a tip lies from the last-seen point, whether
the time allows it, hub sightings first, and local checks (核查) with their read access."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dispatch import checks
from services.dispatch.domain import Case, Change, Refused
from services.dispatch.reactions import plan_tip
from services.dispatch.roster import load_roster
from services.dispatch.tips_domain import (
    AIR_KMH,
    AIR_OVERHEAD_H,
    GROUND_KMH,
    NEAR_KM,
    assess,
    bearing_deg,
    compass,
    next_check_fire,
    plausibility,
    radius_km,
    rank_score,
)
from services.dispatch.tips_handlers import plan_due
from shared import events as ev
from shared.auth import Principal, Role
from shared.events import TipLocation, TipReceived
from tests.unit.test_dispatch_domain import NOW, fold, opened

TIERS = [(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)]
ORDER = ["near", "ground", "air", "implausible"]
ROSTER = load_roster()


def tip(lat: float, lon: float, minutes: float, source: str = "public",
        tip_id: str = "T1") -> TipReceived:
    return TipReceived(tip_id=tip_id, case_id="140403-20261122-AAAAAA",
                       seen_at=NOW + timedelta(minutes=minutes),
                       location=TipLocation(lat=lat, lon=lon, address="某地"),
                       description="看见一个穿蓝色羽绒服的男孩", contact="13900000000",
                       received_at=NOW + timedelta(minutes=minutes + 1),
                       source=source, hub_id="H-CZ" if source == "hub" else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("km", "hours", "mark"), [
    (0.5, 0.0, "near"),            # at the spot, same minute
    (NEAR_KM, 0.01, "near"),       # walking / geocoding slack
    (50, 1, "ground"),             # by car within the hour
    (GROUND_KMH, 1, "ground"),     # the high-speed-rail bound, inclusive
    (360, 1, "implausible"),       # faster than any train, too soon for a flight
    (900, 0.5, "implausible"),     # the example: 900 km 30 minutes after
    (900, -0.5, "implausible"),    # ... or 30 minutes before last seen
    (1500, 3.5, "air"),            # only a flight: 1.5 h + 1500/800 h = 3.375 h <= 3.5 h
    (1500, 3.0, "implausible"),
    (2000, 10, "ground"),          # 200 km/h: a train
])
def test_plausibility_of_a_sighting(km: float, hours: float, mark: str) -> None:
    assert plausibility(km, hours) == mark


@given(st.floats(0, 5000), st.floats(-48, 48), st.floats(0, 48))
def test_more_time_never_makes_a_sighting_less_plausible(km: float, hours: float,
                                                         more: float) -> None:
    later = hours + more if hours >= 0 else hours - more
    assert ORDER.index(plausibility(km, later)) <= ORDER.index(plausibility(km, hours))


@given(st.floats(0, 5000), st.floats(0, 5000), st.floats(-48, 48))
def test_farther_never_makes_a_sighting_more_plausible(a: float, b: float, hours: float) -> None:
    near, far = sorted((a, b))
    assert ORDER.index(plausibility(near, hours)) <= ORDER.index(plausibility(far, hours))


def test_the_thresholds_are_the_documented_ones() -> None:
    assert (NEAR_KM, GROUND_KMH, AIR_OVERHEAD_H, AIR_KMH) == (5.0, 350.0, 1.5, 800.0)


@pytest.mark.parametrize(("dlat", "dlon", "point"), [
    (1, 0, "N"), (0, 1, "E"), (-1, 0, "S"), (0, -1, "W"), (1, 1, "NE"), (-1, -1, "SW"),
])
def test_bearing_from_the_last_seen_point(dlat: float, dlon: float, point: str) -> None:
    assert compass(bearing_deg(36.19, 113.11, 36.19 + dlat, 113.11 + dlon)) == point


@pytest.mark.parametrize(("minutes", "km"), [(0, 100), (59, 100), (61, 200), (150, 300),
                                             (181, 500), (-30, 100)])
def test_radius_is_the_national_platforms(minutes: float, km: float) -> None:
    assert radius_km(timedelta(minutes=minutes), TIERS, 500.0) == km


def test_assessment_of_a_tip_900_km_away_30_minutes_after() -> None:
    far = tip(36.19 + 900 / 111.2, 113.11, 30)  # ~900 km due north
    a = assess(36.19, 113.11, NOW, far, NOW + timedelta(minutes=40), TIERS, 500.0)
    assert a.plausibility == "implausible" and a.compass == "N"
    assert 890 < (a.distance_km or 0) < 910 and a.elapsed_min == 30.0
    assert a.radius_km == 100 and a.inside_radius is False and a.rank == 1
    assert "时间距离不合理" in a.summary and "正北" in a.summary


def test_a_near_hub_sighting_ranks_first_and_is_inside_the_radius() -> None:
    hub = tip(36.20, 113.12, 20, source="hub")
    a = assess(36.19, 113.11, NOW, hub, NOW + timedelta(minutes=25), TIERS, 500.0,
               county="140403")
    assert a.plausibility == "near" and a.inside_radius is True and a.rank == 0
    assert a.county == "140403"
    public_newer = rank_score({"source": "public"}, NOW.timestamp() + 86400 * 365)
    assert rank_score({"source": "hub"}, NOW.timestamp()) > public_newer


def test_without_the_case_coordinates_times_and_radius_only() -> None:
    a = assess(None, None, NOW, tip(36.2, 113.1, 200), NOW + timedelta(hours=4), TIERS, 500.0)
    assert a.distance_km is None and a.plausibility == "ground" and a.radius_km == 500


def test_the_attached_tip_carries_its_assessment_and_whom_to_tell() -> None:
    case = opened()
    t = tip(36.05, 113.05, 30)
    a = assess(case.lat, case.lon, NOW, t, NOW, TIERS, 500.0, county="140404")
    [change] = plan_tip(case, t, NOW, a)
    details = change.data["details"]
    assert details["assessment"]["county"] == "140404"
    assert details["tip"]["assessment"]["plausibility"] == "ground"
    assert [p["name"] for p in details["notify"]] == ["褚卫东", "蒋晓军"]  # leader, investigator


# --- local checks ---------------------------------------------------------------------------

def commander(region: str) -> Principal:
    return Principal(sub=f"cmd-{region}", role=Role.commander, region=region)


def with_check(county: str = "140404") -> tuple[Case, Change]:
    case = opened()
    [change] = checks.plan_check(case, "T1", county, ROSTER, timedelta(hours=2), "dispatch",
                                 checks.SOURCE, NOW, "evt-0000000001")
    return fold([change], case), change


def test_a_sighting_in_another_county_needs_a_check_once() -> None:
    case = opened()
    assert not checks.needs_check(case, "140403")  # the case's own county
    assert not checks.needs_check(case, "")        # outside every county
    assert checks.needs_check(case, "140404")
    checked, change = with_check()
    assert not checks.needs_check(checked, "140404")  # one open check per county
    assert checks.needs_check(checked, "140405")
    check = change.data["details"]["check"]
    assert check["organ_code"] == "140404" and check["organ_name"]
    assert datetime.fromisoformat(check["due_at"]) == NOW + timedelta(hours=2)
    assert change.data["details"]["notify"][0]["duty"] == "local_check"


def test_the_checking_county_reads_the_case_while_the_check_is_open_and_not_after() -> None:
    case, _ = with_check()
    assert checks.may_read(case, commander("140404"))
    assert checks.may_read(case, commander("140403"))
    assert not checks.may_read(case, commander("140405"))
    check_id = case.checks[0].check_id
    with pytest.raises(Refused) as wrong:
        checks.plan_report(case, check_id, "confirmed", "", "cmd", "140405", NOW, "e2")
    assert wrong.value.status == 403
    reported = fold(checks.plan_report(case, check_id, "not_found", "走访车站未发现",
                                       "cmd-140404", "140404", NOW, "e3"), case)
    assert reported.checks[0].result == "not_found" and not reported.checks[0].is_open
    assert not checks.may_read(reported, commander("140404"))
    entry = reported.timeline[-1]
    assert entry.action == "check_reported" and entry.actor == "cmd-140404"
    assert "未发现" in entry.what and entry.why == "走访车站未发现"
    with pytest.raises(Refused) as twice:
        checks.plan_report(reported, check_id, "confirmed", "", "c", "140404", NOW, "e4")
    assert twice.value.code == "check_closed"


@pytest.mark.parametrize(("verdict", "region", "linked", "actions"), [
    ("credible", None, None, ["tip_triaged"]),
    ("not_credible", None, None, ["tip_triaged"]),
    ("duplicate", None, "140403-20261122-BBBBBB", ["tip_triaged"]),
    ("credible", "140404", None, ["tip_triaged", "check_assigned"]),
])
def test_triage_is_a_timeline_event_with_who_and_why(verdict: str, region: str | None,
                                                     linked: str | None,
                                                     actions: list[str]) -> None:
    case = opened()
    changes = checks.plan_triage(case, {"tip_id": "T1"}, verdict, "与监控比对", "cmd-1",  # type: ignore[arg-type]
                                 ROSTER, timedelta(hours=2), NOW, "e1", region, linked)
    after = fold(changes, case)
    new = after.timeline[len(case.timeline):]
    assert [t.action for t in new] == actions
    assert all(t.actor == "cmd-1" and t.why == "与监控比对" for t in new)
    assert changes[0].data["details"]["verdict"] == verdict
    assert (changes[0].data["details"]["check_id"] is not None) == (region is not None)
    if linked:
        assert linked in new[0].what


@pytest.mark.parametrize(("region", "linked", "code"), [
    ("140403", None, "check_in_own_region"),
    ("140400", None, "check_in_own_region"),  # above the case's own county: its own city
    (None, "140403-20261122-AAAAAA", "same_case"),
])
def test_triage_refusals(region: str | None, linked: str | None, code: str) -> None:
    with pytest.raises(Refused) as refused:
        checks.plan_triage(opened(), {"tip_id": "T1"}, "credible", "r", "c", ROSTER,
                           timedelta(hours=1), NOW, "e", region, linked)
    assert refused.value.code == code


def test_the_checking_head_joins_the_group_as_a_cooperating_member_once() -> None:
    case, _ = with_check()
    check_id = case.checks[0].check_id
    joined = fold(checks.plan_cooperate(case, check_id, "", "cmd-1", ROSTER, NOW, "e5"), case)
    coop = [m for m in joined.members if m.duty == "cooperation"]
    assert len(coop) == 1 and coop[0].organ_code == "140404"
    assert "003" in joined.timeline[-1].why
    with pytest.raises(Refused) as again:
        checks.plan_cooperate(joined, check_id, "", "cmd-1", ROSTER, NOW, "e6")
    assert again.value.code == "already_member"


def test_check_events_reach_the_checking_countys_stream_only() -> None:
    _, change = with_check()
    fields = {"type": ev.CASE_CHECK_ASSIGNED, "data": json.dumps(change.data)}
    assert checks.streamed_to(fields, "140404") and checks.streamed_to(fields, "140400")
    assert not checks.streamed_to(fields, "140405")
    assert not checks.streamed_to({**fields, "type": ev.CASE_TIP_ATTACHED}, "140404")
    assert not checks.streamed_to({**fields, "data": "not json"}, "140404")


def test_a_fold_is_idempotent_for_check_events() -> None:
    case, change = with_check()
    again = fold([change], case)
    assert len(again.checks) == 1 and again.timeline == case.timeline


def test_the_check_is_due_after_the_deadline() -> None:
    case, _ = with_check()
    assert case.checks[0].due_at == NOW + timedelta(hours=2)
    assert case.checks[0].is_open and case.checks[0].assigned_by == "dispatch"


def test_an_unreported_check_past_its_deadline_is_reported_to_the_leader_and_repeats() -> None:
    case, _ = with_check()
    check = case.checks[0]
    assert next_check_fire(check, 900) == NOW + timedelta(hours=2)
    late_at = NOW + timedelta(hours=2, seconds=1)
    changes = plan_due(case, f"check:{check.check_id}", late_at)
    [change] = changes
    assert change.type == ev.CASE_CHECK_OVERDUE and change.data["details"]["count"] == 1
    told = change.data["details"]["notify"]
    assert [p["duty"] for p in told] == ["leader", "local_check"]
    assert told[0]["name"] == "褚卫东" and told[1]["organ_code"] == "140404"
    late = fold(changes, case)
    assert late.checks[0].overdue_count == 1
    assert next_check_fire(late.checks[0], 900) == late_at + timedelta(seconds=900)
    assert late.timeline[-1].action == "check_overdue" and "×1" in late.timeline[-1].what
    again = plan_due(late, f"check:{check.check_id}", late_at + timedelta(seconds=901))
    assert again[0].event_id.endswith(":overdue:2")
    done = fold(checks.plan_report(late, check.check_id, "confirmed", "", "c", "140404",
                                   late_at, "e9"), late)
    assert plan_due(done, f"check:{check.check_id}", late_at + timedelta(hours=1)) == []
    assert next_check_fire(done.checks[0], 900) is None
    # A task's timer still means the task.
    assert plan_due(case, "no_such_task", late_at) == []
