"""The case-key store on a real Kafka and Redis (shared/casekeys.py, issue 13 §2)."""

from __future__ import annotations

import asyncio
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
from shared.events import CASE_PURGED, TIP_RECEIVED, CloudEvent
from shared.faults import is_transient
from shared.kafka import ensure_topics
from shared.pii import MasterKeys
from shared.settings import Settings

pytestmark = pytest.mark.integration

# The tests of the store itself read Redis and the topic every time (memo_s=0); the in-process
# memo has tests of its own at the end.


def case_id() -> str:
    return f"140403-20261123-{uuid.uuid4().hex[:6].upper()}"


async def test_keys_survive_a_flush_and_a_purge_is_for_good(settings: Settings,
                                                              redis: Redis) -> None:
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    keys = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=master)
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
    first = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=old)
    key = await first.get_or_create(case)
    await first.stop()
    new_kid = f"rotated-{uuid.uuid4().hex[:4]}"
    rotated = MasterKeys.parse(f"{MasterKeys.generate(new_kid)},"
                               f"{old.active}:{pii.b64e(old.keys[old.active])}")
    second = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=rotated)
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
    keys = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=master, reload_s=3600)
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
    before = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=old)
    made = {c: await before.get_or_create(c) for c in cases}
    await before.stop()
    new = MasterKeys.generate(f"rotated-{uuid.uuid4().hex[:4]}")
    both = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=MasterKeys.parse(
        f"{new},{old.active}:{pii.b64e(old.keys[old.active])}"))
    try:
        done, _ = await both.rewrap_all()  # (other tests' keys may name keys not given here)
        assert done >= len(cases)
        assert (await both.rewrap_all())[0] == 0  # nothing left under the old key
    finally:
        await both.stop()
    await redis.flushdb()
    after = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0,
                     master=MasterKeys.parse(new))  # old key dropped
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
    back = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=MasterKeys.parse(",".join(
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
    writer = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=master)
    key = await writer.get_or_create(case)
    await writer.stop()
    sealed = pii.seal({"contact": "13912345678"}, pii.TIP_FIELDS, case, key)
    await redis.flushdb()
    lacking = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0,
                       master=MasterKeys.parse(MasterKeys.generate("other")))
    try:
        with pytest.raises(pii.KeyUnavailable) as missing:
            await opened_data(lacking, sealed)  # (fresh or not: the key is there, not readable)
        assert is_transient(missing.value)
        assert not await lacking.purged(case)
    finally:
        await lacking.stop()
    restored = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0, master=master)
    try:
        assert (await opened_data(restored, sealed))["contact"] == "13912345678"
    finally:
        await restored.stop()


async def test_a_cached_key_is_one_round_trip(settings: Settings, redis: Redis,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lookup of a key the cache holds is one MGET (the loaded mark and the record at one
    instant), never EXISTS then GET; a lost cache is still refilled before a miss is trusted."""
    await ensure_topics(settings.kafka_bootstrap)
    keys = CaseKeys(redis, settings.kafka_bootstrap, memo_s=0,
                    master=MasterKeys.parse(settings.pii_master_keys))
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


# --- the in-process memo (module docstring: `memo_s`) -------------------------------------------

def counted(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands `redis` sends from now on, by name."""
    sent: list[str] = []
    execute = redis.execute_command

    async def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]).upper())
        return await execute(*args, **options)

    monkeypatch.setattr(redis, "execute_command", counting)
    return sent


class Clock:
    """Monotonic seconds the test moves (the memo's clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_read_or_made_is_kept_here_for_memo_s_then_read_again(
        settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within `memo_s` every read of a key this process made or read is answered without
    Redis (the ten reads one report makes in notify); after it, Redis is asked again and
    answers what it holds then (a purge made by another process)."""
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    clock = Clock()
    here = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=2.0, clock=clock)
    other = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=0)
    made, read = case_id(), case_id()
    try:
        key = await here.get_or_create(made)
        elsewhere = await other.get_or_create(read)
        sent = counted(redis, monkeypatch)
        for _ in range(10):
            assert await here.get(made) == key
            assert await here.get_or_create(made) == key
            assert await here.opening_key(made, wait=True) == key
        assert sent == []
        assert await here.get(read) == elsewhere  # read once from Redis, then kept
        assert await here.opening_key(read) == elsewhere
        assert sent == ["MGET"], sent
        await other.purge(read)  # another process: seen here once the memo has expired
        sent.clear()
        clock.now += 1.9
        assert await here.get(read) == elsewhere
        assert sent == []
        clock.now += 0.2
        assert await here.get(read) is None
        with pytest.raises(CasePurged):
            await here.get_or_create(read)
        assert sent and all(c == "MGET" for c in sent), sent
    finally:
        await here.stop()
        await other.stop()


async def test_a_purge_made_or_learnt_here_ends_the_memo_at_once(
        settings: Settings, redis: Redis) -> None:
    """`purge` here: the key is gone here at once, not `memo_s` later. `learnt_purged`
    (homeward.case.purged.v1, published just before dispatch deletes the key): not served
    here again though Redis still holds it, not even by a read that was under way."""
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    here = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=3600)
    other = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=0)
    purged_here, learnt, racing = case_id(), case_id(), case_id()
    try:
        await here.get_or_create(purged_here)
        await here.purge(purged_here)
        assert await here.get(purged_here) is None
        assert await here.opening_key(purged_here) is None
        with pytest.raises(CasePurged):
            await here.get_or_create(purged_here)

        assert await here.get_or_create(learnt) is not None
        # The event came (alert's and notify's consumers); Redis still holds the key.
        await here.on_case_event(CloudEvent(type=CASE_PURGED, source="/homeward/dispatch",
                                            subject=learnt, data={"case_id": learnt}))
        assert await other.get(learnt) is not None
        assert await here.get(learnt) is None
        with pytest.raises(CasePurged):
            await here.get_or_create(learnt)

        key = await other.get_or_create(racing)
        reading = asyncio.create_task(here.get(racing))
        await asyncio.sleep(0)  # the read is under way (its MGET sent)
        here.learnt_purged(racing)
        assert await reading == key  # read before the purge was learnt
        assert await here.get(racing) is None  # but not memoized over it
    finally:
        await here.stop()
        await other.stop()


async def test_a_miss_is_never_memoized(settings: Settings, redis: Redis) -> None:
    """A key not visible yet (its record on its way) is asked for again on the next read:
    the miss is not kept, so the key is found the moment it is there."""
    await ensure_topics(settings.kafka_bootstrap)
    master = MasterKeys.parse(settings.pii_master_keys)
    here = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=3600)
    other = CaseKeys(redis, settings.kafka_bootstrap, master, memo_s=0)
    late = case_id()
    try:
        with pytest.raises(KeyNotVisible):
            await here.opening_key(late, wait=True)
        key = await other.get_or_create(late)
        assert await here.opening_key(late, wait=True) == key
    finally:
        await here.stop()
        await other.stop()
