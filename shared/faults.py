"""Which failures pass by themselves, in one place (issue 19, item 5).

A consumer that meets a *transient* fault keeps the message: it is retried from the same offset
with capped backoff, `/readyz` answers 503 while that lasts, and
`homeward_transient_faults_total` counts it. Anything else is a message that can never succeed
(schema, validation, unknown version) or a bug, and goes to `<topic>.dlq`.

Transient:
- Redis answers that refuse a command for now: ``OOM`` (maxmemory with noeviction),
  ``READONLY`` (a replica during failover), ``LOADING``, ``BUSY`` (a script or module
  running), ``TRYAGAIN``, ``MASTERDOWN``, ``CLUSTERDOWN``, ``NOREPLICAS``, ``MISCONF``
  (snapshot failing: writes refused), ``EXECABORT`` caused by one of these;
- redis-py's connection errors and time-outs, connection-pool exhaustion
  (`MaxConnectionsError`, "Too many connections"), authentication refused (a dependency
  misconfigured fails every message alike: not the message's fault), lock time-outs
  (`LockError`: a lock not acquired within its blocking time-out, or expired before release);
- Kafka: every `KafkaError` aiokafka marks ``retriable`` (not leader for partition, request
  timed out, leader not available, node not ready, ...) and `KafkaConnectionError`,
  `KafkaTimeoutError`, `ProducerClosed`;
- the OS's and asyncio's own: `ConnectionError` (refused, reset, broken pipe) and
  `TimeoutError` (`asyncio.TimeoutError`);
- Homeward's own `Transient` (e.g. a case key not yet visible on its topic, shared/casekeys.py).

An exception counts as transient when it, or an exception it was raised from (``raise ... from``,
its ``__cause__``), is one of these; an exception group when every member is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import errors as kafka_errors
from prometheus_client import Counter, Gauge
from redis import exceptions as redis_errors

# Error replies (their first word) that Redis gives while it cannot serve a command for now.
TRANSIENT_REDIS_REPLIES: frozenset[str] = frozenset({
    "OOM", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN",
    "NOREPLICAS", "MISCONF",
})

# Kafka errors aiokafka does not mark retriable although they pass.
_KAFKA_TRANSIENT: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.ProducerClosed,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.RequestTimedOutError,
)

_REDIS_TRANSIENT: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # incl. LOADING, MaxConnectionsError, AuthenticationError
    redis_errors.TimeoutError,
    redis_errors.LockError,  # incl. LockNotOwnedError
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,  # incl. MasterDownError
)



class Transient(Exception):
    """A fault of Homeward's own that passes by itself (the message is retried, never
    dead-lettered): raise a subclass naming what is awaited."""


_OS_TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, Transient)

TRANSIENT_FAULTS = Counter(
    "homeward_transient_faults_total",
    "Transient faults met by a consumer or timer loop (the work is retried, never "
    "dead-lettered), by where it happened and the error's kind",
    ["where", "kind"],
)
RETRYING = Gauge(
    "homeward_retrying",
    "1 while a consumer or timer loop is retrying a transient fault (readiness is 503)",
    ["where"],
    multiprocess_mode="mostrecent",  # alert's workers: the one running the consumer sets it
)


def _one_is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _REDIS_TRANSIENT + _KAFKA_TRANSIENT + _OS_TRANSIENT):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(getattr(exc, "retriable", False))
    if isinstance(exc, redis_errors.ResponseError):
        first = str(exc).split(" ", 1)[0].upper()
        return first in TRANSIENT_REDIS_REPLIES
    return False


def is_transient(exc: BaseException) -> bool:
    """True when `exc` will pass by itself (see the module docstring for the list)."""
    if isinstance(exc, BaseExceptionGroup):
        return bool(exc.exceptions) and all(is_transient(e) for e in exc.exceptions)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _one_is_transient(current):
            return True
        # Only an explicit cause (`raise ... from`): an error merely raised while another
        # was being handled (its __context__) is not made transient by it, or a poison
        # message met during a retry would be retried forever.
        current = current.__cause__
    return False


# redis-py turns these replies into classes and drops the word from the message.
_REPLY_OF: tuple[tuple[type[BaseException], str], ...] = (
    (redis_errors.OutOfMemoryError, "OOM"), (redis_errors.ReadOnlyError, "READONLY"),
    (redis_errors.BusyLoadingError, "LOADING"), (redis_errors.TryAgainError, "TRYAGAIN"),
    (redis_errors.MasterDownError, "MASTERDOWN"), (redis_errors.ClusterDownError, "CLUSTERDOWN"),
)


def kind_of(exc: BaseException) -> str:
    """A short label for the metric: the Redis reply word or the exception's class name."""
    for cls, word in _REPLY_OF:
        if isinstance(exc, cls):
            return word
    if isinstance(exc, redis_errors.ResponseError):
        first = str(exc).split(" ", 1)[0].upper()
        if first in TRANSIENT_REDIS_REPLIES:
            return first
    return type(exc).__name__


def backoff_s(attempt: int, base_s: float = 0.2, cap_s: float = 5.0) -> float:
    """Delay before retry number `attempt` (1, 2, ...): exponential, capped, with full
    jitter in its upper half so that many consumers do not retry in step."""
    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2


class Retrying:
    """Which consumers (or timer loops) of this process are retrying a transient fault now.

    Keys are `where/...` (`group/topic/partition` for a consumer, `homeward-dispatch-timers`
    for a loop); readiness looks at the keys of its own `where`s, so two services in one test
    process do not mark each other unready.
    """

    def __init__(self, stale_s: float = 30.0) -> None:
        # A key not failing again within stale_s no longer counts (its partition may have
        # moved to another process, which then reports for it): retries come every few
        # seconds at most (capped backoff), so a fault still there keeps its key fresh.
        self.stale_s = stale_s
        self._attempts: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def failed(self, key: str, exc: BaseException) -> int:
        """Record one transient failure at `key`; returns the attempt number (1, 2, ...)."""
        TRANSIENT_FAULTS.labels(key.split("/", 1)[0], kind_of(exc)).inc()
        RETRYING.labels(key.split("/", 1)[0]).set(1)
        now = time.monotonic()
        self._since.setdefault(key, now)
        self._last[key] = now
        self._attempts[key] = self._attempts.get(key, 0) + 1
        return self._attempts[key]

    def passed(self, key: str) -> None:
        if self._attempts.pop(key, None) is not None:
            self._since.pop(key, None)
            self._last.pop(key, None)
            where = key.split("/", 1)[0]
            if not any(k.split("/", 1)[0] == where for k in self._attempts):
                RETRYING.labels(where).set(0)

    def retrying(self, wheres: Iterable[str] | None = None) -> list[str]:
        """Keys retrying now, of the given consumer groups / loops (all when None)."""
        wanted = None if wheres is None else set(wheres)
        fresh = time.monotonic() - self.stale_s
        return sorted(k for k in self._attempts if self._last[k] >= fresh
                      and (wanted is None or k.split("/", 1)[0] in wanted))

    def check(self, *wheres: str) -> Callable[[], Awaitable[bool]]:
        """A readiness check: failing while a key of the consumer groups / loops `wheres`
        (the part of a key before its first "/") is retrying."""

        async def ready() -> bool:
            return not self.retrying(wheres)

        return ready


# One per process: the consume guard and the timer loops report here, /readyz reads it.
RETRYING_NOW = Retrying()
