"""Kafka entrypoints of dispatch: `on_<topic>` subscribers in the `dispatch` consumer group."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.dispatch.amend import record_report_amendment
from services.dispatch.handlers import Dispatch
from shared import topics
from shared.casekeys import open_event
from shared.events import REPORT_ACCEPTED, REPORT_AMENDED, CloudEvent, ReportAmended
from shared.kafka import EventPublisher, subscribe

GROUP = "homeward-dispatch"
# Tips in a group of their own: one consumer per group, so starting or stopping one never
# makes the other wait for a rebalance.
TIPS_GROUP = "homeward-dispatch-tips"


def register(broker: KafkaBroker, dispatch: Dispatch, publisher: EventPublisher,
             workers: int = 1) -> None:
    async def on_reports(event: CloudEvent) -> None:
        if event.type == REPORT_ACCEPTED:
            # A second report under a known case id is named before its fields fail to open
            # with the case's key (its ids are never sealed).
            case_id, report_id = event.data.get("case_id"), event.data.get("report_id")
            if isinstance(case_id, str) and isinstance(report_id, str) \
                    and await dispatch.cases.known(case_id):
                await dispatch.reports.check_same_report(case_id, report_id)
            await dispatch.reports.on_report_accepted(await open_event(event, dispatch.keys))
            await dispatch.tips.attach_parked(event.subject)  # tips that came before the report
        elif event.type == REPORT_AMENDED:  # after its report on the same partition
            opened = await open_event(event, dispatch.keys)
            await record_report_amendment(dispatch, ReportAmended.model_validate(opened.data),
                                          event.id)

    async def on_tips(event: CloudEvent) -> None:
        await dispatch.tips.on_tip(await open_event(event, dispatch.keys))

    subscribe(broker, topics.REPORTS, GROUP, on_reports, publisher, max_workers=workers)
    subscribe(broker, topics.TIPS, TIPS_GROUP, on_tips, publisher)
