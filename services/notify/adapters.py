"""Redis (subscribers and their geo index, alert state, the delivery ledger, durable timers, hub
streams) and the compacted logs; the channels (signed webhooks, Apprise) and the outbound guard
are in services.notify.outbound."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis

from services.notify.audience import Subscriber, SubscriberKind
from services.notify.domain import AlertState, CaseNotes
from services.notify.ledger_rules import LEDGER_META
from services.notify.outbound import AppriseSender as AppriseSender
from services.notify.outbound import SendResult as SendResult
from services.notify.outbound import UnsafeUrl as UnsafeUrl
from services.notify.outbound import WebhookSender as WebhookSender
from services.notify.sealing import SubscriberSeal
from shared.casekeys import CaseKeys, opened_data
from shared.kafka import Bootstrap


def make_redis(url: str, max_connections: int = 64) -> Redis:
    """A client whose callers wait for a free connection instead of failing when many
    deliveries run at once."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30,
                                           decode_responses=True)
    return Redis(connection_pool=pool)


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


class SubscriberRepository:
    """Subscribers in Redis, sealed (services.notify.sealing), and their geo index per kind."""

    def __init__(self, redis: Redis, seal: SubscriberSeal) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        self.seal = seal

    async def add(self, subscriber: Subscriber) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"notify:sub:{subscriber.subscriber_id}", self.seal.dumps(subscriber))
            pipe.geoadd(f"notify:geo:{subscriber.kind.value}",
                        (subscriber.location.lon, subscriber.location.lat,
                         subscriber.subscriber_id))
            await pipe.execute()

    async def add_many(self, subscribers: list[Subscriber]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in subscribers:
                pipe.set(f"notify:sub:{s.subscriber_id}", self.seal.dumps(s))
                pipe.geoadd(f"notify:geo:{s.kind.value}",
                            (s.location.lon, s.location.lat, s.subscriber_id))
            await pipe.execute()

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


TERMINAL = {"sent", "acknowledged", "failed", "dead", "gone", "dropped"}


class DeliveryLedger:
    """One delivery per (alert version, recipient): the record is created (`pending`) before the
    first request and set to `sent` after it; a redelivered message skips what is settled and
    resends what was left `pending` with the same webhook-id, so a receiver can drop the
    duplicate. Retries and ack deadlines are Redis sorted sets (durable timers)."""

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        self._marks: GroupCommit[tuple[str, dict[str, str]]] = GroupCommit(self._write_marks)

    async def _write_marks(self, marks: list[tuple[str, dict[str, str]]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id, mapping in marks:
                pipe.hset(f"notify:delivery:{delivery_id}", mapping=mapping)
            await pipe.execute()

    async def claim(self, delivery_id: str, fields: dict[str, str]) -> str | None:
        """Create the record if absent; return the state it had (None when new)."""
        return (await self.claim_many({delivery_id: fields}))[delivery_id][0]

    # KEYS[1] the delivery, KEYS[2] the case's delivery set; ARGV: delivery id, then field,
    # value pairs. Returns {state, attempts} of an existing record, or {} after creating it.
    CLAIM = """
    local had = redis.call('HMGET', KEYS[1], 'state', 'attempts')
    if had[1] then return had end
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    redis.call('SADD', KEYS[2], ARGV[1])
    return {}
    """

    async def claim_many(
        self, records: dict[str, dict[str, str]]
    ) -> dict[str, tuple[str | None, int]]:
        """The `before` record of many deliveries in one round trip (a script per delivery, so
        creating a record and finding an existing one are atomic): delivery id -> (the state
        it had, None when new; attempts made so far)."""
        if not hasattr(self, "_claim"):
            self._claim = self.redis.register_script(self.CLAIM)
        ids = list(records)
        now = datetime.now(UTC).isoformat()
        async with self.redis.pipeline(transaction=False) as pipe:
            for did in ids:
                meta = records[did]
                # What never changes travels as one field: fewer arguments to pack per call.
                args = [did, "state", "pending", "attempts", "0", "at", now,
                        "meta", json.dumps(meta, ensure_ascii=False, separators=(",", ":"))]
                await self._claim(keys=[f"notify:delivery:{did}",
                                        f"notify:case-deliveries:{meta.get('case_id', '')}"],
                                  args=args, client=pipe)
            replies = await pipe.execute()
        out: dict[str, tuple[str | None, int]] = {}
        for did, reply in zip(ids, replies, strict=True):
            out[did] = (str(reply[0]), int(reply[1] or 0)) if reply else (None, 0)
        return out

    async def restore(self, records: dict[str, dict[str, str]]) -> None:
        """Records rebuilt from the receipts, in the flat form `get` returns."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for did, record in records.items():
                meta = {k: v for k, v in record.items() if k in LEDGER_META}
                rest = {k: v for k, v in record.items() if k not in LEDGER_META}
                rest["meta"] = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
                pipe.hset(f"notify:delivery:{did}", mapping=rest)
                pipe.sadd(f"notify:case-deliveries:{meta.get('case_id', '')}", did)
            await pipe.execute()

    async def put_body(self, key: str, body: dict[str, Any]) -> None:
        """A push body, stored once per (alert version, scope) for the retries of all its
        deliveries."""
        await self.redis.set(f"notify:body:{key}", json.dumps(body, ensure_ascii=False),
                             ex=30 * 24 * 3600)

    async def get_body(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"notify:body:{key}")
        return json.loads(raw) if raw else None

    @staticmethod
    def _flat(raw: dict[Any, Any]) -> dict[str, str]:
        out = {str(k): str(v) for k, v in raw.items() if k != "meta"}
        if raw.get("meta"):
            out = {**json.loads(raw["meta"]), **out}
        return out

    async def get(self, delivery_id: str) -> dict[str, str]:
        return self._flat(await self.redis.hgetall(f"notify:delivery:{delivery_id}"))

    async def get_many(self, delivery_ids: list[str]) -> list[dict[str, str]]:
        """The records of `delivery_ids`, in order ({} for an unknown one), one round trip."""
        if not delivery_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for did in delivery_ids:
                pipe.hgetall(f"notify:delivery:{did}")
            rows = await pipe.execute()
        return [self._flat(r) for r in rows]

    async def state(self, delivery_id: str) -> str | None:
        raw = await self.redis.hget(f"notify:delivery:{delivery_id}", "state")
        return str(raw) if raw is not None else None

    async def mark(self, delivery_id: str, state: str, **fields: str) -> None:
        mapping: dict[str, str] = {"state": state, "at": datetime.now(UTC).isoformat()}
        mapping.update(fields)
        await self._marks.add((delivery_id, mapping))

    async def of_case(self, case_id: str) -> list[dict[str, str]]:
        ids = sorted(await self.redis.smembers(f"notify:case-deliveries:{case_id}"))
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(f"notify:delivery:{i}")
            rows = await pipe.execute()
        return [{"delivery_id": str(i), **self._flat(r)}
                for i, r in zip(ids, rows, strict=True) if r]

    # Durable timers: a sorted set of member -> due epoch. `due` claims a member by moving it a
    # lease ahead (one script: only one instance gets it); `settle` removes it after the work
    # unless the work scheduled it again. Work that fails, or a claim or settle Redis refuses
    # (OOM, READONLY), leaves the member due: a timer is never lost to a refused write.
    async def schedule(self, timer: str, member: str, due: float) -> None:
        await self.redis.zadd(f"notify:timer:{timer}", {member: due})

    async def count(self, timer: str, due_by: float | None = None) -> int:
        """Members of `timer`; with `due_by` (epoch s), only those due by then (metrics)."""
        key = f"notify:timer:{timer}"
        if due_by is None:
            return int(await self.redis.zcard(key))
        return int(await self.redis.zcount(key, "-inf", due_by))

    async def next_due(self, timer: str) -> float | None:
        """When the earliest member of `timer` is due (epoch s; a claimed one: when its lease
        ends), None when it has none."""
        first = await self.redis.zrange(f"notify:timer:{timer}", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def unschedule(self, timer: str, *members: str) -> None:
        if members:
            await self.redis.zrem(f"notify:timer:{timer}", *members)

    # KEYS[1] the timer set; ARGV: now, lease score, limit. Returns the members claimed.
    LEASE = """
    local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
    for _, member in ipairs(due) do
        redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
    end
    return due
    """
    # KEYS[1] the timer set; ARGV: member, lease score. Removes the member if still leased.
    SETTLE = """
    local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
    if score and tonumber(score) == tonumber(ARGV[2]) then
        return redis.call('ZREM', KEYS[1], ARGV[1])
    end
    return 0
    """

    async def due(self, timer: str, now: float | None = None, limit: int = 500,
                  lease_s: float = 15.0) -> tuple[float, list[str]]:
        """Claim up to `limit` members due by `now`: (the lease score, the members). A
        member not settled by the end of its lease is due again (long enough for a batch's
        fan-outs to finish before another instance could claim the same member)."""
        if not hasattr(self, "_lease"):
            self._lease = self.redis.register_script(self.LEASE)
            self._settle = self.redis.register_script(self.SETTLE)
        at = now or time.time()
        lease = float(f"{at + lease_s:.6f}")  # exact in Redis's reply and ours
        members = await self._lease(keys=[f"notify:timer:{timer}"], args=[at, lease, limit])
        return lease, [str(m) for m in members]

    async def settle(self, timer: str, member: str, lease: float) -> None:
        if not hasattr(self, "_settle"):
            self._settle = self.redis.register_script(self.SETTLE)
        await self._settle(keys=[f"notify:timer:{timer}"], args=[member, lease])


class HubFeed:
    """Each hub's pushes as a Redis stream: the hub console lists it, and follows it through
    the process's shared.streams.StreamFanout (SSE ids are the stream ids, so Last-Event-ID
    resumes)."""

    MAXLEN = 500

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything

    @staticmethod
    def key(hub_id: str) -> str:
        return f"notify:hubfeed:{hub_id}"

    async def add(self, hub_id: str, body: dict[str, Any]) -> str:
        entry = await self.redis.xadd(self.key(hub_id),
                                      {"alert_id": str(body["alert_id"]),
                                       "body": json.dumps(body, ensure_ascii=False)},
                                      maxlen=self.MAXLEN, approximate=True)
        return str(entry)

    async def scrub(self, hub_id: str, alert_id: str) -> None:
        """Drop every earlier push of `alert_id` (they carry personal data)."""
        key = f"notify:hubfeed:{hub_id}"
        rows = await self.redis.xrange(key)
        old = [eid for eid, f in rows if f.get("alert_id") == alert_id]
        if old:
            await self.redis.xdel(key, *old)

    async def current(self, hub_id: str) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for _, fields in await self.redis.xrange(f"notify:hubfeed:{hub_id}"):
            body = json.loads(fields["body"])
            latest[body["alert_id"]] = body
        return list(latest.values())


# --- the compacted logs: subscribers, alerts -----------------------------------------------------


class CompactedLog:
    """A compacted topic keyed by record id: its latest record per key is the state."""

    def __init__(self, bootstrap: Bootstrap, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic

    async def ensure_topic(self, replication_factor: int = 1,
                           min_insync_replicas: int = 1) -> None:
        """Create the topic as shared.topic_policy declares it, when `make up` has not."""
        from shared.kafka import ensure_topics

        await ensure_topics(self.bootstrap, replication_factor, min_insync_replicas,
                            names=[self.topic], reconfigure=False)

    async def read_latest(self, timeout_s: float = 30.0) -> dict[str, bytes]:
        """The latest value of every key, from the beginning of the log (tombstones and empty
        values remove the key). TimeoutError when the end is not reached in `timeout_s`."""
        from shared.kafka import read_to_end

        latest: dict[str, bytes] = {}
        async for r in read_to_end(self.bootstrap, self.topic, timeout_s, client="notify"):
            key = r.key.decode() if r.key else ""
            if not r.value:
                latest.pop(key, None)
            else:
                latest[key] = r.value
        return latest


class SubscriberLog(CompactedLog):
    """Every subscriber as its latest record on the compacted `homeward.subscribers.v1`, keyed
    by subscriber id, so Redis's copy and geo indexes can be rebuilt when Redis is flushed."""

    async def read_all(self, seal: SubscriberSeal, timeout_s: float = 30.0) -> list[Subscriber]:
        """The latest record of every subscriber, from the beginning of the log."""
        return [seal.loads(v)
                for v in (await self.read_latest(timeout_s)).values()]


class AlertLog(CompactedLog):
    """`homeward.alerts.v1`: each alert's latest state (`alert:<id>`) and the push body of each
    of its versions (`body:<alert id>:<version>:<scope>`)."""

    async def read_all(
        self, timeout_s: float = 30.0, keys: CaseKeys | None = None
    ) -> tuple[list[AlertState], dict[str, dict[str, Any]]]:
        """Sealed fields (issue 13) come back with the case's key, as markers once purged."""
        alerts, bodies = [], {}
        for key, value in (await self.read_latest(timeout_s)).items():
            if key.startswith("alert:"):
                alerts.append(AlertState.model_validate(
                    await opened_data(keys, json.loads(value))))
            elif key.startswith("body:"):
                bodies[key.removeprefix("body:")] = await opened_data(keys, json.loads(value))
        return alerts, bodies
