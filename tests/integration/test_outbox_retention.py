"""The alert outbox is not an archive (issue 13 §2): published rows and their idempotency keys
go after their grace, a purged case's at once; unpublished rows always stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.outbox_rows import IdempotencyKey, OutboxEntry
from services.alert.retention import OutboxRetention
from shared.events import CASE_PURGED, CloudEvent

pytestmark = pytest.mark.integration


def entry(n: int, case_id: str) -> OutboxEntry:
    return OutboxEntry(record_id=f"R{n}", kind="report", topic="t", key=case_id, headers={},
                       value=b"sealed", answer={"n": n}, region="140403", operator="op")


async def test_published_rows_go_after_the_grace_and_at_the_purge(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.start()
    try:
        for n, case in enumerate(("C1", "C1", "C2", "C3")):
            await outbox.append(entry(n, case), IdempotencyKey("op", f"k{n}", "h"))
        rows = await outbox.unpublished(10)
        await outbox.mark_published([seq for seq, e in rows if e.record_id != "R3"])

        kept = OutboxRetention(outbox, grace_s=3600)
        await kept.on_case_event(CloudEvent(type=CASE_PURGED, source="/t", subject="C1",
                                            data={}))
        assert [await outbox.get(f"R{n}") is None for n in range(4)] == [True, True, False,
                                                                          False]
        assert await kept.prune() == 0  # R2 published just now: within its grace

        assert await OutboxRetention(outbox, grace_s=0).prune() == 1  # R2; R3 unpublished
        assert await outbox.get("R2") is None
        assert (await outbox.get("R3")) is not None
        assert (await outbox.backlog())[0] == 1
        # The unpublished row's idempotency key stays (a retry must not file it twice); the
        # pruned ones are gone (the same key files anew).
        assert (await outbox.append(entry(9, "C3"), IdempotencyKey("op", "k3", "h"))).replayed
        assert not (await outbox.append(entry(8, "C2"), IdempotencyKey("op", "k2", "h"))
                    ).replayed
    finally:
        await outbox.stop()
