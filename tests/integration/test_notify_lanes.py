"""Issue 18's must-show behaviours of the planner and the delivery workers, against a real Kafka
of this module's own (thousands of deliveries, which later modules' consumers would otherwise
first have to read through on the session's broker), the session's real Redis and one local sink
server with a path per recipient: one case's fan-out
shared by two notify instances; one webhook-id per (version, recipient) through a rebalance; a
Cancel issued mid-fan-out never overtakes an Alert; a hub answering 503 for a while gets the
alert in the end while the commander's view shows `retrying`; an amendment reaches every hub
that had the alert."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from deploy.local.stack import KafkaServer, RedisServer, free_port
from services.notify.app import create_app
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.domain import alert_id_of
from services.notify.handlers import Notify
from shared import topics
from shared.auth import Role
from shared.events import (
    CASE_DETAILS_AMENDED,
    CASE_FOUND,
    DELIVERY_JOB,
    REPORT_ACCEPTED,
    CloudEvent,
)
from shared.kafka import ensure_topics
from shared.report import ReportAccepted, ResolvedReport
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body, run_sync
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    Sink,
    make_settings,
    run_timers_until,
    sinks,
    stack_factory,
)


@pytest.fixture(scope="module")
def settings(redis_server: RedisServer, data_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The session's settings with a broker of this module's own."""
    kafka = KafkaServer(tmp_path_factory.mktemp("lanes-kafka"), port=free_port()).start()
    try:
        run_sync(ensure_topics(kafka.bootstrap))
        yield Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis_server.url,
                       data_dir=data_dir, webhook_allow_networks=["127.0.0.1/32", "::1/128"])
    finally:
        kafka.stop()


ISSUED, CANCELLED = "homeward.alert.issued.v1", "homeward.alert.cancelled.v1"
# Far from the other tests' subscribers (Redis is flushed per test; this is belt and braces).
HERE = (45.75, 126.65)


def near(i: int, n: int) -> tuple[float, float]:
    """Recipient i of n within ~40 km of HERE."""
    return HERE[0] + 0.3 * (i / n), HERE[1] + 0.3 * ((i * 7919) % n) / n


def accepted_event(**overrides: Any) -> tuple[str, CloudEvent]:
    case_id = f"230102-20261130-{uuid.uuid4().hex[:6].upper()}"
    seen = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    body = report_body(last_seen__at=seen, last_seen__lat=HERE[0], last_seen__lon=HERE[1],
                       last_seen__region_code="230102", **overrides)
    accepted = ReportAccepted(report_id=f"R{case_id}", case_id=case_id,
                              accepted_at=datetime.now(UTC), operator="op-1",
                              operator_region="230102",
                              report=ResolvedReport.model_validate(body))
    return case_id, CloudEvent.of(REPORT_ACCEPTED, "/test", case_id, accepted, event_id=case_id)


def case_event(type_: str, case_id: str, **data: Any) -> CloudEvent:
    return CloudEvent(type=type_, source="/test", subject=case_id,
                      data={"case_id": case_id, "region_code": "230102", "actor": "c-9",
                            "at": datetime.now(UTC).isoformat(), **data})


async def add_recipients(notify: Notify, make_sink: Any, kind: SubscriberKind, n: int,
                         prefix: str) -> dict[str, Sink]:
    """`n` webhook subscribers of `kind` near HERE, each with a sink path of its own (written
    to Redis directly: registering 2,000 through the API is not what is tested)."""
    made: dict[str, Sink] = {}
    subs = []
    for i in range(n):
        sink = make_sink(f"{prefix}{i}")
        sid = f"S{prefix}{i:05d}"
        lat, lon = near(i, n)
        subs.append(Subscriber.model_validate({
            "subscriber_id": sid, "secret": "whsec_" + "A" * 32, "kind": kind.value,
            "name": f"{prefix}{i}", "location": {"lat": lat, "lon": lon},
            "region_code": "230102", "channel": {"type": "webhook", "url": sink.url}}))
        made[sid] = sink
    await notify.subscribers.add_many(subs)
    return made


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Notify]:
    async with app.router.lifespan_context(app):
        yield app.state.notify


def worker_app(settings: Settings, **overrides: Any) -> FastAPI:
    """A notify instance whose workers consume both lanes; it plans only what the test hands
    its planner (no report or case consumers: the session's topics hold other tests' cases)."""
    s = make_settings(settings, notify_planner=False, notify_rebuild_on_empty=False,
                      notify_per_endpoint_limit=64, **overrides)
    return create_app(s, timers=True, consume=True)


