"""The operators' appends to the outbox, committed together: what arrives while a commit is
on disk waits, and the next commit takes up to `max_batch` appends in one transaction and so
one fsync (group commit). An append with an Idempotency-Key that was used before adds nothing
and answers what the first did (or `IdempotencyConflict` for another body)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from services.alert.adapters.outbox_rows import (
    ROWS_PER_STATEMENT,
    Appended,
    IdempotencyConflict,
    IdempotencyKey,
    OutboxEntry,
)
from services.alert.adapters.sqlite_lane import SqliteLane

log = logging.getLogger(__name__)

__all__ = ["GroupCommit"]

_INSERT = (
    "INSERT INTO outbox (record_id, kind, topic, key, headers, value, answer, region, "
    "operator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = 10


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT `rows` in as few statements as fit. The commit thread takes the GIL back after
    every SQLite step; one statement for many rows is one step where executemany is one per
    row, each waiting up to the interpreter's switch interval (5 ms) while the event loop is
    busy with requests (issue 15: the intake profile)."""
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
        values = ", ".join(["(" + ", ".join("?" * _COLUMNS) + ")"] * len(chunk))
        conn.execute(_INSERT.split(" VALUES ")[0] + " VALUES " + values,
                     [v for row in chunk for v in row])


def _row(entry: OutboxEntry, now: str) -> tuple[object, ...]:
    return (entry.record_id, entry.kind, entry.topic, entry.key, json.dumps(entry.headers),
            entry.value, json.dumps(entry.answer, ensure_ascii=False), entry.region,
            entry.operator, now)


@dataclass
class _Pending:
    entries: tuple[OutboxEntry, ...]  # committed together, in this order; the last answers
    idem: IdempotencyKey | None
    done: asyncio.Future[Appended]
    rows: list[tuple[object, ...]] = field(default_factory=list)  # made on the event loop


class GroupCommit:
    """Commits appends on `lane` (the operators' connection, synchronous=FULL) in batches of
    up to `max_batch`, one transaction each, and sets `committed` after every batch."""

    def __init__(self, lane: SqliteLane, committed: asyncio.Event, max_batch: int) -> None:
        self.lane = lane
        self.committed = committed
        self.max_batch = max_batch
        # Called after each batch too, on the event loop (Outbox.after_commit): never raises.
        self.after_commit: list[Callable[[], None]] = []
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    async def stop(self) -> None:
        if self._writer:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def append(self, entries: tuple[OutboxEntry, ...],
                     idem: IdempotencyKey | None) -> Appended:
        """Commit `entries` in one transaction, in order, and return the last one's answer
        once on disk (see `Outbox.append`). Raises IdempotencyConflict."""
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(entries, idem, done))
        return await done

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            now = datetime.now(UTC).isoformat()
            for item in batch:  # the JSON here: the commit thread only talks to SQLite
                item.rows = [_row(entry, now) for entry in item.entries]
            try:
                results = await self.lane.write(partial(_commit, batch=batch))
            except Exception as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            for item, result in zip(batch, results, strict=True):
                if item.done.done():
                    continue
                if isinstance(result, Exception):
                    item.done.set_exception(result)
                else:
                    item.done.set_result(result)
            self.committed.set()
            for hook in self.after_commit:
                try:
                    hook()
                except Exception:  # a hook never stops the commits
                    log.exception("outbox after-commit hook failed")


def _commit(conn: sqlite3.Connection, batch: Sequence[_Pending]) -> list[Appended | Exception]:
    """The batch in one transaction: each append's answer, or the IdempotencyConflict it
    met (the others commit all the same)."""
    now = datetime.now(UTC).isoformat()
    results: list[Appended | Exception] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        plain = [item for item in batch if item.idem is None]
        if len(plain) == len(batch):  # the common case: one statement for the batch
            _insert_rows(conn, [row for item in batch
                                for row in (item.rows or [_row(e, now) for e in item.entries])])
            results = [Appended(item.entries[-1].answer) for item in batch]
        else:
            for item in batch:
                results.append(_insert(conn, item, now))
        conn.execute("COMMIT")  # one fsync for the whole batch
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return results


def _insert(conn: sqlite3.Connection, item: _Pending, now: str) -> Appended | Exception:
    idem, entry = item.idem, item.entries[-1]
    if idem is not None:
        row = conn.execute(
            "SELECT i.body_hash, o.answer FROM idempotency i JOIN outbox o "
            "ON o.record_id = i.record_id WHERE i.scope = ? AND i.key = ?",
            (idem.scope, idem.key),
        ).fetchone()
        if row is not None:
            if row[0] != idem.body_hash:
                return IdempotencyConflict(idem.key)
            return Appended(json.loads(row[1]), replayed=True)
    _insert_rows(conn, item.rows or [_row(e, now) for e in item.entries])
    if idem is not None:
        conn.execute(
            "INSERT INTO idempotency (scope, key, body_hash, record_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (idem.scope, idem.key, idem.body_hash, entry.record_id, now),
        )
    return Appended(entry.answer)
