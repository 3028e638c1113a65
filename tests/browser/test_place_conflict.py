"""A place whose parts disagree, in a real browser (issue 11): the operator picks 潞州区 but
pastes 高德 (GCJ-02) coordinates of a point in 太原; the report is accepted, the operator is
told, and the commander's case view shows both parts with the distance."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from deploy.local.stack import ServiceProcess
from shared.datum import Datum, from_wgs84
from tests.browser.conftest import screenshot
from tests.browser.test_consoles import COMMANDER, new_page, sign_in_console
from tests.browser.test_intake_form import fill_report, sign_in


def test_conflicting_place_is_accepted_and_shown_to_the_commander(
    browser: Browser, page: Page, stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    commander = new_page(browser)
    sign_in_console(commander, dispatch, "/console", COMMANDER, "#board")

    sign_in(page, alert)
    fill_report(page, "赵小雨", phone="13922223333")
    lat, lon = from_wgs84(37.87, 112.55, Datum.gcj02)  # 太原, as a 高德 link shows it
    page.fill("[name='last_seen.lat']", f"{lat:.6f}")
    page.fill("[name='last_seen.lon']", f"{lon:.6f}")
    page.select_option("[name='last_seen.datum']", "gcj02")
    page.click("#submit")
    expect(page.locator("#case-no")).to_have_text(re.compile(r"^140403-"), timeout=15_000)
    note = page.locator("#place-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("地点信息不一致")
    case_id = page.locator("#case-no").inner_text().strip()
    screenshot(page, "intake-place-conflict")

    row = commander.locator(f"#case-list li[data-case='{case_id}']")
    expect(row).to_be_visible(timeout=15_000)
    row.click()
    card = commander.locator("#place-conflict")
    expect(card).to_contain_text("地点信息不一致")
    expect(card).to_contain_text("140403 潞州区")
    expect(card).to_contain_text(re.compile(r"坐标: 1401\d\d .*· \d+(\.\d)? km"))
    screenshot(commander, "commander-place-conflict")
    commander.context.close()
