"""Issue 15 item 4: of the alert workers sharing one outbox, exactly one runs the relay (the
holder of the duties lock), and another takes over when it goes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.alert.duties import Duties, held
from tests.helpers import eventually


async def test_one_holder_at_a_time_and_a_takeover_when_it_goes(tmp_path: Path) -> None:
    lock = tmp_path / "alert-duties.lock"
    running: list[str] = []

    def duties(name: str) -> Duties:
        async def start() -> None:
            running.append(name)

        async def stop() -> None:
            running.remove(name)

        return Duties(lock, start, stop, retry_s=0.05)

    assert not held(lock)
    first, second, third = duties("a"), duties("b"), duties("c")
    tasks = {d: asyncio.create_task(d.run()) for d in (first, second, third)}
    await eventually(lambda: asyncio.sleep(0, running), timeout=5)
    await asyncio.sleep(0.3)  # the others keep trying meanwhile
    assert len(running) == 1 and held(lock)
    holder = next(d for d in tasks if d.holding)
    tasks.pop(holder).cancel()  # the holder shuts down (a killed process: the kernel unlocks)
    await eventually(lambda: asyncio.sleep(0, len(running) == 1 and not holder.holding),
                     timeout=5)
    assert running[0] != {first: "a", second: "b", third: "c"}[holder]
    assert sum(d.holding for d in tasks) == 1
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert running == [] and not held(lock)


async def test_duties_that_cannot_start_are_tried_again(tmp_path: Path) -> None:
    """The ops port still held by a dying predecessor: the start fails, the lock is let go
    and the duties are tried again (never a worker holding the lock without a relay)."""
    lock = tmp_path / "alert-duties.lock"
    tries: list[int] = []

    async def start() -> None:
        tries.append(len(tries))
        if len(tries) < 3:
            raise OSError("ops port unavailable")

    async def stop() -> None:
        pass

    duties = Duties(lock, start, stop, retry_s=0.01)
    task = asyncio.create_task(duties.run())
    await eventually(lambda: asyncio.sleep(0, len(tries) >= 3 and duties.holding), timeout=5)
    await asyncio.sleep(0.1)
    assert len(tries) == 3 and held(lock)  # started once it could, and stays
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not held(lock)
