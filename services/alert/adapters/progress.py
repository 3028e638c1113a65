"""What the operator's page shows after the 202: the leader dispatch assigned, the hubs notify
reached and whether the case was opened, linked or closed, learnt from their events (derived
state in Redis, rebuilt by replay)."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

__all__ = ["ProgressStore"]


class ProgressStore:
    """What the operator's page shows after the 202: the leader dispatch assigned and the hubs
    notify reached, learnt from their events (derived state, rebuilt by replay)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def set_leader(self, case_id: str, leader: dict[str, Any]) -> None:
        await self.redis.hset(f"alert:progress:{case_id}", "leader",
                              json.dumps(leader, ensure_ascii=False))

    async def set_opened(self, case_id: str, group: str | None = None) -> None:
        """Dispatch opened the case (`group` None), or linked its report to the case `group`
        (the same child): a case group is formed for it (issue 18: the report can no longer
        be amended through alert)."""
        await self.redis.hset(f"alert:progress:{case_id}", "opened", group or case_id)

    async def case_group(self, case_id: str) -> str | None:
        """The case whose group owns the report filed under `case_id` (itself, or the case it
        was linked to), or None before dispatch formed one (raises RedisError: the caller
        fails closed). A leader or a close recorded before `opened` was kept also counts."""
        opened, leader, closed = await self.redis.hmget(f"alert:progress:{case_id}",
                                                        ["opened", "leader", "closed"])
        if opened and opened != "1":
            return str(opened)
        return case_id if (opened or leader or closed) else None

    async def set_closed(self, case_id: str) -> None:
        await self.redis.hset(f"alert:progress:{case_id}", "closed", "1")

    async def set_own_group(self, case_id: str) -> None:
        """The report filed under `case_id` has a case group of its own again (unlinked): not
        the group it had joined, nor closed with it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"alert:progress:{case_id}", "opened", case_id)
            pipe.hdel(f"alert:progress:{case_id}", "closed")
            await pipe.execute()

    async def is_closed(self, case_id: str) -> bool:
        """Whether dispatch closed the case (raises RedisError: the caller fails closed)."""
        return bool(await self.redis.hexists(f"alert:progress:{case_id}", "closed"))

    async def add_hubs(self, hubs: dict[str, set[str]]) -> None:
        """case id -> subscriber ids of hubs reached, in one round trip (idempotent)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for case_id, ids in hubs.items():
                pipe.sadd(f"alert:progress:{case_id}:hubs", *ids)
            await pipe.execute()

    async def get(self, case_id: str) -> dict[str, Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(f"alert:progress:{case_id}", "leader")
            pipe.scard(f"alert:progress:{case_id}:hubs")
            leader, hubs = await pipe.execute()
        return {"leader": json.loads(leader) if leader else None, "hubs_pushed": int(hubs)}
