"""Batching of many concurrent writes into one round trip: the delivery ledger's marks
(services.notify.ledger) and the delivery receipts (services.notify.sending)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]


T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Group commit: callers add an item and wait until the batch it joined is written by one
    `flush` (after `max_items` items or `max_delay_s`), so many concurrent deliveries share a
    round trip instead of paying one each."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_items: int = 256,
                 max_delay_s: float = 0.002) -> None:
        self._flush = flush
        self.max_items = max_items
        self.max_delay_s = max_delay_s
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    async def add(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(self.max_delay_s, self._cut)
        self._items.append(item)
        done = self._done
        if len(self._items) >= self.max_items:
            self._cut()
        await asyncio.shield(done)

    def _cut(self) -> None:
        items, done = self._items, self._done
        self._items, self._done = [], None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if done is not None:
            task = asyncio.ensure_future(self._write(items, done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, items: list[T], done: asyncio.Future[None]) -> None:
        try:
            await self._flush(items)
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(None)
