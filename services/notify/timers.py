"""Notify's durable timers (Redis sorted sets, services.notify.timer_store.DurableTimers): retries,
widenings and ack deadlines, each with a loop of its own (issue 18 §3: a big widening does not
delay retries), and the due members of one timer worked at once (at most `PARALLEL`).

A member is claimed by moving it a lease ahead and settled only after its work is done, so a
failure (even Redis refusing writes) leaves it due again when the lease ends: never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.notify.timer_store import DurableTimers
from shared.faults import RETRYING_NOW, is_transient

log = logging.getLogger(__name__)

TIMERS_KEY = "homeward-notify-timers"  # readiness: 503 while the timers meet transient faults
PARALLEL = 64

MIN_WAIT_S = 0.002  # between ticks while members stay due (a backlog): never a busy loop

Work = Callable[[str], Awaitable[None]]


def wait_s(tick_s: float, next_due: float | None, now: float) -> float:
    """How long a timer's loop sleeps before its next tick: until its earliest member is due
    (so a widening starts when its tier boundary passes, not up to a tick later: issue 18 §6,
    `widening_first_delivery_ms`), at most `tick_s`, at least MIN_WAIT_S. Seconds."""
    if next_due is None:
        return tick_s
    return min(tick_s, max(next_due - now, MIN_WAIT_S))


@dataclass
class Timers:
    store: DurableTimers
    work: dict[str, Work]  # timer name -> what to do with a due member
    tick_s: float = 0.25
    faults: int = field(default=0, init=False)  # transient faults met (readiness)

    async def tick(self, only: str | None = None) -> int:
        """Run what is due now (of every timer, or of `only`). Returns how many ran."""
        done = 0
        for timer, run in self.work.items():
            if only is None or only == timer:
                done += await self._due(timer, run)
        return done

    async def _due(self, timer: str, run: Work) -> int:
        lease, members = await self.store.due(timer)
        limit = asyncio.Semaphore(PARALLEL)

        async def one(member: str) -> None:
            async with limit:
                await self._guard(timer, member, lease, run(member))

        await asyncio.gather(*(one(m) for m in members))
        return len(members)

    async def _guard(self, timer: str, member: str, lease: float,
                     work: Awaitable[None]) -> None:
        """Run one member's work; settle it only when the work is done."""
        try:
            await work
        except Exception as exc:
            if is_transient(exc):
                RETRYING_NOW.failed(TIMERS_KEY, exc)
                self.faults += 1
            log.exception("timer %s for %s failed; due again after its lease", timer, member)
            return
        await self.store.settle(timer, member, lease)

    async def loop(self, timer: str) -> None:
        while True:
            try:
                faults = self.faults
                await self.tick(timer)
                if self.faults == faults:
                    RETRYING_NOW.passed(TIMERS_KEY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    RETRYING_NOW.failed(TIMERS_KEY, exc)
                log.exception("notify timer %s", timer)
            await asyncio.sleep(await self._wait(timer))

    async def _wait(self, timer: str) -> float:
        try:
            return wait_s(self.tick_s, await self.store.next_due(timer), time.time())
        except Exception:  # Redis unavailable: the next tick meets (and reports) it
            return self.tick_s

    async def run(self) -> None:
        """One loop per timer until cancelled."""
        loops = [asyncio.create_task(self.loop(t)) for t in self.work]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
