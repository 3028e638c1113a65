from datetime import UTC, datetime

from services.dispatch.adapters import load_roster
from services.dispatch.domain import open_case
from shared.report import ReportAccepted
from tests.helpers import report_body

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def accepted(**overrides: object) -> ReportAccepted:
    return ReportAccepted(report_id="R1", case_id="140403-20261122-AAAAAA", accepted_at=NOW,
                          operator="op-1", operator_region="140403",
                          report=report_body(**overrides))


def test_county_bureau_head_leads_with_three_named_duties() -> None:
    case = open_case(accepted(), load_roster(), NOW)
    assert case.leader is not None
    assert case.leader.organ_name == "长治市公安局潞州分局"
    assert case.leader.title == "局长"
    assert {d: m.name for d, m in case.duties.items() if m} == {
        "investigation": "蒋晓军", "rescue": "沈国庆", "family_liaison": "韩秀英"}
    assert case.priority == "highest"
    assert case.mechanisms == ["rapid_search", "homicide_mechanism"]
    assert [e.action for e in case.timeline] == ["opened", "leader_assigned"]


def test_deputy_leads_when_head_unavailable() -> None:
    roster = load_roster()
    roster.organs["140403"].head.available = False
    case = open_case(accepted(), roster, NOW)
    assert case.leader is not None and case.leader.title == "副局长"


def test_county_without_own_organ_falls_back_to_its_city() -> None:
    case = open_case(accepted(last_seen__region_code="140404"), load_roster(), NOW)
    assert case.leader is not None and case.leader.organ_code == "140400"


def test_unknown_region_opens_case_without_leader_and_says_why() -> None:
    case = open_case(accepted(last_seen__region_code="650102"), load_roster(), NOW)
    assert case.leader is None
    assert case.timeline[-1].action == "leader_missing"


def test_runaway_starts_rapid_search_only() -> None:
    case = open_case(accepted(circumstances__kind="runaway"), load_roster(), NOW)
    assert case.mechanisms == ["rapid_search"]
