"""The relay never sleeps through a wake (services.alert.adapters.relay): a commit made while
the relay is reading the outbox, in its own process or in another worker (relay_wake), keeps
the relay's event set, so the relay looks again at once rather than after its idle poll. Real
Kafka (the relay's producer), a real SQLite outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.relay import Relay
from shared.settings import Settings


async def test_a_wake_during_the_read_is_not_lost(settings: Settings, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.start()
    relay = Relay(outbox, settings.kafka_bootstrap, idle_s=60.0)  # a lost wake: a minute
    reads: list[float] = []
    read = outbox.unpublished

    async def reading(limit: int) -> Any:
        reads.append(asyncio.get_running_loop().time())
        rows = await read(limit)
        if len(reads) == 1:
            outbox.new_rows.set()  # a commit's wake arrives while the first read is running
        return rows

    outbox.unpublished = reading  # type: ignore[method-assign]
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(200):
            if len(reads) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(reads) >= 2, "the relay slept through the wake"
        assert reads[1] - reads[0] < 5.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.stop()
        await outbox.stop()
