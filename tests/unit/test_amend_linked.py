"""An operators' report amendment (homeward.report.amended.v1) replaces details only on the
report's own case and alert: once the report is linked to another child's case, dispatch
records nothing on that case and notify adds to its alert what the amendment adds (as the
report's own details were added) — that case's details are replaced only by its own commander
at its leader's level (PATCH /cases/{id}/details). The window is real: alert refuses an
amendment only once it knows of the link, and dispatch may link the report first."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.dispatch.adapters import ALIAS, CaseRepository
from services.dispatch.amend import record_report_amendment
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case
from services.notify.children import ChildAlerts
from services.notify.domain import AlertState, VersionInfo
from services.notify.planner import Planner
from shared.events import DetailsAmended, ReportAmended
from shared.identity import LinkEvidence
from shared.report import ReportAccepted
from tests.helpers import report_body

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LEAD = "320100-20261130-AAAAAAAA"  # 南京: the case the report was linked to
JOINED = "140403-20261130-BBBBBBBB"  # 长治: the report's own case id


def amendment(case_id: str, cls: type[DetailsAmended] = ReportAmended) -> Any:
    extra = {"report_id": "R2"} if cls is ReportAmended else {}
    return cls(case_id=case_id, region_code=case_id[:6], actor="operator-140403",
               reason="补充", at=NOW, details={"amended": {"description": "别的描述"},
                                                "fields": ["description"]}, **extra)


class Redis:
    def __init__(self) -> None:
        self.kv: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.kv.get(key)


class Cases(CaseRepository):
    def __init__(self) -> None:
        self.redis = Redis()  # type: ignore[assignment]
        self.store: dict[str, Case] = {}

    async def get_own(self, case_id: str) -> Case | None:
        return self.store.get(case_id)

    async def save(self, case: Case, changes: Any, stream: bool = True) -> None:
        self.store[case.case_id] = case


class Publisher:
    source = "/homeward/dispatch"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def publish_many(self, out: Any) -> None:
        self.sent.extend(out)


class Dispatch:
    def __init__(self) -> None:
        self.cases = Cases()
        self.publisher = Publisher()
        self.caselog = CaseLog(cases=self.cases, publisher=self.publisher)  # type: ignore[arg-type]


def case(case_id: str) -> Case:
    return Case(case_id=case_id, report_id="R1", region_code=case_id[:6], priority="high",
                mechanisms=[], leader=None, duties={}, opened_at=NOW, child_name="张小明",
                kind="missing")


@pytest.mark.parametrize("linked", [True, False])
async def test_dispatch_records_a_report_amendment_on_the_reports_own_case_only(
        linked: bool) -> None:
    dispatch = Dispatch()
    dispatch.cases.store[LEAD] = case(LEAD)
    if linked:
        dispatch.cases.redis.kv[ALIAS + JOINED] = LEAD
    else:
        dispatch.cases.store[JOINED] = case(JOINED)
    await record_report_amendment(dispatch, amendment(JOINED), "E1")  # type: ignore[arg-type]
    assert dispatch.cases.store[LEAD].timeline == []  # never on the other child's case
    own = dispatch.cases.store.get(JOINED)
    if linked:
        assert own is None and dispatch.publisher.sent == []
    else:
        assert own is not None
        assert [(e.actor, e.action, e.what) for e in own.timeline] == [
            ("operator-140403", "details_amended", "description")]


class Alerts:
    def __init__(self) -> None:
        self.store: dict[str, AlertState] = {}
        self.merged: dict[str, str] = {}

    async def merged_into(self, case_id: str) -> str | None:
        return self.merged.get(case_id)

    async def get(self, alert_id: str) -> AlertState | None:
        return self.store.get(alert_id)

    async def set_merged(self, case_id: str, alert_id: str) -> None:
        self.merged[case_id] = alert_id


class Ctx:
    def __init__(self) -> None:
        self.alerts = Alerts()
        self.clock = lambda: NOW

    @contextlib.asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[None]:
        yield

    async def save(self, alert: AlertState) -> None:
        self.alerts.store[alert.alert_id] = alert


class Fanout:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.released: list[bool] = []

    async def fan_out(self, alert: AlertState, everyone: bool = False, **_: Any) -> None:
        self.sent.append(alert.alert_id)
        self.released.append(alert.released)

    async def push_group(self, alert: AlertState, everyone: bool = False) -> None:
        pass


def alert(case_id: str) -> AlertState:
    return AlertState(alert_id=f"A-{case_id}", case_id=case_id, region_code=case_id[:6],
                      exercise=False, released=False, seen_at=NOW, lat=32.0, lon=118.8,
                      radius_km=5, issued_at=NOW,
                      versions=[VersionInfo(version=1, msg_type="Alert", sent=NOW,
                                            radius_km=5)],
                      report=report_body(child__description="红色外套；蓝色书包"))


@pytest.mark.parametrize(("event", "merged", "changed", "description"), [
    # the joined report's operators: added to the lead alert, as the report was; nothing lost
    (ReportAmended, True, LEAD, "红色外套；蓝色书包；别的描述"),
    (ReportAmended, False, JOINED, "别的描述"),  # its own alert: replaced
    (DetailsAmended, False, LEAD, "别的描述"),  # the lead's commander (level checked)
])
async def test_notify_replaces_details_only_on_the_reports_own_alert(
        event: type[DetailsAmended], merged: bool, changed: str, description: str) -> None:
    planner = Planner.__new__(Planner)
    ctx, fanout = Ctx(), Fanout()
    planner.ctx, planner.fanout = ctx, fanout  # type: ignore[assignment]
    ctx.alerts.store = {f"A-{c}": alert(c) for c in (LEAD, JOINED)}
    if merged:
        ctx.alerts.merged[JOINED] = f"A-{LEAD}"
    update = amendment(LEAD if event is DetailsAmended else JOINED, event)
    for _ in range(2):  # a redelivery changes nothing more
        await planner.amend(update)
    for case_id in (LEAD, JOINED):
        got = ctx.alerts.store[f"A-{case_id}"]
        now = got.report["child"]["description"]
        assert now == (description if case_id == changed else "红色外套；蓝色书包"), case_id
        assert len(got.versions) == (2 if case_id == changed else 1)
    assert fanout.sent[0] == f"A-{changed}"


@pytest.mark.parametrize(("released", "second_public"), [
    (False, True), (False, False), (True, False), (True, True)])
async def test_a_merged_report_never_changes_who_may_read_the_alert(
        released: bool, second_public: bool) -> None:
    """A second report of the same child merged into the live alert (services.notify.children)
    brings its details as an Update; its `release.public` (its operator's, perhaps of another
    province) does not release the alert: that is the case leader's decision."""
    ctx, fanout = Ctx(), Fanout()
    planner = Planner.__new__(Planner)
    planner.ctx, planner.fanout = ctx, fanout  # type: ignore[assignment]
    merged = ChildAlerts.__new__(ChildAlerts)
    merged.notify, merged.planner = ctx, planner  # type: ignore[assignment]
    lead = alert(LEAD)
    lead.released = released
    ctx.alerts.store[lead.alert_id] = lead
    second = ReportAccepted(
        report_id="R2", case_id=JOINED, accepted_at=NOW, operator="operator-140403",
        operator_region="140403",
        report=report_body(release__public=second_public, child__description="右手有疤"))
    evidence = LinkEvidence(rule="name_birth_date", distance_km=40.0, hours_apart=1.0,
                            names=["张小明", "张小明"])
    assert await merged.merge(lead.alert_id, second, evidence)
    after = ctx.alerts.store[lead.alert_id]
    assert after.released is released and fanout.released == [released]
    assert "右手有疤" in after.report["child"]["description"]  # the details did merge
    assert [v.msg_type for v in after.versions] == ["Alert", "Update"]
    assert ctx.alerts.merged == {JOINED: lead.alert_id}
