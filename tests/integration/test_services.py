"""Each service's handlers and app against the real broker and Redis."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from standardwebhooks import Webhook

from services.dispatch.adapters import CaseRepository, load_roster
from services.dispatch.handlers import Dispatch
from services.notify.app import build_notify
from services.notify.audience import Location, SubscriberKind, SubscriberRequest, WebhookChannel
from shared import topics
from shared.events import REPORT_ACCEPTED, CloudEvent
from shared.kafka import EventPublisher, make_broker
from shared.report import ReportAccepted
from shared.settings import Settings
from tests.helpers import WebhookSink, read_topic, report_body


def accepted_event(case_id: str, **overrides: object) -> CloudEvent:
    accepted = ReportAccepted(report_id=f"R{case_id}", case_id=case_id,
                              accepted_at=datetime.now(UTC), operator="op-1",
                              operator_region="140403", report=report_body(**overrides))
    return CloudEvent.of(REPORT_ACCEPTED, "/test", case_id, accepted, event_id=accepted.report_id)


async def test_dispatch_opens_one_case_per_report_even_when_redelivered(
    settings: Settings, redis: Redis
) -> None:
    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, "/homeward/dispatch")
    dispatch = Dispatch(CaseRepository(redis), load_roster(), publisher)
    case_id = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
    event = accepted_event(case_id)
    async with broker:
        await broker.start()
        await dispatch.reports.on_report_accepted(event)
        first = await CaseRepository(redis).get(case_id)
        await dispatch.reports.on_report_accepted(event)  # redelivery
    again = await CaseRepository(redis).get(case_id)
    assert first is not None and first == again
    assert first.leader is not None and first.leader.organ_code == "140403"
    assert await CaseRepository(redis).list_ids() == [case_id]

    opened = [m for m in await read_topic(settings.kafka_bootstrap, topics.DISPATCH)
              if m["key"] == case_id and m["headers"]["ce_type"] == "homeward.case.opened.v1"]
    # Published once with a stable event id (a redelivery re-publishes the same id).
    assert {m["headers"]["ce_id"] for m in opened} == {f"{case_id}:opened"}


async def test_notify_pushes_signed_bulletin_to_hubs_in_radius_once(
    settings: Settings, redis: Redis
) -> None:
    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, "/homeward/notify")
    notify = build_notify(settings, redis, publisher)
    async with broker:
        await broker.start()
        with WebhookSink() as near_sink, WebhookSink() as far_sink:
            near = await notify.register(SubscriberRequest(
                kind=SubscriberKind.hub, name="长治站", location=Location(lat=36.46, lon=113.11),
                channel=WebhookChannel(type="webhook", url=near_sink.url)))
            await notify.register(SubscriberRequest(
                kind=SubscriberKind.hub, name="太原南站",
                location=Location(lat=37.79, lon=112.6),  # ~180 km: outside 100 km
                channel=WebhookChannel(type="webhook", url=far_sink.url)))
            case_id = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
            event = accepted_event(case_id)
            await notify.on_report_accepted(event)
            await notify.on_report_accepted(event)  # redelivery: nothing new is sent
            await notify.webhooks.close()
            if notify.keys is not None:
                await notify.keys.stop()
            assert len(near_sink.requests) == 1
            assert far_sink.requests == []
    push = near_sink.requests[0]
    body = Webhook(near.secret).verify(push["body"], push["headers"])
    assert body["case_id"] == case_id and body["scope"] == "restricted"
    assert body["radius_km"] == 100.0
    assert body["circumstances"]["vehicle"] == "晋D·12345"

    receipts = [m for m in await read_topic(settings.kafka_bootstrap, topics.DELIVERIES)
                if m["key"] == case_id]
    assert [m["headers"]["ce_type"] for m in receipts] == ["homeward.delivery.sent.v1"]
    assert receipts[0]["value"]["subscriber_id"] == near.subscriber_id
    await asyncio.sleep(0)
    assert json.loads(push["body"])["alert_id"] == f"A-{case_id}"
