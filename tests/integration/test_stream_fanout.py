"""shared.streams.StreamFanout on a real Redis: one reader for every follower, each follower
gets exactly the entries after its start, in order, once; a follower that falls behind is
ended (it resumes by Last-Event-ID) without holding the others back."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from deploy.local.stack import RedisServer
from shared.settings import Settings
from shared.streams import READER_NAME, Overflow, StreamFanout, make_fanout

KEY = "test:fanout"


async def collect(fanout: StreamFanout, after: str | None, want: int,
                  started: asyncio.Event | None = None) -> list[int]:
    got: list[int] = []
    async with fanout.follow(KEY, after) as entries:
        if started is not None:
            started.set()
        async for _eid, fields in entries:
            got.append(int(fields["n"]))
            if len(got) == want:
                break
    return got


async def test_every_follower_gets_its_entries_once_in_order(
    redis_server: RedisServer, redis: Redis,
) -> None:
    fanout = make_fanout(Settings(redis_url=redis_server.url), block_ms=200)
    await fanout.start()
    try:
        ids = [str(await redis.xadd(KEY, {"n": str(i)})) for i in range(50)]  # the backlog
        live_started = asyncio.Event()
        followers = [
            asyncio.create_task(collect(fanout, "0-0", 150)),
            asyncio.create_task(collect(fanout, ids[24], 125)),
            asyncio.create_task(collect(fanout, None, 100, live_started)),
        ]
        await asyncio.wait_for(live_started.wait(), timeout=10)
        for i in range(50, 150):  # written while they follow
            await redis.xadd(KEY, {"n": str(i)})
            if i % 10 == 0:
                await asyncio.sleep(0.05)
        results = await asyncio.wait_for(asyncio.gather(*followers), timeout=30)
        assert results == [list(range(150)), list(range(25, 150)), list(range(50, 150))]
        assert fanout.followers == {} and fanout.positions == {}  # nothing left behind
    finally:
        await fanout.stop()


async def test_one_reader_connection_for_many_followers(
    redis_server: RedisServer, redis: Redis,
) -> None:
    fanout = make_fanout(Settings(redis_url=redis_server.url), block_ms=500)
    await fanout.start()
    try:
        followers = [asyncio.create_task(collect(fanout, None, 1)) for _ in range(30)]
        await asyncio.sleep(1.5)
        blocked = [c for c in await redis.client_list()
                   if c.get("cmd") == "xread" or c.get("name") == READER_NAME]
        assert len(blocked) == 1, blocked
        await redis.xadd(KEY, {"n": "7"})
        assert await asyncio.wait_for(asyncio.gather(*followers), timeout=10) == [[7]] * 30
    finally:
        await fanout.stop()


async def test_a_follower_too_far_behind_is_ended_and_others_continue(
    redis_server: RedisServer, redis: Redis,
) -> None:
    settings = Settings(redis_url=redis_server.url)
    fanout = make_fanout(settings, block_ms=200)
    await fanout.start()
    try:
        fanout.queue_size = 5  # the slow follower's queue only
        async with fanout.follow(KEY, None) as slow:
            fanout.queue_size = 1000
            fast = asyncio.create_task(collect(fanout, None, 20))
            await asyncio.sleep(0.5)
            for i in range(20):
                await redis.xadd(KEY, {"n": str(i)})
                await asyncio.sleep(0.01)
            assert await asyncio.wait_for(fast, timeout=10) == list(range(20))
            seen = []
            with pytest.raises(Overflow):
                async for _eid, fields in slow:
                    seen.append(int(fields["n"]))
            assert seen == list(range(5))  # what fitted its queue; the rest by Last-Event-ID
    finally:
        await fanout.stop()
