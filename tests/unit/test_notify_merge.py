"""A second report of the same child merged into a live alert (services.notify.children):
its details reach the alert's recipients as an Update, and nothing in it widens who may read
the alert — a restricted alert stays restricted until its case leader releases it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notify.children import ChildAlerts
from services.notify.domain import AlertState, VersionInfo
from shared.identity import LinkEvidence
from shared.report import ReportAccepted
from tests.helpers import report_body

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Alerts:
    def __init__(self) -> None:
        self.store: dict[str, AlertState] = {}
        self.merged: dict[str, str] = {}

    async def get(self, alert_id: str) -> AlertState | None:
        return self.store.get(alert_id)

    async def set_merged(self, case_id: str, alert_id: str) -> None:
        self.merged[case_id] = alert_id


class Notify:
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
        self.sent: list[tuple[bool, bool]] = []

    async def fan_out(self, alert: AlertState, everyone: bool = False, **_: Any) -> None:
        self.sent.append((everyone, alert.released))

    async def push_group(self, alert: AlertState, everyone: bool = False) -> None:
        pass


class Planner:
    def __init__(self) -> None:
        self.fanout = Fanout()


def alerts(released: bool) -> tuple[ChildAlerts, Notify, Planner, AlertState]:
    notify, planner = Notify(), Planner()
    merged = ChildAlerts.__new__(ChildAlerts)
    merged.notify, merged.planner = notify, planner  # type: ignore[assignment]
    alert = AlertState(
        alert_id="A-320102-20261130-AAAAAAAA", case_id="320102-20261130-AAAAAAAA",
        region_code="320102", exercise=False, released=released, seen_at=NOW, lat=32.0,
        lon=118.8, radius_km=5, issued_at=NOW,
        versions=[VersionInfo(version=1, msg_type="Alert", sent=NOW, radius_km=5)],
        report=report_body())
    notify.alerts.store[alert.alert_id] = alert
    return merged, notify, planner, alert


@pytest.mark.parametrize(("released", "second_public"), [
    (False, True), (False, False), (True, False), (True, True)])
async def test_a_merged_report_never_changes_who_may_read_the_alert(
        released: bool, second_public: bool) -> None:
    merged, notify, planner, alert = alerts(released)
    second = ReportAccepted(
        report_id="R2", case_id="341100-20261130-BBBBBBBB", accepted_at=NOW,
        operator="operator-341100", operator_region="341100",
        report=report_body(release__public=second_public, child__description="右手有疤"))
    evidence = LinkEvidence(rule="name_birth_date", distance_km=40.0, hours_apart=1.0,
                            names=["张小明", "张小明"])
    assert await merged.merge(alert.alert_id, second, evidence)
    after = notify.alerts.store[alert.alert_id]
    assert after.released is released
    assert "右手有疤" in after.report["child"]["description"]  # the details did merge
    assert [v.msg_type for v in after.versions] == ["Alert", "Update"]
    assert planner.fanout.sent == [(True, released)]
    assert notify.alerts.merged == {second.case_id: alert.alert_id}
