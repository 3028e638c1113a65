"""Kafka entrypoints of notify: `on_<topic>` subscribers in the `notify` consumer group."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.notify.handlers import Notify
from shared import topics
from shared.events import REPORT_ACCEPTED, CloudEvent
from shared.kafka import EventPublisher, subscribe

GROUP = "homeward-notify"


def register(broker: KafkaBroker, notify: Notify, publisher: EventPublisher) -> None:
    async def on_reports(event: CloudEvent) -> None:
        if event.type == REPORT_ACCEPTED:
            await notify.on_report_accepted(event)

    subscribe(broker, topics.REPORTS, GROUP, on_reports, publisher)
