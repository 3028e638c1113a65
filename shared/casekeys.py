"""The case-key store (issue 13 §2): one data key per case, wrapped by a master key.

Records of record: the compacted topic `homeward.case-keys.v1` (shared.topics.CASE_KEYS), keyed
by case id, value `{"kid", "n", "ct"}` (shared.pii.MasterKeys.wrap). Cache: Redis
`pii:casekey:<case id>` holding the same wrapped JSON (Redis never holds a key in clear), or
`purged` once the case was purged. Purging writes a tombstone (null value) to the topic and the
`purged` sentinel to Redis; compaction then removes every copy of the key from the log.

A Redis that lost its cache is refilled from the topic (`load`), at start when empty and on a
miss at most every `reload_s`; a purged case's tombstone is kept on the topic for good
(`delete.retention.ms` unbounded, shared/topic_policy.py), so it stays `purged` after any rebuild.

A miss is never taken for a purge: data sealed for a case means its key was written to the topic
before (alert's outbox, `get_or_create`), so a reader that misses reads the topic again at once
(`opening_key`) and, when the key is still not there for an event of the last `KEY_WAIT_S`
(its key may be a moment behind it: alert's relay sends both in one batch), raises
`KeyNotVisible` — a transient fault: the message is retried from the same offset, never opened
as if purged (its personal fields would read as markers) and never dead-lettered. An older event
whose key is nowhere on the topic (lost) is read as purged, so a rebuild never stops on it.
Likewise a writer reads the topic before it makes a new key (`find`, `get_or_create`), so it
never replaces one another process made.

Key loss and rotation:
- Redis lost (flushed, replaced): refilled from the topic; nothing is lost.
- A master key not configured (dropped too early, a deployment without it): reading a key it
  wrapped raises `pii.KeyUnavailable`, a transient fault — consumers retry from the same offset
  and report 503 until the key is configured again; `load` logs the key ids it cannot unwrap.
- A master key lost for good, or the topic lost without a backup: every case key it held is
  gone, which is a purge of those cases (their non-personal history still replays). Keep master
  keys in the secret store with its backups, and the topic at replication 3 / min.insync 2.
- Rotation: put the new master key first in `HOMEWARD_PII_MASTER_KEYS`, deploy, run
  `python -m shared.casekeys --rewrap` (rewraps every stored key under the new one; a key read
  is rewrapped on read too), then drop the old key; compaction removes the superseded records.

Memo (shared.key_memo): a key read or made here is kept in this process for `memo_s` (2 s). A
purge made here (`purge`, from before its tombstone is sent) or learnt here (`learnt_purged`,
at `homeward.case.purged.v1`, which dispatch publishes just before it deletes the key) is
memoized as purged, and no key is memoized over it. What the memo changes: a purge this
process has neither made nor learnt is seen here up to `memo_s` later, as if it had read the
key `memo_s` earlier. A miss, a lost cache and a key not visible yet are never memoized: they
go to Redis and the topic as before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from shared import events, pii, topics
from shared.cloudevents import CloudEvent, PoisonMessage
from shared.faults import Transient
from shared.kafka_access import Bootstrap, client_options
from shared.kafka_log import read_to_end
from shared.key_memo import MEMO_S, KeyMemo
from shared.pii import MasterKeys, new_data_key

log = logging.getLogger(__name__)

PREFIX = "pii:casekey:"
KEY_WAIT_S = 300.0  # an event this recent whose key is not visible yet waits for it (retried)
PURGED = "purged"  # the cache's value for a purged case
LOADED = "pii:casekeys:loaded"  # set once the cache was filled from the topic


class CasePurged(LookupError):
    """The case was purged: no key is made for it again."""


class KeyNotVisible(Transient):
    """Data is sealed for a case whose key is neither cached nor on the topic yet (its record
    is on its way, or Redis refused to cache it): retried, never read as purged."""


class CaseKeys:
    """get / get_or_create / purge of per-case data keys; see the module docstring."""

    def __init__(self, redis: Redis, bootstrap: Bootstrap, master: MasterKeys,
                 reload_s: float = 5.0, memo_s: float = MEMO_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`bootstrap`: the servers, or a KafkaAccess with this service's principal (SASL);
        `memo_s`: seconds a key read or made is kept in this process (0: never), by `clock`
        (monotonic seconds)."""
        self.redis = redis
        self.bootstrap = bootstrap
        self.master = master
        self.reload_s = reload_s
        self._memo = KeyMemo(memo_s, clock)
        self._producer: AIOKafkaProducer | None = None
        self._loaded_at = 0.0
        self._loading = asyncio.Lock()

    def learnt_purged(self, case_id: str) -> None:
        """The case was purged (`homeward.case.purged.v1` read here): its key is not served
        here again, even while Redis still holds it (dispatch deletes it just after the event)."""
        self._memo.mark_purged(case_id)

    async def on_case_event(self, event: CloudEvent) -> None:
        """A consumer's hook: `learnt_purged` at `homeward.case.purged.v1`."""
        if event.type == events.CASE_PURGED:
            self.learnt_purged(event.subject)

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**client_options(self.bootstrap), acks="all",
                                        enable_idempotence=True)
            await producer.start()
            self._producer = producer
        return self._producer

    async def _produce(self, case_id: str, value: bytes | None) -> None:
        producer = await self._producer_started()
        await producer.send_and_wait(topics.CASE_KEYS, value, key=case_id.encode())

    async def tombstone(self, topic: str, key: str) -> None:
        """A true tombstone (null value) for `key` on a compacted topic (notify's push bodies of
        a purged case, issue 13)."""
        producer = await self._producer_started()
        await producer.send_and_wait(topic, None, key=key.encode())

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _cached(self, case_id: str) -> str | None:
        raw = await self.redis.get(PREFIX + case_id)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _fill_if_lost(self) -> None:
        """Refill the cache when Redis lost it (flushed, new) before trusting a miss."""
        if not await self.redis.exists(LOADED):
            async with self._loading:
                if not await self.redis.exists(LOADED):
                    await self.load()

    async def _lookup(self, case_id: str) -> str | None:
        """The case's cached record, the cache refilled first if Redis lost it: one round trip
        (MGET of the loaded mark and the record, read at one instant) while the cache is
        there, where EXISTS then GET took two on every key lookup (13 a report over the three
        services, measured with Redis's commandstats in the flow benchmark, 2026-12-01)."""
        loaded, raw = await self.redis.mget(LOADED, PREFIX + case_id)
        if loaded is None:
            await self._fill_if_lost()
            return await self._cached(case_id)
        return raw.decode() if isinstance(raw, bytes) else raw

    def fresh(self, case_id: str) -> tuple[bytes, bytes]:
        """A new data key for a new case and its record for the topic (the wrapped key), for a
        writer that makes it durable itself (alert: through its outbox, before the report, so
        intake needs neither Kafka nor Redis). Cache it with `claim` (a new id) or `remember`."""
        key = new_data_key()
        return key, json.dumps(self.master.wrap(case_id, key)).encode()

    async def claim(self, case_id: str, record: bytes) -> bool:
        """Cache a record made by `fresh` for a case id just drawn, unless the id is held:
        False when another case holds it (two reports drew one id, shared.case_ids), so the
        caller draws another. Raises RedisError/OSError when Redis does not answer."""
        return bool(await self.redis.set(PREFIX + case_id, record.decode(), nx=True))

    async def remember(self, case_id: str, record: bytes) -> bytes | None:
        """Cache a record made by `fresh` (unless the case has one already); returns the data
        key the case holds (another writer's, if it was first), None if purged."""
        if await self.redis.set(PREFIX + case_id, record.decode(), nx=True):
            return self.master.unwrap(case_id, json.loads(record))
        return await self.get(case_id)

    async def purged(self, case_id: str) -> bool:
        return await self._lookup(case_id) == PURGED

    async def get(self, case_id: str) -> bytes | None:
        """The case's data key, or None when it was purged (or never made). A miss reads the
        topic again (at most every `reload_s`): the key may have been made by another process
        whose cache is another Redis. Memoized for `memo_s` (the module docstring)."""
        held = self._memo.recall(case_id)
        if held is not None:
            return held if isinstance(held, bytes) else None  # a key, or purged
        raw = await self._lookup(case_id)
        if raw is None and time.monotonic() - self._loaded_at > self.reload_s:
            await self.load()
            raw = await self._cached(case_id)
        if raw == PURGED:
            self._memo.mark_purged(case_id)
        if raw is None or raw == PURGED:
            return None
        wrapped = json.loads(raw)
        key = self.master.unwrap(case_id, wrapped)
        if wrapped["kid"] != self.master.active:  # master-key rotation: rewrap on read
            rewrapped = json.dumps(self.master.wrap(case_id, key))
            await self._produce(case_id, rewrapped.encode())
            await self.redis.set(PREFIX + case_id, rewrapped)
        self._memo.keep(case_id, key)
        return key

    async def find(self, case_id: str) -> bytes | None:
        """`get`, but a miss reads the topic again at once (the key may have been made by a
        process whose Redis write failed): None when the case has no key or was purged. For a
        writer about to make a key through its own outbox (alert), so it never makes a second
        one that would replace the first on the compacted topic."""
        key = await self.get(case_id)
        if key is None and await self._cached(case_id) is None:
            await self.load()
            key = await self.get(case_id)
        return key

    async def opening_key(self, case_id: str, wait: bool = False) -> bytes | None:
        """The key that opens data sealed for `case_id`; None when the case was purged, or its
        key is nowhere on the topic (lost: read as purged, logged). A miss reads the topic
        again at once; with `wait` (the data is fresh, its key may be on its way) a key still
        not there raises KeyNotVisible (transient: retried) instead."""
        key = await self.find(case_id)
        if key is None and await self._cached(case_id) is None:
            if wait:
                raise KeyNotVisible(f"no key for case {case_id} on {topics.CASE_KEYS} yet")
            log.warning("no key for case %s on %s: its personal fields read as purged",
                        case_id, topics.CASE_KEYS)
        return key

    async def get_or_create(self, case_id: str) -> bytes:
        """The case's data key, made (durably on the topic, before it seals anything) when the
        case has none (after reading the topic: another process may have made it and Redis not
        cached it). Raises CasePurged for a purged case. Memoized as `get` is."""
        held = self._memo.recall(case_id)
        if isinstance(held, bytes):
            return held
        if held is not None:  # purged
            raise CasePurged(case_id)
        raw = await self._lookup(case_id)
        if raw is None:
            await self.load()
            raw = await self._cached(case_id)
        if raw == PURGED:
            raise CasePurged(case_id)
        if raw is not None:
            found = await self.get(case_id)
            if found is None:  # purged meanwhile (notify's writer racing dispatch's purge)
                raise CasePurged(case_id)
            return found
        key = new_data_key()
        wrapped = json.dumps(self.master.wrap(case_id, key))
        if await self.redis.set(PREFIX + case_id, wrapped, nx=True):
            await self._produce(case_id, wrapped.encode())
            self._memo.keep(case_id, key)
            return key
        found = await self.get(case_id)  # another writer made it first
        if found is None:
            raise CasePurged(case_id)
        return found

    async def purge(self, case_id: str) -> None:
        """Forget the case's key: tombstone on the topic, `purged` in Redis (and in this
        process's memo, before anything is sent). Idempotent."""
        self._memo.mark_purged(case_id)
        await self._produce(case_id, None)
        await self.redis.set(PREFIX + case_id, PURGED)
        self._memo.mark_purged(case_id)  # held `memo_s` from now

    async def rewrap_all(self) -> tuple[int, set[str]]:
        """Rewrap every stored data key not wrapped by the active master key (rotation).
        Returns how many were rewritten and the ids of master keys met that are not configured
        (their case keys are left as they are: configure the key and run again)."""
        rewrapped, missing = 0, set()
        for case_id, raw in (await self._read_topic()).items():
            if raw is None:
                continue
            wrapped = json.loads(raw)
            if wrapped["kid"] == self.master.active:
                continue
            if wrapped["kid"] not in self.master.keys:
                missing.add(str(wrapped["kid"]))
                continue
            record = json.dumps(self.master.wrap(case_id, self.master.unwrap(case_id, wrapped)))
            await self._produce(case_id, record.encode())
            await self.redis.set(PREFIX + case_id, record)
            rewrapped += 1
        return rewrapped, missing

    async def load(self) -> int:
        """Refill the Redis cache from the compacted topic (latest record per case; tombstones
        become `purged`). Returns the number of records read. Only a load that reached Redis
        counts for `reload_s` (one refused, e.g. Redis out of memory, is retried)."""
        latest = await self._read_topic()
        unknown = {json.loads(v)["kid"] for v in latest.values() if v is not None} \
            - set(self.master.keys)
        if unknown:
            log.error("case keys wrapped by master keys not configured: %s (their cases' "
                      "personal data cannot be read until they are)", sorted(unknown))
        async with self.redis.pipeline(transaction=False) as pipe:
            for case_id, value in latest.items():
                if value is None:
                    pipe.set(PREFIX + case_id, PURGED)
                else:  # never over a `purged` set since this read (a purge racing the load)
                    pipe.set(PREFIX + case_id, value.decode(), nx=True)
            pipe.set(LOADED, "1")
            await pipe.execute()
        self._loaded_at = time.monotonic()
        return len(latest)

    async def _read_topic(self) -> dict[str, bytes | None]:
        """The latest record of every case on the topic, read to its end (None: tombstone)."""
        latest: dict[str, bytes | None] = {}
        async for record in read_to_end(self.bootstrap, topics.CASE_KEYS, client="casekeys"):
            if record.key is not None:
                latest[record.key.decode()] = record.value
        return latest


