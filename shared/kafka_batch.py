"""Consuming many small messages together through FastStream (issue 15: alert's view of the
delivery receipts, one per recipient): `subscribe_batch`, the batch form of
shared.kafka.subscribe, with the same commit-after-work, retry and dead-letter rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.cloudevents import CloudEvent, PoisonMessage
from shared.faults import RETRYING_NOW, Retrying, backoff_s, is_transient
from shared.kafka import MESSAGES_HANDLED, EventPublisher

log = logging.getLogger(__name__)

BatchEventHandler = Callable[[list[CloudEvent]], Awaitable[None]]


def subscribe_batch(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    handle: BatchEventHandler,
    publisher: EventPublisher,
    max_records: int = 500,
    retry_delay_s: float = 0.2,
    retry_cap_s: float = 5.0,
    retrying: Retrying = RETRYING_NOW,
) -> None:
    """`subscribe` for many small messages read together (alert's view of delivery receipts,
    issue 15): `handle` gets up to `max_records` events at once, in partition order, and must
    be idempotent. The offsets are committed only after it returns. A message that is not a
    CloudEvent is dead-lettered alone. A transient failure works the whole batch again from
    each partition's first offset in it, after the backoff `subscribe` uses; any other failure
    works the batch's events one by one, so only the ones that fail go to `<topic>.dlq`."""
    key = f"{group_id}/{topic}"

    async def transient(exc: BaseException) -> NackMessage:
        attempt = retrying.failed(key, exc)
        log.warning("transient failure on %s (attempt %d), will retry the batch from the same "
                    "offsets: %r", key, attempt, exc)
        MESSAGES_HANDLED.labels(topic, group_id, "retried").inc()
        await asyncio.sleep(backoff_s(attempt, retry_delay_s, retry_cap_s))
        return NackMessage()

    async def on_batch(message: KafkaMessage) -> None:
        raw = message.raw_message
        records = list(raw) if isinstance(raw, tuple | list) else [raw]
        work: list[tuple[Any, CloudEvent]] = []
        for record in records:
            try:
                work.append((record, CloudEvent.from_kafka(dict(record.headers or ()),
                                                           record.value or b"")))
            except (PoisonMessage, ValueError, KeyError, TypeError) as exc:
                await publisher.dead_letter_record(record, exc)
                MESSAGES_HANDLED.labels(topic, group_id, "dead_lettered").inc()
        try:
            await handle([event for _, event in work])
        except Exception as exc:
            if is_transient(exc):
                raise await transient(exc) from exc
            log.warning("a batch of %s failed (%r): working its events one by one", topic, exc)
            for record, event in work:  # a bug or a violation: find the poison
                try:
                    await handle([event])
                except Exception as one:
                    if is_transient(one):
                        raise await transient(one) from one
                    log.exception("dead-lettering a message from %s", topic)
                    await publisher.dead_letter_record(record, one)
                    MESSAGES_HANDLED.labels(topic, group_id, "dead_lettered").inc()
                else:
                    MESSAGES_HANDLED.labels(topic, group_id, "ok").inc()
        else:
            MESSAGES_HANDLED.labels(topic, group_id, "ok").inc(len(work))
        retrying.passed(key)

    on_batch.__name__ = f"on_{topic.replace('.', '_')}"
    broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=max_records,
    )(on_batch)
