"""The case-key store on a real Kafka and Redis (shared/casekeys.py, issue 13 §2)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from shared import pii, topics
from shared.casekeys import (
    KEY_WAIT_S,
    PREFIX,
    CaseKeys,
    CasePurged,
    KeyNotVisible,
    open_event,
    opened_data,
)
from shared.events import TIP_RECEIVED, CloudEvent
from shared.faults import is_transient
from shared.kafka import ensure_topics
from shared.pii import MasterKeys
from shared.settings import Settings

pytestmark = pytest.mark.integration


def case_id() -> str:
    return f"140403-20261123-{uuid.uuid4().hex[:6].upper()}"


async def test_keys_survive_a_flush_and_a_purge_is_for_good(settings: Settings,
                                                              redis: Redis) -> None:
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    keys = CaseKeys(redis, settings.kafka_bootstrap, master)
    kept, purged = case_id(), case_id()
    try:
        key = await keys.get_or_create(kept)
        assert await keys.get_or_create(kept) == key
        gone = await keys.get_or_create(purged)
        # Redis holds the key wrapped, never in clear.
        cached = await redis.get(PREFIX + kept)
        assert pii.b64e(key) not in cached and json.loads(cached)["kid"] == master.active
        sealed = pii.seal({"contact": "13912345678"}, pii.TIP_FIELDS, purged, gone)

        await keys.purge(purged)
        assert await keys.get(purged) is None
        with pytest.raises(CasePurged):
            await keys.get_or_create(purged)

        await redis.flushdb()  # a lost cache comes back from the topic, the purge with it
        assert await keys.get(kept) == key
        assert await keys.get(purged) is None
        with pytest.raises(CasePurged):
            await keys.get_or_create(purged)
        assert pii.unseal(sealed, await keys.get(purged))["contact"] == ""
    finally:
        await keys.stop()


async def test_a_rotated_master_key_rewraps_on_read(settings: Settings, redis: Redis) -> None:
    old = MasterKeys.parse(settings.pii_master_keys)
    case = case_id()
    first = CaseKeys(redis, settings.kafka_bootstrap, old)
    key = await first.get_or_create(case)
    await first.stop()
    new_kid = f"rotated-{uuid.uuid4().hex[:4]}"
    rotated = MasterKeys.parse(f"{MasterKeys.generate(new_kid)},"
                               f"{old.active}:{pii.b64e(old.keys[old.active])}")
    second = CaseKeys(redis, settings.kafka_bootstrap, rotated)
    try:
        assert await second.get(case) == key
        assert json.loads(await redis.get(PREFIX + case))["kid"] == new_kid
        await redis.flushdb()  # the rewrapped record is the topic's latest
        assert await second.get(case) == key
        assert json.loads(await redis.get(PREFIX + case))["kid"] == new_kid
    finally:
        await second.stop()
        await _rotate_back(settings, redis, rotated)


async def test_a_key_on_the_topic_but_in_no_cache_is_never_taken_for_a_purge(
    settings: Settings, redis: Redis
) -> None:
    """Alert made a case's key through its outbox while Redis refused to cache it (out of
    memory): a reader that loaded the topic a moment before must still open the report with
    that key — not read it as purged, not make a second key for the case."""
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    keys = CaseKeys(redis, settings.kafka_bootstrap, master, reload_s=3600)
    case, unknown = case_id(), case_id()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await keys.load()  # just loaded: a plain miss is not read again for an hour
        key, record = keys.fresh(case)  # alert's key; its `remember` failed
        await producer.send_and_wait(topics.CASE_KEYS, record, key=case.encode())
        sealed = pii.seal({"contact": "13912345678", "case_id": case}, pii.TIP_FIELDS, case, key)
        assert await keys.get(case) is None  # the throttled lookup misses...
        assert await keys.find(case) == key  # ...not alert's before it would make a key
        await redis.delete(PREFIX + case)
        assert (await opened_data(keys, sealed))["contact"] == "13912345678"  # ...nor a reader
        assert await keys.get_or_create(case) == key  # no second key for the case

        await keys.load()
        ahead = keys.fresh(unknown)[0]  # a writer whose key record is still on its way
        tip = CloudEvent(type=TIP_RECEIVED, source="/test", subject=unknown,
                         data=pii.seal({"contact": "1"}, pii.TIP_FIELDS, unknown, ahead))
        with pytest.raises(KeyNotVisible) as missing:
            await open_event(tip, keys)
        assert is_transient(missing.value)  # retried from the same offset, never dead-lettered
        # The same event long after (a replay): its key is lost, it reads as purged.
        old = tip.model_copy(update={"time": tip.time - timedelta(seconds=KEY_WAIT_S + 1)})
        assert (await open_event(old, keys)).data["contact"] == ""
        assert await keys.get_or_create(unknown) != ahead  # (it never came: a key is made)
    finally:
        await producer.stop()
        await keys.stop()


async def test_rotation_rewraps_every_stored_key_then_the_old_master_key_goes(
    settings: Settings, redis: Redis
) -> None:
    """`python -m shared.casekeys --rewrap` (rewrap_all): after it, a key store without the old
    master key still opens every case, including ones nobody read since the rotation."""
    old = MasterKeys.parse(settings.pii_master_keys)
    cases = [case_id(), case_id()]
    before = CaseKeys(redis, settings.kafka_bootstrap, old)
    made = {c: await before.get_or_create(c) for c in cases}
    await before.stop()
    new = MasterKeys.generate(f"rotated-{uuid.uuid4().hex[:4]}")
    both = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(
        f"{new},{old.active}:{pii.b64e(old.keys[old.active])}"))
    try:
        done, _ = await both.rewrap_all()  # (other tests' keys may name keys not given here)
        assert done >= len(cases)
        assert (await both.rewrap_all())[0] == 0  # nothing left under the old key
    finally:
        await both.stop()
    await redis.flushdb()
    after = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(new))  # old key dropped
    try:
        assert {c: await after.get(c) for c in cases} == made
    finally:
        await after.stop()
        await _rotate_back(settings, redis, MasterKeys.parse(f"{new},{old.active}:"
                                                             f"{pii.b64e(old.keys[old.active])}"))


async def _rotate_back(settings: Settings, redis: Redis, rotated: MasterKeys) -> None:
    """The topic and Redis are the whole session's: every key this test rewrapped goes back
    under the environment's master key, or every later service would meet a master key it is
    not given (and refuse to start)."""
    old = MasterKeys.parse(settings.pii_master_keys)
    back = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(",".join(
        [f"{old.active}:{pii.b64e(old.keys[old.active])}",
         *(f"{kid}:{pii.b64e(k)}" for kid, k in rotated.keys.items() if kid != old.active)])))
    try:
        await back.rewrap_all()
    finally:
        await back.stop()
    await redis.flushdb()


async def test_a_master_key_missing_is_retried_never_read_as_purged(
    settings: Settings, redis: Redis
) -> None:
    """A deployment that lacks the master key a case key was wrapped with: opening the case's
    data is a transient fault (retried, readiness 503) until the key is configured again."""
    master = MasterKeys.parse(settings.pii_master_keys)
    case = case_id()
    writer = CaseKeys(redis, settings.kafka_bootstrap, master)
    key = await writer.get_or_create(case)
    await writer.stop()
    sealed = pii.seal({"contact": "13912345678"}, pii.TIP_FIELDS, case, key)
    await redis.flushdb()
    lacking = CaseKeys(redis, settings.kafka_bootstrap,
                       MasterKeys.parse(MasterKeys.generate("other")))
    try:
        with pytest.raises(pii.KeyUnavailable) as missing:
            await opened_data(lacking, sealed)  # (fresh or not: the key is there, not readable)
        assert is_transient(missing.value)
        assert not await lacking.purged(case)
    finally:
        await lacking.stop()
    restored = CaseKeys(redis, settings.kafka_bootstrap, master)
    try:
        assert (await opened_data(restored, sealed))["contact"] == "13912345678"
    finally:
        await restored.stop()


async def test_a_cached_key_is_one_round_trip(settings: Settings, redis: Redis,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lookup of a key the cache holds is one MGET (the loaded mark and the record at one
    instant), never EXISTS then GET; a lost cache is still refilled before a miss is trusted."""
    await ensure_topics(settings.kafka_bootstrap)
    keys = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(settings.pii_master_keys))
    known = case_id()
    sent: list[str] = []
    execute = redis.execute_command

    async def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]).upper())
        return await execute(*args, **options)

    try:
        key = await keys.get_or_create(known)
        monkeypatch.setattr(redis, "execute_command", counting)
        assert await keys.get(known) == key
        assert not await keys.purged(known)
        assert await keys.get_or_create(known) == key
        assert await keys.opening_key(known) == key
        assert sent == ["MGET"] * 5, sent  # get_or_create reads, then returns get()
        await redis.flushdb()  # lost: refilled from the topic, then found
        sent.clear()
        assert await keys.get(known) == key
        assert sent[0] == "MGET" and "EXISTS" in sent, sent
    finally:
        await keys.stop()