# Personal fields of dispatch's own events on homeward.dispatch.v1 (sealed with the case's key).
DISPATCH_FIELDS: dict[str, Mapping[str, Any]] = {
    # (Its duplicate_keys stay clear: keyed HMACs, useless without the identity secret; the
    # projection drops them at the purge.)
    events.CASE_OPENED: pii.CASE_OPENED_FIELDS,
    events.CASE_TIP_ATTACHED: {"details.tip.contact": "", "details.tip.description": pii.PURGED},
    # A tip held for a case not known yet (the tip's own fields, sealed with the named case's key).
    events.TIP_PARKED: pii.TIP_FIELDS,
    # The second report held for unlinking, sealed with the key of the case it joined.
    events.CASE_REPORT_LINKED: {"details.accepted": {}},
    # A candidate's reasons quote words of the two children's descriptions (issue 16).
    events.CASE_CANDIDATE_PROPOSED: {"details.candidate.reasons": []},
    # The commander's amendment of the child's details (issue 18): the new values.
    events.CASE_DETAILS_AMENDED: pii.AMENDED_FIELDS,
}

# notify's compacted homeward.alerts.v1: the alert's restricted content and its push bodies.
ALERT_FIELDS: Mapping[str, Any] = {"report": None, "held_report": None}
BODY_FIELDS: Mapping[str, Any] = {"child": {}, "last_seen": {}, "circumstances": {},
                                  "text": pii.PURGED, "contact": ""}


