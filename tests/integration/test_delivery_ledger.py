"""The delivery ledger's claim on a real Redis (services/notify/ledger.py, issue 18 §2)."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from services.notify.ledger import DeliveryLedger

pytestmark = pytest.mark.integration


async def script_calls(redis: Redis) -> int:
    """SCRIPT subcommands (EXISTS, LOAD, FLUSH) Redis has served so far (Redis 7 counts each
    as `cmdstat_script|<sub>`, older ones all as `cmdstat_script`)."""
    stats = await redis.info("commandstats")
    return sum(int(v.get("calls", 0)) for k, v in stats.items()
               if k == "script" or k.startswith(("script|", "cmdstat_script")))


async def test_a_batch_is_claimed_in_one_round_trip_and_again_after_redis_lost_the_script(
        redis: Redis) -> None:
    """A batch of claims is EVALSHAs only: no SCRIPT EXISTS before each batch (redis-py's
    Script in a pipeline asked for it every time). A Redis that lost the script (restarted,
    SCRIPT FLUSH) is given it again and the batch is claimed as if nothing happened; a second
    claim finds what the first made."""
    ledger = DeliveryLedger(redis)
    case = f"140403-20261202-{uuid.uuid4().hex[:6].upper()}"
    first = {f"d-{uuid.uuid4().hex}": {"case_id": case, "recipient": f"S{i}"} for i in range(5)}
    await ledger.claim_many(first)  # the script is loaded here once
    before = await script_calls(redis)
    again = await ledger.claim_many(first)
    assert again == {d: ("pending", 0) for d in first}
    assert await script_calls(redis) == before

    await redis.script_flush()
    second = {f"d-{uuid.uuid4().hex}": {"case_id": case, "recipient": f"T{i}"} for i in range(3)}
    assert await ledger.claim_many(second) == {d: (None, 0) for d in second}
    assert await ledger.claim_many(second) == {d: ("pending", 0) for d in second}
    records = await ledger.get_many(list(second))
    assert [r["state"] for r in records] == ["pending"] * 3
    assert {r["recipient"] for r in records} == {"T0", "T1", "T2"}
    assert set(await redis.smembers(f"notify:case-deliveries:{case}")) == {*first, *second}
