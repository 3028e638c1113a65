"""The dispatch service on real Kafka and Redis, served over HTTP by uvicorn in this process:
life cycle, escalation, overdue repeat across a restart, duplicate linking, tips, handover,
replay after Redis is flushed, and the live stream's resume."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from deploy.local.stack import free_port
from services.dispatch.app import create_app
from services.notify.app import create_app as create_notify
from services.notify.handlers import Notify
from shared import topics
from shared.auth import Role, mint_token
from shared.events import REPORT_ACCEPTED, TIP_RECEIVED, CloudEvent, TipLocation, TipReceived
from shared.kafka import EventPublisher, make_broker
from shared.report import ReportAccepted, ResolvedReport
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body

SETTINGS = Settings()


def bearer(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SETTINGS, role, region, sub=f'{role}-{region}')}"}


COMMANDER = bearer(Role.commander, "140400")  # 长治市: sees 140403
ELSEWHERE = bearer(Role.commander, "320000")  # 江苏省: does not
ADMIN = bearer(Role.admin, "000000")


def new_case_id(region: str = "140403") -> str:
    return f"{region}-20261123-{uuid.uuid4().hex[:6].upper()}"


class Stack:
    """One dispatch app served on a free port, and a publisher standing in for alert."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self.http = httpx.AsyncClient(timeout=15)
        self.broker = make_broker(settings.kafka_bootstrap, "test-alert")
        self.publisher = EventPublisher(self.broker, "/test/alert")
        self.notify: Notify | None = None
        self.notify_overrides: dict[str, Any] = {}

    @asynccontextmanager
    async def serving(self, notify: bool = False) -> AsyncIterator[Stack]:
        """`notify`: also serve notify (fed the reports directly), which renders the release
        previews dispatch asks for (issue 17 §4)."""
        async with AsyncExitStack() as running:
            settings = self.settings
            if notify:
                notify_url = await running.enter_async_context(self._notify())
                settings = settings.model_copy(update={"notify_url": notify_url})
            port = free_port()
            self.url = await running.enter_async_context(
                _served(create_app(settings), port))
            yield self

    @asynccontextmanager
    async def _notify(self) -> AsyncIterator[str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        app = create_notify(self.settings.model_copy(update={
            "notify_url": url, "notify_rebuild_on_empty": False, **self.notify_overrides}),
            timers=False, consume=False)
        self.notify = app.state.notify
        async with _served(app, port):
            yield url
        self.notify = None

    async def release(self, case_id: str) -> httpx.Response:
        """Preview, then release what the preview showed."""
        preview = await self.http.get(f"{self.url}/api/v1/cases/{case_id}/release-preview",
                                      headers=COMMANDER)
        assert preview.status_code == 200, preview.text
        return await self.post(f"/cases/{case_id}/release",
                               {"content_hash": preview.json()["content_hash"]})

    async def report(self, case_id: str, operator_region: str = "140403",
                     **overrides: Any) -> ReportAccepted:
        # A child of its own unless the test says otherwise: the same child reported twice
        # within 24 h nearby is linked to the first case.
        overrides.setdefault("child__name", f"童{uuid.uuid4().hex[:6]}")
        overrides.setdefault("reporter__phone", f"139{uuid.uuid4().int % 10**8:08d}")
        accepted = ReportAccepted(
            report_id=f"R-{case_id}", case_id=case_id, accepted_at=datetime.now(UTC),
            operator="op-1", operator_region=operator_region,
            report=ResolvedReport.model_validate(report_body(**overrides)))
        event = CloudEvent.of(REPORT_ACCEPTED, "/test/alert", case_id, accepted,
                              event_id=accepted.report_id)
        await self.publisher.publish(topics.REPORTS, event)
        if self.notify is not None:
            await self.notify.on_report_accepted(event)
        return accepted

    async def case(self, case_id: str, headers: dict[str, str] = COMMANDER) -> httpx.Response:
        return await self.http.get(f"{self.url}/api/v1/cases/{case_id}", headers=headers)

    async def opened(self, case_id: str,
                     headers: dict[str, str] = COMMANDER) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            got = await self.case(case_id, headers)
            return got.json() if got.status_code == 200 else None

        return await eventually(check, timeout=30)

    async def post(self, path: str, body: Any = None,
                   headers: dict[str, str] = COMMANDER) -> httpx.Response:
        return await self.http.post(f"{self.url}/api/v1{path}", json=body, headers=headers)


@asynccontextmanager
async def _served(app: Any, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server, task), timeout=60, interval=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 90)  # consumers leave their group; slow when busy


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raise what stopped it
    return server.started


