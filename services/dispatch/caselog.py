"""The one write path of dispatch: every change to a case goes the same way.

The domain plans events; they are published on homeward.dispatch.v1 keyed by case id (all sent
in order, then confirmed together; the progress types copied to homeward.progress.v1), and only
then folded into the Redis projection. Event ids are stable, so a redelivered report or a
repeated timer publishes the same ids and the projection ignores what it has applied. One case
at a time: each use case plans and commits under the case's lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.dispatch import links, projection
from services.dispatch.adapters import CaseRepository
from services.dispatch.domain import Case, Change, Refused
from shared import topics
from shared.casekeys import CaseKeys, sealed_data
from shared.events import PROGRESS_TYPES, CloudEvent
from shared.kafka import EventPublisher

__all__ = ["CaseLog", "Plan"]

# A command's plan: (the case, now, a fresh event id) → the events it makes.
Plan = Callable[[Case, datetime, str], list[Change]]


@dataclass
class CaseLog:
    """Publishes, folds and stores the changes of a case; `keys` seals their personal fields
    (issue 13), `clock` is now (UTC)."""

    cases: CaseRepository
    publisher: EventPublisher
    keys: CaseKeys | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock))

    def lock(self, case_id: str) -> asyncio.Lock:
        """The case's lock (locks not held are dropped past 10,000 cases)."""
        if len(self._locks) > 10_000:
            for key in [k for k, lock in self._locks.items() if not lock.locked()]:
                del self._locks[key]
        return self._locks[case_id]

    async def publish(self, changes: list[Change]) -> None:
        """Send in order (one partition per case keeps it), then wait for every ack."""
        out: list[tuple[str, CloudEvent]] = []
        for change in changes:
            event = CloudEvent(id=change.event_id, type=change.type,
                               source=self.publisher.source, subject=change.case_id,
                               data=await sealed_data(self.keys, change.type, change.case_id,
                                                      change.data))
            out.append((topics.DISPATCH, event))
            if change.type in PROGRESS_TYPES:  # the intake side's copy (topics.PROGRESS)
                out.append((topics.PROGRESS, event))
        await self.publisher.publish_many(out)

    async def commit(self, case: Case | None, changes: list[Change]) -> Case | None:
        """Publish `changes` (mirrored to the case's linked reports), then fold and store them:
        the case as it is now (None when there was none and nothing opened it)."""
        if not changes:
            return case
        if case is not None:
            changes = links.mirror(case, changes)
        await self.publish(changes)
        new = projection.fold(changes, case)
        if new is not None:
            await self.cases.save(new, changes)
        return new

    async def command(self, case_id: str, plan: Plan,
                      authority: tuple[str, str] | None = None) -> Case:
        """Plan and commit a command under the case's lock; `authority` (caller's region,
        action) restricts it to the case leader's organ level or above. Refused 404 when there
        is no such case; the plan's own refusals."""
        async with self.lock(case_id):
            case = await self.case_for(case_id, authority)
            changes = plan(case, self.clock(), uuid.uuid4().hex)
            return await self.commit(case, changes) or case

    async def case_for(self, case_id: str, authority: tuple[str, str] | None = None) -> Case:
        """The case a command is on (the caller holds its lock): Refused 404 when there is no
        such case; with `authority` (caller's region, action), refused below the case leader's
        organ level (links.require_authority)."""
        case = await self.cases.get(case_id)
        if case is None:
            raise Refused(404, "not_found", f"no case {case_id}", "case_id")
        if authority is not None:
            links.require_authority(case, *authority)
        return case
