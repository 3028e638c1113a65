"""Kafka entrypoints of the alert service: it follows the progress copies of dispatch's
case events it needs (homeward.progress.v1, shared.events.PROGRESS_TYPES; it may not read the
case log) and delivery events only to show the operator what happened to the report
(leader assigned, hubs pushed) and to refuse tips on a closed case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from services.alert.handlers import Progress
from shared import topics
from shared.events import CloudEvent
from shared.kafka import BatchConsumer, Bootstrap, EventPublisher, subscribe

GROUP = "homeward-alert-progress"


def register(broker: KafkaBroker, progress: Progress, publisher: EventPublisher,
             bootstrap: Bootstrap,
             followers: Sequence[Callable[[CloudEvent], Awaitable[None]]] = ()) -> BatchConsumer:
    """`followers` also see every case event (photo access and retention, issue 13). Returns
    the consumer of delivery receipts, read in batches (each hub push and every public one
    has a receipt: thousands per case), for the caller to start and stop."""

    async def on_case_event(event: CloudEvent) -> None:
        await progress.on_case_event(event)
        for follower in followers:
            await follower(event)

    subscribe(broker, topics.PROGRESS, GROUP, on_case_event, publisher)

    async def on_receipts(batch: list[tuple[Any, CloudEvent]]) -> None:
        await progress.on_deliveries([event for _, event in batch])

    return BatchConsumer(bootstrap, topics.DELIVERIES, GROUP, on_receipts, publisher)