@pytest.fixture
async def stack(settings: Settings, redis: Redis) -> AsyncIterator[Stack]:
    s = Stack(settings.model_copy(update={"dispatch_timer_tick_s": 0.2}))
    await s.broker.start()
    try:
        yield s
    finally:
        await s.http.aclose()
        await s.broker.stop()


async def case_events(bootstrap: str, case_id: str) -> list[dict[str, Any]]:
    return [m for m in await read_topic(bootstrap, topics.DISPATCH) if m["key"] == case_id]


async def test_life_cycle_close_refused_until_found_and_every_step_on_the_topic(
    stack: Stack,
) -> None:
    async with stack.serving(notify=True):
        case_id = new_case_id()
        await stack.report(case_id)
        case = await stack.opened(case_id)
        assert case["status"] == "opened" and case["priority"] == "highest"
        assert case["leader"]["organ_name"] == "长治市公安局潞州分局"
        assert set(case["duties"]) == {"investigation", "rescue", "family_liaison"}
        assert all(case["duties"].values())

        # Region scoping and roles.
        assert (await stack.case(case_id, ELSEWHERE)).status_code == 404
        assert (await stack.case(case_id, bearer(Role.operator, "140403"))).status_code == 403
        listed = await stack.http.get(f"{stack.url}/api/v1/cases", headers=ELSEWHERE)
        assert case_id not in {c["case_id"] for c in listed.json()}

        refused = await stack.post(f"/cases/{case_id}/close", {"reason": "结束"})
        assert refused.status_code == 409
        assert "案件不破，专案组不撤" in refused.json()["error"]["message"]

        done = await stack.post(f"/cases/{case_id}/tasks/family_contact/complete",
                                {"note": "已联系母亲"})
        assert done.status_code == 200 and done.json()["status"] == "active"
        assert (await stack.post(f"/cases/{case_id}/tasks/family_contact/complete",
                                 {})).status_code == 409
        assert (await stack.post(f"/cases/{case_id}/tasks/nope/complete", {})).status_code == 404

        released = await stack.release(case_id)
        assert released.status_code == 200 and released.json()["release_approved"]
        assert (await stack.release(case_id)).status_code == 409

        no_outcome = await stack.post(f"/cases/{case_id}/found",
                                      {"found_at": "2026-11-23T10:00:00Z"})
        assert no_outcome.status_code == 422 and no_outcome.json()["error"]["field"] == "outcome"
        found = await stack.post(f"/cases/{case_id}/found", {
            "outcome": "found_safe", "found_at": datetime.now(UTC).isoformat(), "note": "在公园"})
        assert found.status_code == 200 and found.json()["status"] == "found"
        closed = await stack.post(f"/cases/{case_id}/close", {"reason": "平安找到"})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert (await stack.post(f"/cases/{case_id}/close", {"reason": "x"})).status_code == 409

        timeline = closed.json()["timeline"]
        assert [t["action"] for t in timeline][-5:] == [
            "task_completed", "release_approved", "task_completed", "found", "closed"]
        assert timeline[-1]["actor"] == "commander-140400" and timeline[-1]["why"] == "平安找到"

    types = [m["headers"]["ce_type"] for m in await case_events(
        stack.settings.kafka_bootstrap, case_id)]
    for t in ("opened", "member_added", "task_assigned", "task_completed", "release_approved",
              "found", "closed"):
        assert f"homeward.case.{t}.v1" in types
    release = [m for m in await case_events(stack.settings.kafka_bootstrap, case_id)
               if m["headers"]["ce_type"] == "homeward.case.release_approved.v1"]
    assert release[0]["value"]["actor"] == "commander-140400"


