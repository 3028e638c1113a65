"""The hub console in a real browser: an alert arrives live, the desk acknowledges it, and when
the child is found the alert collapses with the personal data gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer
from playwright.sync_api import Page, expect

from deploy.local.stack import KafkaServer, ServiceProcess
from shared import topics
from shared.auth import Role, mint_token
from shared.events import CASE_FOUND, CloudEvent
from shared.settings import Settings
from tests.browser.conftest import screenshot
from tests.helpers import another_child, report_body, run_sync


def bearer(role: Role, region: str, hub_id: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region, hub_id=hub_id)}"}


async def publish_found(bootstrap: str, case_id: str) -> None:
    now = datetime.now(UTC).isoformat()
    event = CloudEvent(type=CASE_FOUND, source="/homeward/dispatch", subject=case_id,
                       data={"case_id": case_id, "region_code": "140403", "actor": "c-1",
                             "at": now, "outcome": "found_safe", "found_at": now})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.DISPATCH, event.value(), key=case_id.encode(),
                                     headers=[(k, v.encode()) for k, v in event.headers().items()])
    finally:
        await producer.stop()


def test_hub_desk_sees_acknowledges_and_collapses_an_alert(
    page: Page, stack: dict[str, ServiceProcess], kafka: KafkaServer
) -> None:
    notify, alert = stack["notify"].url, stack["alert"].url
    hub_id = f"BRW-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{notify}/api/v1/subscribers", headers=bearer(Role.admin, "000000"),
               json={"kind": "hub", "name": "长治站", "hub_id": hub_id, "region_code": "140403",
                     "location": {"lat": 36.22, "lon": 113.12}, "channel": {"type": "console"}},
               timeout=10).raise_for_status()

    page.goto(f"{notify}/hub")
    page.fill("#token", mint_token(Settings(), Role.hub, "140400", hub_id=hub_id))
    page.click("#signin-btn")
    expect(page.locator("#desk")).to_be_visible()
    expect(page.locator("#live")).to_have_text("● 实时", timeout=10_000)

    # Sent in UTC; the desk reads Beijing time whatever the browser's own zone (issue 11 §6).
    seen = (datetime.now(UTC) - timedelta(minutes=15)).replace(second=0, microsecond=0)
    beijing = (seen + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") + "（北京时间）"
    filed = httpx.post(f"{alert}/api/v1/reports", headers=bearer(Role.operator, "140403"),
                       json=report_body(last_seen__at=seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                        **another_child()),
                       timeout=10)
    assert filed.status_code == 202, filed.text
    case_id = filed.json()["case_id"]
    card = page.locator(f"[data-alert='A-{case_id}']")
    expect(card).to_have_attribute("data-state", "unacked", timeout=15_000)
    expect(card).to_contain_text("张小明")
    expect(card).to_contain_text("晋D·12345")
    expect(card).to_contain_text(beijing)
    screenshot(page, "hub-console-alert")

    card.locator("[data-ack]").click()
    expect(card).to_have_attribute("data-state", "acked", timeout=10_000)
    rows = httpx.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                     headers=bearer(Role.commander, "140400"), timeout=10).json()["deliveries"]
    # The hub's Alert is acknowledged (a leader's Update after it is only `sent`: a hub
    # acknowledges its first message of an alert, issue 18 §5).
    assert {r["version"]: r["state"] for r in rows if r["subscriber_id"] == hub_id}[1] \
        == "acknowledged"

    run_sync(publish_found(kafka.bootstrap, case_id))
    expect(card).to_have_attribute("data-state", "cancelled", timeout=15_000)
    expect(card).to_contain_text("已找到")
    expect(card).not_to_contain_text("张小明")
    screenshot(page, "hub-console-cancelled")


def test_a_station_out_of_service_is_told_so_on_its_desk(
    page: Page, stack: dict[str, ServiceProcess]
) -> None:
    """A duty officer whose station an admin took out of service (or whose receiver answered
    410) gets no pushes; the desk says so instead of "waiting for alerts", and stops saying so
    once the station is back in service."""
    notify = stack["notify"].url
    hub_id = f"BRW-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{notify}/api/v1/subscribers", headers=bearer(Role.admin, "000000"),
               json={"kind": "hub", "name": "关闭站", "hub_id": hub_id, "region_code": "140403",
                     "location": {"lat": 36.2, "lon": 113.1}, "channel": {"type": "console"}},
               timeout=10).raise_for_status()
    httpx.post(f"{notify}/api/v1/subscribers/{hub_id}/disable",
               headers=bearer(Role.admin, "140400"), timeout=10).raise_for_status()

    page.goto(f"{notify}/hub")
    page.fill("#token", mint_token(Settings(), Role.hub, "140400", hub_id=hub_id))
    page.click("#signin-btn")
    banner = page.locator("#out-of-service")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("本站已停止接收协查推送")
    expect(page.locator("#waiting")).to_be_hidden()  # nothing is on its way
    screenshot(page, "hub-console-out-of-service")
    page.click("[data-lang-switch]")
    expect(banner).to_contain_text("no longer receives alerts")
    page.click("[data-lang-switch]")

    httpx.post(f"{notify}/api/v1/subscribers/{hub_id}/enable",
               headers=bearer(Role.admin, "140400"), timeout=10).raise_for_status()
    page.reload()
    expect(page.locator("#desk")).to_be_visible(timeout=10_000)
    expect(page.locator("#who")).to_contain_text("关闭站")  # the hub was read again
    expect(banner).to_be_hidden()
    expect(page.locator("#waiting")).to_be_visible()
