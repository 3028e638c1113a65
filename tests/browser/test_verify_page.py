"""The public verification page in a real browser (issue 17 §2–3): someone scans the QR code of
a printed poster and lands on the page that says the alert is genuine and active; once the
child is found the same code says "已找到，请停止转发" with no personal data; a made-up code is
not verified. No login anywhere."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from deploy.local.stack import KafkaServer, ServiceProcess
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.browser.conftest import screenshot
from tests.browser.test_notify_hub_console import publish_found
from tests.helpers import pdf_qr_codes, report_body, run_sync


def test_scanning_the_poster_leads_to_the_verification_page(
    page: Page, stack: dict[str, ServiceProcess], kafka: KafkaServer, tmp_path: Path
) -> None:
    notify, alert = stack["notify"].url, stack["alert"].url
    operator = mint_token(Settings(), Role.operator, "140403", permissions=["release"])
    filed = httpx.post(f"{alert}/api/v1/reports", headers={"Authorization": f"Bearer {operator}"},
                       json=report_body(release__public=True), timeout=10)
    assert filed.status_code == 202, filed.text
    case_id = filed.json()["case_id"]
    poster_url = f"{notify}/api/v1/alerts/A-{case_id}/poster.pdf"
    deadline = time.monotonic() + 30
    poster = httpx.get(poster_url, timeout=30)
    while poster.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        poster = httpx.get(poster_url, timeout=30)
    assert poster.status_code == 200, poster.text

    [scanned] = pdf_qr_codes(poster.content, tmp_path)
    assert scanned.startswith(f"{notify}/verify?code=")
    page.goto(scanned)
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-status", "active", timeout=10_000)
    expect(verdict).to_contain_text("真实有效")
    expect(page.locator("#name")).to_have_text("张小明")
    expect(page.locator("#contact")).to_contain_text("110")
    expect(page.locator("#seen")).to_contain_text("北京时间")
    screenshot(page, "verify-active")
    page.click("[data-lang-switch]")
    expect(verdict).to_contain_text("Genuine")
    page.click("[data-lang-switch]")

    run_sync(publish_found(kafka.bootstrap, case_id))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page.reload()
        expect(verdict).not_to_have_text("", timeout=10_000)
        if verdict.get_attribute("data-status") == "ended":
            break
        time.sleep(0.5)
    expect(verdict).to_contain_text("已找到，请停止转发")
    expect(page.locator("#details")).to_be_hidden()
    assert "张小明" not in page.content()
    screenshot(page, "verify-ended")

    page.fill("#code", "00000-00000")
    page.click("#check")
    expect(verdict).to_have_attribute("data-status", "unknown", timeout=10_000)
    expect(verdict).to_contain_text("这不是本平台发布的协查")