async def test_escalation_by_rules_and_by_a_commander(stack: Stack) -> None:
    async with stack.serving():
        stolen = new_case_id()
        await stack.report(stolen, circumstances__kind="stolen")
        case = await stack.opened(stolen)
        assert case["leader"]["organ_name"] == "长治市公安局"
        assert case["supervision"] == "province"
        assert case["escalations"][0]["by"] == "dispatch"

        plain = new_case_id()
        await stack.report(plain)
        await stack.opened(plain)
        bad = await stack.post(f"/cases/{plain}/escalate", {"level": "nation", "reason": "x"})
        assert bad.status_code == 422
        city = await stack.post(f"/cases/{plain}/escalate", {"level": "city", "reason": "线索跨县"})
        assert city.status_code == 200
        assert city.json()["leader"]["organ_name"] == "长治市公安局"
        assert city.json()["escalations"][-1] == {
            **city.json()["escalations"][-1], "level": "city", "reason": "线索跨县",
            "by": "commander-140400"}
        assert (await stack.post(f"/cases/{plain}/escalate",
                                 {"level": "city", "reason": "again"})).status_code == 409
        province = await stack.post(f"/cases/{plain}/escalate",
                                    {"level": "province", "reason": "重大"})
        assert province.status_code == 200 and province.json()["supervision"] == "province"
    types = [m["headers"]["ce_type"] for m in await case_events(
        stack.settings.kafka_bootstrap, plain)]
    assert types.count("homeward.case.escalated.v1") == 2
    assert "homeward.case.leader_assigned.v1" in types


async def test_overdue_task_repeats_and_survives_a_restart(stack: Stack) -> None:
    stack.settings = stack.settings.model_copy(update={
        "dispatch_deadline_scale": 0.001,  # 30 min → 1.8 s
        "dispatch_overdue_repeat_s": 2.0})
    case_id = new_case_id()
    async with stack.serving():
        await stack.report(case_id)
        await stack.opened(case_id)

        async def overdue_once() -> bool:
            task = next(t for t in (await stack.case(case_id)).json()["tasks"]
                        if t["task_id"] == "hub_interception")
            return bool(task["overdue_count"] >= 1)

        await eventually(overdue_once, timeout=20)
    # Stopped: the timer lives in Redis and fires again after the restart.
    async with stack.serving():
        async def overdue_twice() -> dict[str, Any] | None:
            task = next(t for t in (await stack.case(case_id)).json()["tasks"]
                        if t["task_id"] == "hub_interception")
            return task if task["overdue_count"] >= 2 else None

        await eventually(overdue_twice, timeout=20)
        await stack.post(f"/cases/{case_id}/tasks/hub_interception/complete", {})
        after = next(t for t in (await stack.case(case_id)).json()["tasks"]
                     if t["task_id"] == "hub_interception")
        await asyncio.sleep(3)
        later = next(t for t in (await stack.case(case_id)).json()["tasks"]
                     if t["task_id"] == "hub_interception")
        assert later["overdue_count"] == after["overdue_count"]  # done: no more reminders
    overdue = [m for m in await case_events(stack.settings.kafka_bootstrap, case_id)
               if m["headers"]["ce_type"] == "homeward.case.task_overdue.v1"
               and m["value"]["details"]["task_id"] == "hub_interception"]
    counts = sorted({m["value"]["details"]["count"] for m in overdue})
    assert counts[:2] == [1, 2]
    assert overdue[0]["value"]["details"]["notify"][0]["duty"] == "leader"


