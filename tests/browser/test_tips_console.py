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
