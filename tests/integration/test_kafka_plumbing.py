"""The consume guard on a real broker: commit after work, retry transient failures from the same
offset, dead-letter poison and bugs with the error, keep going."""

import asyncio
import uuid

from shared import topics
from shared.events import CloudEvent
from shared.kafka import EventPublisher, make_broker, subscribe
from shared.settings import Settings
from tests.helpers import eventually, read_topic


async def test_guard_retries_transient_dead_letters_poison_and_moves_on(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    handled: list[str] = []
    failures = {"transient": 1}

    async def handle(event: CloudEvent) -> None:
        if event.data.get("kind") == "transient" and failures["transient"]:
            failures["transient"] -= 1
            raise ConnectionError("redis went away")
        if event.data.get("kind") == "bug":
            raise RuntimeError("handler bug")
        handled.append(str(event.data["n"]))

    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, "/test")
    subscribe(broker, topics.TIPS, f"guard-{run}", handle, publisher, retry_delay_s=0.1)
    async with broker:
        await broker.start()
        subject = f"case-{run}"

        def event(**data: object) -> CloudEvent:
            return CloudEvent(type="test.v1", source="/test", subject=subject, data=data)

        await publisher.publish(topics.TIPS, event(n=1))
        await broker.publish(b"{not json", topics.TIPS, key=subject.encode(),
                             headers={"ce_specversion": "1.0"})
        await publisher.publish(topics.TIPS, event(n=2, kind="bug"))
        await publisher.publish(topics.TIPS, event(n=3, kind="transient"))
        await publisher.publish(topics.TIPS, event(n=4))
        await eventually(lambda: asyncio.sleep(0, len(handled) >= 3), timeout=30)
    # Same key, same partition: order kept, the transient one retried in place.
    assert handled == ["1", "3", "4"]

    dead = [m for m in await read_topic(settings.kafka_bootstrap, topics.dlq(topics.TIPS))
            if m["key"] == subject and m["headers"].get("dlq_source") == "/test"]
    # (Every group that reads tips dead-letters its own copy of the poison: count this one's.)
    errors = sorted(m["headers"]["dlq_error"].split(":")[0] for m in dead)
    assert errors == ["PoisonMessage", "RuntimeError"]
    assert all(m["headers"]["dlq_topic"] == topics.TIPS for m in dead)


async def test_offsets_are_committed_only_after_processing(settings: Settings) -> None:
    """A consumer that stops mid-stream resumes at the first message it had not finished."""
    run = uuid.uuid4().hex[:8]
    group = f"commit-{run}"
    seen: list[int] = []
    stop_at = asyncio.Event()

    async def slow(event: CloudEvent) -> None:
        if event.subject != f"c-{run}":
            return
        n = int(event.data["n"])
        if n == 3:
            stop_at.set()
            await asyncio.sleep(3600)  # "crash" while processing message 3
        seen.append(n)

    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, "/test")
    subscribe(broker, topics.TIPS, group, slow, publisher)
    await broker.start()
    for n in range(1, 6):
        await publisher.publish(topics.TIPS, CloudEvent(type="t", source="/t", subject=f"c-{run}",
                                                        data={"n": n}))
    await asyncio.wait_for(stop_at.wait(), 30)
    await broker.stop()

    resumed: list[int] = []

    async def record(event: CloudEvent) -> None:
        if event.subject == f"c-{run}":
            resumed.append(int(event.data["n"]))

    broker2 = make_broker(settings.kafka_bootstrap, "test")
    subscribe(broker2, topics.TIPS, group, record, EventPublisher(broker2, "/test"))
    async with broker2:
        await broker2.start()
        await eventually(lambda: asyncio.sleep(0, len(resumed) >= 3), timeout=30)
    assert seen == [1, 2]
    assert resumed == [3, 4, 5]


async def test_publish_many_keeps_order_per_key_and_read_to_end_stops_at_the_end(
    settings: Settings,
) -> None:
    """The one publish-many (shared/kafka.py) and read-to-end (shared/kafka_log.py) every
    service uses: events keyed by subject or by an explicit key land in the order given per key;
    a read-to-end returns what was on the topic when it began, and nothing published after."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.kafka_access import client_options
    from shared.kafka_log import read_to_end

    run = uuid.uuid4().hex[:8]
    topic = f"test.many.{run}"
    admin = AIOKafkaAdminClient(**client_options(settings.kafka_bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, "/test")
    async with broker:
        await broker.start()
        items: list[tuple[str, CloudEvent] | tuple[str, CloudEvent, str]] = []
        for n in range(60):
            event = CloudEvent(type="test.v1", source="/test", subject=f"s{n % 4}",
                               data={"n": n})
            items.append((topic, event) if n % 2 else (topic, event, f"k{n % 3}"))
        await publisher.publish_many(items)
        seen = [r async for r in read_to_end(settings.kafka_bootstrap, topic, timeout_s=30)]
        await publisher.publish(topic, CloudEvent(type="test.v1", source="/test",
                                                  subject="s0", data={"n": 99}))
        again = [r async for r in read_to_end(settings.kafka_bootstrap, topic, timeout_s=30)]
    assert len(seen) == 60 and len(again) == 61
    per_key: dict[bytes, list[int]] = {}
    for record in seen:
        per_key.setdefault(record.key, []).append(
            CloudEvent.from_kafka(dict(record.headers), record.value).data["n"])
    assert all(ns == sorted(ns) for ns in per_key.values())
    assert set(per_key) == {b"s1", b"s3", b"k0", b"k1", b"k2"}