async def test_second_report_of_the_same_child_is_linked_not_a_second_group(
    stack: Stack,
) -> None:
    name = f"王{uuid.uuid4().hex[:4]}"
    async with stack.serving():
        first = new_case_id()
        await stack.report(first, child__name=name, reporter__phone="13912345678")
        await stack.opened(first)

        same_child = new_case_id()  # same name and birth date, other reporter, 3 km away
        await stack.report(same_child, child__name=name, reporter__phone="13700000001",
                           last_seen__lat=36.21, last_seen__lon=113.13)
        same_phone = new_case_id()  # the same reporter calls again, naming the child otherwise
        await stack.report(same_phone, child__name=name[1:], reporter__phone="13912345678")
        far = new_case_id("320102")  # same child 900 km away: not linked
        await stack.report(far, child__name=name, reporter__phone="13700000002",
                           last_seen__region_code="320102", last_seen__lat=32.05,
                           last_seen__lon=118.8)

        async def linked() -> dict[str, Any] | None:
            case = (await stack.case(first)).json()
            return case if len(case["linked_reports"]) == 2 else None

        case = await eventually(linked, timeout=30)
        assert {r["duplicate_case_id"]: r["match"] for r in case["linked_reports"]} == {
            same_child: "name_birth_date", same_phone: "reporter_phone"}
        # The duplicate's case id leads to the one case group.
        assert (await stack.case(same_child)).json()["case_id"] == first
        ids = {c["case_id"] for c in (await stack.http.get(
            f"{stack.url}/api/v1/cases", headers=ADMIN)).json()}
        assert first in ids and same_child not in ids and same_phone not in ids
        await stack.opened(far, ADMIN)
    # Under the duplicate's own id: only an announcement of the group it joined.
    alias, *members = await case_events(stack.settings.kafka_bootstrap, same_child)
    assert alias["headers"]["ce_type"] == "homeward.case.opened.v1"
    assert alias["value"]["linked_to"] == first
    assert alias["value"]["leader"] == case["leader"]
    assert {m["headers"]["ce_type"] for m in members} == {"homeward.case.member_added.v1"}
    assert [m["value"]["details"]["member"] for m in members] == case["members"]


async def test_tip_attached_and_leader_handover(stack: Stack) -> None:
    async with stack.serving():
        case_id = new_case_id()
        await stack.report(case_id)
        await stack.opened(case_id)
        tip = TipReceived(tip_id=uuid.uuid4().hex, case_id=case_id,
                          seen_at=datetime.now(UTC), location=TipLocation(lat=36.2, lon=113.1,
                                                                          address="长治站"),
                          description="在长治站候车室看到", received_at=datetime.now(UTC))
        event = CloudEvent.of(TIP_RECEIVED, "/test/alert", case_id, tip, event_id=tip.tip_id)
        await stack.publisher.publish(topics.TIPS, event)
        await stack.publisher.publish(topics.TIPS, event)  # redelivered: attached once

        async def attached() -> dict[str, Any] | None:
            case = (await stack.case(case_id)).json()
            return case if case["tips"] else None

        case = await eventually(attached, timeout=20)
        await asyncio.sleep(1)
        case = (await stack.case(case_id)).json()
        assert len(case["tips"]) == 1 and case["tips"][0]["description"] == "在长治站候车室看到"
        assert case["tips"][0]["notified"] == [case["leader"]["name"],
                                               case["duties"]["investigation"]["name"]]

        organ = await stack.http.get(f"{stack.url}/api/v1/organs/140403", headers=COMMANDER)
        assert organ.status_code == 200 and organ.json()["name"] == "长治市公安局潞州分局"
        assert (await stack.http.get(f"{stack.url}/api/v1/organs/140403",
                                     headers=ELSEWHERE)).status_code == 404
        body = {"post": "head", "available": False, "reason": "外出学习"}
        assert (await stack.http.put(f"{stack.url}/api/v1/organs/140403/availability",
                                     json=body, headers=COMMANDER)).status_code == 403
        put = await stack.http.put(f"{stack.url}/api/v1/organs/140403/availability",
                                   json=body, headers=ADMIN)
        assert put.status_code == 200 and case_id in put.json()["handed_over"]
        assert put.json()["organ"]["head"]["available"] is False
        case = (await stack.case(case_id)).json()
        assert case["leader"]["post"] == "deputy"
        assert case["timeline"][-1]["why"] == "外出学习"
        assert case["timeline"][-1]["actor"] == "admin-000000"
        back = dict(body, available=True, reason="返岗")
        await stack.http.put(f"{stack.url}/api/v1/organs/140403/availability", json=back,
                             headers=ADMIN)


