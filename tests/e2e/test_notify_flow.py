"""Notify as a process among the three: a report reaches a hub console live (SSE, resumable),
a media desk once released, the hub acknowledges, and dispatch's `found` cancels everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from services.notify.signing import verify_body
from shared import topics
from shared.auth import Role, mint_token
from shared.events import CASE_FOUND, CloudEvent
from shared.settings import Settings
from shared.verification import JWKS_PATH, SIGNATURE_HEADER
from tests.helpers import WebhookSink, another_child, eventually, read_topic, report_body

pytestmark = pytest.mark.e2e

LAST_SEEN = (36.19, 113.11)


@pytest.fixture(scope="module")
def notify_stack(kafka: KafkaServer, redis_server: RedisServer,
                 data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "notify-e2e", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def token(role: Role, region: str, hub_id: str | None = None,
          permissions: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(Settings(), role, region, hub_id=hub_id,
                                                    permissions=permissions)}


async def follow(http: httpx.AsyncClient, url: str, headers: dict[str, str],
                 out: list[tuple[str, dict[str, Any]]]) -> None:
    async with http.stream("GET", url, headers={**headers, "Accept": "text/event-stream"},
                           timeout=None) as response:
        assert response.status_code == 200
        event_id, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                out.append((event_id, json.loads(data)))
                event_id, data = "", ""


async def test_hub_console_live_ack_and_cancel(
    notify_stack: dict[str, ServiceProcess], kafka: KafkaServer
) -> None:
    alert, notify = notify_stack["alert"].url, notify_stack["notify"].url
    hub_id = f"E2E-{uuid.uuid4().hex[:8]}"
    hub = token(Role.hub, "140400", hub_id=hub_id)
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(f"{notify}/hub")
        assert page.status_code == 200 and "枢纽" in page.text
        config = await http.get(f"{notify}/hub/config.js")
        assert alert in config.text
        for asset in ("/static/notify/hub.js", "/static/notify/hub.css",
                      "/static/shared/common.js"):
            assert (await http.get(notify + asset)).status_code == 200, asset

        with WebhookSink() as media_sink:
            admin = token(Role.admin, "000000")
            made = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
                "kind": "hub", "name": "长治站", "hub_id": hub_id, "region_code": "140403",
                "location": {"lat": LAST_SEEN[0] + 0.1, "lon": LAST_SEEN[1]},
                "channel": {"type": "console"}})
            assert made.status_code == 201, made.text
            media = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
                "kind": "media", "name": "上党晚报", "location": {"lat": LAST_SEEN[0] + 0.2,
                                                               "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": media_sink.url}})
            assert media.status_code == 201
            me = await http.get(f"{notify}/api/v1/hubs/{hub_id}", headers=hub)
            assert me.json()["name"] == "长治站"
            assert (await http.get(f"{notify}/api/v1/hubs/{hub_id}",
                                   headers=token(Role.hub, "140400", "OTHER"))).status_code == 403

            events: list[tuple[str, dict[str, Any]]] = []
            stream = asyncio.create_task(
                follow(http, f"{notify}/api/v1/hubs/{hub_id}/stream", hub, events))
            await asyncio.sleep(1.0)
            posted = await http.post(
                f"{alert}/api/v1/reports",
                headers=token(Role.operator, "140403", permissions=["release"]),
                json=report_body(release__public=True, **another_child()))
            assert posted.status_code == 202, posted.text
            case_id = posted.json()["case_id"]

            async def pushed() -> list[dict[str, Any]]:
                return [b for _, b in events if b.get("case_id") == case_id]

            first = (await eventually(pushed, timeout=30))[0]
            assert first["scope"] == "restricted" and first["child"]["name"] == "张小明"
            public = json.loads((await eventually(
                lambda: _requests(media_sink), timeout=30))[0]["body"])
            assert public["scope"] == "public"  # released at intake by an operator allowed to
            assert "13800000000" not in json.dumps(public, ensure_ascii=False)
            # Issue 17: the running service signs the push with the key it publishes, and
            # the push's short code answers on the public verification API.
            push = media_sink.requests[0]
            jwks = (await http.get(f"{notify}{JWKS_PATH}")).json()
            signature = {k.lower(): v for k, v in push["headers"].items()}[SIGNATURE_HEADER]
            verify_body(push["body"], signature, jwks)
            check = await http.get(f"{notify}/api/v1/verify/{public['short_code']}")
            assert check.json()["status"] == "active", check.text
            assert check.json()["child"]["name"] == "张小明"
            listed = await http.get(f"{notify}/api/v1/hubs/{hub_id}/alerts", headers=hub)
            assert [a["case_id"] for a in listed.json()["alerts"]] == [case_id]

            acked = await http.post(f"{notify}/api/v1/deliveries/{first['delivery_id']}/ack",
                                    headers=hub)
            assert acked.status_code == 200, acked.text
            commander = token(Role.commander, "140400")
            rows = await http.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                                  headers=commander)
            # The Alert is acknowledged; the leader's Update, when it came, is only `sent` (a
            # hub acknowledges its first message of an alert, issue 18 §5).
            states = {d["delivery_id"]: d["state"] for d in rows.json()["deliveries"]}
            assert states[first["delivery_id"]] == "acknowledged"
            svg = await http.get(f"{notify}/api/v1/cases/{case_id}/spread.svg",
                                 headers=commander)
            assert svg.status_code == 200 and 'data-state="acknowledged"' in svg.text

            # Dispatch marks the child found.
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
            await producer.start()
            try:
                found = CloudEvent(type=CASE_FOUND, source="/homeward/dispatch",
                                   subject=case_id, data={
                                       "case_id": case_id, "region_code": "140403",
                                       "actor": "commander-1", "at": datetime.now(UTC).isoformat(),
                                       "outcome": "found_safe",
                                       "found_at": datetime.now(UTC).isoformat()})
                await producer.send_and_wait(
                    topics.DISPATCH, found.value(), key=case_id.encode(),
                    headers=[(k, v.encode()) for k, v in found.headers().items()])
            finally:
                await producer.stop()

            async def cancelled() -> list[dict[str, Any]]:
                return [b for _, b in events if b.get("case_id") == case_id
                        and b["type"] == "homeward.alert.cancelled.v1"]

            cancel = (await eventually(cancelled, timeout=30))[0]
            assert "child" not in cancel and cancel["reason"] == "found_safe"
            await eventually(lambda: _cancel_in(media_sink, case_id), timeout=30)
            # This case's Cancel, signed with this media desk's secret (the sink's port may have
            # served an earlier test's subscriber, which a rebuild brings back).
            last = [r for r in media_sink.requests if _is_cancel_of(r, case_id)][-1]
            Webhook(media.json()["secret"]).verify(last["body"], last["headers"])
            ended = await http.get(f"{notify}/api/v1/verify/{public['short_code']}")
            assert ended.json()["status"] == "ended" and "张小明" not in ended.text
            await stop(stream)

            # Resume after a dropped connection: everything after Last-Event-ID comes again.
            first_id = next(i for i, b in events if b.get("case_id") == case_id)
            again: list[tuple[str, dict[str, Any]]] = []
            resumed = asyncio.create_task(follow(
                http, f"{notify}/api/v1/hubs/{hub_id}/stream",
                {**hub, "Last-Event-ID": first_id}, again))
            await eventually(lambda: _cancel_seen(again), timeout=15)
            await stop(resumed)
            listed = await http.get(f"{notify}/api/v1/hubs/{hub_id}/alerts", headers=hub)
            assert "张小明" not in listed.text

    receipts = [m for m in await read_topic(kafka.bootstrap, topics.DELIVERIES)
                if m["key"] == case_id]
    kinds = {m["headers"]["ce_type"] for m in receipts}
    assert {"homeward.delivery.sent.v1", "homeward.delivery.acknowledged.v1"} <= kinds


async def test_a_report_sent_in_utc_reaches_the_hub_in_beijing_time(
    notify_stack: dict[str, ServiceProcess]
) -> None:
    """Issue 11 §6: `last_seen.at` sent as UTC ("…Z") is read by station staff in Beijing time,
    the age derived from birth_date; the CAP message keeps ISO 8601 with an offset."""
    alert, notify = notify_stack["alert"].url, notify_stack["notify"].url
    seen = (datetime.now(UTC) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    beijing = (seen + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") + "（北京时间）"
    born = date((seen + timedelta(hours=8)).year - 7, 1, 1)  # seven on the Beijing day
    name = f"时区{uuid.uuid4().hex[:4]}"
    async with httpx.AsyncClient(timeout=10) as http:
        with WebhookSink() as hub_sink:
            made = await http.post(f"{notify}/api/v1/subscribers", headers=token(
                Role.admin, "000000"), json={
                "kind": "hub", "name": "长治东站", "region_code": "140403",
                "location": {"lat": LAST_SEEN[0] + 0.05, "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": hub_sink.url}})
            assert made.status_code == 201, made.text
            body = report_body(child__name=name, child__birth_date=born.isoformat(),
                               last_seen__at=seen.strftime("%Y-%m-%dT%H:%M:%SZ"))
            posted = await http.post(f"{alert}/api/v1/reports", json=body,
                                     headers=token(Role.operator, "140403"))
            assert posted.status_code == 202, posted.text
            case_id = posted.json()["case_id"]

            async def ours() -> list[dict[str, Any]]:
                bodies = [json.loads(r["body"]) for r in hub_sink.requests]
                return [b for b in bodies if b.get("case_id") == case_id]

            push = (await eventually(ours, timeout=30))[0]
    text = push["text"]
    assert f"，{beijing}。" in text, text
    assert seen.strftime("%H:%M") not in text  # eight hours off is not shown anywhere
    assert f"{name}，男7岁" in text  # the age from birth_date alone
    assert datetime.fromisoformat(push["last_seen"]["at"]) == seen  # the data keeps the instant
    async with httpx.AsyncClient(timeout=10) as http:
        cap = await http.get(f"{notify}/api/v1/alerts/A-{case_id}.xml",
                             headers=token(Role.commander, "140400"))
    assert cap.status_code == 200, cap.text
    assert beijing in cap.text and "+08:00</sent>" in cap.text


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await task


async def _requests(sink: WebhookSink) -> list[dict[str, Any]]:
    return sink.requests


def _is_cancel_of(request: dict[str, Any], case_id: str) -> bool:
    body = json.loads(request["body"])
    return bool(body.get("type") == "homeward.alert.cancelled.v1"
                and body.get("case_id") == case_id)


async def _cancel_in(sink: WebhookSink, case_id: str) -> bool:
    return any(_is_cancel_of(r, case_id) for r in sink.requests)


async def _cancel_seen(events: list[tuple[str, dict[str, Any]]]) -> bool:
    return any(b["type"] == "homeward.alert.cancelled.v1" for _, b in events)
