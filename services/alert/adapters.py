"""The alert service's I/O: the durable outbox (SQLite), its relay to Kafka, and the Redis
rate limiter for public tips."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.alert.duties import WriteTurn
from shared import telemetry
from shared.kafka import Bootstrap, client_options

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id    TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    topic        TEXT NOT NULL,
    key          TEXT NOT NULL,
    headers      TEXT NOT NULL,
    value        BLOB NOT NULL,
    answer       TEXT NOT NULL,
    region       TEXT NOT NULL,
    operator     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox(seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One message to publish, with the answer the caller gets for it."""

    record_id: str
    kind: str  # report | tip
    topic: str
    key: str
    headers: dict[str, str]
    value: bytes
    answer: dict[str, Any]
    region: str
    operator: str


_INSERT = (
    "INSERT INTO outbox (record_id, kind, topic, key, headers, value, answer, region, "
    "operator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = 10
# Rows per statement: a multi-row INSERT, under SQLite's 32,766 bound parameters.
_ROWS_PER_INSERT = 500


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT `rows` in as few statements as fit. The commit thread takes the GIL back after
    every SQLite step; one statement for many rows is one step where executemany is one per
    row, each waiting up to the interpreter's switch interval (5 ms) while the event loop is
    busy with requests (issue 15: the intake profile)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        values = ", ".join(["(" + ", ".join("?" * _COLUMNS) + ")"] * len(chunk))
        conn.execute(_INSERT.split(" VALUES ")[0] + " VALUES " + values,
                     [v for row in chunk for v in row])


def _row(entry: OutboxEntry, now: str) -> tuple[object, ...]:
    return (entry.record_id, entry.kind, entry.topic, entry.key, json.dumps(entry.headers),
            entry.value, json.dumps(entry.answer, ensure_ascii=False), entry.region,
            entry.operator, now)


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # who may reuse the key: the operator's subject
    key: str
    body_hash: str


@dataclass(frozen=True)
class Appended:
    """The committed answer: `replayed` when an Idempotency-Key matched an earlier request."""

    answer: dict[str, Any]
    replayed: bool = False


class IdempotencyConflict(Exception):
    """The key was used before with another body."""


@dataclass(frozen=True)
class Stored:
    record_id: str
    kind: str
    answer: dict[str, Any]
    region: str
    operator: str
    published: bool


@dataclass
class _Pending:
    entries: tuple[OutboxEntry, ...]  # committed together, in this order; the last answers
    idem: IdempotencyKey | None
    done: asyncio.Future[Appended]
    rows: list[tuple[object, ...]] = field(default_factory=list)  # made on the event loop


class Outbox:
    """SQLite in WAL mode with synchronous=FULL: a row is on disk (fsync'd) before `append`
    returns. Concurrent appends share one transaction and so one fsync (group commit)."""

    def __init__(self, path: Path, max_batch: int = 512) -> None:
        self.path = path
        self.max_batch = max_batch
        self.new_rows = asyncio.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._conn: sqlite3.Connection | None = None
        self._turn = WriteTurn(path.with_suffix(".lock"))  # the operators' commits
        self._relay_turn = WriteTurn(path.with_suffix(".lock"))  # published marks, deletes
        # The relay's reads and "published" marks use their own connection and thread, so they
        # never queue in front of an operator's commit. Marks are not fsync'd (NORMAL): a process
        # crash keeps them; only a power cut can resend a row, which consumers drop by ce_id.
        self._relay_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-relay")
        self._relay_conn: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _run_relay(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._relay_db, fn, *args)

    async def _run_relay_write(self, fn: Any) -> Any:
        def in_turn() -> Any:
            with self._relay_turn:
                return fn()

        return await self._run_relay(in_turn)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten (issue 13)
        return conn

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect("FULL")
        self._conn.executescript(SCHEMA)

    def _open_relay(self) -> None:
        self._relay_conn = self._connect("NORMAL")

    async def start(self) -> None:
        await self._run(self._open)
        await self._run_relay(self._open_relay)
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    async def stop(self) -> None:
        if self._writer:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._conn is not None:
            await self._run(self._conn.close)
        if self._relay_conn is not None:
            await self._run_relay(self._relay_conn.close)
        self._db.shutdown(wait=True)
        self._turn.close()
        self._relay_turn.close()
        self._relay_db.shutdown(wait=True)

    async def append(self, entry: OutboxEntry, idem: IdempotencyKey | None = None,
                     before: Sequence[OutboxEntry] = ()) -> Appended:
        """Commit `entry` (and first `before`, in the same transaction: a report and the new
        case key that seals it take one fsync, and the key's row is published first) and
        return its answer; with `idem` already used for the same body, nothing is added and
        the first answer comes back (`replayed`). Raises IdempotencyConflict."""
        telemetry.inject(entry.headers)  # the row carries the request's trace to the relay
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending((*before, entry), idem, done))
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
                results = await self._run(self._commit, batch)
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
            self.new_rows.set()

    def _commit(self, batch: Sequence[_Pending]) -> list[Appended | Exception]:
        with self._turn:
            return self._commit_turn(batch)

    def _commit_turn(self, batch: Sequence[_Pending]) -> list[Appended | Exception]:
        assert self._conn is not None
        conn = self._conn
        now = datetime.now(UTC).isoformat()
        results: list[Appended | Exception] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            plain = [item for item in batch if item.idem is None]
            if len(plain) == len(batch):  # the common case: one statement for the batch
                _insert_rows(conn, [row for item in batch
                                    for row in (item.rows or [_row(e, now)
                                                              for e in item.entries])])
                results = [Appended(item.entries[-1].answer) for item in batch]
            else:
                for item in batch:
                    results.append(self._insert(conn, item, now))
            conn.execute("COMMIT")  # one fsync for the whole batch
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results

    @staticmethod
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

    async def unpublished(self, limit: int) -> list[tuple[int, OutboxEntry]]:
        """Up to `limit` rows not published yet, oldest first. Read as one aggregated row:
        one SQLite step, where reading row by row costs the relay's thread a wait for the
        GIL per row while the event loop is busy (see `_insert_rows`)."""
        def query() -> list[tuple[int, OutboxEntry]]:
            assert self._relay_conn is not None
            (packed,) = self._relay_conn.execute(
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

        result: list[tuple[int, OutboxEntry]] = await self._run_relay(query)
        return result

    async def mark_published(self, seqs: Sequence[int]) -> None:
        def update() -> None:
            conn = self._relay_conn
            assert conn is not None
            now = datetime.now(UTC).isoformat()
            conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(seqs), _ROWS_PER_INSERT):  # one step per statement
                chunk = list(seqs[start:start + _ROWS_PER_INSERT])
                conn.execute(f"UPDATE outbox SET published_at = ? WHERE seq IN "
                             f"({', '.join('?' * len(chunk))})", [now, *chunk])
            conn.execute("COMMIT")

        await self._run_relay_write(update)

    async def prune(self, grace_s: float) -> int:
        """Delete rows published more than `grace_s` ago, and idempotency keys as old (issue
        13: the outbox is not an archive). Returns rows deleted."""

        def delete() -> int:
            conn = self._relay_conn
            assert conn is not None
            before = (datetime.now(UTC) - timedelta(seconds=grace_s)).isoformat()
            conn.execute("BEGIN IMMEDIATE")
            gone = conn.execute("DELETE FROM outbox WHERE published_at IS NOT NULL AND "
                                "published_at < ?", (before,)).rowcount
            conn.execute("DELETE FROM idempotency WHERE created_at < ? AND record_id NOT IN "
                         "(SELECT record_id FROM outbox WHERE published_at IS NULL)", (before,))
            conn.execute("COMMIT")
            return int(gone)

        result: int = await self._run_relay_write(delete)
        return result

    async def forget(self, case_id: str) -> int:
        """Delete the published rows of a purged case and their idempotency keys."""

        def delete() -> int:
            conn = self._relay_conn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM idempotency WHERE record_id IN (SELECT record_id FROM "
                         "outbox WHERE key = ? AND published_at IS NOT NULL)", (case_id,))
            gone = conn.execute("DELETE FROM outbox WHERE key = ? AND published_at IS NOT "
                                "NULL", (case_id,)).rowcount
            conn.execute("COMMIT")
            return int(gone)

        result: int = await self._run_relay_write(delete)
        return result

    async def get(self, record_id: str) -> Stored | None:
        def query() -> Stored | None:
            assert self._conn is not None
            row = self._conn.execute(
                "SELECT record_id, kind, answer, region, operator, published_at FROM outbox "
                "WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return None
            return Stored(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5] is not None)

        result: Stored | None = await self._run(query)
        return result

    async def backlog(self) -> tuple[int, float]:
        """How many reports and tips wait for Kafka, and the age in seconds of the oldest (a
        case key's row, issue 13, always goes just before the event it seals: not counted)."""

        def query() -> tuple[int, float]:
            assert self._relay_conn is not None
            count, oldest = self._relay_conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL "
                "AND kind != 'case-key'"
            ).fetchone()
            age = 0.0
            if oldest:
                age = (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds()
            return int(count), age

        result: tuple[int, float] = await self._run_relay(query)
        return result


class Relay:
    """Publishes outbox rows to Kafka in order (idempotent producer, acks=all), marks them
    published, and retries forever with capped exponential backoff and jitter."""

    def __init__(self, outbox: Outbox, bootstrap: Bootstrap, batch: int = 500,
                 max_backoff_s: float = 10.0, idle_s: float = 1.0) -> None:
        """`idle_s`: how often an idle relay looks for rows its own process did not signal
        (other worker processes sharing the outbox commit them)."""
        self.outbox = outbox
        self.idle_s = idle_s
        self.bootstrap = bootstrap
        self.batch = batch
        self.max_backoff_s = max_backoff_s
        self.connected = False
        self.published_total = 0
        self._producer: AIOKafkaProducer | None = None
        self._one_at_a_time = asyncio.Lock()  # the loop and drain() must not send a row twice

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **client_options(self.bootstrap), client_id="homeward-alert-relay",
                acks="all", enable_idempotence=True, request_timeout_ms=15_000,
                linger_ms=2,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.connected = False
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:
                pass

    async def kafka_ok(self) -> bool:
        """Whether the relay's producer reaches the broker now (for /readyz)."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 2)
        except Exception:
            return False
        return True

    async def publish_once(self) -> int:
        """Publish one batch of waiting rows; returns how many were published."""
        async with self._one_at_a_time:
            return await self._publish_batch()

    async def _publish_batch(self) -> int:
        producer = await self._producer_started()
        self.connected = True
        rows = await self.outbox.unpublished(self.batch)
        if not rows:
            return 0
        sends, spans = [], []
        tracing = telemetry.enabled()
        for _, entry in rows:
            headers = dict(entry.headers)
            if tracing:  # continues the trace of the request that filed the row
                spans.append(telemetry.relay_span(entry.topic, entry.key, headers))
            sends.append(await producer.send(
                entry.topic, entry.value, key=entry.key.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            ))
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for span, outcome in zip(spans, outcomes, strict=False):
            telemetry.end_span(span, outcome if isinstance(outcome, BaseException) else None)
        done = [seq for (seq, _), outcome in zip(rows, outcomes, strict=True)
                if not isinstance(outcome, BaseException)]
        if done:
            await self.outbox.mark_published(done)
            self.published_total += len(done)
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is not None:
            raise failed
        return len(done)

    async def drain(self, timeout_s: float) -> None:
        """Publish what is waiting, for at most `timeout_s`; what is left waits on disk."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.publish_once():
                    pass
        except Exception as exc:
            log.warning("relay: could not drain the outbox on shutdown: %r", exc)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if await self.publish_once():
                    backoff = 0.2
                    continue
                self.outbox.new_rows.clear()
                try:
                    await asyncio.wait_for(self.outbox.new_rows.wait(), self.idle_s)
                except TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("relay: Kafka unavailable (%r); retrying in %.1fs", exc, backoff)
                await self._drop_producer()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff_s)
            except Exception:
                log.exception("relay: unexpected failure; retrying")
                await self._drop_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self) -> None:
        await self._drop_producer()


