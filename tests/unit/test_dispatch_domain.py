"""The case group: forming it from a report, commands checked against the life cycle, and the
projection folded from events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dispatch.commands import plan_complete, plan_escalate, plan_release
from services.dispatch.domain import Case, Change, Refused
from services.dispatch.ending import plan_close, plan_found, plan_reopen
from services.dispatch.links import (
    mirror,
    plan_incident,
    plan_link,
    plan_unlink,
    require_authority,
)
from services.dispatch.opening import plan_open
from services.dispatch.projection import apply
from services.dispatch.projection import fold as fold_or_none
from services.dispatch.reactions import plan_handover, plan_overdue, plan_tip
from services.dispatch.roster import Roster, load_roster
from services.dispatch.rules import load_rules
from shared import events as ev
from shared.events import TipLocation, TipReceived
from shared.identity import LinkEvidence
from shared.report import ReportAccepted, ResolvedReport
from tests.helpers import report_body

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
POLICY = load_rules()


def accepted(operator_region: str = "140403", **overrides: object) -> ReportAccepted:
    return ReportAccepted(report_id="R1", case_id="140403-20261122-AAAAAA", accepted_at=NOW,
                          operator="op-1", operator_region=operator_region,
                          report=ResolvedReport.model_validate(report_body(**overrides)))


def fold(changes: list[Change], case: Case | None = None) -> Case:
    folded = fold_or_none(changes, case)
    assert folded is not None
    return folded


def opened(roster: Roster | None = None, **kw: object) -> Case:
    return fold(plan_open(accepted(**kw), POLICY, roster or load_roster(), NOW))  # type: ignore[arg-type]


def test_county_bureau_head_leads_with_three_named_duties() -> None:
    case = opened()
    assert case.leader is not None
    assert case.leader.organ_name == "长治市公安局潞州分局"
    assert case.leader.title == "局长" and case.leader.post == "head"
    assert {d: m.name for d, m in case.duties.items() if m} == {
        "investigation": "蒋晓军", "rescue": "沈国庆", "family_liaison": "韩秀英"}
    assert case.priority == "highest" and case.status == "opened"
    assert case.mechanisms == ["rapid_search", "homicide_mechanism"]
    assert [e.action for e in case.timeline][:2] == ["opened", "leader_assigned"]
    assert {t.task_id for t in case.tasks} == {"hub_interception", "release_decision",
                                               "family_contact", "dna_samples"}
    dna = case.task("dna_samples")
    assert dna is not None and dna.assignee == "蒋晓军" and dna.due_at == NOW + timedelta(hours=4)
    assert case.task("release_decision").assignee == "褚卫东"  # type: ignore[union-attr]


def test_deputy_leads_when_head_unavailable() -> None:
    roster = load_roster()
    roster.set_available("140403", "head", False)
    case = opened(roster)
    assert case.leader is not None and case.leader.title == "副局长"
    assert case.leader.post == "deputy"


def test_every_county_has_a_generated_organ() -> None:
    case = opened(last_seen__region_code="140404")
    assert case.leader is not None and case.leader.organ_code == "140404"
    name = case.leader.organ_name
    assert name.startswith("长治市公安局") and name.endswith("分局")


def test_runaway_starts_rapid_search_only() -> None:
    assert opened(circumstances__kind="runaway").mechanisms == ["rapid_search"]


def test_stolen_child_is_led_by_the_prefecture_under_provincial_supervision() -> None:
    case = opened(circumstances__kind="stolen")
    assert case.leader is not None and case.leader.organ_name == "长治市公安局"
    assert case.supervision == "province" and case.leader_level == "prefecture"
    assert case.escalations[0].by == "dispatch" and "004 §三(一)" in case.escalations[0].reason
    assert {m.duty for m in case.members} >= {"local_bureau", "investigation"}


def test_bortala_especially_serious_case_is_run_by_the_autonomous_prefecture_bureau() -> None:
    case = opened(last_seen__region_code="652701", last_seen__lat=44.85, last_seen__lon=82.05,
                  operator_region="652701", circumstances__especially_serious=True)
    assert case.leader is not None and case.leader.organ_name == "博尔塔拉蒙古自治州公安局"
    assert case.may_add_members == ["procuratorate"]
    assert any(r["rule"] == "especially_serious" and r["origin"] == "6527" for r in case.rules)


def test_cross_region_report_adds_the_reporting_county_bureau() -> None:
    case = opened(operator_region="320102")
    coop = [m for m in case.members if m.duty == "cooperation"]
    assert [m.organ_name for m in coop] == ["南京市公安局玄武分局"]
    # A report filed by the city over the county is not cross-region.
    assert not [m for m in opened(operator_region="140400").members if m.duty == "cooperation"]


def test_life_cycle_close_refused_until_found() -> None:
    case = opened()
    with pytest.raises(Refused) as refused:
        plan_close(case, "done", "cmd", NOW, "e1")
    assert refused.value.status == 409 and "案件不破，专案组不撤" in refused.value.message
    case = fold(plan_found(case, "found_safe", NOW, "at grandma's", "cmd", NOW, "e2"), case)
    assert case is not None and case.status == "found" and case.outcome == "found_safe"
    with pytest.raises(Refused):
        plan_found(case, "found_safe", NOW, "", "cmd", NOW, "e3")
    with pytest.raises(Refused):
        plan_release(case, "cmd", NOW, "e4")
    case = fold(plan_close(case, "solved", "cmd", NOW, "e5"), case)
    assert case is not None and case.status == "closed"
    with pytest.raises(Refused) as again:
        plan_close(case, "again", "cmd", NOW, "e6")
    assert again.value.code == "case_closed"


def test_false_report_path() -> None:
    case = fold(plan_found(opened(), "false_report", NOW, "", "cmd", NOW, "e"), opened())
    assert case is not None and case.status == "false_report"
    assert fold(plan_close(case, "false", "cmd", NOW, "c"), case).status == "closed"


def test_task_completion_and_release_activate_the_case() -> None:
    case = opened()
    case = fold(plan_complete(case, "family_contact", "called", "cmd", NOW, "t1"), case)
    assert case is not None and case.status == "active"
    assert case.task("family_contact").status == "done"  # type: ignore[union-attr]
    with pytest.raises(Refused) as done:
        plan_complete(case, "family_contact", "", "cmd", NOW, "t2")
    assert done.value.status == 409
    with pytest.raises(Refused) as missing:
        plan_complete(case, "nope", "", "cmd", NOW, "t3")
    assert missing.value.status == 404
    case = fold(plan_release(case, "cmd", NOW, "r"), case)
    assert case is not None and case.release_approved
    assert case.task("release_decision").status == "done"  # type: ignore[union-attr]


def test_manual_escalation_to_city_then_province() -> None:
    roster = load_roster()
    case = opened(roster)
    changes = plan_escalate(case, "city", "跨市线索", "cmd-1", roster, NOW, "x1")
    case = fold(changes, case)
    assert case is not None and case.leader is not None
    assert case.leader.organ_name == "长治市公安局" and case.leader_level == "prefecture"
    assert case.escalations[-1].by == "cmd-1" and case.escalations[-1].reason == "跨市线索"
    with pytest.raises(Refused):
        plan_escalate(case, "city", "again", "cmd-1", roster, NOW, "x2")
    case = fold(plan_escalate(case, "province", "重大", "cmd-2", roster, NOW, "x3"), case)
    assert case is not None and case.supervision == "province"
    assert any(m.organ_name == "山西省公安厅" for m in case.members)


def test_overdue_counts_up_and_stops_when_done() -> None:
    case = opened()
    first = plan_overdue(case, "dna_samples", NOW)
    assert first[0].type == ev.CASE_TASK_OVERDUE and first[0].event_id.endswith(":overdue:1")
    case = fold(first, case)
    assert case is not None
    assert plan_overdue(case, "dna_samples", NOW)[0].event_id.endswith(":overdue:2")
    case = fold(plan_complete(case, "dna_samples", "", "cmd", NOW, "d"), case)
    assert case is not None and plan_overdue(case, "dna_samples", NOW) == []


def test_tip_addressed_to_leader_and_investigator_and_kept_out_of_the_case() -> None:
    case = opened()
    tip = TipReceived(tip_id="T1", case_id=case.case_id, seen_at=NOW,
                      location=TipLocation(lat=36.2, lon=113.1), description="在车站看见",
                      received_at=NOW)
    changes = plan_tip(case, tip, NOW)
    assert [c.event_id for c in changes] == [f"{case.case_id}:tip:T1"]  # stable: redelivery
    attached = changes[0].data["details"]["tip"]
    assert attached["notified"] == ["褚卫东", "蒋晓军"] and attached["case_id"] == case.case_id
    folded = fold(changes, case)
    # The tip is kept beside the case (services/dispatch/tips.py), not in its document.
    assert folded is not None and "在车站看见" not in folded.model_dump_json()
    assert folded.status == "active" and len(folded.timeline) == len(case.timeline)


def test_handover_when_the_leader_becomes_unavailable() -> None:
    roster = load_roster()
    case = opened(roster)
    roster.set_available("140403", "head", False)
    organ = roster.organ("140403")
    assert organ is not None
    changes = plan_handover(case, organ, "head", "住院", "admin-1", roster, NOW, "h")
    case = fold(changes, case)
    assert case is not None and case.leader is not None and case.leader.post == "deputy"
    assert case.timeline[-1].why == "住院" and case.timeline[-1].actor == "admin-1"


def test_projection_ignores_an_event_applied_twice() -> None:
    changes = plan_open(accepted(), POLICY, load_roster(), NOW)
    once = fold(changes)
    twice = fold(changes + changes)
    assert once == twice
    assert apply(None, ev.CASE_TASK_COMPLETED, "x", {}) is None


def test_procuratorate_may_join_only_where_the_rules_allow() -> None:
    from services.dispatch.commands import plan_add_member
    from services.dispatch.domain import Member

    member = Member(duty="procuratorate", name="马检察", title="检察官", organ_code="652700",
                    organ_name="博尔塔拉蒙古自治州人民检察院")
    bortala = opened(last_seen__region_code="652701", last_seen__lat=44.85,
                     last_seen__lon=82.05, operator_region="652701",
                     circumstances__especially_serious=True)
    joined = fold(plan_add_member(bortala, member, "提前介入引导侦查", "cmd", NOW, "m"), bortala)
    assert [m.duty for m in joined.members][-1] == "procuratorate"
    with pytest.raises(Refused) as refused:
        plan_add_member(opened(), member, "x", "cmd", NOW, "m2")
    assert refused.value.status == 409 and refused.value.field == "duty"


EVIDENCE = LinkEvidence(rule="name_birth_date", distance_km=2.0, hours_apart=0.2,
                        names=["张小明", "张 小明"])


def test_a_linked_report_is_announced_under_its_own_id_and_follows_the_case() -> None:
    case = opened()
    second = accepted().model_copy(update={"report_id": "R2",
                                           "case_id": "140403-20261122-BBBBBB"})
    changes = plan_link(case, second, EVIDENCE, NOW)
    assert [(c.type, c.case_id) for c in changes][:2] == [
        (ev.CASE_REPORT_LINKED, case.case_id), (ev.CASE_OPENED, second.case_id)]
    assert changes[1].data["linked_to"] == case.case_id
    linked = fold(changes, case)
    assert linked.timeline[-1].action == "report_linked" and len(linked.members) == 3
    assert [(x.report_id, x.case_id, x.evidence.rule) for x in linked.links] == [
        ("R2", second.case_id, "name_birth_date")]
    assert plan_link(linked, second, EVIDENCE, NOW) == []  # redelivered
    found = mirror(linked, plan_found(linked, "found_safe", NOW, "", "cmd", NOW, "f"))
    assert [(c.type, c.case_id) for c in found] == [
        (ev.CASE_FOUND, case.case_id), (ev.CASE_FOUND, second.case_id)]
    assert found[1].data["details"]["linked_to"] == case.case_id
    assert fold(found, linked).status == "found"


def test_unlink_gives_the_report_back_its_own_group_and_stops_mirroring() -> None:
    case = opened()
    second = accepted().model_copy(update={"report_id": "R2",
                                           "case_id": "140403-20261122-BBBBBB"})
    linked = fold(plan_link(case, second, EVIDENCE, NOW), case)
    changes, held = plan_unlink(linked, "R2", "不是同一儿童：母亲确认是兄妹", "cmd-1", NOW, "u")
    assert held == second
    assert changes[0].type == ev.CASE_REPORT_UNLINKED
    assert changes[0].data["duplicate_case_id"] == second.case_id
    unlinked = fold(changes, linked)
    assert unlinked.links == [] and unlinked.held_reports == {}
    entry = unlinked.timeline[-1]
    assert (entry.action, entry.actor, entry.why) == ("report_unlinked", "cmd-1",
                                                      "不是同一儿童：母亲确认是兄妹")
    found = mirror(unlinked, plan_found(unlinked, "found_safe", NOW, "", "cmd", NOW, "f"))
    assert [c.case_id for c in found] == [case.case_id]  # the other child is not cancelled
    with pytest.raises(Refused) as refused:
        plan_unlink(unlinked, "R2", "again", "cmd-1", NOW, "u2")
    assert (refused.value.status, refused.value.field) == (404, "report_id")


@pytest.mark.parametrize(("region", "escalated", "allowed"), [
    ("140403", False, True),   # the county that leads
    ("140400", False, True),   # its city
    ("140000", False, True),   # its province
    ("000000", False, True),   # national
    ("140402", False, False),  # a neighbouring county
    ("140403", True, False),   # the county, after escalation to the city
    ("140400", True, True),    # the city, after escalation
    ("140000", True, True),
    ("140500", True, False),   # another city
])
def test_only_the_leaders_level_or_above_may_end_a_search(region: str, escalated: bool,
                                                         allowed: bool) -> None:
    case = opened()
    if escalated:
        case = fold(plan_escalate(case, "city", "重大", "cmd", load_roster(), NOW, "e"), case)
        assert case.leader is not None and case.leader.organ_code == "140400"
    if allowed:
        require_authority(case, region, "close")
    else:
        with pytest.raises(Refused) as refused:
            require_authority(case, region, "close")
        assert refused.value.status == 403 and refused.value.code == "below_leader_level"
        assert "close" in refused.value.message and region in refused.value.message


def test_found_on_a_public_alert_needs_confirm_and_names_what_is_cancelled() -> None:
    case = fold(plan_release(opened(), "cmd", NOW, "r"), opened())
    with pytest.raises(Refused) as refused:
        plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f")
    assert (refused.value.status, refused.value.code, refused.value.field) == (
        409, "confirm_required", "confirm")
    assert f"A-{case.case_id}" in refused.value.message and "media" in refused.value.message
    assert plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f", confirm=True)
    with pytest.raises(Refused) as wrong:
        plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f", True, child="李小红")
    assert wrong.value.field == "child"
    assert plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f", True, child="张 小明")
    drill = opened(exercise=True)
    drill = fold(plan_release(drill, "cmd", NOW, "r"), drill)
    assert plan_found(drill, "found_safe", NOW, "", "cmd", NOW, "f")  # a drill: no confirm


def test_reopen_after_a_wrong_found() -> None:
    case = opened()
    with pytest.raises(Refused):
        plan_reopen(case, "x", "cmd", NOW, "o")  # not found yet
    found = fold(plan_found(case, "found_safe", NOW, "", "cmd", NOW, "f"), case)
    reopened = fold(plan_reopen(found, "认错了孩子", "cmd-2", NOW, "o"), found)
    assert reopened.status == "active" and reopened.outcome is None
    entry = reopened.timeline[-1]
    assert (entry.action, entry.actor, entry.why) == ("reopened", "cmd-2", "认错了孩子")


def test_an_incident_ties_children_but_never_a_drill_and_a_real_case() -> None:
    first = opened()
    second = fold(plan_open(accepted().model_copy(update={
        "report_id": "R2", "case_id": "140403-20261122-BBBBBB"}), POLICY, load_roster(), NOW))
    changes = plan_incident(first, [second], "兄妹同时走失", "cmd", NOW, "i")
    assert [c.case_id for c in changes] == [first.case_id, second.case_id]
    tied = fold(changes[1:], second)
    assert tied.incident == first.case_id
    assert tied.incident_cases == [first.case_id, second.case_id]
    assert mirror(fold(changes[:1], first), plan_found(
        first, "found_safe", NOW, "", "cmd", NOW, "f")) == plan_found(
        first, "found_safe", NOW, "", "cmd", NOW, "f")  # nothing reaches the sibling
    drill = opened(exercise=True).model_copy(update={"case_id": "140403-20261122-CCCCCC"})
    with pytest.raises(Refused) as refused:
        plan_incident(first, [drill], "x", "cmd", NOW, "i")
    assert refused.value.code == "drill_and_real"
    with pytest.raises(Refused):
        plan_incident(first, [], "x", "cmd", NOW, "i")


def test_the_live_stream_never_carries_identity_keys_or_held_reports() -> None:
    from services.dispatch.adapters import served

    case = opened()
    second = accepted().model_copy(update={"report_id": "R2",
                                           "case_id": "140403-20261122-BBBBBB"})
    link = plan_link(case, second, EVIDENCE, NOW)[0]
    assert "accepted" in link.data["details"]
    assert "accepted" not in served(link.data)["details"]
    assert served(link.data)["evidence"]["rule"] == "name_birth_date"
    opening = plan_open(accepted(), POLICY, load_roster(), NOW, keys=["k" * 32])[0]
    assert opening.data["duplicate_keys"] and "duplicate_keys" not in served(opening.data)
