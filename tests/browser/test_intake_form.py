"""The operator files a report through the intake form, in a real browser."""

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess
from shared import topics
from shared.auth import Role, mint_token
from shared.case_ids import CASE_ID
from shared.settings import Settings
from tests.browser.conftest import screenshot
from tests.helpers import WebhookSink, read_topic, run_sync, unsealed

CASE_IN_140403 = re.compile(CASE_ID.replace(r"\d{6}", "140403", 1))
OPERATOR = mint_token(Settings(), Role.operator, "140400", sub="op-browser")


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/intake")
    page.fill("#token", OPERATOR)
    page.click("#signin-btn")
    expect(page.locator("#report")).to_be_visible()


def fill_report(page: Page, name: str, phone: str = "13800000000") -> None:
    page.fill("[name='child.name']", name)
    page.select_option("[name='child.sex']", "male")
    page.fill("[name='child.birth_date']", "2019-05-01")
    page.fill("[name='child.height_cm']", "115")
    page.fill("[name='child.description']", "蓝色羽绒服，黑色运动鞋")
    page.select_option("#province", label="山西省")
    page.wait_for_selector("#city option:has-text('长治市')", state="attached")
    page.select_option("#city", label="长治市")
    page.wait_for_selector("#county option:has-text('潞州区')", state="attached")
    page.select_option("#county", label="潞州区")
    page.fill("[name='last_seen.address']", "英雄南路与太行东街交叉口")
    page.select_option("[name='circumstances.kind']", "suspected_abduction")
    page.fill("[name='circumstances.vehicle']", "晋D·12345")
    page.fill("[name='reporter.name']", "李红")
    page.fill("[name='reporter.phone']", phone)
    page.fill("[name='reporter.relation']", "母亲")


def register_hub(notify: str, sink_url: str) -> None:
    admin = mint_token(Settings(), Role.admin, "000000")
    httpx.post(f"{notify}/api/v1/subscribers", headers={"Authorization": f"Bearer {admin}"},
               timeout=30,  # a loaded machine: the stack has just started
               json={"kind": "hub", "name": "长治站", "location": {"lat": 36.22, "lon": 113.12},
                     "channel": {"type": "webhook", "url": sink_url}}).raise_for_status()


def test_operator_files_a_report_and_watches_it_reach_leader_and_hubs(
    page: Page, stack: dict[str, ServiceProcess]
) -> None:
    with WebhookSink() as sink:
        register_hub(stack["notify"].url, sink.url)
        sign_in(page, stack["alert"].url)
        expect(page.locator("h1")).to_have_text("失踪儿童报案登记")
        fill_report(page, "张小明")
        screenshot(page, "intake-filled")
        page.click("#submit")
        expect(page.locator("#case-no")).to_have_text(CASE_IN_140403)
        for step in ("#st-accepted", "#st-published", "#st-leader", "#st-hubs"):
            expect(page.locator(step)).to_have_class("done", timeout=30_000)
        expect(page.locator("#leader")).to_contain_text("长治市公安局潞州分局")
        screenshot(page, "intake-accepted")


def test_field_errors_appear_next_to_the_field_in_chinese_then_english(
    page: Page, stack: dict[str, ServiceProcess]
) -> None:
    sign_in(page, stack["alert"].url)
    fill_report(page, "王小红", phone="12345")
    page.click("#submit")
    phone_error = page.locator("[data-error-for='reporter.phone']")
    expect(phone_error).to_contain_text("电话号码")
    expect(page.locator("[name='reporter.phone']")).to_have_class("invalid")
    screenshot(page, "intake-field-error")
    page.click("[data-lang-switch]")
    expect(page.locator("h1")).to_have_text("Missing child report intake")
    page.click("#submit")
    expect(phone_error).to_contain_text("not a telephone number")


async def accepted_report(kafka: KafkaServer, redis: RedisServer,
                          case_id: str) -> dict[str, Any] | None:
    """The report of `case_id` on homeward.reports.v1 opened with its case key, the way a
    consumer reads it (issue 13: the personal fields travel sealed, never in clear)."""
    for m in await read_topic(kafka.bootstrap, topics.REPORTS):
        value = m["value"]
        if m["key"] == case_id and isinstance(value, dict) and "report" in value:
            assert "pii" in value, "the report's personal fields are sealed"
            clear = json.dumps(value, ensure_ascii=False)
            settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url)
            report: dict[str, Any] = (await unsealed(settings, value))["report"]
            typed = (report["child"]["name"], report["child"]["id_number"],
                     report["reporter"]["phone"], report["reporter"]["phone_display"])
            for field in filter(None, typed):
                assert field not in clear, field
            return report
    return None


