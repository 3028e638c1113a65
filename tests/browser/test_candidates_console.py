"""The commander confirms an unidentified-child candidate in the console, in Chinese (issue 16):
the candidate shows its score and reasons, confirming marks the child found; the family's DNA
sample is recorded and entered, completing the DNA duty."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Browser, expect

from deploy.local.stack import ServiceProcess
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.browser.test_consoles import COMMANDER, new_page, sign_in_console
from tests.helpers import report_body


def test_commander_confirms_a_candidate_in_the_console(
    browser: Browser, stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    seen = datetime.now(UTC) - timedelta(hours=2, minutes=5)
    operator = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    posted = httpx.post(f"{alert}/api/v1/reports", headers=operator, json=report_body(**{
        "child__name": f"候选{uuid.uuid4().hex[:4]}", "last_seen__at": seen.isoformat()}))
    assert posted.status_code == 202, posted.text
    case_id = posted.json()["case_id"]

    commander = new_page(browser)
    sign_in_console(commander, dispatch, "/console", COMMANDER, "#board")
    row = commander.locator(f"#case-list li[data-case='{case_id}']")
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    expect(commander.locator("#candidates")).to_contain_text("暂无候选", timeout=20_000)

    # The family's blood sample, recorded and entered into the database: the DNA duty is done.
    commander.click("[data-dna-add]")
    dialog = commander.locator("#confirm")
    dialog.locator("[name=donor]").fill("母亲")
    dialog.locator("[name=taken_by]").fill("潞州分局民警王强")
    dialog.locator("[name=place]").fill("潞州区公安分局")
    dialog.locator("[name=lab_reference]").fill("SX-DNA-2026-0099")
    commander.click("#confirm-ok")
    sample = commander.locator("#dna .sample")
    expect(sample.locator(".status")).to_have_text("已采集", timeout=20_000)
    sample.locator("[data-dna-step=entered]").click()
    expect(commander.locator("#dna .sample .status")).to_have_text("已录入打拐DNA信息库",
                                                                   timeout=20_000)
    duty = commander.locator("#tasks tr", has_text="血样")
    expect(duty).to_contain_text("已完成")

    nurse = mint_token(Settings(), Role.mandated_reporter, "140923", org="代县人民医院")
    filed = httpx.post(f"{alert}/api/v1/unidentified-children",
                       headers={"Authorization": f"Bearer {nurse}"}, json={
        "sex": "male", "apparent_age": {"min": 6, "max": 8}, "height_cm": 116,
        "description": "蓝色羽绒服，黑色运动鞋",
        "found": {"at": (seen + timedelta(hours=2)).isoformat(), "lat": 38.888, "lon": 113.11},
        "circumstances": "独自在急诊科"})
    assert filed.status_code == 202, filed.text
    record_id = filed.json()["record_id"]

    candidate = commander.locator(f"#candidates [data-record='{record_id}']")
    expect(candidate).to_be_visible(timeout=30_000)  # pushed: the stream refreshes the case
    expect(candidate.locator(".score")).to_contain_text("匹配度")
    expect(candidate).to_contain_text("代县人民医院")
    expect(candidate.locator("li[data-factor='sex']")).to_contain_text("性别相符")
    expect(candidate.locator("li[data-factor='place']")).to_contain_text("可能到达")
    candidate.locator(f"[data-confirm-record='{record_id}']").click()
    dialog = commander.locator("#confirm")
    expect(dialog).to_contain_text(record_id)
    dialog.locator("[name=note]").fill("家属视频辨认")
    commander.click("#confirm-ok")
    expect(commander.locator("#case .badges")).to_contain_text("已找到", timeout=20_000)
    expect(candidate).to_contain_text("已确认", timeout=20_000)
    commander.context.close()


def test_a_value_shown_in_a_console_line_is_text_not_a_pattern(
    browser: Browser, stack: dict[str, ServiceProcess],
) -> None:
    """HW.t fills a line's {placeholders} in one pass, each value as written: "$'" (the text
    after the match, in String.replace), "$&" or another placeholder inside an organisation's
    name showed other parts of the line in its place."""
    page = new_page(browser)
    page.goto(f"{stack['dispatch'].url}/console")
    page.wait_for_function("() => typeof HW !== 'undefined'")
    line = "{org} 登记 · 发现于 {when}"
    for org in ["长治市救助站$'", "救助站{when}", "A$&B", "救助站$`", "$$", "{org}"]:
        got = page.evaluate("([line, org]) => { HW.words({probe: line}, {probe: line}); "
                            "return HW.t('probe', {org, when: '10:00'}); }", [line, org])
        assert got == f"{org} 登记 · 发现于 10:00", org
