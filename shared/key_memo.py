"""A process's memo of case data keys (shared.casekeys, issue 13): a key read or made is kept
for `memo_s` seconds, so the ten or so reads one report makes in notify (three in dispatch)
are one Redis round trip and one unwrap instead of ten (Redis MONITOR during the flow
benchmark, 2026-12-02).

A purge takes precedence: once the memo holds a case as purged, no key replaces it while that
lasts, not even one from a read that was under way when the purge was made or learnt. Misses
are never memoized (the caller decides what to keep). Pure memory, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["MEMO_MAX", "MEMO_S", "PURGED", "KeyMemo"]

MEMO_S = 2.0  # how long a key read or made is kept (seconds)
MEMO_MAX = 10_000  # cases memoized at most; past that the expired go, then all
PURGED: Final = "purged"


class KeyMemo:
    """case id -> its data key, or PURGED, for `memo_s` seconds of `clock` (monotonic seconds);
    `memo_s` 0 keeps nothing."""

    def __init__(self, memo_s: float = MEMO_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.memo_s = memo_s
        self._clock = clock
        # case id -> (the clock's time it expires, the data key or PURGED)
        self._held: dict[str, tuple[float, bytes | str]] = {}

    def recall(self, case_id: str) -> bytes | Literal["purged"] | None:
        """The case's memoized key, PURGED, or None when nothing is held (or it expired)."""
        held = self._held.get(case_id)
        if held is None:
            return None
        if held[0] <= self._clock():
            del self._held[case_id]
            return None
        return held[1] if isinstance(held[1], bytes) else PURGED

    def keep(self, case_id: str, key: bytes) -> None:
        """Memoize the case's key, unless the case is held as purged."""
        if self.recall(case_id) != PURGED:
            self._put(case_id, key)

    def mark_purged(self, case_id: str) -> None:
        """The case was purged (made or learnt here): held as PURGED from now for `memo_s`."""
        self._put(case_id, PURGED)

    def _put(self, case_id: str, value: bytes | str) -> None:
        if self.memo_s <= 0:
            return
        now = self._clock()
        if len(self._held) >= MEMO_MAX:
            self._held = {c: held for c, held in self._held.items() if held[0] > now}
            if len(self._held) >= MEMO_MAX:
                self._held.clear()
        self._held[case_id] = (now + self.memo_s, value)
