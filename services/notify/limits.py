"""Rate limit of the public verification lookups (issue 17 §2): fixed-window counters in Redis,
per client, the approach of the alert service's tip limiter. Fails closed: when Redis is away
the lookup could not be answered anyway, and an unbounded scan of codes must not get through."""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class LimiterUnavailable(RuntimeError):
    pass


class WindowLimiter:
    def __init__(self, redis: Any, prefix: str, limit: int, window_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_s = window_s

    async def hit(self, client: str) -> int:
        """0 when allowed; otherwise the seconds until the window resets (Retry-After).
        Raises LimiterUnavailable when Redis cannot count."""
        window = int(time.time() // self.window_s)
        key = f"{self.prefix}:{client}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window_s + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("verification limiter unavailable (%r): refusing", exc)
            raise LimiterUnavailable(str(exc)) from exc
        if int(count) <= self.limit:
            return 0
        return max(1, int((window + 1) * self.window_s - time.time()))