async def assigned(*apps: FastAPI, topic: str = topics.DELIVERY_JOBS_PUBLIC) -> bool:
    """Every instance holds some partitions of `topic` and together all of them."""
    owned = [len(lane.consumer.assignment()) for app in apps for lane in app.state.lanes
             if lane.topic == topic and lane.consumer is not None]
    return len(owned) == len(apps) and all(owned) and sum(owned) == topics.JOB_PARTITIONS


def ordered_types(sink: Sink, case_id: str) -> list[str]:
    return [b["type"] for b in sink.bodies() if b.get("case_id") == case_id]


async def test_two_instances_share_one_case_fan_out_of_2000(
    settings: Settings, redis: Redis, sinks: Any,  # noqa: F811
) -> None:
    a_app, b_app = worker_app(settings), worker_app(settings)
    async with running(a_app) as a, running(b_app) as b:
        recipients = await add_recipients(a, sinks, SubscriberKind.volunteer, 2000, "v")
        await eventually(lambda: assigned(a_app, b_app), timeout=30)
        case_id, event = accepted_event(release__public=True)
        # A job that is not one (a bug, a foreign writer): dead-lettered alone.
        poison = CloudEvent(id=f"poison-{case_id}", type=DELIVERY_JOB, source="/test",
                            subject=case_id, data={"delivery_id": "x"})
        await a.publisher.broker.publish(poison.value(), topics.DELIVERY_JOBS_PUBLIC,
                                         key=b"Sv00000", headers=poison.headers())
        await a.on_report_accepted(event)  # A plans; both deliver

        async def all_sent() -> bool:
            return all(len(s.requests) >= 1 for s in recipients.values())

        await eventually(all_sent, timeout=60, interval=0.5)
        total = a.worker.sender.sent + b.worker.sender.sent
        assert total >= 2000
        assert a.worker.sender.sent >= 0.3 * 2000 and b.worker.sender.sent >= 0.3 * 2000, (
            a.worker.sender.sent, b.worker.sender.sent)
        for sid, sink in recipients.items():
            ids = {r["headers"]["webhook-id"] for r in sink.requests}
            assert len(ids) == 1, sid
            assert ordered_types(sink, case_id) == [ISSUED]
        dead = [m for m in await read_topic(settings.kafka_bootstrap,
                                            topics.dlq(topics.DELIVERY_JOBS_PUBLIC))
                if m["headers"].get("ce_id") == f"poison-{case_id}"]
        assert len(dead) == 1 and "dlq_error" in dead[0]["headers"]


async def test_one_webhook_id_per_version_and_recipient_through_a_rebalance(
    settings: Settings, redis: Redis, sinks: Any,  # noqa: F811
) -> None:
    a_app = worker_app(settings)
    async with running(a_app) as a:
        recipients = await add_recipients(a, sinks, SubscriberKind.volunteer, 1500, "r")
        for sink in recipients.values():
            sink.delay_s = 1.0  # slow enough for the rebalance to fall inside the fan-out (~25 s)
        await eventually(lambda: assigned(a_app), timeout=30)
        case_id, event = accepted_event(release__public=True)
        await a.on_report_accepted(event)
        await eventually(lambda: asyncio.sleep(0, sum(
            bool(s.requests) for s in recipients.values()) >= 100), timeout=30, interval=0.05)
        b_app = worker_app(settings)
        async with running(b_app) as b:  # B joins mid-fan-out: the partitions are reassigned
            await eventually(lambda: assigned(a_app, b_app), timeout=30)

            async def all_sent() -> bool:
                return all(s.requests for s in recipients.values())

            await eventually(all_sent, timeout=60, interval=0.5)
        assert b.worker.sender.sent > 0  # B took over some of the fan-out
        for sid, sink in recipients.items():
            ids = {r["headers"]["webhook-id"] for r in sink.requests}
            assert len(ids) == 1, (sid, ids)  # a resend after the rebalance keeps its id
        async def all_settled() -> bool:  # (a sink records a request before it answers)
            return {d["state"] for d in await a.deliveries(case_id)} == {"sent"}

        await eventually(all_settled, timeout=30)


