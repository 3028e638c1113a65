"""Dispatch's timers (Redis `dispatch:timers`): a task past its deadline reported (and
repeated), a local check past its deadline reported (tips_handlers.plan_due), an ended case
purged past its grace (issue 13, purge.py); and the loop that fires them, with the sweep of
held tips, every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.dispatch import purge
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case
from services.dispatch.tips_handlers import Tips, plan_due
from shared.faults import RETRYING_NOW, is_transient

__all__ = ["TIMERS_KEY", "Purger", "Timers"]

log = logging.getLogger(__name__)
TIMERS_KEY = "homeward-dispatch-timers"  # readiness: 503 while the timers meet transient faults


@dataclass
class Purger:
    """The purge of an ended case; `after_purge` hooks are called with the case as it was
    before the purge."""

    caselog: CaseLog
    after_purge: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)

    async def purge(self, case_id: str) -> None:
        """The purge of an ended case past its grace (issue 13): `homeward.case.purged.v1`,
        then its data key (and those of the reports linked into it) deleted, then its claims
        and live-stream entries. Each step is idempotent; the timer goes only after all."""
        cases, keys = self.caselog.cases, self.caselog.keys
        async with self.caselog.lock(case_id):
            case = await cases.get_own(case_id)
            grace = getattr(cases, "purge_grace_s", None)
            due = purge.purge_at(case, grace) if case is not None and grace is not None else None
            if due is not None and due > self.caselog.clock():
                # Set from a time that is no longer the rule (a timer set from the typed
                # found_at before the purge counted from the recording): not yet.
                await cases.move_timer(case_id, purge.TIMER, due)
                return
            if case is not None and not case.is_open:
                before = case
                if case.purged_at is None:
                    case = await self.caselog.commit(case,
                                                     purge.plan_purge(case, self.caselog.clock()))
                if keys is not None:
                    for cid in {case_id, *(link.case_id for link in before.links)}:
                        await keys.purge(cid)
                # Its tips beside the case, and tips still held under its ids (issue 12 store).
                await cases.tips.purge(case_id, [case_id, *(x.case_id for x in before.links)])
                await cases.forget_personal(before)
                for hook in self.after_purge:
                    await hook(before)
            await cases.drop_timer(case_id, purge.TIMER)


@dataclass
class Timers:
    """Fires the due timers of every case, and sweeps the held tips, each tick."""

    caselog: CaseLog
    purger: Purger
    tips: Tips

    async def fire_due(self) -> int:
        """Emit task_overdue for every task past its deadline (or its next repeat), the check
        overdue for every local check past its own; purge the cases due. Returns how many
        overdue events were committed."""
        cases = self.caselog.cases
        fired = 0
        for case_id, task_id in await cases.due_timers(time.time()):
            if task_id == purge.TIMER:
                await self.purger.purge(case_id)
                continue
            async with self.caselog.lock(case_id):
                case = await cases.get_own(case_id)
                changes = plan_due(case, task_id, self.caselog.clock()) if case else []
                if not changes:
                    await cases.drop_timer(case_id, task_id)
                    continue
                await self.caselog.commit(case, changes)
                fired += 1
        return fired

    async def run(self, tick_s: float, stop: asyncio.Event) -> None:
        """Fire due timers every tick until `stop` is set. (Stopped by the event rather than by
        cancellation alone: a cancellation landing inside a client library's own timeout can
        be swallowed, and the loop would then never end.)"""
        while not stop.is_set():
            try:
                await self.fire_due()
                await self.tips.sweep_parked()
                RETRYING_NOW.passed(TIMERS_KEY)
            except Exception as exc:
                # A timer whose change was refused (Redis OOM, READONLY) kept its due time:
                # it fires again next tick with the same event id.
                if is_transient(exc):
                    RETRYING_NOW.failed(TIMERS_KEY, exc)
                log.exception("overdue timers failed; retrying next tick")
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass
