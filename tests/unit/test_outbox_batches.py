"""The outbox's batched statements (issue 15: multi-row INSERT, the relay's aggregated read and
one UPDATE per batch of marks) keep every row exactly as appended, in order, whatever the batch
and chunk sizes (a local SQLite file; no Kafka, no Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.outbox_rows import IdempotencyKey, OutboxEntry


def entry(n: int, kind: str = "report") -> OutboxEntry:
    return OutboxEntry(
        record_id=f"{kind}-{n}", kind=kind, topic=f"topic.{kind}", key=f"C{n % 7}",
        headers={"ce_id": f"e{n}", "note": "张小明 \"quoted\" \\ back"},
        # Any bytes: sealed JSON, but also what is no text at all.
        value=bytes([n % 256, 0, 255, 10]) + "中文".encode() + bytes(range(n % 5)),
        answer={"n": n, "名": "测试", "nested": {"ok": True, "none": None}},
        region="140403", operator="op")


@pytest.mark.parametrize("reports", [1, 7, 600])  # 600 reports + keys: chunks of 500 rows
async def test_rows_come_back_as_appended_in_order(tmp_path: Path, reports: int) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.start()
    try:
        appended = await asyncio.gather(*[
            outbox.append(entry(n), before=[entry(n, "case-key")] if n % 2 else [])
            for n in range(reports)])
        assert [a.answer["n"] for a in appended] == list(range(reports))

        expected = [e for n in range(reports)
                    for e in ([entry(n, "case-key")] if n % 2 else []) + [entry(n)]]
        rows = await outbox.unpublished(10_000)
        assert [e for _, e in rows] == expected  # a key's row just before its report's
        seqs = [seq for seq, _ in rows]
        assert seqs == sorted(seqs)

        first = await outbox.unpublished(3)
        assert first == rows[:3]

        await outbox.mark_published(seqs[::2])
        left = await outbox.unpublished(10_000)
        assert left == rows[1::2]
        assert (await outbox.get(f"report-{reports - 1}")) is not None
    finally:
        await outbox.stop()


async def test_a_replayed_key_adds_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.start()
    try:
        idem = IdempotencyKey("op", "k1", "h")
        first = await outbox.append(entry(1), idem, before=[entry(1, "case-key")])
        again = await outbox.append(entry(2), idem, before=[entry(2, "case-key")])
        assert again.replayed and again.answer == first.answer
        assert [e.record_id for _, e in await outbox.unpublished(10)] == ["case-key-1",
                                                                          "report-1"]
    finally:
        await outbox.stop()
