"""Several alert workers start on one new outbox file at once (issue 15's workers; full run,
stop 17: one of two failed with "database is locked" turning the new file to WAL, and uvicorn's
supervisor then stopped the service)."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

from services.alert.adapters.outbox import Outbox


def _start(path: str, go: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        outbox = Outbox(Path(path))
        go.wait()
        await outbox.start()
        await outbox.stop()

    asyncio.run(main())


def test_workers_starting_together_on_a_new_outbox_all_start(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("fork")
    for round_ in range(15):
        path = tmp_path / f"round-{round_}" / "alert-outbox.sqlite3"
        go = spawn.Event()
        workers = [spawn.Process(target=_start, args=(str(path), go)) for _ in range(4)]
        for worker in workers:
            worker.start()
        go.set()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0] * 4, f"round {round_}"
