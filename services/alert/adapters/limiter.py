"""The Redis rate limiter for public tips (issue 12): fixed-window buckets counted together,
failing closed."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["Bucket", "LimiterUnavailable", "RateLimiter"]

log = logging.getLogger(__name__)


class LimiterUnavailable(Exception):
    """Redis could not count: the request is refused (503), never let through unlimited."""


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int
    window_s: int


class RateLimiter:
    """Fixed-window counters in Redis, several buckets checked and counted in one script: a
    request refused by any bucket counts in none (a flood refused per client never uses up
    the buckets everyone shares). Fails closed: when Redis cannot count, LimiterUnavailable."""

    # KEYS: one counter per bucket; ARGV: limit, ttl of each. Returns the 1-based index of the
    # first full bucket, or 0 after counting the request in every bucket.
    HIT = """
    for i, key in ipairs(KEYS) do
        if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
            return i
        end
    end
    for i, key in ipairs(KEYS) do
        redis.call('INCR', key)
        redis.call('EXPIRE', key, ARGV[2 * i])
    end
    return 0
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._hit = redis.register_script(self.HIT)

    async def hit_all(self, buckets: Sequence[Bucket]) -> tuple[Bucket, int] | None:
        """None when allowed (counted in every bucket); else the full bucket and the seconds
        until its window resets (Retry-After). Raises LimiterUnavailable."""
        now = time.time()
        keys, args = [], []
        for b in buckets:
            keys.append(f"{self.prefix}:{b.name}:{int(now // b.window_s)}")
            args += [b.limit, b.window_s + 1]
        try:
            full = int(await self._hit(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable (%r): refusing", exc)
            raise LimiterUnavailable(str(exc)) from exc
        if not full:
            return None
        bucket = buckets[full - 1]
        window = int(now // bucket.window_s)
        return bucket, max(1, int((window + 1) * bucket.window_s - now))
