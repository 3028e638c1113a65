"""Live streams (Server-Sent Events) of Redis streams, bounded (issue 12).

- `StreamFanout`: ONE reader per process follows every Redis stream a client is watching (one
  XREAD BLOCK over all their keys, on a connection of its own) and hands each entry to the
  clients' in-memory queues. A thousand open consoles cost one Redis connection, not a
  thousand; catching up after Last-Event-ID uses a small pool of its own. Neither is the pool
  the Kafka consumers use, so open streams can never starve them.
- `StreamLimits`: at most `per_principal` streams per token subject and `total` per process;
  more are refused with 429 (per subject) or 503 (whole process) and `Retry-After`.
- `live_events`: the SSE body: backlog, then live entries, ended when the token expires.

Entry ids are Redis stream ids ("<ms>-<seq>"), used as SSE ids: reconnecting with
Last-Event-ID resumes right after the last entry seen, without gaps or repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from shared.auth import Principal
from shared.settings import Settings
from shared.web_errors import ApiError

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]
READER_NAME = "homeward-stream-reader"  # CLIENT LIST shows each process's one reader by it


def stream_id(value: str) -> tuple[int, int]:
    """"1700000000000-3" -> (1700000000000, 3), for ordering ids."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Lease:
    """One open stream counted against its subject and the process; release is idempotent."""

    limits: StreamLimits
    subject: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits._release(self.subject)


@dataclass
class StreamLimits:
    """Caps on open streams, per process (settings.stream_max_per_principal,
    stream_max_total, stream_retry_after_s)."""

    per_principal: int
    total: int
    retry_after_s: int = 30
    open: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.open.values())

    def acquire(self, who: Principal) -> Lease:
        """Count a new stream of `who`; ApiError 429 `too_many_streams` over the subject's
        cap, 503 over the process's (both with Retry-After)."""
        headers = {"Retry-After": str(self.retry_after_s)}
        if self.open.get(who.sub, 0) >= self.per_principal:
            raise ApiError(429, "too_many_streams", headers=headers,
                           retry_after=self.retry_after_s)
        if self.count >= self.total:
            raise ApiError(503, "too_many_streams", headers=headers,
                           retry_after=self.retry_after_s)
        self.open[who.sub] = self.open.get(who.sub, 0) + 1
        return Lease(self, who.sub)

    def _release(self, subject: str) -> None:
        left = self.open.get(subject, 0) - 1
        if left > 0:
            self.open[subject] = left
        else:
            self.open.pop(subject, None)


class Overflow(Exception):
    """A client fell more than its queue behind: its stream ends, it resumes by Last-Event-ID."""


class _Follower:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(size)
        self.overflowed = False

    def offer(self, entry: Entry) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True


