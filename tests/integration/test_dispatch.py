"""The dispatch service on real Kafka and Redis, served over HTTP by uvicorn in this process:
life cycle, escalation, overdue repeat across a restart, duplicate linking, tips, handover,
replay after Redis is flushed, and the live stream's resume."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import generate_latest
from redis.asyncio import Redis

from deploy.local.stack import free_port
from services.dispatch.app import create_app
from services.notify.app import create_app as create_notify
from services.notify.handlers import Notify
from shared import case_ids, pii, topics
from shared.auth import Role, mint_token
from shared.casekeys import CaseKeys
from shared.events import REPORT_ACCEPTED, TIP_RECEIVED, CloudEvent, TipLocation, TipReceived
from shared.kafka import EventPublisher, make_broker
from shared.pii import MasterKeys
from shared.report import ReportAccepted, ResolvedReport
from shared.settings import Settings
from tests.helpers import eventually, id_number, read_topic, report_body

SETTINGS = Settings()


def bearer(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SETTINGS, role, region, sub=f'{role}-{region}')}"}


COMMANDER = bearer(Role.commander, "140400")  # 长治市: sees 140403
ELSEWHERE = bearer(Role.commander, "320000")  # 江苏省: does not
ADMIN = bearer(Role.admin, "000000")


def new_case_id(region: str = "140403") -> str:
    return case_ids.new_case_id(region, datetime(2026, 11, 23, tzinfo=UTC))


class Stack:
    """One dispatch app served on a free port, and a publisher standing in for alert."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self.http = httpx.AsyncClient(timeout=15)
        self.broker = make_broker(settings.kafka_bootstrap, "test-alert")
        self.publisher = EventPublisher(self.broker, "/test/alert")
        self.redis: Redis
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
                     report_id: str | None = None, sealed_with: bytes | None = None,
                     **overrides: Any) -> ReportAccepted:
        """Publish a report as alert does; `sealed_with`: its personal fields sealed with that
        data key."""
        # A child of its own unless the test says otherwise: the same child reported twice
        # within 24 h nearby is linked to the first case.
        overrides.setdefault("child__name", f"童{uuid.uuid4().hex[:6]}")
        overrides.setdefault("reporter__phone", f"139{uuid.uuid4().int % 10**8:08d}")
        accepted = ReportAccepted(
            report_id=report_id or f"R-{case_id}", case_id=case_id,
            accepted_at=datetime.now(UTC),
            operator="op-1", operator_region=operator_region,
            report=ResolvedReport.model_validate(report_body(**overrides)))
        event = CloudEvent.of(REPORT_ACCEPTED, "/test/alert", case_id, accepted,
                              event_id=accepted.report_id)
        if sealed_with is not None:
            event.data = pii.seal(event.data, pii.REPORT_FIELDS, case_id, sealed_with)
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

    async def tips(self, case_id: str, headers: dict[str, str] = COMMANDER,
                   **params: Any) -> httpx.Response:
        return await self.http.get(f"{self.url}/api/v1/cases/{case_id}/tips", headers=headers,
                                   params=params)

    async def tip(self, case_id: str, description: str = "在长治站候车室看到") -> TipReceived:
        tip = TipReceived(tip_id=uuid.uuid4().hex, case_id=case_id, seen_at=datetime.now(UTC),
                          location=TipLocation(lat=36.2, lon=113.1, address="长治站"),
                          description=description, received_at=datetime.now(UTC))
        await self.publisher.publish(topics.TIPS, CloudEvent.of(
            TIP_RECEIVED, "/test/alert", case_id, tip, event_id=tip.tip_id))
        return tip

    async def post(self, path: str, body: Any = None,
                   headers: dict[str, str] = COMMANDER) -> httpx.Response:
        return await self.http.post(f"{self.url}/api/v1{path}", json=body, headers=headers)


