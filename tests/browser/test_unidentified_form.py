"""A hospital's nurse registers a child without a guardian through the form, in Chinese
(issue 16): a field to correct is named beside it, then the record is accepted and reaches
dispatch (restricted to the region where the child was found)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from deploy.local.stack import ServiceProcess
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import eventually, run_sync

NURSE = mint_token(Settings(), Role.mandated_reporter, "140403", sub="nurse-browser",
                   org="长治市人民医院")
COMMANDER = mint_token(Settings(), Role.commander, "140400")


def test_a_nurse_registers_a_child_and_corrects_the_field_named(
    page: Page, stack: dict[str, ServiceProcess],
) -> None:
    page.goto(f"{stack['alert'].url}/intake/unidentified")
    page.fill("#token", NURSE)
    page.click("#signin-btn")
    form = page.locator("#record")
    expect(form).to_be_visible()
    expect(page.locator("h1")).to_have_text("来历不明儿童登记（强制报告）")
    expect(page.locator("[name=organisation]")).to_have_value("长治市人民医院")  # from the token
    page.select_option("[name=sex]", "female")
    page.fill("[name='apparent_age.min']", "5")
    page.fill("[name='apparent_age.max']", "3")  # wrong: below the minimum
    page.fill("[name=height_cm]", "105")
    page.fill("[name=description]", "粉色外套，扎两个小辫")
    page.fill("[name='found.address']", "山西省长治市潞州区长治市人民医院")
    page.fill("[name=circumstances]", "在儿科候诊区独自哭泣，无人认领")
    page.click("#submit")
    expect(page.locator("#form-error")).to_have_text("请修改标红的项目。")
    expect(page.locator("[data-error-for='apparent_age.max']")).to_contain_text("不能小于")
    page.fill("[name='apparent_age.max']", "6")
    page.click("#submit")
    record_no = page.locator("#record-no")
    expect(record_no).to_contain_text("U-140403-", timeout=15_000)
    record_id = record_no.inner_text()

    async def in_dispatch() -> int | None:
        async with httpx.AsyncClient(timeout=10) as http:
            got = await http.get(f"{stack['dispatch'].url}/api/v1/unidentified-children/"
                                 f"{record_id}", headers={"Authorization": f"Bearer {COMMANDER}"})
        return got.status_code if got.status_code == 200 else None

    assert run_sync(eventually(in_dispatch, timeout=30)) == 200
