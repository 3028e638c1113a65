"""Notify's durable timers in Redis (issue 18 §3 and §4): retries, ack deadlines and widenings,
one sorted set per timer of member -> when it is due (epoch seconds), claimed by a lease so
that one instance works each due member (services.notify.timers runs the loops)."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

__all__ = ["DurableTimers"]


class DurableTimers:
    """Members due at an epoch second, per named timer (`notify:timer:<timer>`)."""

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        # Registered here (no I/O: redis-py loads a script on its first call).
        self._lease = self.redis.register_script(self.LEASE)
        self._settle = self.redis.register_script(self.SETTLE)

    # A sorted set of member -> due epoch per timer. `due` claims a member by moving it a
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

    async def members(self, timer: str) -> list[str]:
        """Every member of `timer`, due or not (an admin's rare sweep: a subscriber taken out
        of service; bounded by the deliveries waiting, not by the subscribers)."""
        return [str(m) for m in await self.redis.zrange(f"notify:timer:{timer}", 0, -1)]

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
        at = now or time.time()
        lease = float(f"{at + lease_s:.6f}")  # exact in Redis's reply and ours
        members = await self._lease(keys=[f"notify:timer:{timer}"], args=[at, lease, limit])
        return lease, [str(m) for m in members]

    async def settle(self, timer: str, member: str, lease: float) -> None:
        await self._settle(keys=[f"notify:timer:{timer}"], args=[member, lease])
