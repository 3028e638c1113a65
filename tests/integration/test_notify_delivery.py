"""Notify's handlers and HTTP API against the real broker, Redis and local HTTP sinks: tiers and
widening, release gate, drills, cancellation, CAP/Atom, signatures, retries, restart, acks."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import xmlschema
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks import Webhook

from services.notify.app import create_app
from services.notify.audience import SubscriberKind, SubscriberRequest
from services.notify.domain import alert_id_of
from services.notify.handlers import Notify
from services.notify.logs import SubscriberLog
from services.notify.signing import SignatureInvalid, verify_cap
from services.notify.subscribers import region_of
from shared import topics
from shared.auth import Role, mint_token
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_RELEASE_APPROVED,
    REPORT_ACCEPTED,
    CloudEvent,
)
from shared.report import ReportAccepted, ResolvedReport
from shared.settings import Settings
from shared.verification import JWKS_PATH, SIGNATURE_HEADER, display_code, short_code
from tests.helpers import eventually, id_number, pdf_qr_codes, pdf_text, read_topic, report_body

CAP_XSD = Path(__file__).parents[2] / "services/notify/schema/CAP-v1.2.xsd"
CENTRE = (36.19, 113.11)
# The ID numbers all start 1101012019 (one per report, born in 2019: see Stack.report_as).
PII = ("李红", "13800000000", "138 0000 0000", "1101012019", "中年男子", "晋D·12345")
_CHILDREN = itertools.count()


@dataclass
class Sink:
    """A local webhook endpoint: records every request; answers from `script` (status, headers)
    in turn, then `status`."""

    status: int = 204
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"headers": dict(request.headers), "body": body,
                              "at": time.monotonic(), "path": request.path})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, headers = self.script.pop(0) if self.script else (self.status, {})
        return web.Response(status=status, headers=headers)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
async def sinks() -> AsyncIterator[Any]:
    app = web.Application()
    made: dict[str, Sink] = {}

    async def route(request: web.Request) -> web.Response:
        return await made[request.match_info["name"]].handle(request)

    app.router.add_post("/hook/{name}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def make(name: str, **kwargs: Any) -> Sink:
        sink = Sink(**kwargs)
        sink.url = f"http://127.0.0.1:{port}/hook/{name}"
        made[name] = sink
        return sink

    yield make
    await runner.cleanup()


@dataclass
class Stack:
    notify: Notify
    http: httpx.AsyncClient
    settings: Settings

    def token(self, role: Role, region: str = "140000",
              hub_id: str | None = None) -> dict[str, str]:
        token = mint_token(self.settings, role, region, hub_id=hub_id)
        return {"Authorization": f"Bearer {token}"}

    async def subscribe(self, name: str, kind: SubscriberKind, lat: float, lon: float,
                        url: str | None = None, **extra: Any) -> dict[str, Any]:
        channel = {"type": "webhook", "url": url} if url else {"type": "console"}
        # Registered under the county it stands in (a hub's region and location agree), by a
        # national admin (a hub 600 km north of 长治 is in Inner Mongolia).
        extra.setdefault("region_code", region_of(lat, lon))
        got = await self.http.post("/api/v1/subscribers",
                                   headers=self.token(Role.admin, "000000"),
                                   json={"kind": kind.value, "name": name,
                                         "location": {"lat": lat, "lon": lon},
                                         "channel": channel, **extra})
        assert got.status_code == 201, got.text
        return dict(got.json())

    async def report(self, seen_ago_s: float = 60.0, **overrides: Any) -> str:
        case_id = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
        return await self.report_as(case_id, seen_ago_s, **overrides)

    async def report_as(self, case_id: str, seen_ago_s: float = 60.0, **overrides: Any) -> str:
        seen = (datetime.now(UTC) - timedelta(seconds=seen_ago_s)).isoformat()
        # A child of its own unless the test says otherwise: two reports of one child (same
        # name and birth date, or same ID number) become one alert (issue 19 §3).
        # The ID number encodes the birth date (GB 11643; a mismatch is refused).
        n = next(_CHILDREN)
        overrides.setdefault("child__birth_date", (date(2019, 1, 1) + timedelta(days=n % 2000))
                             .isoformat())
        born = str(overrides["child__birth_date"]).replace("-", "")
        overrides.setdefault("child__id_number", id_number(f"110101{born}{n % 1000:03d}"))
        body = report_body(last_seen__at=seen, **overrides)
        accepted = ReportAccepted(report_id=f"R{case_id}", case_id=case_id,
                                  accepted_at=datetime.now(UTC), operator="op-1",
                                  operator_region="140403",
                                  report=ResolvedReport.model_validate(body))
        await self.notify.on_report_accepted(
            CloudEvent.of(REPORT_ACCEPTED, "/test", case_id, accepted, event_id=case_id))
        return case_id

    async def dispatch(self, type_: str, case_id: str, **data: Any) -> None:
        event = CloudEvent(type=type_, source="/test", subject=case_id,
                           data={"case_id": case_id, "region_code": "140403", "actor": "c-1",
                                 "at": datetime.now(UTC).isoformat(), **data})
        await self.notify.on_case_event(event)

    async def deliveries(self, case_id: str) -> dict[str, Any]:
        got = await self.http.get("/api/v1/deliveries", params={"case_id": case_id},
                                  headers=self.token(Role.commander, "140400"))
        assert got.status_code == 200, got.text
        return dict(got.json())


def make_settings(base: Settings, **overrides: Any) -> Settings:
    values = {"kafka_bootstrap": base.kafka_bootstrap, "redis_url": base.redis_url,
              "webhook_allow_private": False, "webhook_allow_networks": ["127.0.0.1/32"],
              "notify_retry_base_s": 0.05, "notify_retry_max_attempts": 3,
              "notify_url": "http://notify.test", "data_dir": base.data_dir, **overrides}
    return Settings(**values)


@pytest.fixture
async def stack_factory(settings: Settings, redis: Redis) -> AsyncIterator[Any]:
    started: list[Any] = []
    await SubscriberLog(settings.kafka_bootstrap, topics.SUBSCRIBERS).ensure_topic(
        topics.PARTITIONS)

    async def make(**overrides: Any) -> Stack:
        s = make_settings(settings, **overrides)
        app = create_app(s, timers=False, consume=False)
        notify: Notify = app.state.notify
        await notify.publisher.broker.start()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://notify.test")
        started.append((notify, http))
        return Stack(notify, http, s)

    yield make
    for notify, http in started:
        await http.aclose()
        await notify.webhooks.close()
        if notify.keys is not None:
            await notify.keys.stop()
        await notify.publisher.broker.stop()


def north(km: float) -> tuple[float, float]:
    return CENTRE[0] + km / 110.57, CENTRE[1]


async def run_timers_until(notify: Notify, done: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await notify.tick()
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timers did not get there in time")


async def test_tiers_widen_on_the_durable_timer_and_push_only_newly_covered(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory(notify_tier_unit_s=1.0)  # one "hour" of the tiers is 1 s
    hubs = {km: sinks(f"t{km}") for km in (50, 150, 250, 400, 600)}
    subs = {km: await stack.subscribe(f"hub{km}", SubscriberKind.hub, *north(km), url=s.url)
            for km, s in hubs.items()}
    case_id = await stack.report(seen_ago_s=0.2)
    assert [km for km, s in hubs.items() if s.requests] == [50]
    await run_timers_until(stack.notify, lambda: hubs[400].requests, timeout=10)
    await asyncio.sleep(0.3)
    await stack.notify.tick()
    for km in (50, 150, 250, 400):
        assert len(hubs[km].requests) == 1, km  # once each: widening pushes only the new ones
    assert hubs[600].requests == []
    radii = [hubs[km].bodies()[0]["radius_km"] for km in (50, 150, 250, 400)]
    assert radii == [100.0, 200.0, 300.0, 500.0]
    versions = [hubs[km].bodies()[0]["version"] for km in (50, 150, 250, 400)]
    assert versions == [1, 2, 3, 4]
    for km in (50, 400):
        push = hubs[km].requests[0]
        verified = Webhook(subs[km]["secret"]).verify(push["body"], push["headers"])
        assert verified["case_id"] == case_id and verified["scope"] == "restricted"
    # The last tier reached: no timer left.
    assert await stack.notify.ledger.redis.zscore("notify:timer:widen",
                                                  alert_id_of(case_id)) is None


async def test_release_gate_public_content_and_feeds(stack_factory: Any, sinks: Any) -> None:
    stack = await stack_factory()
    hub, media, volunteer = sinks("g-hub"), sinks("g-media"), sinks("g-vol")
    await stack.subscribe("长治站", SubscriberKind.hub, *north(30), url=hub.url)
    await stack.subscribe("长治日报", SubscriberKind.media, *north(20), url=media.url)
    await stack.subscribe("志愿者", SubscriberKind.volunteer, *north(10), url=volunteer.url)
    case_id = await stack.report()
    alert_id = alert_id_of(case_id)
    assert len(hub.requests) == 1 and media.requests == [] and volunteer.requests == []
    restricted = hub.bodies()[0]
    assert restricted["circumstances"]["vehicle"] == "晋D·12345"
    atom = await stack.http.get("/api/v1/alerts/active.atom")
    assert alert_id not in atom.text
    assert (await stack.http.get(f"/api/v1/alerts/{alert_id}.xml")).status_code == 404

    await stack.dispatch(CASE_RELEASE_APPROVED, case_id)
    await stack.dispatch(CASE_RELEASE_APPROVED, case_id)  # redelivery: nothing new
    assert len(hub.requests) == 1
    assert len(media.requests) == 1 and len(volunteer.requests) == 1
    public = media.bodies()[0]
    assert public["scope"] == "public" and public["version"] == 2
    text = media.requests[0]["body"].decode()
    for secret in PII:
        assert secret not in text, secret
    assert public["child"]["name"] == "张小明" and public["contact"]
    assert len(public["text"]) <= 1000 and public["text"].endswith(f"{alert_id}.xml")

    atom = await stack.http.get("/api/v1/alerts/active.atom")
    assert atom.status_code == 200 and atom.headers["content-type"].startswith(
        "application/atom+xml")
    assert alert_id in atom.text and "张小明" in atom.text
    assert not any(secret in atom.text for secret in PII)
    cap = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml")
    schema = xmlschema.XMLSchema(CAP_XSD)
    schema.validate(cap.text)
    assert "<scope>Public</scope>" in cap.text and "<msgType>Update</msgType>" in cap.text
    assert not any(secret in cap.text for secret in PII)
    restricted_cap = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=1",
                                          headers=stack.token(Role.commander, "140400"))
    schema.validate(restricted_cap.text)
    assert "<scope>Restricted</scope>" in restricted_cap.text and "晋D·12345" in restricted_cap.text


async def test_exercise_reaches_only_drill_subscribers_and_no_public_feed(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory()
    real, drill, media = sinks("x-real"), sinks("x-drill"), sinks("x-media")
    await stack.subscribe("真实站", SubscriberKind.hub, *north(10), url=real.url)
    await stack.subscribe("演练站", SubscriberKind.hub, *north(20), url=drill.url, drills=True)
    await stack.subscribe("演练媒体", SubscriberKind.media, *north(20), url=media.url,
                          drills=True)
    case_id = await stack.report(exercise=True, release__public=True)
    assert real.requests == []
    assert [b["status"] for b in drill.bodies()] == ["Exercise"]
    assert [b["status"] for b in media.bodies()] == ["Exercise"]
    atom = await stack.http.get("/api/v1/alerts/active.atom")
    assert alert_id_of(case_id) not in atom.text
    assert (await stack.http.get(f"/api/v1/alerts/{alert_id_of(case_id)}.xml")).status_code == 404
    cap = await stack.http.get(f"/api/v1/alerts/{alert_id_of(case_id)}.xml",
                               headers=stack.token(Role.commander, "140400"))
    assert "<status>Exercise</status>" in cap.text
    xmlschema.XMLSchema(CAP_XSD).validate(cap.text)


async def test_found_cancels_to_every_recipient_and_drops_personal_data(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory(notify_retry_base_s=30.0)
    hub, media, flaky = sinks("c-hub"), sinks("c-media"), sinks("c-flaky", status=503)
    console_hub = await stack.subscribe("控制台站", SubscriberKind.hub, *north(5), hub_id="HUBC1")
    await stack.subscribe("站", SubscriberKind.hub, *north(30), url=hub.url)
    await stack.subscribe("媒体", SubscriberKind.media, *north(20), url=media.url)
    await stack.subscribe("慢站", SubscriberKind.hub, *north(40), url=flaky.url)
    case_id = await stack.report(release__public=True)
    alert_id = alert_id_of(case_id)
    before = await stack.deliveries(case_id)
    assert {d["state"] for d in before["deliveries"]} == {"sent", "retrying"}
    flaky.status = 204

    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())  # redelivery
    for sink in (hub, media, flaky):
        cancels = [b for b in sink.bodies() if b["type"] == "homeward.alert.cancelled.v1"]
        assert len(cancels) == 1, sink.url
        raw = sink.requests[-1]["body"].decode()
        assert "张小明" not in raw and not any(s in raw for s in PII)
        assert cancels[0]["references"] == [1] and cancels[0]["msg_type"] == "Cancel"
    # The pending retry of the alert is dropped, not sent after the cancellation.
    await stack.notify.ledger.redis.zadd("notify:timer:retry",
                                         {d["delivery_id"]: 0 for d in before["deliveries"]})
    await stack.notify.tick()
    assert [b["type"] for b in flaky.bodies()][-1] == "homeward.alert.cancelled.v1"
    after = await stack.deliveries(case_id)
    assert "dropped" in {d["state"] for d in after["deliveries"]}
    # Feeds and cached copies lose the child's data at once.
    atom = await stack.http.get("/api/v1/alerts/active.atom")
    assert "张小明" not in atom.text and not any(s in atom.text for s in PII)
    # The feed keeps the Cancel's entry a while (issue 18 §5): ids and outcome only.
    assert f"urn:homeward:alert:{alert_id}" in atom.text and "协查已解除" in atom.text
    cap = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=1")
    xmlschema.XMLSchema(CAP_XSD).validate(cap.text)
    assert "<msgType>Cancel</msgType>" in cap.text and "张小明" not in cap.text
    assert f"{alert_id}.v1" in cap.text  # references the alert it cancels
    hub_view = await stack.http.get(
        f"/api/v1/hubs/{console_hub['subscriber_id']}/alerts",
        headers=stack.token(Role.hub, hub_id=console_hub["subscriber_id"]))
    assert hub_view.status_code == 200
    assert [a["type"] for a in hub_view.json()["alerts"]] == ["homeward.alert.cancelled.v1"]
    assert "张小明" not in hub_view.text
    assert await stack.notify.ledger.redis.zscore("notify:timer:widen", alert_id) is None


async def test_retry_after_410_and_dead_letter(stack_factory: Any, sinks: Any,
                                               settings: Settings) -> None:
    """Retry-After honoured; 410 disables; a public delivery dies after its tries; a hub's push
    of an active alert never dies (issue 18 §4): it keeps retrying, `retrying` since its first
    failure."""
    stack = await stack_factory(notify_retry_max_attempts=3)
    slow = sinks("r-429", script=[(429, {"Retry-After": "1"})])
    gone = sinks("r-410", status=410)
    broken = sinks("r-500", status=500)
    broken_media = sinks("r-500-media", status=500)
    s_slow = await stack.subscribe("限流站", SubscriberKind.hub, *north(10), url=slow.url)
    s_gone = await stack.subscribe("撤销站", SubscriberKind.hub, *north(20), url=gone.url)
    await stack.subscribe("坏站", SubscriberKind.hub, *north(30), url=broken.url)
    await stack.subscribe("坏媒体", SubscriberKind.media, *north(30), url=broken_media.url)
    case_id = await stack.report(release__public=True)
    await run_timers_until(stack.notify, lambda: len(slow.requests) == 2 and
                           len(broken_media.requests) == 3 and len(broken.requests) >= 5,
                           timeout=10)
    first, second = slow.requests
    assert second["at"] - first["at"] >= 0.95  # Retry-After honoured
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    Webhook(s_slow["secret"]).verify(second["body"], second["headers"])
    assert len(gone.requests) == 1
    sub = await stack.notify.subscribers.get(s_gone["subscriber_id"])
    assert sub is not None and not sub.active
    assert len({r["headers"]["webhook-id"] for r in broken.requests}) == 1
    states = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert states["限流站"]["state"] == "sent" and states["限流站"]["attempts"] == 2
    assert states["撤销站"]["state"] == "gone"
    assert states["坏媒体"]["state"] == "dead" and states["坏媒体"]["attempts"] == 3
    hub = states["坏站"]
    assert hub["state"] == "retrying" and hub["attempts"] >= 5 > 3  # past max: never dead
    assert hub["since"] is not None and hub["since"] <= hub["at"]
    dead = [m for m in await read_topic(settings.kafka_bootstrap, topics.DELIVERIES_DLQ)
            if m["key"] == case_id]
    assert [(m["value"]["status"], m["value"]["name"]) for m in dead] == [("dead", "坏媒体")]
    receipts = [m["value"] for m in await read_topic(settings.kafka_bootstrap, topics.DELIVERIES)
                if m["key"] == case_id]
    # Every failed try that is retried is recorded too (a rebuilt ledger retries it).
    by_name: dict[str, list[str]] = {}
    for r in receipts:
        by_name.setdefault(r["name"], []).append(r["status"])
    assert by_name["坏媒体"] == ["retrying", "retrying", "dead"]
    assert by_name["限流站"] == ["retrying", "sent"] and by_name["撤销站"] == ["gone"]
    assert set(by_name["坏站"]) == {"retrying"} and len(by_name["坏站"]) >= 5
    assert len({r["since"] for r in receipts if r["name"] == "坏站"}) == 1


async def test_restart_mid_fan_out_sends_no_distinct_duplicate(
    stack_factory: Any, sinks: Any
) -> None:
    first = await stack_factory()
    sink_list = [sinks(f"m{i}", delay_s=0.3) for i in range(20)]
    for i, sink in enumerate(sink_list):
        await first.subscribe(f"站{i}", SubscriberKind.hub, *north(1 + i), url=sink.url)
    case_id = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
    accepted = ReportAccepted(report_id="R", case_id=case_id, accepted_at=datetime.now(UTC),
                              operator="op", operator_region="140403",
                              report=ResolvedReport.model_validate(report_body()))
    event = CloudEvent.of(REPORT_ACCEPTED, "/test", case_id, accepted, event_id=case_id)
    # The first process dies mid-fan-out (its per-endpoint limit lets only some through).
    task = asyncio.create_task(first.notify.on_report_accepted(event))
    await eventually(lambda: _any(sink_list), timeout=5, interval=0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The message is redelivered to a fresh process.
    second = await stack_factory()
    await second.notify.on_report_accepted(event)
    await second.notify.on_report_accepted(event)
    for sink in sink_list:
        ids = {r["headers"]["webhook-id"] for r in sink.requests}
        assert len(ids) == 1, (sink.url, len(sink.requests))  # retries reuse the webhook-id
    states = {d["state"] for d in (await second.deliveries(case_id))["deliveries"]}
    assert states == {"sent"}


async def _any(sink_list: list[Sink]) -> bool:
    return any(s.requests for s in sink_list)


async def test_ack_and_ack_deadline(stack_factory: Any, settings: Settings) -> None:
    stack = await stack_factory(notify_ack_deadline_s=0.5)
    a = await stack.subscribe("甲站", SubscriberKind.hub, *north(10), hub_id="HUBA")
    b = await stack.subscribe("乙站", SubscriberKind.hub, *north(20), hub_id="HUBB")
    case_id = await stack.report()
    alerts_a = (await stack.http.get("/api/v1/hubs/HUBA/alerts",
                                     headers=stack.token(Role.hub, hub_id="HUBA"))).json()
    did_a = alerts_a["alerts"][0]["delivery_id"]
    other = await stack.http.post(f"/api/v1/deliveries/{did_a}/ack",
                                  headers=stack.token(Role.hub, hub_id="HUBB"))
    assert other.status_code == 403
    ok = await stack.http.post(f"/api/v1/deliveries/{did_a}/ack",
                               headers=stack.token(Role.hub, hub_id="HUBA"))
    assert ok.status_code == 200 and ok.json()["state"] == "acknowledged"
    await asyncio.sleep(0.7)
    await stack.notify.tick()
    rows = {d["subscriber_id"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert rows[a["subscriber_id"]]["state"] == "acknowledged"
    assert rows[b["subscriber_id"]]["overdue"] is True
    feed_b = await stack.notify.feed.current(b["subscriber_id"])
    assert feed_b[0].get("reminder") == 1  # pushed again
    events = [m for m in await read_topic(settings.kafka_bootstrap, topics.DELIVERIES)
              if m["key"] == case_id]
    kinds = [m["headers"]["ce_type"] for m in events]
    assert "homeward.delivery.acknowledged.v1" in kinds
    overdue = [m for m in events if m["headers"]["ce_type"] == "homeward.delivery.ack_overdue.v1"]
    assert len(overdue) == 1 and "140403" in overdue[0]["value"]["error"]
    svg = await stack.http.get(f"/api/v1/cases/{case_id}/spread.svg",
                               headers=stack.token(Role.commander, "140400"))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert 'data-state="acknowledged"' in svg.text and 'data-state="pushed"' in svg.text
    assert "已确认" in svg.text
    elsewhere = await stack.http.get(f"/api/v1/cases/{case_id}/spread.svg",
                                     headers=stack.token(Role.commander, "110000"))
    assert elsewhere.status_code == 404


async def test_acknowledging_the_latest_version_acknowledges_the_alert_it_follows(
    stack_factory: Any,
) -> None:
    """A desk's console shows the latest version of an alert: when the leader's Update came
    before the officer pressed 确认收到, that acknowledges the Alert too, whose deadline would
    otherwise escalate and re-push (issue 18 §5)."""
    stack = await stack_factory(notify_ack_deadline_s=0.5)
    hub = await stack.subscribe("甲站", SubscriberKind.hub, *north(10), hub_id="HUBL")
    case_id = await stack.report()
    await stack.dispatch(CASE_OPENED, case_id, report_id="R", opened_at=datetime.now(
        UTC).isoformat(), priority="high", mechanisms=["rapid_search"], leader={
            "organ_code": "140403", "organ_name": "长治市公安局潞州分局", "name": "褚卫东",
            "title": "局长", "phone": "0355-1000001"})
    desk = stack.token(Role.hub, hub_id="HUBL")
    shown = (await stack.http.get("/api/v1/hubs/HUBL/alerts", headers=desk)).json()["alerts"]
    assert [(a["version"], a["msg_type"]) for a in shown] == [(2, "Update")]
    ok = await stack.http.post(f"/api/v1/deliveries/{shown[0]['delivery_id']}/ack",
                               headers=desk)
    assert ok.status_code == 200, ok.text
    await asyncio.sleep(0.7)
    await stack.notify.tick()
    rows = {r["version"]: r for r in (await stack.deliveries(case_id))["deliveries"]
            if r["subscriber_id"] == hub["subscriber_id"]}
    assert {v: r["state"] for v, r in rows.items()} == {1: "acknowledged", 2: "acknowledged"}
    assert not rows[1]["overdue"]  # nothing escalated, nothing pushed again
    assert all("reminder" not in a for a in await stack.notify.feed.current("HUBL"))


async def test_ssrf_guard_refuses_private_addresses_unless_allow_listed(
    stack_factory: Any, sinks: Any
) -> None:
    strict = await stack_factory(webhook_allow_networks=[])
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.1/",
                "http://localhost/x"):
        got = await strict.http.post(
            "/api/v1/subscribers", headers=strict.token(Role.admin),
            json={"kind": "media", "name": "m", "location": {"lat": 36, "lon": 113},
                  "channel": {"type": "webhook", "url": url}})
        assert got.status_code == 422 and got.json()["error"]["field"] == "channel.url", url
    relaxed = await stack_factory()
    got = await relaxed.http.post(
        "/api/v1/subscribers", headers=relaxed.token(Role.admin),
        json={"kind": "media", "name": "m", "location": {"lat": 36, "lon": 113},
              "channel": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}})
    assert got.status_code == 201
    request = SubscriberRequest.model_validate(
        {"kind": "volunteer", "name": "v", "location": {"lat": 36, "lon": 113},
         "channel": {"type": "apprise", "url": "json://127.0.0.1:9/x"}})
    assert (await relaxed.notify.register(request)).subscriber_id
    # Checked again when sending: a URL allowed once is not connected to once the policy says
    # no (the same holds for a name that comes to resolve inside the network).
    sink = sinks("ssrf")
    await relaxed.subscribe("内网站", SubscriberKind.hub, *north(10), url=sink.url)
    await relaxed.subscribe("内网名", SubscriberKind.hub, *north(12),
                            url=sink.url.replace("127.0.0.1", "localhost"))
    case_id = await strict.report()
    assert sink.requests == []
    rows = (await strict.deliveries(case_id))["deliveries"]
    states = {r["name"]: (r["state"], r["error"]) for r in rows}
    # Issue 12: a status class, never the socket's text; a refusal is final, not retried.
    assert states["内网站"] == ("failed", "refused_by_policy")
    assert states["内网名"] == ("failed", "refused_by_policy")


async def test_subscribers_come_back_from_the_compacted_log_after_redis_is_flushed(
    stack_factory: Any, sinks: Any, redis: Redis
) -> None:
    stack = await stack_factory()
    hub = sinks("log-hub", status=410)
    made = await stack.subscribe("日志站", SubscriberKind.hub, *north(10), url=hub.url,
                                 hub_id=f"LOG-{uuid.uuid4().hex[:6]}")
    await stack.report()  # 410: the hub is disabled, and the log says so
    await redis.flushdb()
    assert await stack.notify.subscribers.get(made["subscriber_id"]) is None
    restored = await stack.notify.rebuild_subscribers(
        SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS))
    assert restored >= 1
    back = await stack.notify.subscribers.get(made["subscriber_id"])
    assert back is not None and back.secret == made["secret"] and back.active is False
    assert made["subscriber_id"] in await stack.notify.subscribers.ids_within(
        SubscriberKind.hub, *north(10), 5)


async def test_apprise_channels_record_a_result_per_target(stack_factory: Any,
                                                           sinks: Any) -> None:
    stack = await stack_factory(notify_retry_max_attempts=2)
    good, bad = sinks("ap-good"), sinks("ap-bad", status=500)
    for name, sink in (("钉钉群", good), ("企业微信群", bad)):
        got = await stack.http.post(
            "/api/v1/subscribers", headers=stack.token(Role.admin),
            json={"kind": "hub", "name": name, "location": dict(zip(("lat", "lon"), north(10),
                                                                     strict=True)),
                  "channel": {"type": "apprise", "url": sink.url.replace("http://", "json://")}})
        assert got.status_code == 201, got.text
    case_id = await stack.report()
    await run_timers_until(stack.notify, lambda: len(bad.requests) == 2, timeout=10)
    assert len(good.requests) == 1
    assert "张小明" in json.loads(good.requests[0]["body"])["message"]
    rows = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert rows["钉钉群"]["state"] == "sent" and rows["钉钉群"]["channel"] == "apprise"
    # A hub's push of an active alert is never dead (issue 18 §4): past its 2 tries it retries.
    assert rows["企业微信群"]["state"] == "retrying" and rows["企业微信群"]["error"] == "http_5xx"


async def test_widening_timer_survives_a_restart(stack_factory: Any, sinks: Any) -> None:
    first = await stack_factory(notify_tier_unit_s=4.0)
    near, far = sinks("w-near"), sinks("w-far")
    await first.subscribe("近站", SubscriberKind.hub, *north(50), url=near.url)
    await first.subscribe("远站", SubscriberKind.hub, *north(150), url=far.url)
    await first.report(seen_ago_s=0.2)
    assert len(near.requests) == 1 and far.requests == []
    # The first process is gone; another one finds the timer in Redis and widens on time.
    second = await stack_factory(notify_tier_unit_s=4.0)
    await run_timers_until(second.notify, lambda: far.requests, timeout=15)
    assert far.bodies()[0]["radius_km"] >= 200.0 and len(near.requests) == 1


async def test_dispatch_events_before_the_report_are_remembered(stack_factory: Any,
                                                                 sinks: Any) -> None:
    stack = await stack_factory()
    media = sinks("early-media")
    await stack.subscribe("媒体", SubscriberKind.media, *north(10), url=media.url)
    released = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
    await stack.dispatch(CASE_RELEASE_APPROVED, released)
    await stack.report_as(released)
    assert [b["scope"] for b in media.bodies()] == ["public"]
    found = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
    await stack.dispatch(CASE_FOUND, found, outcome="false_report",
                         found_at=datetime.now(UTC).isoformat())
    await stack.report_as(found, release__public=True)
    assert len(media.requests) == 1  # nobody hears of a report already withdrawn


async def test_case_group_gets_the_restricted_bulletin_and_the_cancellation(
    stack_factory: Any, sinks: Any
) -> None:
    # The gateway gets each number validated, in E.164 and URL-encoded (issue 12).
    leader_sink, member_sink = sinks("grp-+863551000001"), sinks("grp-+863551000003")
    template = leader_sink.url.replace("http://", "json://").replace("+863551000001", "{phone}")
    stack = await stack_factory(notify_group_apprise_url=template)
    case_id = await stack.report()
    await stack.dispatch(CASE_OPENED, case_id, report_id="R", opened_at=datetime.now(
        UTC).isoformat(), priority="high", mechanisms=["rapid_search"], leader={
            "organ_code": "140403", "organ_name": "长治市公安局潞州分局", "name": "褚卫东",
            "title": "局长", "phone": "0355-1000001"})
    await stack.dispatch(CASE_MEMBER_ADDED, case_id, details={"member": {
        "name": "蒋晓军", "title": "刑侦大队长", "phone": "0355-1000003"}})
    await stack.dispatch(CASE_MEMBER_ADDED, case_id, details={"member": {
        "name": "蒋晓军", "title": "刑侦大队长", "phone": "0355-1000003"}})  # redelivery
    for sink in (leader_sink, member_sink):
        assert len(sink.requests) == 1, sink.url
        assert "晋D·12345" in json.loads(sink.requests[0]["body"])["message"]
    rows = (await stack.deliveries(case_id))["deliveries"]
    group = [r for r in rows if r["kind"] == "member"]
    assert len(group) == 2 and {r["scope"] for r in group} == {"group"}
    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    for sink in (leader_sink, member_sink):
        assert len(sink.requests) == 2
        assert "张小明" not in json.loads(sink.requests[1]["body"])["message"]


# --- issue 17: alerts anyone can verify ----------------------------------------------------------


async def test_pushes_and_cap_are_signed_by_the_issuer_and_verify_against_the_jwks(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory()
    media = sinks("s-media")
    await stack.subscribe("长治日报", SubscriberKind.media, *north(20), url=media.url)
    case_id = await stack.report(release__public=True)
    alert_id = alert_id_of(case_id)
    got = await stack.http.get(JWKS_PATH)
    assert got.status_code == 200
    jwks = got.json()
    assert {k["alg"] for k in jwks["keys"]} == {"ES256"} and "d" not in jwks["keys"][0]
    push = media.requests[0]
    token = push["headers"][SIGNATURE_HEADER]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    jwt.api_jws.decode(token, key, algorithms=["ES256"], detached_payload=push["body"])
    body = json.loads(push["body"])
    assert body["short_code"] == short_code(alert_id)
    assert display_code(body["short_code"]) in body["text"]
    assert f"http://notify.test/verify?code={display_code(body['short_code'])}" in body["text"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.api_jws.decode(token, key, algorithms=["ES256"],
                           detached_payload=push["body"].replace(b"110", b"139"))

    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    cancel = media.requests[-1]
    jwt.api_jws.decode(cancel["headers"][SIGNATURE_HEADER], key, algorithms=["ES256"],
                       detached_payload=cancel["body"])
    schema = xmlschema.XMLSchema(CAP_XSD)
    for version in (1, 2):  # the alert and its Cancel
        cap = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version={version}")
        schema.validate(cap.text)
        assert b"<ds:KeyName>" + kid.encode() + b"</ds:KeyName>" in cap.content
        verify_cap(cap.content, jwks)
        with pytest.raises(SignatureInvalid):
            verify_cap(cap.content.replace(b"Homeward", b"Hoax"), jwks)


async def test_verify_answers_active_restricted_ended_unknown_and_is_rate_limited(
    stack_factory: Any,
) -> None:
    stack = await stack_factory(verify_limit_per_client=12)
    case_id = await stack.report()
    code = display_code(short_code(alert_id_of(case_id)))
    held = (await stack.http.get(f"/api/v1/verify/{code}")).json()
    assert held["status"] == "active" and held["public"] is False
    assert "张小明" not in json.dumps(held, ensure_ascii=False)
    await stack.dispatch(CASE_RELEASE_APPROVED, case_id)
    typed = code.lower().replace("-", " ")  # as people type it
    active = (await stack.http.get(f"/api/v1/verify/{typed}")).json()
    assert active["status"] == "active" and active["child"]["name"] == "张小明"
    assert active["contact"] == stack.settings.notify_official_contact
    assert not any(secret in json.dumps(active, ensure_ascii=False) for secret in PII)
    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    ended = await stack.http.get(f"/api/v1/verify/{code}")
    assert ended.json()["status"] == "ended" and "已找到，请停止转发" in ended.json()["message"]
    assert "张小明" not in ended.text and not any(secret in ended.text for secret in PII)
    english = await stack.http.get(f"/api/v1/verify/{code}", headers={"Accept-Language": "en"})
    assert english.json()["message"] == "Found — please stop sharing."
    unknown = (await stack.http.get("/api/v1/verify/00000-00000")).json()
    assert unknown["status"] == "unknown" and "110" in unknown["message"]
    bad = await stack.http.get("/api/v1/verify/not-a-code")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "code"
    page = await stack.http.get("/verify")
    assert page.status_code == 200 and "<script>" not in page.text
    assert '<script src="/static/notify/verify.js"></script>' in page.text
    statuses = [(await stack.http.get(f"/api/v1/verify/{code}")).status_code
                for _ in range(12)]
    assert statuses[-1] == 429 and 200 in statuses


async def test_poster_pdf_has_the_name_as_text_and_a_qr_code_to_the_verification_page(
    stack_factory: Any, tmp_path: Path,
) -> None:
    stack = await stack_factory(verify_base_url="https://verify.example.cn")
    case_id = await stack.report()
    alert_id = alert_id_of(case_id)
    url = f"/api/v1/alerts/{alert_id}/poster.pdf"
    assert (await stack.http.get(url)).status_code == 404  # not released to the public
    await stack.dispatch(CASE_RELEASE_APPROVED, case_id)
    got = await stack.http.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    text = pdf_text(got.content, tmp_path)
    code = display_code(short_code(alert_id))
    assert "张小明" in text and code in text and "北京时间" in text
    assert stack.settings.notify_official_contact in text
    assert not any(secret in text for secret in PII)
    assert pdf_qr_codes(got.content, tmp_path) == [
        f"https://verify.example.cn/verify?code={code}"]
    again = await stack.http.get(url)  # the same version: rendered once, served again
    assert again.status_code == 200 and again.content == got.content

    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    gone = await stack.http.get(url)
    assert gone.status_code == 410 and gone.headers["content-type"] == "application/pdf"
    notice = pdf_text(gone.content, tmp_path)
    assert "孩子已找到" in notice and "请停止转发" in notice and "张小明" not in notice


async def test_a_batch_of_many_cases_first_messages_sends_each_its_own_body(
    stack_factory: Any, sinks: Any
) -> None:
    """One delivery batch holding later versions of many alerts to recipients who had none of
    their earlier versions (each such Update goes out as an Alert, a body made per job): every
    request carries its own case's body under its own webhook-id. (A payload cache keyed by
    id() of those short-lived bodies once sent one case's bulletin under another's id.)"""
    from services.notify.domain import delivery_id
    from services.notify.fanout import job_of

    stack = await stack_factory()
    far = [sinks(f"first-{i}") for i in range(3)]
    subs = []
    for i, sink in enumerate(far):  # out of every case's radius: nobody had version 1
        made = await stack.subscribe(f"远站{i}", SubscriberKind.hub, *north(400 + 10 * i),
                                     url=sink.url)
        subs.append(await stack.notify.subscribers.get(made["subscriber_id"]))
    jobs = []
    for _ in range(12):
        case_id = await stack.report()
        alert = await stack.notify.alerts.get(alert_id_of(case_id))
        assert alert is not None
        body = {**stack.notify.planner.fanout.body(alert, "restricted"), "version": 2,
                "msg_type": "Update"}
        await stack.notify.ctx.put_body(f"{alert.alert_id}:2:restricted", body)
        jobs += [(sub, job_of(sub, body)) for sub in subs if sub is not None]
    jobs.reverse()  # the cases interleaved in no particular order within the batch
    await stack.notify.worker.run(jobs)
    for sub, sink in zip(subs, far, strict=True):
        assert sub is not None and len(sink.requests) == 12
        for request in sink.requests:
            body = json.loads(request["body"])
            assert body["msg_type"] == "Alert"  # the recipient's first message
            assert request["headers"]["webhook-id"] == delivery_id(
                body["alert_id"], body["version"], sub.subscriber_id)


async def test_an_amendment_whose_planner_died_before_the_fan_out_is_finished_by_the_redelivery(
    stack_factory: Any, sinks: Any
) -> None:
    """The planner saves the amended version, then dies before handing its jobs on: the
    redelivered amendment (same values, nothing new to save) hands them on, and each hub gets
    the Update once."""
    from shared.events import CASE_DETAILS_AMENDED

    stack = await stack_factory()
    had = [sinks(f"amend-died-{i}") for i in range(2)]
    for i, sink in enumerate(had):
        await stack.subscribe(f"补发站{i}", SubscriberKind.hub, *north(5 + 5 * i), url=sink.url)
    case_id = await stack.report()
    details = {"amended": {"description": "穿蓝色外套"}, "fields": ["description"]}
    fanout = stack.notify.planner.fanout
    real = fanout.fan_out

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the planner died before handing the jobs on")

    fanout.fan_out = dies  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await stack.dispatch(CASE_DETAILS_AMENDED, case_id, details=details)
    fanout.fan_out = real  # type: ignore[method-assign]
    assert all(len(s.requests) == 1 for s in had)  # the Alert only so far
    await stack.dispatch(CASE_DETAILS_AMENDED, case_id, details=details)  # the redelivery
    await stack.dispatch(CASE_DETAILS_AMENDED, case_id, details=details)  # and another
    for sink in had:
        bodies = sink.bodies()
        assert [b["msg_type"] for b in bodies] == ["Alert", "Update"]
        assert bodies[1]["child"]["description"] == "穿蓝色外套"
        assert len({r["headers"]["webhook-id"] for r in sink.requests}) == 2
