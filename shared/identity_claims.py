"""Atomic claims on child-identity keys in Redis (shared/identity.py makes the keys): the first
report of a child claims its keys for its case (dispatch) or alert (notify); a report whose key
is already claimed learns, in the same step, whose child it is. One Lua script, so two reports
of one child handled at the same moment by different consumers can never both claim it
(issue 19 §1: decide the link atomically, not by read-then-write)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis

__all__ = ["IdentityClaims", "claimant_record"]

T = TypeVar("T")

# KEYS: the identity keys; ARGV[1]: the claimant, ARGV[2]: time to live (s).
# Returns {owner, index of the key it was found under (0: none, all claimed now)}. Keys not yet
# claimed are claimed for the owner found, so a later report carrying only one of them links
# to the same child.
_CLAIM = """
local owner, at = nil, 0
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v then owner, at = v, i break end
end
if not owner then owner = ARGV[1] end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, owner, 'NX', 'EX', tonumber(ARGV[2]))
end
return {owner, at}
"""

# KEYS: identity keys; ARGV[1]: their owner now, ARGV[2]: the new owner, ARGV[3]: time to live.
# Only the keys `from` holds change hands.
_HAND_OVER = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('SET', key, ARGV[2], 'EX', tonumber(ARGV[3]))
  end
end
return 0
"""


class IdentityClaims:
    """`<prefix><key>` -> the id that first claimed the child, for `ttl_s` seconds."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis: Any = redis
        self.prefix = prefix
        self.ttl_s = max(int(ttl_s), 1)
        self._script = self.redis.register_script(_CLAIM)
        self._hand_over = self.redis.register_script(_HAND_OVER)

    async def claim(self, keys: list[str], claimant: str) -> tuple[str, int | None]:
        """The owner of the child and the index in `keys` of the key that matched (None when
        `claimant` is the first and now owns every key)."""
        if not keys:
            return claimant, None
        owner, at = await self._script(keys=[self.prefix + k for k in keys],
                                        args=[claimant, self.ttl_s])
        return str(owner), (int(at) - 1 if int(at) else None)

    async def take_over(self, keys: list[str], claimant: str) -> None:
        """The owner is no longer a live search (found, closed) or is elsewhere: a new report of
        the child starts its own and later reports join it."""
        if keys:
            async with self.redis.pipeline(transaction=True) as pipe:
                for k in keys:
                    pipe.set(self.prefix + k, claimant, ex=self.ttl_s)
                await pipe.execute()

    async def hand_over(self, keys: list[str], owner: str, claimant: str) -> None:
        """Those of `keys` that `owner` holds now belong to `claimant`: a report whose evidence
        was contradicted (shared.identity.contradiction) is another child, and the keys its
        claim gave the owner are its own."""
        if keys:
            await self._hand_over(keys=[self.prefix + k for k in keys],
                                  args=[owner, claimant, self.ttl_s])

    async def restore(self, keys: list[str], owner: str) -> None:
        """Claim for `owner` where nobody has (rebuilding Redis from the topics)."""
        if keys:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.set(self.prefix + k, owner, nx=True, ex=self.ttl_s)
                await pipe.execute()


async def claimant_record(read: Callable[[], Awaitable[T | None]], within_s: float,
                          every_s: float = 0.05) -> T | None:
    """The record of the claimant a claim named (dispatch's case, notify's alert): the
    consumer that claimed the child may still be storing it, so `read` is tried every
    `every_s` seconds for up to `within_s`; None if it never appears."""
    deadline = time.monotonic() + within_s
    while True:
        found = await read()
        if found is not None or time.monotonic() > deadline:
            return found
        await asyncio.sleep(every_s)