@pytest.mark.parametrize(("typed", "e164", "display"), [
    ("+852 9123 4567", "+85291234567", "+852 9123 4567"),  # a Hong Kong parent
    ("00853 6612 3456", "+85366123456", "+853 6612 3456"),  # Macau
    ("+886 912 345 678", "+886912345678", "+886 912 345 678"),  # Taiwan
    ("010-8888 6666 转 801", "+861088886666", "010 8888 6666 转 801"),
    ("139-0000-1111", "+8613900001111", "139 0000 1111"),
])
def test_a_parent_from_hong_kong_or_elsewhere_files_with_their_own_number(
    page: Page, stack: dict[str, ServiceProcess], kafka: KafkaServer, redis_server: RedisServer,
    typed: str, e164: str, display: str
) -> None:
    name = f"港童{uuid.uuid4().hex[:4]}"
    sign_in(page, stack["alert"].url)
    fill_report(page, name, phone=typed)
    page.fill("[name='child.id_number']", "１４０４０３２０１９０５０１００１２")  # full-width
    page.click("#submit")
    expect(page.locator("#case-no")).to_have_text(CASE_IN_140403)
    case_id = page.locator("#case-no").inner_text()
    report = None
    for _ in range(20):
        report = run_sync(accepted_report(kafka, redis_server, case_id))
        if report:
            break
    assert report is not None
    reporter, child = report["reporter"], report["child"]
    assert child["name"] == name
    assert (reporter["phone"], reporter["phone_display"]) == (e164, display)
    assert child["id_number"] == "140403201905010012"


@pytest.mark.parametrize(("id_number", "words"), [
    ("140403201905010017", "校验位不符"),  # one digit mistyped
    ("140403201905010", "18 位"),
])
def test_a_wrong_id_number_is_shown_next_to_its_field(
    page: Page, stack: dict[str, ServiceProcess], id_number: str, words: str
) -> None:
    sign_in(page, stack["alert"].url)
    fill_report(page, "王小青", phone="+852 9123 4567")
    page.fill("[name='child.id_number']", id_number)
    page.click("#submit")
    expect(page.locator("[data-error-for='child.id_number']")).to_contain_text(words)
    expect(page.locator("[name='child.id_number']")).to_have_class("invalid")
    expect(page.locator("[name='reporter.phone']")).not_to_have_class("invalid")


def test_a_paste_is_kept_whole_and_counted_as_the_server_counts(
    page: Page, stack: dict[str, ServiceProcess]
) -> None:
    """A description pasted with emoji and rare CJK characters (each two UTF-16 units, one
    character to the server) is kept whole, not cut by the browser; over the limit, the field
    says how many characters it has at once, and the server's 422 names it."""
    sign_in(page, stack["alert"].url)
    fill_report(page, "张𠮷乐")
    description = page.locator("[name='child.description']")
    pasted = "𠮷🇨🇳" * 300  # 900 characters, 1,800 UTF-16 units
    description.fill(pasted)
    assert description.input_value() == pasted
    expect(description).not_to_have_class("invalid")
    description.fill(pasted + "穿红衣服" * 30)  # 1,020 characters
    expect(description).to_have_class("invalid")
    expect(page.locator("label:has([name='child.description']) .length-error")).to_contain_text(
        "1020")
    page.click("#submit")
    expect(page.locator("[data-error-for='child.description']")).not_to_be_empty()


def test_a_submit_lost_on_the_network_is_retried_once_with_the_same_key(
    page: Page, stack: dict[str, ServiceProcess], kafka: KafkaServer, redis_server: RedisServer
) -> None:
    name = f"网断{uuid.uuid4().hex[:4]}"
    keys: list[str] = []
    failures = {"left": 2}

    def flaky(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if failures["left"]:
            failures["left"] -= 1
            # The server got the report, but the answer is lost on the way back.
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    sign_in(page, stack["alert"].url)
    page.route("**/api/v1/reports", flaky)
    fill_report(page, name)
    page.click("#submit")
    expect(page.locator("#net")).to_contain_text("网络中断")
    expect(page.locator("#case-no")).to_be_visible(timeout=30_000)
    assert len(keys) == 3 and len(set(keys)) == 1

    case_id = page.locator("#case-no").inner_text()

    async def reports_for_case() -> list[str]:
        found = await read_topic(kafka.bootstrap, topics.REPORTS)
        return [m["headers"]["ce_id"] for m in found  # skip other tests' poison messages
                if m["key"] == case_id and isinstance(m["value"], dict)
                and isinstance(m["value"].get("report"), dict)]

    deadline_reports: list[str] = []
    for _ in range(20):
        deadline_reports = run_sync(reports_for_case())
        if deadline_reports:
            break
    assert len(deadline_reports) == 1, json.dumps(deadline_reports)
    report = run_sync(accepted_report(kafka, redis_server, case_id))
    assert report is not None and report["child"]["name"] == name
