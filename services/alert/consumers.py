"""Kafka entrypoints of the alert service: it follows the progress copies of dispatch's
case events it needs (homeward.progress.v1, shared.events.PROGRESS_TYPES; it may not read the
case log) and delivery events only to show the operator what happened to the report
(leader assigned, hubs pushed) and to refuse tips on a closed case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from faststream.kafka import KafkaBroker

from services.alert.handlers import Progress
from shared import topics
from shared.events import CloudEvent
from shared.kafka import EventPublisher, subscribe
from shared.kafka_batch import subscribe_batch

GROUP = "homeward-alert-progress"


def register(broker: KafkaBroker, progress: Progress, publisher: EventPublisher,
             followers: Sequence[Callable[[CloudEvent], Awaitable[None]]] = ()) -> None:
    """`followers` also see every case event (photo access and retention, issue 13)."""

    async def on_case_event(event: CloudEvent) -> None:
        await progress.on_case_event(event)
        for follower in followers:
            await follower(event)

    subscribe(broker, topics.PROGRESS, GROUP, on_case_event, publisher)
    # Receipts are many (one per recipient) and alert keeps only the hubs reached of each
    # case: read in batches, one Redis round trip per batch (issue 15).
    subscribe_batch(broker, topics.DELIVERIES, GROUP, progress.on_deliveries, publisher)