@asynccontextmanager
async def _served(app: Any, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           # as served (shared.serve): the client closes first
                                           timeout_keep_alive=Settings().keep_alive_s))
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
    s.redis = redis
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
        # The alert is public now: found needs the caller's confirmation (issue 19 §4).
        found_body = {"outcome": "found_safe", "found_at": datetime.now(UTC).isoformat(),
                      "note": "在公园"}
        unconfirmed = await stack.post(f"/cases/{case_id}/found", found_body)
        assert unconfirmed.status_code == 409, unconfirmed.text
        error = unconfirmed.json()["error"]
        assert (error["code"], error["field"]) == ("confirm_required", "confirm")
        assert f"A-{case_id}" in error["message"]
        found = await stack.post(f"/cases/{case_id}/found", {**found_body, "confirm": True})
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
    """Linked only on the child's identity (issue 19 §1): the name with another middle dot and
    the same birth date links; the same reporter's phone with another child does not; the same
    child 900 km away does not; nor does a drill."""
    tag = uuid.uuid4().hex[:4]
    name = f"阿依努尔{tag}·买买提"
    async with stack.serving():
        first = new_case_id()
        await stack.report(first, child__name=name, reporter__phone="13912345678")
        await stack.opened(first)

        same_child = new_case_id()  # the father: U+30FB, other phone, 3 km away
        await stack.report(same_child, child__name=name.replace("·", "・"),
                           reporter__phone="13700000001", last_seen__lat=36.21,
                           last_seen__lon=113.13)
        sibling = new_case_id()  # the same mother calls again about her other child
        await stack.report(sibling, child__name=f"阿依古丽{tag}·买买提",
                           child__birth_date="2017-03-02", reporter__phone="13912345678")
        far = new_case_id("320102")  # same child 900 km away: not linked
        await stack.report(far, child__name=name, reporter__phone="13700000002",
                           last_seen__region_code="320102", last_seen__lat=32.05,
                           last_seen__lon=118.8)
        drill = new_case_id()  # a drill of the same name and birth date: never linked
        await stack.report(drill, child__name=name, exercise=True)

        async def linked() -> dict[str, Any] | None:
            case = (await stack.case(first)).json()
            return case if case["links"] else None

        case = await eventually(linked, timeout=30)
        for other in (sibling, far, drill):
            own = await stack.opened(other, ADMIN)
            assert own["case_id"] == other and own["links"] == []
        case = (await stack.case(first)).json()
        assert [(x["case_id"], x["evidence"]["rule"]) for x in case["links"]] == [
            (same_child, "name_birth_date")]
        evidence = case["links"][0]["evidence"]
        assert evidence["names"] == [name, name.replace("·", "・")]
        assert 0 < evidence["distance_km"] < 10
        # Identity keys and held reports are internal: never served (issue 12).
        assert "duplicate_keys" not in case and "held_reports" not in case
        # The duplicate's case id leads to the one case group.
        assert (await stack.case(same_child)).json()["case_id"] == first
        ids = {c["case_id"] for c in (await stack.http.get(
            f"{stack.url}/api/v1/cases", headers=ADMIN)).json()}
        assert first in ids and same_child not in ids and sibling in ids
    # Under the duplicate's own id: only an announcement of the group it joined.
    alias, *members = await case_events(stack.settings.kafka_bootstrap, same_child)
    assert alias["headers"]["ce_type"] == "homeward.case.opened.v1"
    assert alias["value"]["linked_to"] == first
    assert alias["value"]["leader"] == case["leader"]
    assert {m["headers"]["ce_type"] for m in members} == {"homeward.case.member_added.v1"}
    assert [m["value"]["details"]["member"] for m in members] == case["members"]
    # The keys on the topic are keyed hashes: neither the name nor the phone is in them.
    opened_first = (await case_events(stack.settings.kafka_bootstrap, first))[0]["value"]
    keys = opened_first["duplicate_keys"]
    assert len(keys) == 1 and len(keys[0]) == 32 and tag not in keys[0]


