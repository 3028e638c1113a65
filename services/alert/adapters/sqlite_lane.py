"""One SQLite connection on a thread of its own: the outbox's operators' commits and its relay
each have one, so that the relay's reads and marks never queue in front of an operator's
commit. Every connection runs in WAL mode with `secure_delete` (deleted rows are overwritten,
issue 13); its writes take turns with every other writer of the file, in this process or
another, by `WriteTurn` (services.alert.duties, issue 15)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from services.alert.duties import WriteTurn

__all__ = ["SqliteLane"]

T = TypeVar("T")


class SqliteLane:
    """A connection to the SQLite file at `path` with `synchronous` (FULL: fsync'd before a
    commit returns; NORMAL: kept through a process crash, not a power cut), used only from
    its one thread. `run` calls `fn(connection)` there; `write` does so in the writers' turn
    (the lock `<path>.lock`)."""

    def __init__(self, path: Path, synchronous: str, name: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._turn = WriteTurn(path.with_suffix(".lock"))
        self._conn: sqlite3.Connection | None = None

    async def open(self, schema: str = "") -> None:
        """Connect (creating the file's folder), then run `schema` (a script) if given."""

        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
            # In the writers' turn: turning a new file to WAL needs it alone, and SQLite does
            # not wait (busy timeout) for that: two alert workers starting together on a new
            # outbox failed one with "database is locked" (full run, stop 17).
            self._conn = conn  # closed by `close` even when what follows fails
            with self._turn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten (issue 13)
                if schema:
                    conn.executescript(schema)

        await asyncio.get_running_loop().run_in_executor(self._thread, connect)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the lane's thread (raises what `fn` raises)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the lane's thread, holding the writers' turn."""

        def in_turn(conn: sqlite3.Connection) -> T:
            with self._turn:
                return fn(conn)

        return await self.run(in_turn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None, "the lane is not open"
        return fn(self._conn)

    async def close(self) -> None:
        """Close the connection (if open), end the thread and let go of the turn's file."""
        def close() -> None:  # after whatever the thread was given before
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=True)
        self._turn.close()