async def test_replay_rebuilds_the_same_cases_after_redis_is_flushed(
    stack: Stack, redis: Redis,
) -> None:
    ids = [new_case_id() for _ in range(3)]
    async with stack.serving():
        for case_id in ids:
            await stack.report(case_id)
        for case_id in ids:
            await stack.opened(case_id)
        await stack.post(f"/cases/{ids[0]}/escalate", {"level": "city", "reason": "重大线索"})
        await stack.post(f"/cases/{ids[1]}/tasks/dna_samples/complete", {"note": "已采血"})
        await stack.post(f"/cases/{ids[2]}/found", {
            "outcome": "false_report", "found_at": datetime.now(UTC).isoformat()})
        await stack.post(f"/cases/{ids[2]}/close", {"reason": "虚假报案"})
        before = {c: (await stack.case(c)).json() for c in ids}

    async def timers() -> dict[str, float]:
        # The overdue timers of these cases' open tasks (others' are in the same set).
        rows = await redis.zrange("dispatch:timers", 0, -1, withscores=True)
        return {str(m): float(s) for m, s in rows if str(m).split("|")[0] in ids}

    timers_before = await timers()
    assert timers_before
    await redis.flushdb()
    async with stack.serving():
        after = {c: (await stack.case(c)).json() for c in ids}
    assert after == before
    assert await timers() == timers_before
    assert after[ids[2]]["status"] == "closed"
    assert after[ids[0]]["leader"]["organ_name"] == "长治市公安局"


async def test_stream_resumes_from_last_event_id_without_gaps(stack: Stack) -> None:
    async with stack.serving(notify=True):
        case_id = new_case_id()
        first: list[dict[str, Any]] = []
        async with stack.http.stream("GET", f"{stack.url}/api/v1/stream",
                                     headers=COMMANDER) as response:
            assert response.status_code == 200
            await stack.report(case_id)
            async for event in sse(response):
                if event["data"]["case_id"] == case_id:
                    first.append(event)
                if any(e["event"] == "homeward.case.task_assigned.v1" for e in first):
                    break
        last_id = first[-1]["id"]
        # While disconnected: more happens.
        await stack.opened(case_id)
        await stack.post(f"/cases/{case_id}/escalate", {"level": "city", "reason": "断线期间"})
        await stack.release(case_id)
        on_topic = [m["headers"]["ce_id"] for m in await case_events(
            stack.settings.kafka_bootstrap, case_id)]

        resumed: list[dict[str, Any]] = []
        async with stack.http.stream("GET", f"{stack.url}/api/v1/stream",
                                     headers={**COMMANDER, "Last-Event-ID": last_id}) as response:
            async for event in sse(response):
                if event["data"]["case_id"] == case_id:
                    resumed.append(event)
                if resumed and resumed[-1]["data"]["event_id"] == on_topic[-1]:
                    break
        everything = [e["data"]["event_id"] for e in first + resumed]
        assert len(everything) == len(set(everything))  # nothing twice
        assert everything == on_topic  # nothing missing, in order

        # Outside the caller's region: nothing of this case.
        async with stack.http.stream("GET", f"{stack.url}/api/v1/stream",
                                     headers={**ELSEWHERE, "Last-Event-ID": "0-0"}) as response:
            seen = []
            try:
                async with asyncio.timeout(3):
                    async for event in sse(response):
                        seen.append(event["data"]["case_id"])
            except TimeoutError:
                pass
            assert case_id not in seen


