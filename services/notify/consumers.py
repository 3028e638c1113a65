"""Kafka entrypoints of notify: `on_<topic>` subscribers in the `homeward-notify` group."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.notify import tip_push
from services.notify.handlers import Notify
from shared import topics
from shared.casekeys import open_event
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CASE_REPORT_UNLINKED,
    REPORT_ACCEPTED,
    CloudEvent,
)
from shared.kafka import EventPublisher, subscribe

GROUP = "homeward-notify"
CASE_TYPES = {CASE_OPENED, CASE_MEMBER_ADDED, CASE_RELEASE_APPROVED, CASE_FOUND, CASE_REOPENED,
              CASE_REPORT_UNLINKED, CASE_PURGED, *tip_push.TYPES}


def register(broker: KafkaBroker, notify: Notify, publisher: EventPublisher) -> None:
    async def on_reports(event: CloudEvent) -> None:
        if event.type == REPORT_ACCEPTED:
            await notify.on_report_accepted(await open_event(event, notify.keys))

    async def on_dispatch(event: CloudEvent) -> None:
        if event.type in CASE_TYPES:
            await notify.on_case_event(event)

    subscribe(broker, topics.REPORTS, GROUP, on_reports, publisher)
    subscribe(broker, topics.DISPATCH, GROUP, on_dispatch, publisher)