async def test_twins_are_two_searches_whatever_evidence_they_share(stack: Stack) -> None:
    """Evidence the rest of a report contradicts never links (shared.identity.contradiction):
    twin B's report carrying twin A's ID number opens B's own case group, and a later report of
    B by name and birth date alone joins B's, not A's; newborn twins under one placeholder name
    ("王芳之女") with their own ID numbers are two cases. So A's found can never end B's
    search."""
    tag = uuid.uuid4().hex[:4]
    serial = f"{int(tag, 16) % 1000:03d}"
    twin_id = id_number(f"14040320190501{serial}")
    async with stack.serving():
        a, b, b_again = new_case_id(), new_case_id(), new_case_id()
        await stack.report(a, child__name=f"张乐乐{tag}", child__id_number=twin_id)
        await stack.opened(a)
        await stack.report(b, child__name=f"张欢欢{tag}", child__id_number=twin_id,
                           reporter__phone="13700000011")
        await stack.opened(b)
        await stack.report(b_again, child__name=f"张欢欢{tag}", child__id_number=None,
                           reporter__phone="13700000012")

        async def linked() -> dict[str, Any] | None:
            case = (await stack.case(b)).json()
            return case if case["links"] else None

        case_b = await eventually(linked, timeout=30)
        assert case_b["case_id"] == b
        assert [x["case_id"] for x in case_b["links"]] == [b_again]
        case_a = (await stack.case(a)).json()
        assert case_a["case_id"] == a and case_a["links"] == []

        first, second = new_case_id(), new_case_id()
        newborns = [id_number(f"14040320190501{(int(serial) + n) % 1000:03d}") for n in (1, 2)]
        await stack.report(first, child__name=f"王芳{tag}之女", child__id_number=newborns[0])
        await stack.report(second, child__name=f"王芳{tag}之女", child__id_number=newborns[1],
                           reporter__phone="13700000013")
        for case_id in (first, second):
            own = await stack.opened(case_id, ADMIN)
            assert own["case_id"] == case_id and own["links"] == []


async def test_a_case_id_drawn_twice_dead_letters_the_second_report_naming_both(
    stack: Stack,
) -> None:
    """Two reports with one case id (shared/case_ids.py: the 6-symbol ids of before made that
    likely at volume) are not one report redelivered: the second is dead-lettered with both
    report ids, for a person to re-file, rather than dropped without a word. Redeliveries of
    either the case's report or a linked report are still taken quietly."""
    tag = uuid.uuid4().hex[:4]
    name = f"陈{tag}"
    keys = CaseKeys(stack.redis, stack.settings.kafka_bootstrap,
                    MasterKeys.parse(stack.settings.pii_master_keys))
    async with AsyncExitStack() as cleanup, stack.serving():
        cleanup.push_async_callback(keys.stop)
        first = new_case_id()
        opening = await stack.report(first, child__name=name)
        await stack.opened(first)
        sealed = new_case_id()  # as in production: the case's fields sealed with its key
        sealed_opening = await stack.report(sealed, child__name=f"林{tag}",
                                            sealed_with=await keys.get_or_create(sealed))
        await stack.opened(sealed)
        linked = new_case_id()  # the same child reported again nearby: linked to `first`
        second = await stack.report(linked, child__name=name, last_seen__lat=36.21)

        async def is_linked() -> bool:
            return bool((await stack.case(first)).json()["links"])

        await eventually(is_linked, timeout=30)
        # Redeliveries, then another child's reports that drew the same two ids.
        for case_id, redelivered in ((first, opening), (linked, second)):
            await stack.report(case_id, report_id=redelivered.report_id, child__name=name)
            await stack.report(case_id, report_id=f"R-other-{case_id}",
                               child__name=f"另一个孩子{tag}")
        # Sealed, the second report's fields do not open with the case's key: it is named as
        # a collision before they are tried.
        await stack.report(sealed, report_id=f"R-other-{sealed}", child__name=f"另一个孩子{tag}",
                           sealed_with=os.urandom(32))
        held_by = {first: opening.report_id, linked: second.report_id,
                   sealed: sealed_opening.report_id}

        async def dead() -> list[dict[str, Any]] | None:
            got = [m for m in await read_topic(stack.settings.kafka_bootstrap,
                                               topics.dlq(topics.REPORTS))
                   if m["key"] in held_by]
            return got if len(got) >= len(held_by) else None

        letters = await eventually(dead, timeout=30)
        await asyncio.sleep(1)
        letters = await dead() or []
        assert sorted(m["key"] for m in letters) == sorted(held_by)  # nothing else
        for m in letters:
            error = m["headers"]["dlq_error"]
            assert error.startswith("CaseIdCollision"), error
            assert held_by[m["key"]] in error and f"R-other-{m['key']}" in error
        case = (await stack.case(first)).json()
        assert case["report_id"] == opening.report_id
        assert [x["report_id"] for x in case["links"]] == [second.report_id]


