"""Kafka plumbing every service uses: the broker factory (idempotent producer, acks=all), topic
creation (compacted ones included, shared.topic_policy), CloudEvents publishing (one or many),
the batch consumer, and the consume guard that gives at-least-once processing with a
dead-letter topic for poison messages. `python -m shared.kafka ensure-topics` creates the topics.

Re-exported from their modules: how a process reaches Kafka (shared.kafka_access) and the
read-to-end of a log (shared.kafka_log).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from shared import metrics, telemetry, topic_policy, topics
from shared.cloudevents import CloudEvent, PoisonMessage
from shared.faults import RETRYING_NOW, Retrying, backoff_s, is_transient
from shared.kafka_access import Bootstrap, KafkaAccess, client_options
from shared.kafka_log import partitions_of, read_to_end, replay_topic

__all__ = ["MESSAGES_HANDLED", "BatchConsumer", "BatchHandler", "Bootstrap", "EventHandler",
           "EventPublisher", "KafkaAccess", "Outgoing", "Startable", "client_options",
           "ensure_topics", "kafka_check", "keep_starting", "make_broker", "partitions_of",
           "read_to_end", "replay_topic", "subscribe"]

log = logging.getLogger(__name__)


def make_broker(bootstrap: str, client_id: str, access: KafkaAccess | None = None,
                **options: Any) -> KafkaBroker:
    """A broker whose producer is idempotent with acks=all; nothing connects until start().
    `access` carries the service's principal on a SASL listener; `options` go to KafkaBroker
    (batching)."""
    return KafkaBroker(
        bootstrap.split(","),  # "h1:p1,h2:p2": FastStream wants a list, aiokafka takes both
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=30_000,
        graceful_timeout=10.0,
        # FastStream's "Received"/"Processed" line per message at DEBUG (its logger stays at
        # INFO, so they cost a level check): at WARNING every message wrote two log lines on
        # the hot path (issue 15). Failures are still logged at ERROR with their traceback.
        log_level=logging.DEBUG,
        security=access.security() if access else None,
        # Tracing (shared.telemetry): `traceparent` in the headers of what it publishes and
        # consumes; none when tracing is off.
        middlewares=telemetry.broker_middlewares(),
        **options,
    )


async def ensure_topics(bootstrap: Bootstrap, replication_factor: int = 1,
                        min_insync_replicas: int = 1, names: Iterable[str] | None = None,
                        reconfigure: bool = True) -> None:
    """Create every declared topic (shared.topic_policy) that does not exist yet, with its
    declared policy and this cluster's replication; existing topics get the declared configs
    again (a changed retention lands on the next `make up`) unless `reconfigure` is off (a
    service's own fallback, whose principal may not alter configs). Idempotent. `names` limits
    it to those topics."""
    admin = AIOKafkaAdminClient(request_timeout_ms=30_000, **client_options(bootstrap))
    await admin.start()
    try:
        declared = [topic_policy.policy(n) for n in names] if names else topic_policy.TOPICS
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication_factor,
                     topic_configs=t.configs(min_insync_replicas))
            for t in declared if t.name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        present = [t for t in declared if t.name in existing]
        if present and reconfigure:
            await admin.alter_configs([
                ConfigResource(ConfigResourceType.TOPIC, t.name, t.configs(min_insync_replicas))
                for t in present
            ])
    finally:
        await admin.close()


# (topic, event) keyed by the event's subject, or (topic, event, key).
Outgoing = tuple[str, CloudEvent] | tuple[str, CloudEvent, str]


class EventPublisher:
    """Publishes CloudEvents in binary mode, keyed by case id, and dead-letters poison."""

    def __init__(self, broker: KafkaBroker, source: str) -> None:
        self.broker = broker
        self.source = source

    async def publish(self, topic: str, event: CloudEvent) -> None:
        await self.broker.publish(
            event.value(), topic, key=event.subject.encode(), headers=event.headers()
        )

    async def publish_many(self, items: Iterable[Outgoing]) -> None:
        """Publish many events in the order given and return once the broker confirmed all of
        them (acks=all): each is handed to the producer without waiting, so the producer
        batches them, then every confirmation is awaited. `items`: (topic, event) pairs, keyed
        by the event's subject, or (topic, event, key) to key by something else (a delivery
        job by its recipient). The first failure is raised after all were awaited; a caller
        that retries publishes the same event ids again (consumers are idempotent)."""
        pending = []
        for item in items:
            topic, event = item[0], item[1]
            key = item[2] if len(item) > 2 else event.subject
            headers = event.headers()
            telemetry.inject(headers)  # the consumer continues this trace
            pending.append(await self.broker.publish(
                event.value(), topic, key=key.encode(), headers=headers, no_confirm=True))
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def dead_letter(self, message: KafkaMessage, error: BaseException) -> None:
        raw = message.raw_message
        await self.dead_letter_record(raw[0] if isinstance(raw, tuple) else raw, error)

    async def dead_letter_record(self, record: Any, error: BaseException) -> None:
        """`record` (an aiokafka ConsumerRecord) to `<its topic>.dlq`, with the error."""
        headers = {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                   for k, v in (record.headers or ())}
        headers.update(
            {
                "dlq_error": f"{type(error).__name__}: {error}"[:2000],
                "dlq_topic": record.topic,
                "dlq_partition": str(record.partition),
                "dlq_offset": str(record.offset),
                "dlq_source": self.source,
            }
        )
        await self.broker.publish(
            record.value or b"", topics.dlq(record.topic), key=record.key, headers=headers
        )
        metrics.dead_lettered(topics.dlq(record.topic))


EventHandler = Callable[[CloudEvent], Awaitable[None]]

MESSAGES_HANDLED = Counter(
    "homeward_messages_handled_total",
    "Messages this process consumed, by topic, consumer group and outcome "
    "(ok, dead_lettered, retried)",
    ["topic", "group", "outcome"],
)


def subscribe(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    handle: EventHandler,
    publisher: EventPublisher,
    retry_delay_s: float = 0.2,
    max_workers: int = 1,
    retry_cap_s: float = 5.0,
    retrying: Retrying = RETRYING_NOW,
) -> None:
    """Register `handle` for `topic` in consumer group `group_id`.

    The offset is committed only after `handle` returns (AckPolicy.NACK_ON_ERROR, never
    FastStream's default ack-first). A transient failure (shared.faults.is_transient: Redis
    OOM/READONLY/LOADING/..., connections, lock time-outs, Kafka not-leader/time-outs) is
    retried from the same offset after a backoff from `retry_delay_s` doubling up to
    `retry_cap_s`, and marks `group_id/topic/partition` as retrying in `retrying` (readiness
    503) until a message of that partition succeeds. Anything else (schema, validation, unknown
    version, a bug) goes to `<topic>.dlq` with the error and the consumer moves on. With
    `max_workers` > 1, that many consumers share the group, each working through its own
    partitions in order (commit after work still holds).
    """

    async def on_message(message: KafkaMessage) -> None:
        raw = message.raw_message
        record = raw[0] if isinstance(raw, tuple) else raw
        key = f"{group_id}/{topic}/{getattr(record, 'partition', '?')}"
        try:
            event = CloudEvent.from_kafka(dict(message.headers), message.body)
            await handle(event)
        except Exception as exc:
            if is_transient(exc):
                attempt = retrying.failed(key, exc)
                log.warning("transient failure on %s (attempt %d), will retry from the same "
                            "offset: %r", key, attempt, exc)
                MESSAGES_HANDLED.labels(topic, group_id, "retried").inc()
                await asyncio.sleep(backoff_s(attempt, retry_delay_s, retry_cap_s))
                raise NackMessage() from exc
            log.exception("dead-lettering a message from %s", topic)
            await publisher.dead_letter(message, exc)
            retrying.passed(key)
            MESSAGES_HANDLED.labels(topic, group_id, "dead_lettered").inc()
        else:
            retrying.passed(key)
            MESSAGES_HANDLED.labels(topic, group_id, "ok").inc()

    on_message.__name__ = f"on_{topic.replace('.', '_')}"
    if max_workers > 1:
        broker.subscriber(
            topic,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_workers=max_workers,
        )(on_message)
    else:
        broker.subscriber(
            topic,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )(on_message)


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def keep_starting(broker: Startable, max_backoff_s: float = 10.0) -> None:
    """Start `broker` (a FastStream broker or a BatchConsumer), retrying while Kafka is away:
    for a service that must come up and serve without Kafka (the alert service takes reports
    into its outbox meanwhile)."""
    backoff = 0.5
    while True:
        try:
            await broker.start()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Kafka not reachable yet (%r); retrying in %.1fs", exc, backoff)
            try:
                await broker.stop()
            except Exception:
                pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)


def kafka_check(broker: KafkaBroker, timeout: float = 2.0) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            return bool(await broker.ping(timeout))
        except Exception:
            return False

    return check


BatchHandler = Callable[[list[tuple[Any, CloudEvent]]], Awaitable[None]]


class BatchConsumer:
    """Consumes `topic` in consumer group `group_id` in batches of up to `max_records`, for work
    whose messages are many and small (notify's delivery jobs): `handle` gets the batch as
    (record, event) pairs in partition order and the offsets are committed only after it
    returns (at-least-once; the handler must be idempotent). A transient failure
    (shared.faults.is_transient) works the same batch again after a backoff, marking
    `group_id/topic` retrying (readiness 503); a message that is not a CloudEvent goes to
    `<topic>.dlq`. The handler dead-letters the messages it cannot work itself
    (`publisher.dead_letter_record`). A rebalance mid-batch hands the uncommitted messages to
    their new owner, which works them again."""

    def __init__(self, bootstrap: Bootstrap, topic: str, group_id: str, handle: BatchHandler,
                 publisher: EventPublisher, max_records: int = 500,
                 retrying: Retrying = RETRYING_NOW) -> None:
        self.topic, self.group_id, self.handle = topic, group_id, handle
        self.publisher, self.retrying = publisher, retrying
        self.max_records = max_records
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group and consume in a task of its own (in the running loop)."""
        self.consumer = AIOKafkaConsumer(
            self.topic, **client_options(self.bootstrap), group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            client_id=f"{self.group_id}-{uuid.uuid4().hex[:6]}")
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consume {self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        key = f"{self.group_id}/{self.topic}"
        attempt = 0
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            if not batch:
                continue
            work: list[tuple[Any, CloudEvent]] = []
            for records in batch.values():
                for record in records:
                    try:
                        work.append((record, CloudEvent.from_kafka(dict(record.headers or ()),
                                                                   record.value or b"")))
                    except (PoisonMessage, ValueError, KeyError, TypeError) as exc:
                        await self.publisher.dead_letter_record(record, exc)
            while True:
                try:
                    await self.handle(work)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_transient(exc):  # a bug or a violation: the batch is poison
                        log.exception("dead-lettering a batch of %s", self.topic)
                        for record, _ in work:
                            await self.publisher.dead_letter_record(record, exc)
                        break
                    attempt = self.retrying.failed(key, exc)
                    log.warning("transient failure on %s (attempt %d), working the batch "
                                "again: %r", key, attempt, exc)
                    MESSAGES_HANDLED.labels(self.topic, self.group_id, "retried").inc()
                    await asyncio.sleep(backoff_s(attempt))
                    continue
                break
            self.retrying.passed(key)
            MESSAGES_HANDLED.labels(self.topic, self.group_id, "ok").inc(len(work))
            try:
                await consumer.commit()
            except Exception as exc:  # revoked meanwhile: the new owner works them again
                log.warning("commit of %s failed (%r); its messages are worked again", key, exc)


if __name__ == "__main__":
    import sys

    from shared.settings import Settings

    if sys.argv[1:] != ["ensure-topics"]:
        raise SystemExit("usage: python -m shared.kafka ensure-topics")
    settings = Settings()
    asyncio.run(ensure_topics(KafkaAccess.from_settings(settings),
                              settings.kafka_replication_factor,
                              settings.kafka_min_insync_replicas))
    print("topics ready:", ", ".join(t.name for t in topic_policy.TOPICS))
