"""Kafka entrypoints of notify: the planner's `on_<topic>` subscribers in the `homeward-notify`
group, and the delivery workers' batch consumers, one group per lane
(shared.kafka_acl.JOB_GROUPS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faststream.kafka import KafkaBroker

from services.notify import tip_push
from services.notify.handlers import Notify
from shared import topics
from shared.casekeys import open_event
from shared.events import (
    CASE_DETAILS_AMENDED,
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CASE_REPORT_UNLINKED,
    REPORT_ACCEPTED,
    REPORT_AMENDED,
    CloudEvent,
    ReportAmended,
)
from shared.kafka import BatchConsumer, Bootstrap, EventPublisher, subscribe
from shared.kafka_acl import JOB_GROUPS

GROUP = "homeward-notify"
# The delivery-jobs lanes by the name settings.notify_lanes gives them.
LANES = {"restricted": topics.DELIVERY_JOBS_RESTRICTED, "public": topics.DELIVERY_JOBS_PUBLIC}
CASE_TYPES = {CASE_OPENED, CASE_MEMBER_ADDED, CASE_RELEASE_APPROVED, CASE_FOUND, CASE_REOPENED,
              CASE_REPORT_UNLINKED, CASE_PURGED, CASE_DETAILS_AMENDED, *tip_push.TYPES}


def register(broker: KafkaBroker, notify: Notify, publisher: EventPublisher,
             bootstrap: Bootstrap, plan: bool = True,
             lanes: Iterable[str] = tuple(LANES)) -> list[BatchConsumer]:
    """The planner's subscribers on `broker` (unless `plan` is off: a delivery-only worker);
    returns the consumers of the `lanes` named (LANES; the caller starts and stops them)."""
    on_reports = reports_handler(notify)

    async def on_dispatch(event: CloudEvent) -> None:
        if event.type in CASE_TYPES:  # an amendment's new values are sealed (issue 13)
            await notify.on_case_event(await open_event(event, notify.keys))

    if plan:
        subscribe(broker, topics.REPORTS, GROUP, on_reports, publisher)
        subscribe(broker, topics.DISPATCH, GROUP, on_dispatch, publisher)
    return [BatchConsumer(bootstrap, LANES[lane], JOB_GROUPS[LANES[lane]],
                          jobs_handler(notify, publisher, LANES[lane]), publisher)
            for lane in dict.fromkeys(lanes)]


def reports_handler(notify: Notify) -> Callable[[CloudEvent], Awaitable[None]]:
    """homeward.reports.v1 to the planner: a report accepted opens (or updates) its alert; an
    operators' amendment of it (alert `PATCH /api/v1/reports/{id}`, issue 18) is an Update."""

    async def on_reports(event: CloudEvent) -> None:
        if event.type == REPORT_ACCEPTED:
            await notify.on_report_accepted(await open_event(event, notify.keys))
        elif event.type == REPORT_AMENDED:  # its new values are sealed (issue 13)
            opened = await open_event(event, notify.keys)
            await notify.planner.amend(ReportAmended.model_validate(opened.data))

    return on_reports


def jobs_handler(notify: Notify, publisher: EventPublisher, topic: str) -> Any:
    """A lane's batch to the delivery worker; a job it cannot work goes to the lane's DLQ.
    Each job is worked in the trace its planner's publish started (its Kafka headers)."""

    async def handle(batch: list[tuple[Any, CloudEvent]]) -> None:
        records = {event.id: record for record, event in batch}

        async def dead_letter(event_id: str, error: Exception) -> None:
            await publisher.dead_letter_record(records[event_id], error)

        traces = {event.id: dict(record.headers or ()) for record, event in batch}
        await notify.worker.handle([event for _, event in batch], dead_letter, traces, topic)

    return handle
