"""The process's memo of case keys (shared/key_memo.py): held for memo_s, a purge first."""

from __future__ import annotations

import pytest

from shared import key_memo
from shared.key_memo import PURGED, KeyMemo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("steps", "after", "expected"), [
    ([("keep", b"k")], 1.9, b"k"),                       # held within memo_s
    ([("keep", b"k")], 2.0, None),                       # gone at memo_s
    ([("purged", None)], 1.9, PURGED),
    ([("keep", b"k"), ("purged", None)], 0.0, PURGED),   # a purge replaces a key
    ([("purged", None), ("keep", b"k")], 0.0, PURGED),   # a key never replaces a purge
    ([("purged", None)], 2.0, None),                     # ... while it is held
    ([("keep", b"k"), ("keep", b"j")], 0.0, b"j"),
    ([], 0.0, None),                                     # a miss is nothing
])
def test_what_the_memo_holds(steps: list[tuple[str, bytes | None]], after: float,
                             expected: bytes | str | None) -> None:
    clock = Clock()
    memo = KeyMemo(2.0, clock)
    for step, key in steps:
        if step == "keep":
            assert key is not None
            memo.keep("C", key)
        else:
            memo.mark_purged("C")
    clock.now += after
    assert memo.recall("C") == expected


def test_a_key_after_an_expired_purge_is_kept() -> None:
    clock = Clock()
    memo = KeyMemo(2.0, clock)
    memo.mark_purged("C")
    clock.now += 2.0
    memo.keep("C", b"k")
    assert memo.recall("C") == b"k"


def test_memo_s_zero_keeps_nothing() -> None:
    memo = KeyMemo(0)
    memo.keep("C", b"k")
    memo.mark_purged("D")
    assert memo.recall("C") is None and memo.recall("D") is None


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_memo, "MEMO_MAX", 3)
    clock = Clock()
    memo = KeyMemo(2.0, clock)
    memo.keep("A", b"a")
    clock.now += 3  # A expired
    memo.keep("B", b"b")
    memo.keep("C", b"c")
    memo.keep("D", b"d")  # full: the expired go first, and room is left
    assert [memo.recall(c) for c in "BCD"] == [b"b", b"c", b"d"]
    memo.keep("E", b"e")  # full of live entries: all go, then E
    assert [memo.recall(c) for c in "BCDE"] == [None, None, None, b"e"]