async def test_a_cancel_mid_fan_out_never_overtakes_an_alert(
    settings: Settings, redis: Redis, sinks: Any,  # noqa: F811
) -> None:
    a_app, b_app = worker_app(settings), worker_app(settings)
    async with running(a_app) as a, running(b_app):
        hubs = await add_recipients(a, sinks, SubscriberKind.hub, 300, "h")
        public = await add_recipients(a, sinks, SubscriberKind.volunteer, 2700, "p")
        everyone = {**hubs, **public}
        for sink in everyone.values():
            sink.delay_s = 0.1  # the fan-out lasts long enough for the Cancel to fall in it
        await eventually(lambda: assigned(a_app, b_app), timeout=30)
        await eventually(lambda: assigned(a_app, b_app, topic=topics.DELIVERY_JOBS_RESTRICTED),
                         timeout=30)
        case_id, event = accepted_event(release__public=True)
        await a.on_report_accepted(event)
        await eventually(lambda: asyncio.sleep(0, sum(
            bool(s.requests) for s in everyone.values()) >= 50), timeout=30, interval=0.02)
        await a.on_case_event(case_event(CASE_FOUND, case_id, outcome="found_safe",
                                         found_at=datetime.now(UTC).isoformat()))

        async def settled() -> bool:
            rows = await a.deliveries(case_id)
            # The Alert's and the Cancel's job of every recipient worked (sent or dropped).
            return len(rows) == 2 * len(everyone) and all(
                r["state"] not in ("pending", "retrying") for r in rows)

        await eventually(settled, timeout=60, interval=0.5)
        await asyncio.sleep(1)
        got_alert = got_cancel = 0
        for sid, sink in everyone.items():
            seen = ordered_types(sink, case_id)
            # Nothing (its Alert dropped: the Cancel was decided first, so no Cancel either),
            # or the Alert then the Cancel. Never a Cancel first, never an Alert after it.
            assert seen in ([], [ISSUED, CANCELLED]), (sid, seen)
            got_alert += ISSUED in seen
            got_cancel += CANCELLED in seen
        assert got_alert == got_cancel > 0
        assert got_alert < len(everyone), "the Cancel came after the whole fan-out"


async def test_a_hub_down_for_a_while_gets_the_alert_and_shows_retrying_meanwhile(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    """The rule, with a shortened schedule: 503 for far longer than max_attempts tries would
    last, then 200 → delivered; never `dead` while the alert is active."""
    stack = await stack_factory(notify_retry_base_s=0.1, notify_retry_cap_s=0.4,
                                notify_retry_max_attempts=3)
    down = sinks("down-hub", status=503)
    await stack.subscribe("停电站", SubscriberKind.hub, 36.3, 113.11, url=down.url)
    case_id = await stack.report()
    await run_timers_until(stack.notify, lambda: len(down.requests) >= 8, timeout=20)
    rows = (await stack.deliveries(case_id))["deliveries"]
    assert [(r["state"], r["since"] is not None) for r in rows] == [("retrying", True)]
    assert rows[0]["attempts"] >= 8 > 3 and rows[0]["http_status"] == 503
    down.status = 200
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        await stack.notify.tick()
        rows = (await stack.deliveries(case_id))["deliveries"]
        if rows[0]["state"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert rows[0]["state"] == "sent" and rows[0]["since"] is None
    assert len({r["headers"]["webhook-id"] for r in down.requests}) == 1
    assert down.bodies()[-1]["type"] == ISSUED and down.bodies()[-1]["case_id"] == case_id


async def test_an_amended_photo_reaches_every_hub_that_had_the_alert(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    stack = await stack_factory()
    had = [sinks(f"am-{i}") for i in range(3)]
    for i, sink in enumerate(had):
        await stack.subscribe(f"修正站{i}", SubscriberKind.hub, 36.19 + 0.1 * (i + 1), 113.11,
                              url=sink.url)
    case_id = await stack.report()
    assert all(len(s.requests) == 1 for s in had)
    photo = "https://photos.example.cn/p/new-photo.jpg"
    event = case_event(CASE_DETAILS_AMENDED, case_id, details={
        "amended": {"photo_urls": [photo], "description": "穿红色外套"},
        "fields": ["description", "photo_urls"]})
    event.data["region_code"] = "140403"
    await stack.notify.on_case_event(event)
    await stack.notify.on_case_event(event)  # a redelivery: nothing new
    for sink in had:
        bodies = sink.bodies()
        assert [b["msg_type"] for b in bodies] == ["Alert", "Update"]
        assert bodies[1]["child"]["photo_urls"] == [photo]
        assert bodies[1]["child"]["description"] == "穿红色外套"
    alert = await stack.notify.alerts.get(alert_id_of(case_id))
    assert alert is not None and alert.versions[-1].note == "amended description,photo_urls"
    # `?version=N` is version N as it went out, not the latest.
    commander = stack.token(Role.commander, "140400")
    first = await stack.http.get(f"/api/v1/alerts/{alert.alert_id}.xml?version=1",
                                 headers=commander)
    second = await stack.http.get(f"/api/v1/alerts/{alert.alert_id}.xml?version=2",
                                  headers=commander)
    assert "<msgType>Alert</msgType>" in first.text and "new-photo.jpg" not in first.text
    assert "穿红色外套" not in first.text
    assert "<msgType>Update</msgType>" in second.text and "new-photo.jpg" in second.text
