"""Dispatch across the stack: an operator's report through alert forms the case group, a public
tip through alert is attached to it, and the commander's actions reach the live stream; a tip
is pushed to the leader and the investigation member over the group's SMS/chat gateway (a
local sink), and a sighting in another county becomes that county's local check (issue 16)."""

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.e2e.test_flow import token
from tests.helpers import WebhookSink, eventually, report_body

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway() -> Iterator[WebhookSink]:
    """The SMS/chat gateway of the case group (Apprise json:// to a local sink)."""
    with WebhookSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def stack(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
          gateway: WebhookSink) -> Iterator[dict[str, ServiceProcess]]:
    """The e2e stack (as tests/e2e/test_flow.py's) with the case group's gateway configured."""
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    port = gateway.server.server_address[1]
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir, ports, {
        "HOMEWARD_NOTIFY_GROUP_APPRISE_URL": f"json://127.0.0.1:{port}/sms/{{phone}}",
        # A local check is due 3 s after it is assigned: its overdue report is seen here.
        "HOMEWARD_DISPATCH_CHECK_DEADLINE_S": "3"})
    yield procs
    for proc in procs.values():
        proc.stop()


async def test_report_tip_and_commander_actions_across_the_stack(
    stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    commander = token(Role.commander, "140400")
    async with httpx.AsyncClient(timeout=15) as http:
        posted = await http.post(f"{alert}/api/v1/reports", headers=token(Role.operator, "140403"),
                                 json=report_body(child__name=f"童{uuid.uuid4().hex[:6]}",
                                                  reporter__phone="13698765432",
                                                  circumstances__kind="stolen"))
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def case() -> dict[str, object] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=commander)
            return got.json() if got.status_code == 200 else None

        # (The stack first catches up what earlier modules left on the session broker.)
        opened = await eventually(case, timeout=90)
        assert opened["leader"]["organ_name"] == "长治市公安局"  # type: ignore[index]
        assert opened["supervision"] == "province"

        tip = await http.post(f"{alert}/api/v1/tips", json={
            "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
            "location": {"lat": 36.2, "lon": 113.1, "address": "长治站"},
            "description": "候车室里看到一个穿蓝色羽绒服的男孩"})
        assert tip.status_code == 202, tip.text

        async def attached() -> dict[str, Any] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}/tips", headers=commander)
            page: dict[str, Any] = got.json()
            return page if got.status_code == 200 and page["items"] else None

        with_tip = await eventually(attached, timeout=30)
        assert with_tip["items"][0]["tip_id"] == tip.json()["tip_id"]

        async with http.stream("GET", f"{dispatch}/api/v1/stream",
                               headers={**commander, "Last-Event-ID": "0-0"}) as stream:
            found = await http.post(f"{dispatch}/api/v1/cases/{case_id}/found", headers=commander,
                                    json={"outcome": "found_safe",
                                          "found_at": datetime.now(UTC).isoformat()})
            assert found.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line.removeprefix("data:").strip())
                    if data["case_id"] == case_id and data["type"] == "homeward.case.found.v1":
                        break
        closed = await http.post(f"{dispatch}/api/v1/cases/{case_id}/close", headers=commander,
                                 json={"reason": "平安找到"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"

        # The alert service learns of the closing from homeward.dispatch.v1: tips refused.
        async def refused() -> int | None:
            got = await http.post(f"{alert}/api/v1/tips", json={
                "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
                "location": {"lat": 36.2, "lon": 113.1}, "description": "结案后的线索"})
            return got.status_code if got.status_code == 410 else None

        assert await eventually(refused, timeout=30) == 410


# --- issue 16: sightings ------------------------------------------------------------------------

LEADER, INVESTIGATOR = "+863551000001", "+863551000003"  # 潞州分局: 褚卫东, 蒋晓军 (roster.yaml)
XUANWU_HEAD = "+862520000001"  # 南京市公安局玄武分局 局长 曹立军


async def sent_to(gateway: WebhookSink, phone: str, marker: str) -> list[dict[str, Any]] | None:
    return texts_to(gateway, phone, marker) or None


def texts_to(gateway: WebhookSink, phone: str, marker: str) -> list[dict[str, Any]]:
    """What the gateway got for `phone` whose message contains `marker`, with when."""
    out = []
    for r in list(gateway.requests):
        if unquote(r["path"]).endswith("/" + phone):
            message = json.loads(r["body"]).get("message", "")
            if marker in message:
                out.append({"message": message, "at": r["at"]})
    return out


async def open_case(http: httpx.AsyncClient, alert: str, dispatch: str) -> str:
    posted = await http.post(f"{alert}/api/v1/reports", headers=token(Role.operator, "140403"),
                             json=report_body(child__name=f"童{uuid.uuid4().hex[:6]}",
                                              reporter__phone="13698765433"))
    assert posted.status_code == 202, posted.text
    case_id: str = posted.json()["case_id"]

    async def case() -> bool:
        got = await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                             headers=token(Role.commander, "140403"))
        return got.status_code == 200

    # (The stack first catches up what earlier modules left on the session broker.)
    await eventually(case, timeout=90)
    return case_id


async def test_a_tip_reaches_the_leader_and_the_investigator_hub_sightings_first(
    stack: dict[str, ServiceProcess], gateway: WebhookSink,
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    commander = token(Role.commander, "140403")
    async with httpx.AsyncClient(timeout=15) as http:
        case_id = await open_case(http, alert, dispatch)
        marker = f"线索{uuid.uuid4().hex[:6]}"
        sent = time.time()
        tip = await http.post(f"{alert}/api/v1/tips", json={
            "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
            "location": {"lat": 36.2, "lon": 113.1, "address": "长治站"},
            "description": f"{marker} 候车室里看到一个穿蓝色羽绒服的男孩",
            "contact": "13911112222"})
        assert tip.status_code == 202, tip.text

        async def both() -> dict[str, list[dict[str, Any]]] | None:
            got = {p: texts_to(gateway, p, marker) for p in (LEADER, INVESTIGATOR)}
            return got if all(got.values()) else None

        # (The stack first catches up what earlier modules left on the session broker.)
        pushed = await eventually(both, timeout=90, interval=0.05)
        latency = max(m[0]["at"] for m in pushed.values()) - sent
        print(f"tip → leader and investigator channels: {latency:.3f} s")
        for messages in pushed.values():
            text = messages[0]["message"]
            assert case_id in text and "长治站" in text and "当前推送半径 100 公里" in text
            assert "公里" in text and "13911112222" not in text  # never the tipster's contact

        # A hub's staff report a sighting from the hub console (their token): marked, first.
        staff = mint_token(Settings(), Role.hub, "140403", hub_id="H-CZZ")
        hub = {"Authorization": f"Bearer {staff}"}
        by_hub = await http.post(f"{alert}/api/v1/tips", headers=hub, json={
            "case_id": case_id, "seen_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "location": {"lat": 36.21, "lon": 113.12, "address": "长治东站进站口"},
            "description": f"{marker} 进站口疑似"})
        assert by_hub.status_code == 202, by_hub.text

        async def two() -> dict[str, Any] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}/tips", headers=commander)
            page: dict[str, Any] = got.json()
            return page if page.get("total") == 2 else None

        page = await eventually(two, timeout=30)
        first, second = page["items"]
        assert first["tip_id"] == by_hub.json()["tip_id"] and first["source"] == "hub"
        assert first["hub_id"] == "H-CZZ" and first["assessment"]["rank"] == 0
        assert second["contact"] == "13911112222"  # restricted: the case's commanders only
        assert second["assessment"]["plausibility"] in ("near", "ground")
        assert second["notified"] == ["褚卫东", "蒋晓军"]
        hub_texts = await eventually(lambda: sent_to(gateway, LEADER, "H-CZZ"))
        assert "枢纽 H-CZZ 工作人员目击" in hub_texts[0]["message"]

        # Triaged as belonging to another case: on this case's timeline with who and why, and
        # attached to that case too.
        other = await open_case(http, alert, dispatch)
        triaged = await http.post(
            f"{dispatch}/api/v1/cases/{case_id}/tips/{tip.json()['tip_id']}/triage",
            headers=commander, json={"verdict": "duplicate", "reason": "同一孩子另案在办",
                                     "linked_case_id": other})
        assert triaged.status_code == 200, triaged.text
        entry = triaged.json()["timeline"][-1]
        assert entry["action"] == "tip_triaged" and entry["why"] == "同一孩子另案在办"
        assert entry["actor"].startswith("commander-") and other in entry["what"]
        there = await http.get(f"{dispatch}/api/v1/cases/{other}/tips", headers=commander)
        assert [t["tip_id"] for t in there.json()["items"]] == [tip.json()["tip_id"]]

        deliveries = await http.get(f"{stack['notify'].url}/api/v1/deliveries",
                                    params={"case_id": case_id}, headers=commander)
        group = [d for d in deliveries.json()["deliveries"] if d["alert_id"].startswith("T-")]
        assert group and {d["scope"] for d in group} == {"group"}


async def test_a_sighting_in_another_county_is_checked_there(
    stack: dict[str, ServiceProcess], gateway: WebhookSink,
) -> None:
    alert, dispatch = stack["alert"].url, stack["dispatch"].url
    own, there, elsewhere = (token(Role.commander, r) for r in ("140403", "320102", "320104"))
    async with httpx.AsyncClient(timeout=15) as http:
        case_id = await open_case(http, alert, dispatch)
        for who in (there, elsewhere):  # another region's case does not exist for them
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=who)
            assert got.status_code == 404
        tip = await http.post(f"{alert}/api/v1/tips", json={
            "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
            "location": {"lat": 32.06, "lon": 118.79, "address": "南京市玄武区中央路"},
            "description": "公交站看到一个很像的孩子"})
        assert tip.status_code == 202, tip.text

        async def task() -> list[dict[str, Any]] | None:
            got = await http.get(f"{dispatch}/api/v1/checks", headers=there)
            assert got.status_code == 200, got.text
            mine = [t for t in got.json() if t["case_id"] == case_id]
            return mine or None

        [assigned] = await eventually(task, timeout=30)
        check = assigned["check"]
        assert check["region_code"] == "320102" and check["organ_name"] == "南京市公安局玄武分局"
        assert check["tip_id"] == tip.json()["tip_id"] and check["status"] == "open"
        # The county's head is told over the group's channel.
        told = await eventually(lambda: sent_to(gateway, XUANWU_HEAD, case_id))
        assert "核查任务" in told[0]["message"]
        # While the check is open its commanders read the case and its tips; no one else.
        read = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=there)
        assert read.status_code == 200 and read.json()["child_name"].startswith("童")
        tips = await http.get(f"{dispatch}/api/v1/cases/{case_id}/tips", headers=there)
        assert tips.status_code == 200
        assert tips.json()["items"][0]["assessment"]["plausibility"] == "implausible"
        assert (await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                               headers=elsewhere)).status_code == 404
        # ... but they cannot act on it as its own commanders do.
        assert (await http.post(f"{dispatch}/api/v1/cases/{case_id}/close", headers=there,
                                json={"reason": "x"})).status_code == 404

        # Unreported past its deadline: on the timeline, and the leader and the head are told.
        async def overdue() -> bool:
            got = (await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=own)).json()
            return any(t["action"] == "check_overdue" for t in got["timeline"])

        await eventually(overdue, timeout=30)
        assert await eventually(lambda: sent_to(gateway, LEADER, f"{case_id} 的核查"))
        assert await eventually(lambda: sent_to(gateway, XUANWU_HEAD, "核查超时"))

        joined = await http.post(
            f"{dispatch}/api/v1/cases/{case_id}/checks/{check['check_id']}/cooperate",
            headers=own, json={"reason": "跨区域协作"})
        assert joined.status_code == 200, joined.text
        assert any(m["duty"] == "cooperation" and m["organ_code"] == "320102"
                   for m in joined.json()["members"])

        report = await http.post(
            f"{dispatch}/api/v1/cases/{case_id}/checks/{check['check_id']}/report",
            headers=there, json={"result": "not_found", "note": "调取监控，未发现该儿童"})
        assert report.status_code == 200, report.text
        again = await http.post(
            f"{dispatch}/api/v1/cases/{case_id}/checks/{check['check_id']}/report",
            headers=there, json={"result": "confirmed"})
        # The check closed: the case is theirs to read (or report on) no longer.
        assert again.status_code == 404
        assert (await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                               headers=there)).status_code == 404
        timeline = (await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                                   headers=own)).json()["timeline"]
        actions = [(t["action"], t["actor"]) for t in timeline]
        assert ("check_assigned", "dispatch") in actions
        assert any(a == "check_reported" and who != "dispatch" for a, who in actions)
        reported = next(t for t in timeline if t["action"] == "check_reported")
        assert "未发现" in reported["what"] and reported["why"] == "调取监控，未发现该儿童"
