"""Use cases of the alert service; dependencies are passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.alert import domain
from services.alert.adapters import ReportStatusStore
from shared import topics
from shared.auth import Principal
from shared.events import REPORT_ACCEPTED, CloudEvent
from shared.kafka import EventPublisher
from shared.report import Report, ReportAccepted


@dataclass
class Intake:
    publisher: EventPublisher
    statuses: ReportStatusStore
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def accept(self, report: Report, operator: Principal) -> ReportAccepted:
        now = self.clock()
        accepted = ReportAccepted(
            report_id=domain.new_report_id(),
            case_id=domain.new_case_id(report, now),
            accepted_at=now,
            operator=operator.sub,
            operator_region=operator.region,
            report=report,
        )
        await self.statuses.put(accepted.report_id, accepted.case_id, "accepted")
        event = CloudEvent.of(
            REPORT_ACCEPTED, self.publisher.source, accepted.case_id, accepted,
            event_id=accepted.report_id,
        )
        await self.publisher.publish(topics.REPORTS, event)
        await self.statuses.put(accepted.report_id, accepted.case_id, "published")
        return accepted
