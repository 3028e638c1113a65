"""Timers and delivery records are not lost when Redis refuses writes (issue 19, item 5): a
timer whose work or rescheduling is refused (OOM at maxmemory with noeviction) stays due and
runs when Redis accepts writes again, with the same event ids; a send whose outcome could not
be recorded is settled when Redis returns. Real Redis and Kafka (session fixtures)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from services.dispatch.adapters import TIMERS, CaseRepository
from services.dispatch.handlers import Dispatch
from services.dispatch.roster import load_roster
from services.dispatch.timers import TIMERS_KEY as DISPATCH_TIMERS
from services.notify import audience as notify_audience
from services.notify import content as notify_content
from services.notify import domain as notify_domain
from services.notify.app import build_notify
from services.notify.handlers import ACKS, RETRIES, WIDEN
from services.notify.handlers import TIMERS_KEY as NOTIFY_TIMERS
from services.notify.timer_store import DurableTimers
from shared import topics
from shared.events import CASE_TASK_OVERDUE, REPORT_ACCEPTED, CloudEvent
from shared.faults import RETRYING_NOW
from shared.kafka import EventPublisher, make_broker
from shared.report import ReportAccepted, ResolvedReport
from shared.settings import Settings
from tests.helpers import (
    WebhookSink,
    eventually,
    read_topic,
    redis_refusing_writes,
    report_body,
)


async def test_a_notify_timer_refused_stays_due_and_is_settled_after(
    settings: Settings, redis: Redis,
) -> None:
    ledger = DurableTimers(redis)
    await ledger.schedule(RETRIES, "d-refused", time.time() - 1)
    async with redis_refusing_writes(settings.redis_url):
        with pytest.raises(OutOfMemoryError):
            await ledger.due(RETRIES)  # the claim itself is a write: refused, nothing claimed
    assert await redis.zscore("notify:timer:retry", "d-refused") is not None
    lease, claimed = await ledger.due(RETRIES)
    assert claimed == ["d-refused"]
    assert (await ledger.due(RETRIES))[1] == []  # leased to this claim
    # Never settled (the work failed): due again when the lease ends.
    assert (await ledger.due(RETRIES, now=lease + 0.1))[1] == ["d-refused"]


async def test_notify_tick_settles_only_what_was_done(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = make_broker(settings.kafka_bootstrap, "test-notify-timers")
    notify = build_notify(settings, redis, EventPublisher(broker, "/test/notify"))
    ran: list[str] = []

    async def retry(did: str) -> None:
        ran.append(did)
        if did == "refused":
            raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        if did == "again":
            await notify.timers.store.schedule(RETRIES, did, time.time() + 600)  # its next try

    monkeypatch.setitem(notify.timers.work, RETRIES, retry)
    monkeypatch.setitem(notify.timers.work, WIDEN, _nothing)
    monkeypatch.setitem(notify.timers.work, ACKS, _nothing)
    for did in ("refused", "done", "again"):
        await notify.timers.store.schedule(RETRIES, did, time.time() - 1)
    assert await notify.tick() == 3 and sorted(ran) == ["again", "done", "refused"]
    left = dict(await redis.zrange("notify:timer:retry", 0, -1, withscores=True))
    assert set(left) == {"refused", "again"}  # "done" settled; "again" kept its new time
    assert left["again"] > time.time() + 500
    assert NOTIFY_TIMERS in {k.split("/")[0] for k in RETRYING_NOW.retrying([NOTIFY_TIMERS])}
    RETRYING_NOW.passed(NOTIFY_TIMERS)


async def _nothing(_: str) -> None:
    return None


async def test_a_dispatch_overdue_timer_refused_stays_due_and_fires_once_redis_is_back(
    settings: Settings, redis: Redis,
) -> None:
    broker = make_broker(settings.kafka_bootstrap, "test-dispatch-timers")
    publisher = EventPublisher(broker, "/homeward/dispatch")
    dispatch = Dispatch(CaseRepository(redis), load_roster(None), publisher,
                        deadline_scale=1e-6)  # every task overdue at once
    case_id = f"140403-20261123-{uuid.uuid4().hex[:6].upper()}"
    accepted = ReportAccepted(
        report_id=f"R-{case_id}", case_id=case_id, accepted_at=datetime.now(UTC),
        operator="op-1", operator_region="140403",
        report=ResolvedReport.model_validate(report_body(
            child__name=f"童{uuid.uuid4().hex[:6]}", reporter__phone="13912345678")))
    await broker.start()
    try:
        await dispatch.reports.on_report_accepted(CloudEvent.of(
            REPORT_ACCEPTED, "/test/alert", case_id, accepted, event_id=accepted.report_id))
        await asyncio.sleep(0.05)
        due: list[Any] = await redis.zrangebyscore(TIMERS, "-inf", time.time(), withscores=True)
        assert due, "the case's tasks should be overdue at once"
        stop = asyncio.Event()
        async with redis_refusing_writes(settings.redis_url):
            with pytest.raises(OutOfMemoryError):
                await dispatch.timers.fire_due()
            loop = asyncio.create_task(dispatch.timers.run(0.05, stop))
            await eventually(lambda: asyncio.sleep(0, RETRYING_NOW.retrying([DISPATCH_TIMERS])))
            stop.set()
            await loop
            # Not rescheduled, not dropped: every timer still due at the same time.
            assert await redis.zrangebyscore(TIMERS, "-inf", "+inf", withscores=True) == due
        assert await dispatch.timers.fire_due() == len(due)
        stop.clear()
        loop = asyncio.create_task(dispatch.timers.run(0.05, stop))
        await eventually(lambda: asyncio.sleep(0, not RETRYING_NOW.retrying([DISPATCH_TIMERS])))
        stop.set()
        await loop
    finally:
        await broker.stop()
    overdue = [m for m in await read_topic(settings.kafka_bootstrap, topics.DISPATCH)
               if m["key"] == case_id and m["headers"]["ce_type"] == CASE_TASK_OVERDUE]
    ids = {m["headers"]["ce_id"] for m in overdue}
    # The refused tries published the same ids as the one that was stored: consumers dedupe.
    assert len(ids) == len(due) and all(i.endswith(":overdue:1") for i in ids)


async def test_a_send_whose_outcome_could_not_be_recorded_is_settled_when_redis_returns(
    settings: Settings, redis: Redis,
) -> None:
    """The webhook answered 2xx, then Redis refused to record it: the message is retried
    (the error is transient), the record is still `pending`, and the retry sends again with the
    same webhook-id (the receiver drops the duplicate) and records `sent`."""
    broker = make_broker(settings.kafka_bootstrap, "test-notify-settle")
    notify = build_notify(settings, redis, EventPublisher(broker, "/test/notify"))
    case_id = f"140403-20261123-{uuid.uuid4().hex[:6].upper()}"
    body = {"alert_id": f"A-{case_id}", "version": 1, "case_id": case_id,
            "type": notify_content.ALERT_ISSUED, "scope": "public", "text": "测试"}
    real_send = notify.webhooks.send
    refusing = contextlib.AsyncExitStack()
    sends: list[int] = []

    async def send_then_refuse(*args: Any, **kwargs: Any) -> Any:
        result = await real_send(*args, **kwargs)
        sends.append(1)
        if len(sends) == 1:  # Redis refuses writes from just after the first send
            await refusing.enter_async_context(redis_refusing_writes(settings.redis_url))
        return result

    with WebhookSink() as sink:
        await broker.start()
        try:
            sub = await notify.register(notify_audience.SubscriberRequest.model_validate(
                {"kind": "media", "name": "m", "location": {"lat": 36.2, "lon": 113.1},
                 "channel": {"type": "webhook", "url": sink.url}}))
            notify.webhooks.send = send_then_refuse  # type: ignore[method-assign]
            try:
                with pytest.raises(OutOfMemoryError):
                    await notify.deliver(sub, body)
            finally:
                await refusing.aclose()
            did = notify_domain.delivery_id(body["alert_id"], 1, sub.subscriber_id)
            assert (await notify.ledger.get(did))["state"] == "pending"
            await notify.deliver(sub, body)  # the redelivered message
            assert (await notify.ledger.get(did))["state"] == "sent"
        finally:
            await notify.webhooks.close()
            await broker.stop()
    ids = [next(v for k, v in r["headers"].items() if k.lower() == "webhook-id")
           for r in sink.requests]
    assert ids == [did, did]
