"""The relay's wake across intake workers (services.alert.adapters.relay_wake), on real Unix
datagram sockets: a commit in a worker that does not run the relay wakes the one that does;
stacks with other data directories are not woken; no listener, a taken address or a listener's
own commit never raise; and the outbox calls its after-commit hooks once per commit."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.relay_wake import RelayWake
from tests.unit.test_outbox_batches import entry


async def test_a_commit_elsewhere_wakes_the_relay(tmp_path: Path) -> None:
    relay_side, other_side = asyncio.Event(), asyncio.Event()
    relay, worker = RelayWake(tmp_path, relay_side), RelayWake(tmp_path, other_side)
    relay.listen()
    try:
        assert relay.listening and not worker.listening
        for _ in range(3):  # each wake is one more look, however many queued
            relay_side.clear()
            worker.ring()
            worker.ring()
            await asyncio.wait_for(relay_side.wait(), 5)
        assert not other_side.is_set()
    finally:
        relay.close()
        worker.close()


async def test_other_stacks_are_not_woken_and_nothing_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    mine, theirs = asyncio.Event(), asyncio.Event()
    relay = RelayWake(tmp_path / "a", mine)
    other_stack = RelayWake(tmp_path / "b", theirs)
    nobody = RelayWake(tmp_path / "c", asyncio.Event())
    nobody.ring()  # no relay listening for "c" (duties changing hands): dropped, no error
    relay.listen()
    try:
        other_stack.ring()
        await asyncio.sleep(0.2)
        assert not mine.is_set()
        relay.ring()  # the relay's own worker sets its event directly: nothing is sent
        assert relay._out is None
        second = RelayWake(tmp_path / "a", asyncio.Event())
        with caplog.at_level(logging.WARNING):
            second.listen()  # the address is the first listener's: the relay polls instead
        assert not second.listening and "relay wake unavailable" in caplog.text
        second.close()
    finally:
        relay.close()
        other_stack.close()
        nobody.close()
    again = RelayWake(tmp_path / "a", asyncio.Event())
    again.listen()  # closed: the next duties holder takes the address
    assert again.listening
    again.close()


async def test_the_outbox_calls_its_hooks_after_each_commit(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    rung: list[int] = []
    outbox.after_commit(lambda: rung.append(len(rung)))
    await outbox.start()
    try:
        await outbox.append(entry(1))
        assert rung == [0]
        await asyncio.gather(*(outbox.append(entry(n)) for n in range(2, 40)))
        assert 1 < len(rung) <= 39  # one per commit; concurrent appends share commits
        assert len(await outbox.unpublished(100)) == 39
    finally:
        await outbox.stop()
