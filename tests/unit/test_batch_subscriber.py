"""shared.kafka.subscribe_batch (alert's view of delivery receipts, issue 15): a batch to one
handler call, poison dead-lettered alone, a failing event found and dead-lettered alone while
the others of its batch are worked; and alert's Progress.on_deliveries over a batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.testing import build_message

from services.alert.handlers import Progress
from shared import topics
from shared.events import CloudEvent, DeliveryReceipt
from shared.faults import Retrying
from shared.kafka import EventPublisher
from shared.kafka_batch import subscribe_batch

TOPIC = topics.DELIVERIES
GROUP = "test-batch"


def receipt(n: int, status: str = "sent", scope: str = "restricted",
            case_id: str = "C1") -> DeliveryReceipt:
    return DeliveryReceipt(delivery_id=f"d{n}", alert_id="A1", case_id=case_id, version=1,
                           subscriber_id=f"hub-{n}", scope=scope, channel="webhook",
                           status=status, at=datetime.now(UTC))  # type: ignore[arg-type]


def event(n: int, **kw: Any) -> CloudEvent:
    data = receipt(n, **kw)
    return CloudEvent.of(f"homeward.delivery.{data.status}.v1", "/test", data.case_id, data,
                         event_id=f"e{n}")


class Recorder:
    def __init__(self, poison_ids: set[str] | None = None, away: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.poison_ids = poison_ids or set()
        self.away = away  # calls failing as Redis away does (transient)

    async def __call__(self, events: list[CloudEvent]) -> None:
        self.calls.append([e.id for e in events])
        if self.away:
            self.away -= 1
            raise ConnectionError("Redis away")
        if any(e.id in self.poison_ids for e in events):
            raise ValueError("a receipt this handler cannot read")


def dead_letters(broker: KafkaBroker) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    @broker.subscriber(topics.dlq(TOPIC), group_id="dlq-reader")
    async def on_dlq(message: KafkaMessage) -> None:
        seen.append(dict(message.headers))

    return seen


async def deliver(broker: KafkaBroker, batch: list[CloudEvent | bytes]) -> None:
    """One batch as the consumer would fetch it: several records of the topic at once, each
    with its own headers (TestKafkaBroker's publish_batch gives them all one header set)."""
    records = [await build_message(
        item.value() if isinstance(item, CloudEvent) else item, topic=TOPIC,
        headers=item.headers() if isinstance(item, CloudEvent) else {}, serializer=None)
        for item in batch]
    subscriber = next(s for s in broker.subscribers if TOPIC in s.topic_names)
    await subscriber.process_message(records)


@pytest.mark.parametrize(("batch", "poison", "calls", "dead"), [
    ([1, 2, 3], set(), [["e1", "e2", "e3"]], []),  # one call for the batch
    # A handler failing on e2: the batch worked one by one, only e2 dead-lettered.
    ([1, 2, 3], {"e2"}, [["e1", "e2", "e3"], ["e1"], ["e2"], ["e3"]], ["e2"]),
    # A record that is no CloudEvent: dead-lettered alone, the others in one call.
    ([1, b"not an event", 3], set(), [["e1", "e3"]], [None]),
])
async def test_batch_and_its_poison(batch: list[int | bytes], poison: set[str],
                                    calls: list[list[str]], dead: list[str | None]) -> None:
    broker = KafkaBroker()
    handler = Recorder(poison)
    subscribe_batch(broker, TOPIC, GROUP, handler, EventPublisher(broker, "/test"))
    dlq = dead_letters(broker)
    async with TestKafkaBroker(broker):
        await deliver(broker, [event(n) if isinstance(n, int) else n for n in batch])
    assert handler.calls == calls
    assert [d.get("ce_id") for d in dlq] == dead
    assert all(d["dlq_topic"] == TOPIC for d in dlq)


async def test_a_transient_failure_is_retried_never_dead_lettered() -> None:
    broker = KafkaBroker()
    handler = Recorder(away=1)
    retrying = Retrying()
    subscribe_batch(broker, TOPIC, GROUP, handler, EventPublisher(broker, "/test"),
                    retry_delay_s=0.001, retry_cap_s=0.001, retrying=retrying)
    dlq = dead_letters(broker)
    async with TestKafkaBroker(broker):
        await deliver(broker, [event(1), event(2)])  # nacked: the same offsets come again
        assert retrying.retrying([GROUP]) == [f"{GROUP}/{TOPIC}"]  # readiness 503
        await deliver(broker, [event(1), event(2)])
    assert handler.calls == [["e1", "e2"], ["e1", "e2"]]
    assert dlq == [] and retrying.retrying([GROUP]) == []


class Hubs:
    def __init__(self) -> None:
        self.added: list[dict[str, set[str]]] = []

    async def add_hubs(self, hubs: dict[str, set[str]]) -> None:
        self.added.append(hubs)


async def test_progress_keeps_the_hubs_reached_per_case() -> None:
    store = Hubs()
    progress = Progress(store)  # type: ignore[arg-type]
    await progress.on_deliveries([
        event(1), event(2, case_id="C2"), event(3),
        event(4, status="failed"),  # not reached
        event(5, scope="public"),  # a volunteer or the public feed, not a hub
        event(1),  # the same receipt again (redelivered): one hub
    ])
    assert store.added == [{"C1": {"hub-1", "hub-3"}, "C2": {"hub-2"}}]
    await progress.on_deliveries([event(6, status="failed")])
    assert len(store.added) == 1  # nothing to add: no round trip