async def test_siblings_from_one_phone_are_three_children_of_one_incident(
    stack: Stack,
) -> None:
    """The same mother reports three children from one phone minutes apart: three case groups
    (a phone never links), tied by the commander into one incident; found for child 1 ends
    only child 1's search."""
    tag = uuid.uuid4().hex[:4]
    children = [(f"张{tag}明", "2019-05-01"), (f"张{tag}红", "2017-03-02"),
                (f"张{tag}刚", "2021-08-09")]
    async with stack.serving():
        ids = [new_case_id() for _ in children]
        for case_id, (name, born) in zip(ids, children, strict=True):
            await stack.report(case_id, child__name=name, child__birth_date=born,
                               reporter__phone="13812345678")
        cases = [await stack.opened(c) for c in ids]
        assert [c["case_id"] for c in cases] == ids and all(c["links"] == [] for c in cases)

        tied = await stack.post(f"/cases/{ids[0]}/incident",
                                {"case_ids": ids[1:], "reason": "同一母亲报三名子女走失"})
        assert tied.status_code == 200, tied.text
        for case_id in ids:
            case = (await stack.case(case_id)).json()
            assert case["incident"] == ids[0] and case["incident_cases"] == ids
            assert case["timeline"][-1]["why"] == "同一母亲报三名子女走失"

        found = await stack.post(f"/cases/{ids[0]}/found", {
            "outcome": "found_safe", "found_at": datetime.now(UTC).isoformat(),
            "child": children[0][0]})
        assert found.status_code == 200, found.text
        wrong = await stack.post(f"/cases/{ids[1]}/found", {
            "outcome": "found_safe", "found_at": datetime.now(UTC).isoformat(),
            "child": children[2][0]})
        assert wrong.status_code == 409 and wrong.json()["error"]["field"] == "child"
        for case_id in ids[1:]:
            assert (await stack.case(case_id)).json()["status"] in ("opened", "active")
    found_on = {m["key"] for m in await read_topic(stack.settings.kafka_bootstrap,
                                                    topics.DISPATCH)
                if m["headers"]["ce_type"] == "homeward.case.found.v1" and m["key"] in ids}
    assert found_on == {ids[0]}


async def test_two_reports_at_once_on_a_fresh_stack_link(stack: Stack) -> None:
    """Mother and father at the same moment, handled by different consumers in parallel: the
    claim on the child's identity is atomic, so exactly one case group is formed."""
    name = f"买买提{uuid.uuid4().hex[:4]}·艾力"
    mother, father = new_case_id(), new_case_id()
    await asyncio.gather(stack.report(mother, child__name=name),
                         stack.report(father, child__name=name.replace("·", "‧")))
    async with stack.serving():
        async def one_group() -> list[dict[str, Any]] | None:
            got = [(await stack.case(c)).json() for c in (mother, father)]
            # Both views must show the link: the one read first may predate it.
            return got if all("case_id" in g and g["links"] for g in got) else None

        got = await eventually(one_group, timeout=40)
    assert got[0]["case_id"] == got[1]["case_id"]
    lead = got[0]
    assert [x["case_id"] for x in lead["links"]] == [
        father if lead["case_id"] == mother else mother]