class StreamFanout:
    """One XREAD loop per process for every followed Redis stream key.

    `reader`: a client used by the loop alone (its socket timeout above block_ms).
    `ranges`: a small pool for tails and catch-up reads. Call `start()` in the app's lifespan
    and `stop()` at its end."""

    def __init__(self, reader: Redis, ranges: Redis, block_ms: int = 2_000,
                 queue_size: int = 1_000, page: int = 500) -> None:
        self.reader: Any = reader  # redis-py's stubs type replies as unions of everything
        self.ranges: Any = ranges
        self.block_ms = block_ms
        self.queue_size = queue_size
        self.page = page
        self.positions: dict[str, str] = {}  # key -> id of the last entry the loop handed out
        self.followers: dict[str, set[_Follower]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stream-fanout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.reader.aclose()
        await self.ranges.aclose()

    async def _tail(self, key: str) -> str:
        last = await self.ranges.xrevrange(key, count=1)
        return str(last[0][0]) if last else "0-0"

    async def _run(self) -> None:
        while True:
            if not self.positions:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                got = await self.reader.xread(dict(self.positions), count=self.page,
                                              block=self.block_ms)
            except (RedisError, OSError) as exc:
                log.warning("live stream reader: %s; retrying", exc)
                await asyncio.sleep(1)
                continue
            for key, entries in got or []:
                self._hand_out(str(key), entries)

    def _hand_out(self, key: str, entries: list[Any]) -> None:
        # Synchronous: positions and the followers' queues move together.
        for raw_id, fields in entries:
            eid = str(raw_id)
            position = self.positions.get(key)
            if position is None or stream_id(eid) <= stream_id(position):
                continue  # the key was dropped (and maybe re-added) while XREAD ran
            self.positions[key] = eid
            entry = (eid, {str(k): str(v) for k, v in fields.items()})
            for follower in self.followers.get(key, ()):
                follower.offer(entry)

    @contextlib.asynccontextmanager
    async def follow(self, key: str, after: str | None) -> AsyncIterator[AsyncIterator[Entry]]:
        """Entries of `key` after id `after` (None: from now on), in order, without gaps.
        The iterator waits for new entries; it raises Overflow when the client fell behind."""
        if key not in self.positions:
            tail = await self._tail(key)
            self.positions.setdefault(key, tail)
        follower = _Follower(self.queue_size)
        self.followers.setdefault(key, set()).add(follower)
        position = self.positions[key]  # the loop hands this follower everything after it
        self._wake.set()
        try:
            yield self._entries(key, follower, after or position, position)
        finally:
            followers = self.followers.get(key, set())
            followers.discard(follower)
            if not followers:
                self.followers.pop(key, None)
                self.positions.pop(key, None)

    async def _entries(self, key: str, follower: _Follower, after: str,
                       position: str) -> AsyncIterator[Entry]:
        last = after
        while stream_id(last) < stream_id(position):  # catch up from Redis, page by page
            rows = await self.ranges.xrange(key, min="(" + last, max=position, count=self.page)
            if not rows:
                break
            for raw_id, fields in rows:
                last = str(raw_id)
                yield last, {str(k): str(v) for k, v in fields.items()}
        while True:
            if follower.overflowed and follower.queue.empty():
                raise Overflow(key)
            eid, fields = await follower.queue.get()
            if stream_id(eid) > stream_id(last):
                last = eid
                yield eid, fields


async def live_events(entries: AsyncIterator[Entry], who: Principal,
                      check_every_s: float = 1.0) -> AsyncIterator[Entry]:
    """`entries` until the token that opened the stream expires (the stream then ends; the
    client reconnects with a fresh token) or the client fell behind (Overflow)."""
    pending: asyncio.Task[Entry] | None = None
    try:
        while who.seconds_left() > 0:
            if pending is None:
                pending = asyncio.ensure_future(anext(entries))
            done, _ = await asyncio.wait({pending},
                                         timeout=min(check_every_s, max(who.seconds_left(), 0)))
            if not done:
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except (StopAsyncIteration, Overflow):
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Overflow):
                await pending


def make_fanout(settings: Settings, block_ms: int = 1_000) -> StreamFanout:
    """The process's reader (one connection, waiting longer than it blocks) and a catch-up
    pool of 8 connections, both apart from every other Redis client of the service."""
    reader = Redis.from_url(settings.redis_url, decode_responses=True,
                            single_connection_client=True, socket_connect_timeout=5,
                            socket_timeout=block_ms / 1000 + 10, client_name=READER_NAME)
    ranges = Redis(connection_pool=BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=8, timeout=10, decode_responses=True,
        socket_connect_timeout=5, socket_timeout=10))
    return StreamFanout(reader, ranges, block_ms)


def make_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(settings.stream_max_per_principal, settings.stream_max_total,
                        settings.stream_retry_after_s)


Render = Callable[[str, dict[str, str]], ServerSentEvent | None]


def sse_response(fanout: StreamFanout, limits: StreamLimits, who: Principal, key: str,
                 after: str | None, render: Render, ping_s: int = 15) -> EventSourceResponse:
    """The SSE answer following Redis stream `key` for `who`: counted against the limits
    (ApiError 429/503 here, before any byte is sent), each entry rendered by `render` (None:
    not for this caller), closed when the token expires."""
    lease = limits.acquire(who)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async with fanout.follow(key, after) as entries:
                async for eid, fields in live_events(entries, who):
                    event = render(eid, fields)
                    if event is not None:
                        yield event
        finally:
            lease.release()

    return EventSourceResponse(events(), ping=ping_s, background=BackgroundTask(lease.release))