async def sealed_json(keys: CaseKeys | None, case_id: str, data: dict[str, Any],
                      fields: Mapping[str, Any]) -> bytes:
    """`data` as compact JSON bytes, its `fields` sealed with the case's key (when a store)."""
    if keys is not None:
        data = await _sealed_or_redacted(keys, case_id, data, fields)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


async def opened_data(keys: CaseKeys | None, data: dict[str, Any]) -> dict[str, Any]:
    """`data` read back from a log, its sealed fields in place (markers once purged)."""
    case_id = pii.sealed_case(data)
    if case_id is None:
        return data
    return pii.unseal(data, await keys.opening_key(case_id) if keys is not None else None)


async def sealed_data(keys: CaseKeys | None, type_: str, case_id: str,
                      data: dict[str, Any]) -> dict[str, Any]:
    """`data` of a dispatch event with its personal fields sealed (unchanged for other types or
    without a key store)."""
    fields = DISPATCH_FIELDS.get(type_)
    if keys is None or fields is None:
        return data
    return await _sealed_or_redacted(keys, case_id, data, fields)


async def _sealed_or_redacted(keys: CaseKeys, case_id: str, data: dict[str, Any],
                              fields: Mapping[str, Any]) -> dict[str, Any]:
    """Sealed with the case's key; redacted (markers, no envelope) when the case was purged
    (a late writer, e.g. notify logging its alert at the purge, writes nothing personal)."""
    try:
        return pii.seal(data, fields, case_id, await keys.get_or_create(case_id))
    except CasePurged:
        return pii.redact(data, fields)


