"""The durable outbox: SQLite in WAL mode, a file that several intake workers may share (issue
15). The handlers append reports and tips (on disk before the 202); the relay reads what is
not published yet and marks it published; retention deletes what was published (issue 13:
the outbox is not an archive)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.alert.adapters.group_commit import GroupCommit
from services.alert.adapters.outbox_rows import (
    ROWS_PER_STATEMENT,
    SCHEMA,
    Appended,
    IdempotencyKey,
    OutboxEntry,
    Stored,
)
from services.alert.adapters.sqlite_lane import SqliteLane
from shared import telemetry

__all__ = ["Outbox"]


class Outbox:
    """SQLite in WAL mode with synchronous=FULL: a row is on disk (fsync'd) before `append`
    returns. Concurrent appends share one transaction and so one fsync (group commit).

    The relay's reads and "published" marks use their own connection and thread, so they never
    queue in front of an operator's commit. Marks are not fsync'd (NORMAL): a process crash
    keeps them; only a power cut can resend a row, which consumers drop by ce_id."""

    def __init__(self, path: Path, max_batch: int = 512) -> None:
        self.path = path
        self.max_batch = max_batch
        self.new_rows = asyncio.Event()  # set after each commit: the relay looks at once
        self._operators = SqliteLane(path, "FULL", "outbox")  # the operators' commits
        self._relay = SqliteLane(path, "NORMAL", "outbox-relay")  # published marks, deletes
        self._commits = GroupCommit(self._operators, self.new_rows, max_batch)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` (on the event loop; it must not raise or block) after each commit of
        this process, as `new_rows` is set (adapters.relay_wake: the relay in another worker)."""
        self._commits.after_commit.append(hook)

    async def start(self) -> None:
        await self._operators.open(SCHEMA)
        await self._relay.open()
        self._commits.start()

    async def stop(self) -> None:
        await self._commits.stop()
        await self._operators.close()
        await self._relay.close()

    async def append(self, entry: OutboxEntry, idem: IdempotencyKey | None = None,
                     before: Sequence[OutboxEntry] = ()) -> Appended:
        """Commit `entry` (and first `before`, in the same transaction: a report and the new
        case key that seals it take one fsync, and the key's row is published first) and
        return its answer; with `idem` already used for the same body, nothing is added and
        the first answer comes back (`replayed`). Raises IdempotencyConflict."""
        telemetry.inject(entry.headers)  # the row carries the request's trace to the relay
        return await self._commits.append((*before, entry), idem)

    async def get(self, record_id: str) -> Stored | None:
        def query(conn: sqlite3.Connection) -> Stored | None:
            row = conn.execute(
                "SELECT record_id, kind, answer, region, operator, published_at FROM outbox "
                "WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return None
            return Stored(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5] is not None)

        return await self._operators.run(query)

    async def unpublished(self, limit: int) -> list[tuple[int, OutboxEntry]]:
        """Up to `limit` rows not published yet, oldest first. Read as one aggregated row:
        one SQLite step, where reading row by row costs the relay's thread a wait for the
        GIL per row while the event loop is busy (see `group_commit._insert_rows`)."""
        def query(conn: sqlite3.Connection) -> list[tuple[int, OutboxEntry]]:
            (packed,) = conn.execute(
                "SELECT json_group_array(json_array(seq, record_id, kind, topic, key, headers, "
                "hex(value), answer, region, operator)) FROM (SELECT * FROM outbox WHERE "
                "published_at IS NULL ORDER BY seq LIMIT ?)", (limit,)
            ).fetchone()
            rows = sorted(json.loads(packed) if packed else [], key=lambda r: r[0])
            return [
                (r[0], OutboxEntry(r[1], r[2], r[3], r[4], json.loads(r[5]),
                                   bytes.fromhex(r[6]), json.loads(r[7]), r[8], r[9]))
                for r in rows
            ]

        return await self._relay.run(query)

    async def mark_published(self, seqs: Sequence[int]) -> None:
        def update(conn: sqlite3.Connection) -> None:
            now = datetime.now(UTC).isoformat()
            conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(seqs), ROWS_PER_STATEMENT):  # one step per statement
                chunk = list(seqs[start:start + ROWS_PER_STATEMENT])
                conn.execute(f"UPDATE outbox SET published_at = ? WHERE seq IN "
                             f"({', '.join('?' * len(chunk))})", [now, *chunk])
            conn.execute("COMMIT")

        await self._relay.write(update)

    async def prune(self, grace_s: float) -> int:
        """Delete rows published more than `grace_s` ago, and idempotency keys as old (issue
        13: the outbox is not an archive). Returns rows deleted."""

        def delete(conn: sqlite3.Connection) -> int:
            before = (datetime.now(UTC) - timedelta(seconds=grace_s)).isoformat()
            conn.execute("BEGIN IMMEDIATE")
            gone = conn.execute("DELETE FROM outbox WHERE published_at IS NOT NULL AND "
                                "published_at < ?", (before,)).rowcount
            conn.execute("DELETE FROM idempotency WHERE created_at < ? AND record_id NOT IN "
                         "(SELECT record_id FROM outbox WHERE published_at IS NULL)", (before,))
            conn.execute("COMMIT")
            return int(gone)

        return await self._relay.write(delete)

    async def forget(self, case_id: str) -> int:
        """Delete the published rows of a purged case and their idempotency keys."""

        def delete(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM idempotency WHERE record_id IN (SELECT record_id FROM "
                         "outbox WHERE key = ? AND published_at IS NOT NULL)", (case_id,))
            gone = conn.execute("DELETE FROM outbox WHERE key = ? AND published_at IS NOT "
                                "NULL", (case_id,)).rowcount
            conn.execute("COMMIT")
            return int(gone)

        return await self._relay.write(delete)

    async def backlog(self) -> tuple[int, float]:
        """How many reports and tips wait for Kafka, and the age in seconds of the oldest (a
        case key's row, issue 13, always goes just before the event it seals: not counted)."""

        def query(conn: sqlite3.Connection) -> tuple[int, float]:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL "
                "AND kind != 'case-key'"
            ).fetchone()
            age = 0.0
            if oldest:
                age = (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds()
            return int(count), age

        return await self._relay.run(query)
