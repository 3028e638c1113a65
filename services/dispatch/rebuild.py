"""Dispatch's Redis state rebuilt from its log: homeward.dispatch.v1 replayed into an empty
Redis gives the same cases with the same timelines, the roster's availability, and the tips
still held for a case not known yet.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.dispatch import projection
from services.dispatch.adapters import replay_topic
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case, Change
from services.dispatch.roster import Roster
from shared.casekeys import open_event
from shared.events import (
    CASE_TIP_ATTACHED,
    ORGAN_AVAILABILITY_CHANGED,
    TIP_PARKED,
    CloudEvent,
    TipReceived,
)
from shared.kafka import Bootstrap

__all__ = ["Rebuild"]

log = logging.getLogger(__name__)


@dataclass
class Rebuild:
    """Replays the dispatch topic; `after_rebuild` hooks are called with the bootstrap once the
    cases are stored, before the repository is marked ready."""

    caselog: CaseLog
    roster: Roster
    after_rebuild: list[Callable[[Bootstrap], Awaitable[object]]] = field(default_factory=list)

    async def rebuild(self, bootstrap: Bootstrap) -> int:
        """Replay homeward.dispatch.v1 into an empty Redis: the same cases, same timelines.
        Returns how many cases were rebuilt."""
        repository = self.caselog.cases
        cases: dict[str, Case] = {}
        applied: dict[str, list[Change]] = defaultdict(list)

        parked: dict[str, dict[str, Any]] = {}
        attached: set[str] = set()

        async def handle(event: CloudEvent) -> None:
            event = await open_event(event, self.caselog.keys)
            if event.type == TIP_PARKED:
                parked[str(event.data.get("tip_id"))] = event.data
                return
            if event.type == CASE_TIP_ATTACHED:
                attached.add(str(((event.data.get("details") or {}).get("tip") or {})
                                 .get("tip_id")))
            if event.type == ORGAN_AVAILABILITY_CHANGED:
                code, post = str(event.data["organ_code"]), str(event.data["post"])
                if post in ("head", "deputy"):
                    available = bool(event.data["available"])
                    self.roster.set_available(code, post, available)  # type: ignore[arg-type]
                    await repository.save_availability(code, post, available)
                return
            if not event.type.startswith("homeward.case."):
                return
            change = Change(type=event.type, event_id=event.id, case_id=event.subject,
                            data=event.data)
            case = projection.apply_in_place(cases.get(event.subject), event.type, event.id,
                                             event.data)
            if case is not None:
                cases[case.case_id] = case
                applied[case.case_id].append(change)

        count = await replay_topic(bootstrap, handle)
        for case_id, case in cases.items():
            await repository.save(case, applied[case_id])
        for tip_id, data in parked.items():
            if tip_id not in attached:  # still held for its case
                at = float(data.get("parked_at") or time.time())
                await repository.tips.park(TipReceived.model_validate(data), at, time.time())
        for rebuilt in self.after_rebuild:
            await rebuilt(bootstrap)
        await repository.mark_ready()
        log.info("rebuilt %d cases from %d events", len(cases), count)
        return len(cases)