async def sse(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    block: dict[str, str] = {}
    async for line in response.aiter_lines():
        line = line.rstrip("\r")
        if not line:
            if "data" in block:
                yield {"id": block.get("id", ""), "event": block.get("event", "message"),
                       "data": json.loads(block["data"])}
            block = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        block[key] = value.removeprefix(" ")


async def test_console_is_served_with_its_config_and_procuratorate_joins_in_bortala(
    stack: Stack,
) -> None:
    async with stack.serving():
        page = await stack.http.get(f"{stack.url}/console")
        assert page.status_code == 200 and "/console/config.js" in page.text
        config = await stack.http.get(f"{stack.url}/console/config.js")
        assert config.text.startswith("window.HW_CONFIG = ")
        parsed = json.loads(config.text.removeprefix("window.HW_CONFIG = ").rstrip(";\n"))
        assert parsed["notify_url"] and parsed["tiers"][0] == [1.0, 100.0]
        assert parsed["max_km"] == 500.0 and parsed["display_timezone"] == "Asia/Shanghai"
        for path in ("/static/dispatch/console.js", "/static/shared/common.js"):
            assert (await stack.http.get(f"{stack.url}{path}")).status_code == 200

        bortala = new_case_id("652701")
        await stack.report(bortala, operator_region="652701", last_seen__region_code="652701",
                           last_seen__lat=44.85, last_seen__lon=82.05,
                           circumstances__especially_serious=True)
        case = await stack.opened(bortala, ADMIN)
        assert case["leader"]["organ_name"] == "博尔塔拉蒙古自治州公安局"
        member = {"duty": "procuratorate", "name": "马明", "title": "检察官",
                  "organ_name": "博尔塔拉蒙古自治州人民检察院", "reason": "提前介入引导侦查"}
        not_a_phone = await stack.post(f"/cases/{bortala}/members",
                                       {**member, "phone": "0000-652701-01"}, ADMIN)
        assert not_a_phone.status_code == 422
        assert not_a_phone.json()["error"]["field"] == "phone"
        joined = await stack.post(f"/cases/{bortala}/members",
                                  {**member, "phone": "0909-222 3344 转 12"}, ADMIN)
        assert joined.status_code == 200
        assert joined.json()["members"][-1]["duty"] == "procuratorate"
        assert joined.json()["members"][-1]["phone"] == "+869092223344"  # E.164 (shared.phones)
        plain = new_case_id()
        await stack.report(plain)
        await stack.opened(plain)
        refused = await stack.post(f"/cases/{plain}/members", member)
        assert refused.status_code == 409 and refused.json()["error"]["field"] == "duty"


async def test_release_carries_the_previewed_content_and_is_refused_when_it_changed(
    stack: Stack,
) -> None:
    """Issue 17 §4: the commander sees what the public will receive (notify's rendering) and
    the audience; a release whose content_hash is not the current content's is refused."""
    stack.notify_overrides = {"notify_tier_unit_s": 1.0}  # one "hour" of the tiers is 1 s
    async with stack.serving(notify=True):
        assert stack.notify is not None
        case_id = new_case_id()
        await stack.report(case_id, last_seen__at=datetime.now(UTC).isoformat())
        await stack.opened(case_id)
        got = await stack.http.get(f"{stack.url}/api/v1/cases/{case_id}/release-preview",
                                   headers=COMMANDER)
        assert got.status_code == 200, got.text
        preview = got.json()
        assert preview["content_hash"].startswith("sha256:") and preview["radius_km"] == 100
        code = preview["short_code"]
        assert "范围100公里" in preview["text"] and f"{code[:5]}-{code[5:]}" in preview["text"]
        assert set(preview["audience"]) == {"hub", "media", "volunteer"}
        assert preview["poster_url"].endswith(f"A-{case_id}/poster.pdf")
        assert "13800000000" not in preview["text"]  # the public text: no family phone
        cap = await stack.http.get(preview["cap_url"], headers=COMMANDER)
        assert cap.status_code == 200 and "<scope>Public</scope>" in cap.text
        hidden = await stack.http.get(f"{stack.url}/api/v1/cases/{case_id}/release-preview",
                                      headers=ELSEWHERE)
        assert hidden.status_code == 404

        missing = await stack.post(f"/cases/{case_id}/release", {})
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "content_hash"
        # The content changes after the preview: the radius widens.
        await asyncio.sleep(1.1)
        await stack.notify.widen(f"A-{case_id}")
        stale = await stack.post(f"/cases/{case_id}/release",
                                 {"content_hash": preview["content_hash"]})
        assert stale.status_code == 409, stale.text
        assert stale.json()["error"]["code"] == "content_changed"
        assert stale.json()["error"]["field"] == "content_hash"
        assert not (await stack.case(case_id)).json()["release_approved"]
        released = await stack.release(case_id)  # previewed again: released
        assert released.status_code == 200 and released.json()["release_approved"]

        # The same preview for the Cancel: what everyone told so far gets if the search ends.
        ending = await stack.http.get(f"{stack.url}/api/v1/cases/{case_id}/found-preview",
                                      params={"outcome": "false_report"}, headers=COMMANDER)
        assert ending.status_code == 200, ending.text
        assert ending.json()["action"] == "cancel" and "已撤销" in ending.json()["text"]
        assert "童" not in ending.json()["text"]  # no personal data in a Cancel
        bad = await stack.http.get(f"{stack.url}/api/v1/cases/{case_id}/found-preview",
                                   params={"outcome": "gone"}, headers=COMMANDER)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "outcome"
