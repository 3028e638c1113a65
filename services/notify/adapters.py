"""Notify's Redis stores: subscribers and their geo index per kind (sealed), each alert's
state with who received it and dispatch's notes, and each hub's pushes as a stream. The
delivery ledger is in services.notify.ledger, the durable timers in
services.notify.timer_store, the compacted logs in services.notify.logs, the channels (signed
webhooks, Apprise) and the outbound guard in services.notify.outbound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import LockError, WatchError

from services.notify.audience import Subscriber, SubscriberKind
from services.notify.domain import AlertState, CaseNotes
from services.notify.sealing import SealError, SubscriberSeal
from shared.errors import Unavailable

__all__ = ["AlertRepository", "HubFeed", "SubscriberRepository", "make_redis"]

log = logging.getLogger(__name__)


def make_redis(url: str, max_connections: int = 64) -> Redis:
    """A client whose callers wait for a free connection instead of failing when many
    deliveries run at once."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30,
                                           decode_responses=True)
    return Redis(connection_pool=pool)


class SubscriberRepository:
    """Subscribers in Redis, sealed (services.notify.sealing), and their geo index per kind."""

    def __init__(self, redis: Redis, seal: SubscriberSeal) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        self.seal = seal

    async def add(self, subscriber: Subscriber) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._put(pipe, subscriber)
            await pipe.execute()

    async def add_many(self, subscribers: list[Subscriber]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in subscribers:
                self._put(pipe, s)
            await pipe.execute()

    def _put(self, pipe: Any, subscriber: Subscriber) -> None:
        """Queue on `pipe` the subscriber's sealed record and its place in its kind's geo index
        (every write of a subscriber: add, add_many, restore_many)."""
        pipe.set(f"notify:sub:{subscriber.subscriber_id}", self.seal.dumps(subscriber))
        pipe.geoadd(f"notify:geo:{subscriber.kind.value}",
                    (subscriber.location.lon, subscriber.location.lat, subscriber.subscriber_id))

    async def restore_many(self, logged: list[Subscriber],
                           keep: Callable[[Subscriber, Subscriber | None], Subscriber]) -> int:
        """Write back each of `logged` (the subscriber log's copies) unless `keep(logged,
        stored)` keeps Redis's copy (None when absent or no key opens it): Redis being rebuilt
        while changes are written on other instances. One optimistic transaction (WATCH) per
        call, so a change that lands between the read and the write makes it read again
        instead of being overwritten. Returns how many were written."""
        if not logged:
            return 0
        keys = [f"notify:sub:{s.subscriber_id}" for s in logged]
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    raws = await pipe.mget(keys)
                    chosen = [s for s, raw in zip(logged, raws, strict=True)
                              if keep(s, self._opened(raw)) is s]
                    pipe.multi()
                    for s in chosen:
                        self._put(pipe, s)
                    await pipe.execute()
                    return len(chosen)
                except WatchError:
                    continue

    async def readable(self, subscriber_id: str) -> Subscriber | None:
        """Redis's copy, or None when there is none or no key opens it (a re-seal or a rebuild
        then writes the log's)."""
        return self._opened(await self.redis.get(f"notify:sub:{subscriber_id}"))

    def _opened(self, raw: str | None) -> Subscriber | None:
        try:
            return self.seal.loads(raw) if raw else None
        except SealError:
            return None

    @contextlib.asynccontextmanager
    async def changing(self, subscriber_id: str,
                       hold_s: float = 120.0, wait_s: float = 10.0) -> AsyncIterator[None]:
        """Held while one change reads a subscriber, logs it and writes it back, across every
        notify instance (redis-py's Lock: SET NX PX with a token of its own), so two changes at
        once cannot lose one: a 410's disable during a secret rotation, an admin taking a hub
        out of service meanwhile, two registrations of one hub_id.

        The lock expires `hold_s` seconds after it was taken, so a holder that died frees it;
        a living holder's change is stopped at half that (Unavailable), long before, so no
        second change can start while the first still writes (a log publish waits at most
        the producer's 30 s request time-out). Raises Unavailable (503 with Retry-After; a
        consumer's transient fault) when another change holds it past `wait_s` seconds."""
        lock = self.redis.lock(f"notify:sub-lock:{subscriber_id}", timeout=hold_s,
                               blocking_timeout=wait_s)
        if not await lock.acquire():
            # From a LockError: transient for a consumer (shared.faults), whose 410 disable
            # is retried with its job; 503 with Retry-After for an admin's request.
            raise Unavailable(message=f"subscriber {subscriber_id} is being changed; retry",
                              headers={"Retry-After": "1"}) \
                from LockError(f"not acquired within {wait_s} s")
        try:
            async with asyncio.timeout(hold_s / 2):
                yield
        except TimeoutError as exc:
            raise Unavailable(message=f"change of subscriber {subscriber_id} took over "
                                      f"{hold_s / 2:g} s; retry",
                              headers={"Retry-After": "1"}) from exc
        finally:
            try:
                await lock.release()
            except LockError:  # cannot happen while the change is bounded: say so if it does
                log.error("subscriber %s: its change lock expired before the change ended",
                          subscriber_id)

    async def get(self, subscriber_id: str) -> Subscriber | None:
        raw = await self.redis.get(f"notify:sub:{subscriber_id}")
        return self.seal.loads(raw) if raw else None

    async def get_many(self, ids: Iterable[str]) -> list[Subscriber]:
        keys = [f"notify:sub:{i}" for i in ids]
        if not keys:
            return []
        raws = await self.redis.mget(keys)
        return [self.seal.loads(r) for r in raws if r]

    async def ids_within(self, kind: SubscriberKind, lat: float, lon: float,
                         radius_km: float) -> list[str]:
        ids = await self.redis.geosearch(f"notify:geo:{kind.value}", longitude=lon, latitude=lat,
                                         radius=radius_km, unit="km")
        return [str(i) for i in ids]

    async def count(self, kind: SubscriberKind) -> int:
        """How many subscribers of `kind` the geo index holds."""
        return int(await self.redis.zcard(f"notify:geo:{kind.value}"))

    async def in_box(self, kind: SubscriberKind, lat: float, lon: float, width_km: float,
                     height_km: float) -> list[tuple[str, float, float]]:
        """(id, lat, lon) of the subscribers of `kind` in the box centred on (lat, lon) (one
        GEOSEARCH BYBOX; services.notify.selection.keep narrows it to a cell and a circle)."""
        rows = await self.redis.geosearch(f"notify:geo:{kind.value}", longitude=lon,
                                          latitude=lat, width=width_km, height=height_km,
                                          unit="km", withcoord=True)
        return [(str(r[0]), float(r[1][1]), float(r[1][0])) for r in rows]

    async def within(self, kind: SubscriberKind, lat: float, lon: float,
                     radius_km: float) -> list[Subscriber]:
        subs = await self.get_many(await self.ids_within(kind, lat, lon, radius_km))
        return [s for s in subs if s.active]

    async def hubs_with_coords(self, lat: float, lon: float,
                               radius_km: float) -> list[tuple[str, float, float]]:
        rows = await self.redis.geosearch(f"notify:geo:{SubscriberKind.hub.value}",
                                          longitude=lon, latitude=lat, radius=radius_km,
                                          unit="km", withcoord=True)
        return [(str(r[0]), float(r[1][1]), float(r[1][0])) for r in rows]


class AlertRepository:
    """Alert state per case, who received it (for the cancellation), and dispatch's notes."""

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything

    async def get(self, alert_id: str) -> AlertState | None:
        raw = await self.redis.get(f"notify:alert:{alert_id}")
        return AlertState.model_validate_json(raw) if raw else None

    async def save(self, alert: AlertState) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"notify:alert:{alert.alert_id}", alert.model_dump_json())
            # The short code people type on /verify (issue 17); derived, so a rebuild restores it.
            pipe.set(f"notify:code:{alert.short_code}", alert.alert_id)
            if alert.public_listed:
                pipe.zadd("notify:public", {alert.alert_id: alert.issued_at.timestamp()})
            else:
                pipe.zrem("notify:public", alert.alert_id)
            # A public alert that ended: its Cancel stays in the feed for a while (issue 18 §5).
            if alert.cancelled and alert.released and not alert.exercise:
                pipe.zadd("notify:public-ended",
                          {alert.alert_id: alert.versions[-1].sent.timestamp()})
            else:
                pipe.zrem("notify:public-ended", alert.alert_id)
            await pipe.execute()

    async def by_code(self, code: str) -> AlertState | None:
        """The alert whose short code (shared.verification.short_code) is `code`."""
        alert_id = await self.redis.get(f"notify:code:{code}")
        return await self.get(str(alert_id)) if alert_id else None

    async def _indexed(self, index: str) -> list[AlertState]:
        """The latest 200 alerts of a sorted-set index, latest first."""
        ids = await self.redis.zrevrange(index, 0, 199)
        if not ids:
            return []
        raws = await self.redis.mget([f"notify:alert:{i}" for i in ids])
        return [AlertState.model_validate_json(r) for r in raws if r]

    async def public(self) -> list[AlertState]:
        return [a for a in await self._indexed("notify:public") if a.public_listed]

    async def public_ended(self, since: float) -> list[AlertState]:
        """Public alerts cancelled at or after `since` (epoch seconds), latest first; older
        ones leave the index."""
        await self.redis.zremrangebyscore("notify:public-ended", "-inf", f"({since}")
        return [a for a in await self._indexed("notify:public-ended") if a.cancelled]

    async def recipients(self, alert_id: str) -> dict[str, int]:
        """subscriber id -> the version it was first sent."""
        raw = await self.redis.hgetall(f"notify:recipients:{alert_id}")
        return {str(k): int(v) for k, v in raw.items()}

    async def add_recipients(self, alert_id: str, ids: list[str], version: int) -> None:
        if ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hsetnx(f"notify:recipients:{alert_id}", i, version)
                await pipe.execute()

    async def told(self, alert_id: str, ids: list[str]) -> list[int | None]:
        """For each id, the version it first heard of the alert from (None: not yet)."""
        if not ids:
            return []
        raw = await self.redis.hmget(f"notify:recipients:{alert_id}", ids)
        return [None if v is None else int(v) for v in raw]

    async def merged_into(self, case_id: str) -> str | None:
        """The alert a report (by its case id) was merged into as the same child, if any."""
        got = await self.redis.get(f"notify:merged:{case_id}")
        return str(got) if got else None

    async def set_merged(self, case_id: str, alert_id: str | None) -> None:
        if alert_id is None:
            await self.redis.delete(f"notify:merged:{case_id}")
        else:
            await self.redis.set(f"notify:merged:{case_id}", alert_id)

    async def notes(self, case_id: str) -> CaseNotes:
        raw = await self.redis.get(f"notify:notes:{case_id}")
        return CaseNotes.model_validate_json(raw) if raw else CaseNotes()

    async def save_notes(self, case_id: str, notes: CaseNotes) -> None:
        await self.redis.set(f"notify:notes:{case_id}", notes.model_dump_json())

    # Set only at start after a full rebuild (or on a fresh start): a Redis flushed while the
    # service runs is rebuilt at the next start.
    READY = "notify:ready"

    async def is_ready(self) -> bool:
        return bool(await self.redis.exists(self.READY))

    async def mark_ready(self) -> None:
        await self.redis.set(self.READY, "1")


