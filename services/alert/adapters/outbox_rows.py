"""The outbox's tables and its rows: what a row holds (`OutboxEntry`), the key that makes an
append idempotent, what an append answers (`Appended`, `IdempotencyConflict`) and what a
lookup returns (`Stored`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ROWS_PER_STATEMENT",
    "SCHEMA",
    "Appended",
    "IdempotencyConflict",
    "IdempotencyKey",
    "OutboxEntry",
    "Stored",
]

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

# Rows per statement: a multi-row INSERT, under SQLite's 32,766 bound parameters (and the
# relay's "published" marks, one UPDATE per as many rows).
ROWS_PER_STATEMENT = 500


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
