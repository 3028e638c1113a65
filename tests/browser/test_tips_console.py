"""The commander console pages through a case's tips (issue 12: tips are kept beside the case
and read a page at a time, newest first)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Browser, expect

from deploy.local.stack import KafkaServer, ServiceProcess
from shared import topics
from shared.auth import Role, mint_token
from shared.events import TIP_RECEIVED, CloudEvent, TipLocation, TipReceived
from shared.kafka import EventPublisher, make_broker
from shared.settings import Settings
from tests.browser.conftest import screenshot
from tests.browser.test_consoles import COMMANDER, new_page, sign_in_console
from tests.helpers import report_body, run_sync

TIPS = 23  # one page of 20 and three more


async def publish_tips(bootstrap: str, case_id: str) -> None:
    """As the alert service publishes them (its per-client limits are tested elsewhere)."""
    broker = make_broker(bootstrap, "test-tips-console")
    publisher = EventPublisher(broker, "/homeward/alert")
    start = datetime.now(UTC)
    async with broker:
        await broker.start()
        for n in range(TIPS):
            tip = TipReceived(tip_id=uuid.uuid4().hex, case_id=case_id, seen_at=start,
                              location=TipLocation(lat=36.2, lon=113.1, address="长治站"),
                              description=f"线索第{n}条", received_at=start + timedelta(seconds=n))
            await publisher.publish(topics.TIPS, CloudEvent.of(
                TIP_RECEIVED, "/homeward/alert", case_id, tip, event_id=tip.tip_id))


def test_commander_pages_through_the_tips_of_a_case(
    browser: Browser, stack: dict[str, ServiceProcess], kafka: KafkaServer,
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    operator = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    posted = httpx.post(f"{alert}/api/v1/reports", headers=operator, json=report_body(
        child__name=f"线索{uuid.uuid4().hex[:4]}", reporter__phone="13922223333"))
    assert posted.status_code == 202, posted.text
    case_id = posted.json()["case_id"]
    run_sync(publish_tips(kafka.bootstrap, case_id))  # before or after the case: held if before

    commander = new_page(browser)
    sign_in_console(commander, dispatch, "/console", COMMANDER, "#board")
    row = commander.locator(f"#case-list li[data-case='{case_id}']")
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    tips = commander.locator("#tips")
    expect(commander.locator("#tips-total")).to_have_text(f"({TIPS})", timeout=20_000)
    expect(tips.locator("p")).to_have_count(20)
    expect(tips.locator("p").first).to_contain_text(f"线索第{TIPS - 1}条")  # newest first
    older = commander.locator("[data-tips='older']")
    newer = commander.locator("[data-tips='newer']")
    expect(newer).to_be_hidden()
    older.click()
    expect(tips.locator("p")).to_have_count(TIPS - 20)
    expect(tips.locator("p").last).to_contain_text("线索第0条")
    expect(older).to_be_hidden()
    newer.click()
    expect(tips.locator("p")).to_have_count(20)
    commander.context.close()


def test_commander_is_told_of_a_tip_and_triages_it_in_the_console(
    browser: Browser, stack: dict[str, ServiceProcess],
) -> None:
    """Issue 16 §1/§3: a tip arriving on the live stream is announced with where it lies and
    whether it can be; the commander marks it not credible with why; the tip shows the verdict
    and the case's timeline the action with who and why."""
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    operator = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    posted = httpx.post(f"{alert}/api/v1/reports", headers=operator, json=report_body(
        child__name=f"研判{uuid.uuid4().hex[:4]}", reporter__phone="13922224444"))
    assert posted.status_code == 202, posted.text
    case_id = posted.json()["case_id"]

    commander = new_page(browser)
    sign_in_console(commander, dispatch, "/console", COMMANDER, "#board")
    row = commander.locator(f"#case-list li[data-case='{case_id}']")
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    # ~900 km north, 10 minutes after the child was last seen: marked, never dropped.
    tip = httpx.post(f"{alert}/api/v1/tips", json={
        "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
        "location": {"lat": 44.3, "lon": 113.11, "address": "二连浩特"},
        "description": "远处看到一个很像的孩子", "contact": "13900001111"})
    assert tip.status_code == 202, tip.text
    notice = commander.locator(f"#notices .notice[data-case='{case_id}']")
    expect(notice).to_contain_text("新线索", timeout=20_000)
    expect(notice).to_contain_text("时间距离不合理")

    tips = commander.locator("#tips p.tip")
    expect(tips).to_have_count(1, timeout=20_000)
    expect(tips.first.locator("[data-plausibility='implausible']")).to_contain_text(
        "时间距离不合理")
    expect(tips.first.locator("svg.tip-map")).to_be_visible()  # where, from the last-seen point
    expect(tips.first).to_contain_text("正北")
    expect(tips.first).to_contain_text("13900001111")  # restricted: the case's commanders
    tips.first.locator("[data-triage]").click()
    dialog = commander.locator("#confirm")
    expect(dialog).to_be_visible()
    dialog.locator("[name=verdict]").select_option("not_credible")
    dialog.locator("[name=reason]").fill("与车站监控不符")
    dialog.locator("#confirm-ok").click()
    expect(tips.first.locator("[data-verdict='not_credible']")).to_contain_text(
        "不可信", timeout=20_000)
    timeline = commander.locator(".timeline")
    expect(timeline).to_contain_text("tip_triaged")
    expect(timeline).to_contain_text("与车站监控不符")
    expect(timeline).to_contain_text("cmd-browser")
    screenshot(commander, "commander-tip-triaged")
    page = httpx.get(f"{dispatch}/api/v1/cases/{case_id}/tips",
                     headers={"Authorization": f"Bearer {COMMANDER}"}).json()
    assert page["items"][0]["triage"]["verdict"] == "not_credible"
    assert page["items"][0]["triage"]["by"] == "cmd-browser"
    commander.context.close()
