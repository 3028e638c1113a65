"""Candidates, confirmation, DNA samples and placement on the case (issue 16 items 4–6), pure:
plans checked against the case's state, the projection folded from their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dispatch import candidates, dna, purge
from services.dispatch.domain import Case, Change, Refused
from services.dispatch.ending import plan_found, plan_reopen
from services.dispatch.matching import score
from services.dispatch.opening import plan_open
from services.dispatch.projection import fold as fold_or_none
from services.dispatch.records import DnaSample
from services.dispatch.roster import load_roster
from services.dispatch.rules import load_rules
from shared import events as ev
from shared.report import ReportAccepted, ResolvedReport
from shared.unidentified import UnidentifiedChildReported
from tests.helpers import report_body

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
SEEN = NOW - timedelta(hours=2)


def fold(changes: list[Change], case: Case | None = None) -> Case:
    folded = fold_or_none(changes, case)
    assert folded is not None
    return folded


def opened() -> Case:
    accepted = ReportAccepted(
        report_id="R1", case_id="140403-20261130-AAAAAA", accepted_at=SEEN,
        operator="op-1", operator_region="140403",
        report=ResolvedReport.model_validate(report_body(**{"last_seen__at": SEEN.isoformat()})))
    return fold(plan_open(accepted, load_rules(), load_roster(), SEEN))


def record(**change: object) -> UnidentifiedChildReported:
    data: dict[str, object] = {
        "record_id": "U-130102-20261130-ABCDEF", "received_at": NOW, "reporter": "nurse-1",
        "reporter_role": "mandated_reporter", "organisation": "石家庄市第一医院",
        "region_code": "130102", "lat": 38.04, "lon": 114.51, "found_at": NOW,
        "sex": "male", "age_min": 6, "age_max": 8, "height_cm": 117,
        "description": "蓝色羽绒服，黑色运动鞋", "circumstances": "独自在急诊室"}
    return UnidentifiedChildReported.model_validate({**data, **change})


def proposed(case: Case, found: UnidentifiedChildReported | None = None) -> Case:
    found = found or record()
    missing = candidates.missing_child(case)
    assert missing is not None
    return fold(candidates.plan_propose(case, found, score(missing, candidates.found_child(found)),
                                        NOW), case)


def test_the_case_keeps_the_childs_profile_for_matching() -> None:
    profile = opened().child_profile
    assert profile is not None
    assert (profile.sex, profile.height_cm, profile.description) == (
        "male", 115, "蓝色羽绒服，黑色运动鞋")
    assert profile.age == 7  # born 2019-05-01, last seen 2026-11-30


def test_a_proposal_is_kept_once_with_score_and_reasons_and_on_the_timeline() -> None:
    case = proposed(opened())
    again = proposed(case)
    assert len(again.candidates) == 1
    offered = again.candidates[0]
    assert offered.status == "proposed" and offered.score >= 0.6
    assert {r.factor for r in offered.reasons} >= {"sex", "age", "height", "place"}
    assert case.timeline[-1].action == "candidate_proposed"


def test_a_drill_record_is_never_compared_with_a_real_case() -> None:
    assert not candidates.comparable(opened(), record(exercise=True))


def test_confirming_finds_the_child_with_the_record_and_confirms_the_candidate() -> None:
    case = proposed(opened())
    changes = candidates.plan_confirm(case, "U-130102-20261130-ABCDEF", "found_safe", None,
                                      "DNA 待比对", "commander-140400", NOW, "e1")
    assert [c.type for c in changes] == [ev.CASE_CANDIDATE_CONFIRMED, ev.CASE_FOUND]
    found = fold(changes, case)
    assert found.status == "found" and found.found_record == "U-130102-20261130-ABCDEF"
    assert found.found_at == NOW  # the record's found time
    assert found.candidates[0].status == "confirmed"
    assert found.candidates[0].confirmed_via == "commander"


def test_only_a_candidate_can_be_confirmed_and_only_on_an_open_case() -> None:
    case = proposed(opened())
    with pytest.raises(Refused) as refused:
        candidates.plan_confirm(case, "U-130102-20261130-ZZZZZZ", "found_safe", None, "", "c",
                                NOW, "e")
    assert (refused.value.status, refused.value.code) == (404, "not_a_candidate")
    found = fold(candidates.plan_confirm(case, "U-130102-20261130-ABCDEF", "found_safe", None,
                                         "", "c", NOW, "e1"), case)
    with pytest.raises(Refused) as again:
        candidates.plan_confirm(found, "U-130102-20261130-ABCDEF", "found_safe", None, "", "c",
                                NOW, "e2")
    assert again.value.code == "case_not_open"


def test_placement_with_civil_affairs_names_the_receiving_organisation() -> None:
    case = opened()
    with pytest.raises(Refused) as refused:
        plan_found(case, "placed_with_civil_affairs", NOW, "", "c", NOW, "e")
    assert (refused.value.status, refused.value.field) == (422, "receiving_organisation")
    placed = fold(plan_found(case, "placed_with_civil_affairs", NOW, "监护人不宜", "c", NOW, "e",
                             receiving_organisation="长治市儿童福利院"), case)
    assert placed.status == "found" and placed.outcome == "placed_with_civil_affairs"
    assert placed.receiving_organisation == "长治市儿童福利院"
    assert placed.timeline[-1].what == "placed_with_civil_affairs → 长治市儿童福利院"
    assert placed.duties == case.duties  # the group stays until the case is closed


def sample(subject: str = "family", **kw: object) -> DnaSample:
    return DnaSample.model_validate({"sample_id": "S1", "subject": subject, "donor": "母亲",
                                     "taken_by": "民警王强", "taken_at": NOW,
                                     "place": "潞州区公安分局", "lab_reference": "LAB-2026-001",
                                     **kw})


def test_the_family_sample_through_its_states_completes_the_dna_duty() -> None:
    case = opened()
    assert case.task(dna.DUTY) is not None and case.task(dna.DUTY).status == "open"  # type: ignore[union-attr]
    case = fold(dna.plan_record(case, sample(), "c", NOW), case)
    assert case.dna_samples[0].status == "collected"
    for i, status in enumerate(("entered", "compared", "no_match")):
        case = fold(dna.plan_step(case, "S1", status, "", "c", NOW, f"e{i}"), case)  # type: ignore[arg-type]
        assert case.dna_samples[0].status == status
        if status == "entered":
            assert case.task(dna.DUTY).status == "done"  # type: ignore[union-attr]
    assert [s.status for s in case.dna_samples[0].history] == [
        "collected", "entered", "compared", "no_match"]


@pytest.mark.parametrize(("path", "refused"), [
    (["compared"], "collected → compared skips entering"),
    (["entered", "match"], "entered → match skips the comparison"),
    (["entered", "compared", "no_match", "match"], "an outcome is final"),
    (["entered", "entered"], "no step twice"),
])
def test_steps_out_of_order_are_refused(path: list[str], refused: str) -> None:
    case = fold(dna.plan_record(opened(), sample(), "c", NOW), opened())
    *allowed, wrong = path
    for i, status in enumerate(allowed):
        case = fold(dna.plan_step(case, "S1", status, "", "c", NOW, f"e{i}"), case)  # type: ignore[arg-type]
    with pytest.raises(Refused) as error:
        dna.plan_step(case, "S1", wrong, "", "c", NOW, "x")  # type: ignore[arg-type]
    assert (error.value.status, error.value.code) == (409, "dna_transition"), refused


def test_a_found_childs_match_links_its_record_as_a_confirmed_candidate() -> None:
    case = opened()
    case = fold(dna.plan_record(case, sample("found_child", sample_id="S2"), "c", NOW), case)
    for i, status in enumerate(("entered", "compared")):
        case = fold(dna.plan_step(case, "S2", status, "", "c", NOW, f"e{i}"), case)  # type: ignore[arg-type]
    with pytest.raises(Refused) as missing:
        dna.plan_step(case, "S2", "match", "", "c", NOW, "m")
    assert missing.value.code == "dna_record_required"
    found = record()
    steps = dna.plan_step(case, "S2", "match", "比中", "c", NOW, "m", found.record_id)
    missing_child = candidates.missing_child(case)
    assert missing_child is not None
    steps += candidates.plan_dna_link(case, found, found.record_id,
                                      score(missing_child, candidates.found_child(found)), "c",
                                      NOW, "m")
    linked = fold(steps, case)
    assert linked.dna_samples[0].status == "match"
    assert linked.candidates[0].record_id == found.record_id
    assert linked.candidates[0].status == "confirmed"
    assert linked.candidates[0].confirmed_via == "dna"
    assert linked.is_open  # a match links; ending the search stays the commander's act


def test_the_purge_drops_the_profile_description_and_the_reasons_quoting_it() -> None:
    case = proposed(opened())
    found = fold(candidates.plan_confirm(case, "U-130102-20261130-ABCDEF", "found_safe", None,
                                         "", "c", NOW, "e1"), case)
    purged = fold(purge.plan_purge(found, NOW + timedelta(days=31)), found)
    assert purged.child_profile is not None and purged.child_profile.description == ""
    assert purged.candidates[0].reasons == []
    assert (purged.candidates[0].score, purged.candidates[0].status) == (
        found.candidates[0].score, "confirmed")  # decisions and outcomes stay


def test_a_wrong_confirmation_undone_by_reopening_offers_the_record_again() -> None:
    case = proposed(opened())
    found = fold(candidates.plan_confirm(case, "U-130102-20261130-ABCDEF", "found_safe", None,
                                         "", "c", NOW, "e1"), case)
    reopened = fold(plan_reopen(found, "认错了孩子", "c", NOW, "r"), found)
    assert reopened.is_open and reopened.found_record is None
    assert reopened.candidates[0].status == "proposed"
