"""Reading a Kafka topic from its beginning up to its end at call time, without a consumer
group: the read-to-end behind every rebuild from a log (compacted state topics, the case-key
log, dispatch's replay)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import topics
from shared.cloudevents import CloudEvent, PoisonMessage
from shared.kafka_access import Bootstrap, client_options

__all__ = ["partitions_of", "read_to_end", "replay_topic"]

log = logging.getLogger(__name__)


async def partitions_of(bootstrap: Bootstrap, topic: str) -> list[TopicPartition]:
    """The partitions of `topic`, from the cluster's metadata."""
    probe = AIOKafkaProducer(**client_options(bootstrap))
    await probe.start()
    try:
        return [TopicPartition(topic, p) for p in sorted(await probe.partitions_for(topic))]
    finally:
        await probe.stop()


async def read_to_end(bootstrap: Bootstrap, topic: str, timeout_s: float | None = None,
                      client: str = "homeward") -> AsyncIterator[Any]:
    """Every record of `topic` (aiokafka ConsumerRecords, partition by partition in offset
    order, partitions interleaved) from its beginning up to its end at call time, without a
    consumer group: the one read-to-end behind every rebuild from a log (compacted state
    topics, the case-key log, dispatch's replay). Raises TimeoutError when `timeout_s` (seconds)
    passes before the end is reached."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return
    consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest",
                                client_id=f"{client}-read-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while remaining:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {timeout_s:g}s")
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def replay_topic(bootstrap: Bootstrap,
                       handle: Callable[[CloudEvent], Awaitable[None]],
                       topic: str = topics.DISPATCH,
                       client: str = "dispatch") -> int:
    """Feed every event on `topic`, from the beginning up to its end at call time, to `handle`
    in partition order; malformed messages are skipped. Returns how many were handled."""
    handled = 0
    async for record in read_to_end(bootstrap, topic, client=client):
        try:
            event = CloudEvent.from_kafka(dict(record.headers or ()), record.value or b"")
            await handle(event)
            handled += 1
        except (PoisonMessage, ValueError, KeyError, TypeError) as exc:
            log.info("replay skips %s@%s: %r", record.partition, record.offset, exc)
    return handled
