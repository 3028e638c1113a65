"""The delivery workers' batch helpers (services.notify.delivery): SingleFlight shares one read
among concurrent callers and never serves a finished read again; Priority keeps the public lane
waiting while restricted work is on, and no longer than its hold."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.delivery import Priority, SingleFlight


@pytest.mark.parametrize("callers", [1, 2, 50])
async def test_concurrent_reads_of_one_key_share_one_request(callers: int) -> None:
    reads: list[str] = []
    release = asyncio.Event()

    async def read(key: str) -> str:
        reads.append(key)
        await release.wait()
        return f"value of {key}"

    flight = SingleFlight(read)
    waiting = [asyncio.ensure_future(flight.get("a")) for _ in range(callers)]
    other = asyncio.ensure_future(flight.get("b"))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["value of a"] * callers
    assert await other == "value of b"
    assert sorted(reads) == ["a", "b"]


async def test_a_read_asked_for_after_the_last_ended_is_a_new_one() -> None:
    values = iter(["first", "second"])

    async def read(key: str) -> str:
        await asyncio.sleep(0)
        return next(values)

    flight = SingleFlight(read)
    assert await flight.get("a") == "first"
    assert await flight.get("a") == "second"  # e.g. an alert cancelled meanwhile is seen


async def test_a_failed_read_fails_every_caller_and_is_not_kept() -> None:
    calls = 0

    async def read(key: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("redis went away")
        return "ok"

    flight = SingleFlight(read)
    results = await asyncio.gather(flight.get("a"), flight.get("a"), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert await flight.get("a") == "ok"


async def test_public_work_waits_while_restricted_work_is_on() -> None:
    priority = Priority(hold_s=3600)
    order: list[str] = []

    async def public() -> None:
        await priority.turn()
        order.append("public")

    await priority.turn()  # nothing urgent: at once
    with priority.first():
        with priority.first():  # two restricted batches at once
            waiting = asyncio.ensure_future(public())
            await asyncio.sleep(0)
            order.append("restricted 1")
        await asyncio.sleep(0)
        order.append("restricted 2")
        assert not waiting.done()
    await waiting
    assert order == ["restricted 1", "restricted 2", "public"]


async def test_public_work_waits_no_longer_than_the_hold() -> None:
    priority = Priority(hold_s=0.0)  # a hub slow to answer does not hold the public lane
    with priority.first():
        await asyncio.wait_for(priority.turn(), timeout=5)
        assert priority.urgent == 1
    assert priority.urgent == 0 and priority.clear.is_set()