async def test_leader_level_unlink_and_reopen(stack: Stack) -> None:
    """After escalation to the city a county commander may not release, mark found, close,
    unlink or reopen (403 naming the reason); the city commander may. Unlink gives the second
    report its own group; reopen puts the case back to active; all with who and why."""
    county = bearer(Role.commander, "140403")
    name = f"张{uuid.uuid4().hex[:4]}"
    async with stack.serving(notify=True):  # release needs the previewed content (issue 17)
        first, second = new_case_id(), new_case_id()
        await stack.report(first, child__name=name)
        await stack.opened(first)
        await stack.report(second, child__name=f" {name} ")

        async def linked() -> dict[str, Any] | None:
            case = (await stack.case(first)).json()
            return case if case["links"] else None

        await eventually(linked, timeout=30)
        escalated = await stack.post(f"/cases/{first}/escalate",
                                     {"level": "city", "reason": "重大"}, county)
        assert escalated.status_code == 200, escalated.text
        found_body = {"outcome": "found_safe", "found_at": datetime.now(UTC).isoformat()}
        # The county sees the preview, but the release of what it shows is the leader's level's.
        preview = await stack.http.get(f"{stack.url}/api/v1/cases/{first}/release-preview",
                                       headers=county)
        assert preview.status_code == 200, preview.text
        release_body = {"content_hash": preview.json()["content_hash"]}
        for path, body in (("release", release_body), ("found", found_body),
                           ("close", {"reason": "x"}), ("reopen", {"reason": "x"}),
                           ("unlink", {"report_id": f"R-{second}", "reason": "x"})):
            refused = await stack.post(f"/cases/{first}/{path}", body, county)
            assert refused.status_code == 403, (path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "below_leader_level" and "长治市公安局" in error["message"]
        assert (await stack.release(first)).status_code == 200  # the city

        unlinked = await stack.post(f"/cases/{first}/unlink",
                                    {"report_id": f"R-{second}", "reason": "母亲确认是另一孩子"})
        assert unlinked.status_code == 200, unlinked.text
        assert unlinked.json()["links"] == []
        entry = unlinked.json()["timeline"][-1]
        assert (entry["action"], entry["actor"], entry["why"]) == (
            "report_unlinked", "commander-140400", "母亲确认是另一孩子")
        own = await stack.opened(second)
        assert own["case_id"] == second and own["leader"]["organ_name"]
        assert (await stack.post(f"/cases/{first}/unlink", {
            "report_id": f"R-{second}", "reason": "x"})).status_code == 404

        found = await stack.post(f"/cases/{first}/found", {**found_body, "confirm": True})
        assert found.status_code == 200, found.text
        assert (await stack.case(second)).json()["status"] != "found"  # not the other child
        reopened = await stack.post(f"/cases/{first}/reopen", {"reason": "认错了孩子"})
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["status"] == "active"
        assert reopened.json()["timeline"][-1]["why"] == "认错了孩子"
    types = [m["headers"]["ce_type"] for m in await case_events(
        stack.settings.kafka_bootstrap, first)]
    assert "homeward.case.report_unlinked.v1" in types
    assert types[-2:] == ["homeward.case.found.v1", "homeward.case.reopened.v1"]


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
            page = (await stack.tips(case_id)).json()
            return page if page["items"] else None

        await eventually(attached, timeout=20)
        await asyncio.sleep(1)
        case = (await stack.case(case_id)).json()
        page = (await stack.tips(case_id)).json()
        # Kept beside the case (issue 12), not in its document.
        assert "tips" not in case and page["total"] == 1 and len(page["items"]) == 1
        assert page["items"][0]["description"] == "在长治站候车室看到"
        assert page["items"][0]["notified"] == [case["leader"]["name"],
                                                case["duties"]["investigation"]["name"]]
        assert (await stack.tips(case_id, ELSEWHERE)).status_code == 404

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
    names = [f"童{uuid.uuid4().hex[:6]}" for _ in ids]
    linked, later = new_case_id(), new_case_id()
    async with stack.serving():
        for case_id, name in zip(ids, names, strict=True):
            await stack.report(case_id, child__name=name)
        for case_id in ids:
            await stack.opened(case_id)
        await stack.report(linked, child__name=names[1])  # the same child as ids[1]
        await eventually(lambda: _links(stack, ids[1]), timeout=30)
        await stack.post(f"/cases/{ids[0]}/escalate", {"level": "city", "reason": "重大线索"})
        await stack.post(f"/cases/{ids[1]}/tasks/dna_samples/complete", {"note": "已采血"})
        await stack.post(f"/cases/{ids[2]}/found", {
            "outcome": "false_report", "found_at": datetime.now(UTC).isoformat()})
        await stack.post(f"/cases/{ids[2]}/close", {"reason": "虚假报案"})
        # A tip attached to a case, and one held for a case that never appears.
        await stack.tip(ids[1], "候车室")
        held = await stack.tip(new_case_id(), "无此案件")
        await eventually(lambda: _total(stack, ids[1], 1), timeout=20)
        await eventually(lambda: redis.hexists("dispatch:parked", held.tip_id), timeout=20)
        # Its triage, and a sighting in another county with its local check (issue 16).
        attached = (await stack.tips(ids[1])).json()["items"][0]["tip_id"]
        triaged = await stack.post(f"/cases/{ids[1]}/tips/{attached}/triage",
                                   {"verdict": "credible", "reason": "与监控一致"})
        assert triaged.status_code == 200, triaged.text
        await stack.publisher.publish(topics.TIPS, CloudEvent.of(
            TIP_RECEIVED, "/test/alert", ids[0], far := TipReceived(
                tip_id=uuid.uuid4().hex, case_id=ids[0], seen_at=datetime.now(UTC),
                location=TipLocation(lat=32.06, lon=118.79), description="南京",
                received_at=datetime.now(UTC)), event_id=far.tip_id))
        await eventually(lambda: _checks(stack, ids[0]), timeout=20)
        before = {c: (await stack.case(c)).json() for c in ids}
        tips_before = (await stack.tips(ids[1])).json()

    async def timers() -> dict[str, float]:
        # The overdue timers of these cases' open tasks (others' are in the same set).
        rows = await redis.zrange("dispatch:timers", 0, -1, withscores=True)
        return {str(m): float(s) for m, s in rows if str(m).split("|")[0] in ids}

    timers_before = await timers()
    assert timers_before
    await redis.flushdb()
    async with stack.serving():
        after = {c: (await stack.case(c)).json() for c in ids}
        assert (await stack.tips(ids[1])).json() == tips_before  # rebuilt from the topic
        # The child's claim came back with the case: a later report of it still links.
        await stack.report(later, child__name=names[1])
        relinked = await eventually(lambda: _links(stack, ids[1], 2), timeout=30)
    assert [x["case_id"] for x in relinked] == [linked, later]
    assert after == before
    assert [x["case_id"] for x in after[ids[1]]["links"]] == [linked]
    assert await redis.hexists("dispatch:parked", held.tip_id)  # still held after a rebuild
    assert await timers() == timers_before
    assert after[ids[2]]["status"] == "closed"
    assert after[ids[0]]["leader"]["organ_name"] == "长治市公安局"
    assert after[ids[0]]["checks"][0]["region_code"] == "320102"
    assert any(m.endswith(f"|check:{after[ids[0]]['checks'][0]['check_id']}")
               for m in timers_before)
    assert tips_before["items"][0]["triage"]["verdict"] == "credible"


async def _checks(stack: Stack, case_id: str) -> list[dict[str, Any]] | None:
    checks: list[dict[str, Any]] = (await stack.case(case_id)).json()["checks"]
    return checks or None


async def _links(stack: Stack, case_id: str, count: int = 1) -> list[dict[str, Any]] | None:
    links: list[dict[str, Any]] = (await stack.case(case_id)).json()["links"]
    return links if len(links) >= count else None


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


async def test_tips_before_their_case_are_held_then_attached_and_paged(stack: Stack) -> None:
    """Issue 19, item 6: a tip published before its report is processed is attached to the
    case (also when the report is a second report linked to an earlier case); the case's
    tips are paged, newest first (issue 12)."""
    async with stack.serving():
        case_id = new_case_id()
        early = [await stack.tip(case_id, f"线索{n}") for n in range(3)]

        async def held() -> bool:
            return all([await stack.redis.hexists("dispatch:parked", t.tip_id) for t in early])

        await eventually(held, timeout=20)
        # The app runs in this process: its metrics are this process's registry (the ops
        # port serves the same registry, shared/serve.py).
        metrics = generate_latest().decode()
        assert re.search(r"^homeward_dispatch_tips_parked_total [1-9]", metrics, re.M)
        await stack.report(case_id)
        await stack.opened(case_id)

        async def all_attached() -> dict[str, Any] | None:
            page = (await stack.tips(case_id)).json()
            return page if page["total"] == 3 else None

        await eventually(all_attached, timeout=20)
        later = await stack.tip(case_id, "线索3")
        await eventually(lambda: _total(stack, case_id, 4), timeout=20)
        first = (await stack.tips(case_id, limit=2)).json()
        second = (await stack.tips(case_id, limit=2, offset=2)).json()
        ids = [t["tip_id"] for t in first["items"] + second["items"]]
        assert first["total"] == 4 and len(first["items"]) == 2
        assert sorted(ids) == sorted([t.tip_id for t in early] + [later.tip_id])
        assert ids[0] == later.tip_id  # newest first
        # None of them still held (earlier tests' held tips come back with the replay).
        assert not [t for t in [*early, later]
                    if await stack.redis.hexists("dispatch:parked", t.tip_id)]
        dead = [m for m in await read_topic(stack.settings.kafka_bootstrap,
                                            topics.dlq(topics.TIPS)) if m["key"] == case_id]
        assert dead == []


async def test_a_tip_for_a_case_that_never_appears_is_shown_to_an_admin(stack: Stack) -> None:
    stack.settings = stack.settings.model_copy(update={"dispatch_tip_park_s": 0.5})
    async with stack.serving():
        lost = new_case_id()
        tip = await stack.tip(lost, "没有对应案件的线索")
        url = f"{stack.url}/api/v1/tips/unmatched"

        async def listed() -> dict[str, Any] | None:
            got = (await stack.http.get(url, headers=ADMIN)).json()
            return got if any(h["tip"]["tip_id"] == tip.tip_id for h in got["items"]) else None

        page = await eventually(listed, timeout=20)
        row = next(h for h in page["items"] if h["tip"]["tip_id"] == tip.tip_id)
        assert row["case_id"] == lost and row["tip"]["description"] == "没有对应案件的线索"
        other_admin = bearer(Role.admin, "320000")
        got = await stack.http.get(url, headers=other_admin)
        assert tip.tip_id not in {h["tip"]["tip_id"] for h in got.json()["items"]}
        assert (await stack.http.get(url, headers=COMMANDER)).status_code == 403
        # Still held: if the case appears after all, the tip is attached.
        await stack.report(lost)
        await stack.opened(lost)
        await eventually(lambda: _total(stack, lost, 1), timeout=20)


async def _total(stack: Stack, case_id: str, n: int) -> bool:
    return (await stack.tips(case_id)).json()["total"] == n


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