async def open_event(event: CloudEvent, keys: CaseKeys | None) -> CloudEvent:
    """`event` with its sealed fields back, or their markers when the case was purged (its
    non-personal parts are processed as always; nothing is dead-lettered for a purged key).
    Raises KeyNotVisible (transient, retried) while the key of a fresh event is not readable
    yet. An envelope that fails authentication is a PoisonMessage (dead-lettered)."""
    case_id = pii.sealed_case(event.data)
    if case_id is None:
        return event
    fresh = (datetime.now(UTC) - event.time).total_seconds() < KEY_WAIT_S
    key = await keys.opening_key(case_id, wait=fresh) if keys is not None else None
    try:
        data = pii.unseal(event.data, key)
    except (pii.InvalidTag, KeyError, ValueError) as exc:
        raise PoisonMessage(f"sealed personal fields fail authentication: {exc!r}") from exc
    return event.model_copy(update={"data": data})


async def _rewrap_main() -> tuple[int, set[str]]:
    from shared.kafka_access import KafkaAccess
    from shared.settings import Settings

    settings = Settings()
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    keys = CaseKeys(redis, KafkaAccess.from_settings(settings),
                    MasterKeys.parse(settings.pii_master_keys))
    try:
        return await keys.rewrap_all()
    finally:
        await keys.stop()
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The case-key store (issue 13).")
    parser.add_argument("--rewrap", action="store_true", required=True,
                        help="rewrap every stored case key under the first (active) master key "
                        "of HOMEWARD_PII_MASTER_KEYS: the step before an old master key is dropped")
    parser.parse_args()
    done, unknown = asyncio.run(_rewrap_main())
    print(f"rewrapped {done} case keys")
    if unknown:
        raise SystemExit(f"case keys under master keys not configured, left as they are: "
                         f"{sorted(unknown)}")