# KEYS: the hub's stream, its index (alert id -> the stream id of its entry); ARGV: the alert
# id, the body. One entry per alert, its latest push: the earlier one goes as the new one comes.
_FEED_ADD = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
local id = redis.call('XADD', KEYS[1], '*', 'alert_id', ARGV[1], 'body', ARGV[2])
if old then redis.call('XDEL', KEYS[1], old) end
redis.call('HSET', KEYS[2], ARGV[1], id)
return id
"""


class HubFeed:
    """Each hub's pushes as a Redis stream: the hub console lists it, and follows it through
    the process's shared.streams.StreamFanout (SSE ids are the stream ids, so Last-Event-ID
    resumes). The stream holds one entry per alert, its latest push, for as long as the alert
    is kept (a Cancel's entry stays until the case's purge scrubs it): never trimmed by count,
    so a search that goes on for years stays on a busy hub's console."""

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        self._add = self.redis.register_script(_FEED_ADD)

    @staticmethod
    def key(hub_id: str) -> str:
        return f"notify:hubfeed:{hub_id}"

    @staticmethod
    def index(hub_id: str) -> str:
        return f"notify:hubfeed-index:{hub_id}"

    async def add(self, hub_id: str, body: dict[str, Any]) -> str:
        entry = await self._add(keys=[self.key(hub_id), self.index(hub_id)],
                                args=[str(body["alert_id"]),
                                      json.dumps(body, ensure_ascii=False)])
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    async def scrub(self, hub_id: str, alert_id: str) -> None:
        """Drop every earlier push of `alert_id` (they carry personal data)."""
        key = self.key(hub_id)
        rows = await self.redis.xrange(key)
        old = [eid for eid, f in rows if f.get("alert_id") == alert_id]
        if old:
            await self.redis.xdel(key, *old)
        await self.redis.hdel(self.index(hub_id), alert_id)

    async def current(self, hub_id: str) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for _, fields in await self.redis.xrange(f"notify:hubfeed:{hub_id}"):
            body = json.loads(fields["body"])
            latest[body["alert_id"]] = body
        return list(latest.values())
