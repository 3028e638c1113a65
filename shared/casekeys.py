"""The case-key store (issue 13 §2): one data key per case, wrapped by a master key.

Records of record: the compacted topic `homeward.case-keys.v1` (shared.topics.CASE_KEYS), keyed
by case id, value `{"kid", "n", "ct"}` (shared.pii.MasterKeys.wrap). Cache: Redis
`pii:casekey:<case id>` holding the same wrapped JSON (Redis never holds a key in clear), or
`purged` once the case was purged. Purging writes a tombstone (null value) to the topic and the
`purged` sentinel to Redis; compaction then removes every copy of the key from the log.

A Redis that lost its cache is refilled from the topic (`load`), at start when empty and on a
miss at most every `reload_s`; a purged case has no record there, so it stays unreadable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from shared import events, pii, topics
from shared.events import CloudEvent, PoisonMessage
from shared.kafka import Bootstrap, client_options
from shared.pii import MasterKeys, new_data_key

log = logging.getLogger(__name__)

PREFIX = "pii:casekey:"
PURGED = "purged"
LOADED = "pii:casekeys:loaded"  # set once the cache was filled from the topic


class CasePurged(LookupError):
    """The case was purged: no key is made for it again."""


class CaseKeys:
    """get / get_or_create / purge of per-case data keys; see the module docstring."""

    def __init__(self, redis: Redis, bootstrap: Bootstrap, master: MasterKeys,
                 reload_s: float = 5.0) -> None:
        """`bootstrap`: the servers, or a KafkaAccess with this service's principal (SASL)."""
        self.redis = redis
        self.bootstrap = bootstrap
        self.master = master
        self.reload_s = reload_s
        self._producer: AIOKafkaProducer | None = None
        self._loaded_at = 0.0
        self._loading = asyncio.Lock()

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

    def fresh(self, case_id: str) -> tuple[bytes, bytes]:
        """A new data key for a new case and its record for the topic (the wrapped key), for a
        writer that makes it durable itself (alert: through its outbox, before the report, so
        intake needs neither Kafka nor Redis). Cache it with `remember`."""
        key = new_data_key()
        return key, json.dumps(self.master.wrap(case_id, key)).encode()

    async def remember(self, case_id: str, record: bytes) -> bytes | None:
        """Cache a record made by `fresh` (unless the case has one already); returns the data
        key the case holds (another writer's, if it was first), None if purged."""
        if await self.redis.set(PREFIX + case_id, record.decode(), nx=True):
            return self.master.unwrap(case_id, json.loads(record))
        return await self.get(case_id)

    async def purged(self, case_id: str) -> bool:
        await self._fill_if_lost()
        return await self._cached(case_id) == PURGED

    async def get(self, case_id: str) -> bytes | None:
        """The case's data key, or None when it was purged (or never made). A miss reads the
        topic again (at most every `reload_s`): the key may have been made by another process
        whose cache is another Redis."""
        await self._fill_if_lost()
        raw = await self._cached(case_id)
        if raw is None and time.monotonic() - self._loaded_at > self.reload_s:
            await self.load()
            raw = await self._cached(case_id)
        if raw is None or raw == PURGED:
            return None
        wrapped = json.loads(raw)
        key = self.master.unwrap(case_id, wrapped)
        if wrapped["kid"] != self.master.active:  # master-key rotation: rewrap on read
            rewrapped = json.dumps(self.master.wrap(case_id, key))
            await self._produce(case_id, rewrapped.encode())
            await self.redis.set(PREFIX + case_id, rewrapped)
        return key

    async def get_or_create(self, case_id: str) -> bytes:
        """The case's data key, made (durably on the topic, before it seals anything) when the
        case has none. Raises CasePurged for a purged case."""
        await self._fill_if_lost()
        raw = await self._cached(case_id)
        if raw == PURGED:
            raise CasePurged(case_id)
        if raw is not None:
            found = await self.get(case_id)
            assert found is not None
            return found
        key = new_data_key()
        wrapped = json.dumps(self.master.wrap(case_id, key))
        if await self.redis.set(PREFIX + case_id, wrapped, nx=True):
            await self._produce(case_id, wrapped.encode())
            return key
        found = await self.get(case_id)  # another writer made it first
        if found is None:
            raise CasePurged(case_id)
        return found

    async def purge(self, case_id: str) -> None:
        """Forget the case's key: tombstone on the topic, `purged` in Redis. Idempotent."""
        await self._produce(case_id, None)
        await self.redis.set(PREFIX + case_id, PURGED)

    async def load(self) -> int:
        """Refill the Redis cache from the compacted topic (latest record per case; tombstones
        become `purged`). Returns the number of records read."""
        self._loaded_at = time.monotonic()
        latest: dict[str, bytes | None] = {}
        parts = await (await self._producer_started()).partitions_for(topics.CASE_KEYS)
        consumer = AIOKafkaConsumer(**client_options(self.bootstrap), enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            assigned = [TopicPartition(topics.CASE_KEYS, p) for p in sorted(parts)]
            consumer.assign(assigned)
            ends = await consumer.end_offsets(assigned)
            await consumer.seek_to_beginning(*assigned)
            pending = {tp for tp in assigned if ends[tp] > 0}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        if record.key is not None:
                            latest[record.key.decode()] = record.value
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        async with self.redis.pipeline(transaction=False) as pipe:
            for case_id, value in latest.items():
                pipe.set(PREFIX + case_id, PURGED if value is None else value.decode())
            pipe.set(LOADED, "1")
            await pipe.execute()
        return len(latest)


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
    # The commander's amendment of the child's details (issue 18): the new values.
    events.CASE_DETAILS_AMENDED: {"details.amended": {}},
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
    return pii.unseal(data, await keys.get(case_id) if keys is not None else None)


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
    An envelope that fails authentication is a PoisonMessage (dead-lettered)."""
    case_id = pii.sealed_case(event.data)
    if case_id is None:
        return event
    key = await keys.get(case_id) if keys is not None else None
    try:
        data = pii.unseal(event.data, key)
    except (pii.InvalidTag, KeyError, ValueError) as exc:
        raise PoisonMessage(f"sealed personal fields fail authentication: {exc!r}") from exc
    return event.model_copy(update={"data": data})