class ProgressStore:
    """What the operator's page shows after the 202: the leader dispatch assigned and the hubs
    notify reached, learnt from their events (derived state, rebuilt by replay)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def set_leader(self, case_id: str, leader: dict[str, Any]) -> None:
        await self.redis.hset(f"alert:progress:{case_id}", "leader",
                              json.dumps(leader, ensure_ascii=False))

    async def set_opened(self, case_id: str, group: str | None = None) -> None:
        """Dispatch opened the case (`group` None), or linked its report to the case `group`
        (the same child): a case group is formed for it (issue 18: the report can no longer
        be amended through alert)."""
        await self.redis.hset(f"alert:progress:{case_id}", "opened", group or case_id)

    async def case_group(self, case_id: str) -> str | None:
        """The case whose group owns the report filed under `case_id` (itself, or the case it
        was linked to), or None before dispatch formed one (raises RedisError: the caller
        fails closed). A leader or a close recorded before `opened` was kept also counts."""
        opened, leader, closed = await self.redis.hmget(f"alert:progress:{case_id}",
                                                        ["opened", "leader", "closed"])
        if opened and opened != "1":
            return str(opened)
        return case_id if (opened or leader or closed) else None

    async def set_closed(self, case_id: str) -> None:
        await self.redis.hset(f"alert:progress:{case_id}", "closed", "1")

    async def is_closed(self, case_id: str) -> bool:
        """Whether dispatch closed the case (raises RedisError: the caller fails closed)."""
        return bool(await self.redis.hexists(f"alert:progress:{case_id}", "closed"))

    async def add_hubs(self, hubs: dict[str, set[str]]) -> None:
        """case id -> subscriber ids of hubs reached, in one round trip (idempotent)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for case_id, ids in hubs.items():
                pipe.sadd(f"alert:progress:{case_id}:hubs", *ids)
            await pipe.execute()

    async def get(self, case_id: str) -> dict[str, Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(f"alert:progress:{case_id}", "leader")
            pipe.scard(f"alert:progress:{case_id}:hubs")
            leader, hubs = await pipe.execute()
        return {"leader": json.loads(leader) if leader else None, "hubs_pushed": int(hubs)}


class LimiterUnavailable(Exception):
    """Redis could not count: the request is refused (503), never let through unlimited."""


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int
    window_s: int


class RateLimiter:
    """Fixed-window counters in Redis, several buckets checked and counted in one script: a
    request refused by any bucket counts in none (a flood refused per client never uses up
    the buckets everyone shares). Fails closed: when Redis cannot count, LimiterUnavailable."""

    # KEYS: one counter per bucket; ARGV: limit, ttl of each. Returns the 1-based index of the
    # first full bucket, or 0 after counting the request in every bucket.
    HIT = """
    for i, key in ipairs(KEYS) do
        if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
            return i
        end
    end
    for i, key in ipairs(KEYS) do
        redis.call('INCR', key)
        redis.call('EXPIRE', key, ARGV[2 * i])
    end
    return 0
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._hit = redis.register_script(self.HIT)

    async def hit_all(self, buckets: Sequence[Bucket]) -> tuple[Bucket, int] | None:
        """None when allowed (counted in every bucket); else the full bucket and the seconds
        until its window resets (Retry-After). Raises LimiterUnavailable."""
        now = time.time()
        keys, args = [], []
        for b in buckets:
            keys.append(f"{self.prefix}:{b.name}:{int(now // b.window_s)}")
            args += [b.limit, b.window_s + 1]
        try:
            full = int(await self._hit(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable (%r): refusing", exc)
            raise LimiterUnavailable(str(exc)) from exc
        if not full:
            return None
        bucket = buckets[full - 1]
        window = int(now // bucket.window_s)
        return bucket, max(1, int((window + 1) * bucket.window_s - now))


PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class PhotoStore:
    """Photos an operator uploads during the call, kept under the data dir and served by the
    alert service (hubs fetch them from the bulletin's photo URL)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, content_type: str, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}{PHOTO_TYPES[content_type]}"
        (self.directory / name).write_bytes(data)
        return name

    def path(self, name: str) -> Path | None:
        if "/" in name or name.startswith(".") or Path(name).suffix not in PHOTO_TYPES.values():
            return None
        path = self.directory / name
        return path if path.is_file() else None
