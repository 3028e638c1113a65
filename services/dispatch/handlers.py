"""Use cases of dispatch; dependencies are passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.dispatch import domain
from services.dispatch.adapters import CaseRepository
from shared import topics
from shared.events import CASE_OPENED, CaseOpened, CloudEvent
from shared.kafka import EventPublisher
from shared.report import ReportAccepted


@dataclass
class Dispatch:
    cases: CaseRepository
    roster: domain.Roster
    publisher: EventPublisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Open the case group. Idempotent: a redelivered report re-publishes the same event
        (same ce_id) for the case it opened the first time."""
        accepted = ReportAccepted.model_validate(event.data)
        case = await self.cases.get(accepted.case_id)
        if case is None:
            case = domain.open_case(accepted, self.roster, self.clock())
            if not await self.cases.add(case):
                case = await self.cases.get(accepted.case_id) or case
        opened = CaseOpened(
            case_id=case.case_id, report_id=case.report_id, region_code=case.region_code,
            opened_at=case.opened_at, priority=case.priority, mechanisms=case.mechanisms,
            leader=case.leader, exercise=case.exercise,
        )
        await self.publisher.publish(
            topics.DISPATCH,
            CloudEvent.of(CASE_OPENED, self.publisher.source, case.case_id, opened,
                          event_id=f"{case.case_id}:opened"),
        )
