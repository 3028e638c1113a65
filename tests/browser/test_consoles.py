"""The three consoles together, in a real browser (issue 6): the operator files a report
through the form; the commander console shows the case live with its leader; the hub console
shows the alert live and acknowledges it, and the commander's acknowledged count rises;
marking the child found collapses the hub's alert and removes the personal data."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Browser, Page, expect

from deploy.local.stack import ServiceProcess
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.browser.conftest import screenshot
from tests.browser.test_intake_form import fill_report, sign_in
from tests.helpers import WebhookSink

COMMANDER = mint_token(Settings(), Role.commander, "140400", sub="cmd-browser")
ADMIN = {"Authorization": f"Bearer {mint_token(Settings(), Role.admin, '000000')}"}


def new_page(browser: Browser, width: int = 1366, height: int = 768) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                  timezone_id="America/New_York")
    return context.new_page()


def register_hub(notify: str, sink_url: str) -> str:
    got = httpx.post(f"{notify}/api/v1/subscribers", headers=ADMIN, json={
        "kind": "hub", "name": "长治东站", "location": {"lat": 36.21, "lon": 113.14},
        "channel": {"type": "webhook", "url": sink_url}})
    got.raise_for_status()
    return str(got.json()["subscriber_id"])


def sign_in_console(page: Page, url: str, path: str, token: str, board: str) -> None:
    page.goto(f"{url}{path}")
    page.fill("#token", token)
    page.click("#signin-btn")
    expect(page.locator(board)).to_be_visible()
    expect(page.locator("#live")).to_have_text("● 实时", timeout=10_000)


def test_report_to_commander_and_hub_live_ack_and_found(
    browser: Browser, page: Page, stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch, notify = (stack[n].url for n in ("alert", "dispatch", "notify"))
    with WebhookSink() as sink:
        hub_id = register_hub(notify, sink.url)
        hub_token = mint_token(Settings(), Role.hub, "140400", hub_id=hub_id, sub="hub-desk")

        commander = new_page(browser)
        sign_in_console(commander, dispatch, "/console", COMMANDER, "#board")
        expect(commander.locator("h1")).to_have_text("失踪儿童案件指挥台")
        hub = new_page(browser, 390, 844)  # the duty desk's phone
        sign_in_console(hub, notify, "/hub", hub_token, "#desk")
        expect(hub.locator("h1")).to_have_text("交通枢纽值班台")

        # The operator files the report through the form.
        sign_in(page, alert)
        fill_report(page, "王小花", phone="13911112222")
        page.click("#submit")
        case_number = page.locator("#case-no")
        expect(case_number).to_have_text(re.compile(r"^140403-"), timeout=15_000)
        filed = time.monotonic()
        case_id = case_number.inner_text().strip()
        screenshot(page, "intake-filed")

        # The commander sees it without reloading, with the leader of 潞州区.
        row = commander.locator(f"#case-list li[data-case='{case_id}']")
        expect(row).to_contain_text("长治市公安局潞州分局", timeout=15_000)
        print(f"commander console showed the case {time.monotonic() - filed:.2f} s after the "
              "operator saw the case number")
        row.click()
        view = commander.locator("#case")
        expect(view).to_contain_text("王小花")
        expect(view.locator("#leader-line")).to_contain_text("长治市公安局潞州分局")
        # Times people read are in Beijing time, though this browser runs in New York.
        expect(view.locator(".timeline")).to_contain_text("（北京时间）")
        for duty in ("侦查破案", "解救", "安抚家属"):
            expect(view).to_contain_text(duty)
        expect(view.locator("#spread img")).to_be_visible(timeout=15_000)  # the alert's spread
        screenshot(commander, "commander-case")

        # The hub desk gets the alert live and loud, and acknowledges it.
        card = hub.locator("article.alert", has_text="王小花")
        expect(card).to_have_attribute("data-state", "unacked", timeout=15_000)
        expect(card).to_contain_text("晋D·12345")
        screenshot(hub, "hub-alert")
        card.locator("[data-ack]").click()
        expect(card).to_have_attribute("data-state", "acked")

        # The commander's acknowledged figure rises (figures refresh from notify).
        expect(commander.locator("[data-figure='d_ack'] b")).to_have_text("1", timeout=15_000)

        # Release with a preview (issue 17 §4): the dialog shows what the public will receive
        # and the audience; confirming releases that content.
        view.locator("[data-action='release']").click()
        dialog = commander.locator("#confirm")
        expect(dialog.locator(".preview-text")).to_contain_text("王小花", timeout=10_000)
        expect(dialog.locator(".preview-text")).to_contain_text("核验码")
        expect(dialog).to_contain_text("枢纽")
        for secret in ("13911112222", "139 1111 2222", "晋D·12345"):
            expect(dialog).not_to_contain_text(secret)
        screenshot(commander, "commander-release-preview")
        commander.click("#confirm-ok")
        expect(view).to_contain_text("已批准公开发布", timeout=10_000)

        # Found: the commander confirms (seeing the Cancel every recipient will get); the hub's
        # card collapses with no personal data left.
        view.locator("[data-action='found']").click()
        expect(dialog.locator(".preview-text")).to_contain_text("已解除", timeout=10_000)
        commander.select_option("#confirm [name='outcome']", "found_safe")
        # The alert is public: ending it needs the explicit confirm (issue 19, 409 without).
        confirm = dialog.locator("[name='confirm']")
        expect(confirm).to_be_visible()
        confirm.check()
        commander.click("#confirm-ok")
        expect(view).to_contain_text("已找到", timeout=10_000)
        screenshot(commander, "commander-found")
        collapsed = hub.locator("article.alert[data-state='cancelled']", has_text=case_id)
        expect(collapsed).to_contain_text("已找到", timeout=15_000)
        expect(hub.locator("#alerts")).not_to_contain_text("王小花")
        expect(hub.locator("#alerts")).not_to_contain_text("晋D·12345")
        screenshot(hub, "hub-cancelled")

        # Closing a found case is allowed; the refusal path is covered in the dispatch tests.
        commander.context.close()
        hub.context.close()
