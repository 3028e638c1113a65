"""The classification of faults (issue 19, item 5): both sides of it, as a table."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import errors as kafka_errors
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from redis import exceptions as redis_errors

from shared.events import PoisonMessage
from shared.faults import Retrying, backoff_s, is_transient, kind_of


def _validation_error() -> ValidationError:
    class M(BaseModel):
        n: int

    try:
        M.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError


def _during(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer` raised while `inner` was being handled (implicit context, no `from`)."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904
    except BaseException as exc:
        return exc


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:
        return exc


TRANSIENT: list[tuple[str, BaseException]] = [
    ("redis OOM", redis_errors.OutOfMemoryError(
        "command not allowed when used memory > 'maxmemory'.")),
    ("redis OOM as a plain reply", redis_errors.ResponseError(
        "OOM command not allowed when used memory > 'maxmemory'.")),
    ("redis READONLY", redis_errors.ReadOnlyError("You can't write against a read only replica.")),
    ("redis LOADING", redis_errors.BusyLoadingError("Redis is loading the dataset in memory")),
    ("redis BUSY", redis_errors.ResponseError("BUSY Redis is busy running a script.")),
    ("redis TRYAGAIN", redis_errors.TryAgainError("Multiple keys request during rehashing")),
    ("redis MASTERDOWN", redis_errors.MasterDownError("Link with MASTER is down")),
    ("redis CLUSTERDOWN", redis_errors.ClusterDownError("The cluster is down")),
    ("redis NOREPLICAS", redis_errors.ResponseError("NOREPLICAS Not enough good replicas")),
    ("redis MISCONF", redis_errors.ResponseError("MISCONF Redis is configured to save RDB")),
    ("redis connection refused", redis_errors.ConnectionError("Error 111 connecting")),
    ("redis time-out", redis_errors.TimeoutError("Timeout reading from socket")),
    ("redis pool exhausted", redis_errors.MaxConnectionsError("Too many connections")),
    ("redis pool exhausted (plain)", redis_errors.ConnectionError("Too many connections")),
    ("redis lock time-out", redis_errors.LockError("Unable to acquire lock within the time")),
    ("redis lock expired", redis_errors.LockNotOwnedError("Cannot release a lock that's no "
                                                          "longer owned")),
    # Not the message's fault: every message would fail alike until the operator fixes it.
    ("redis auth refused", redis_errors.AuthenticationError("invalid password")),
    ("kafka not leader", kafka_errors.NotLeaderForPartitionError()),
    ("kafka request timed out", kafka_errors.RequestTimedOutError()),
    ("kafka connection", kafka_errors.KafkaConnectionError("Unable to bootstrap")),
    ("kafka time-out", kafka_errors.KafkaTimeoutError()),
    ("kafka leader not available", kafka_errors.LeaderNotAvailableError()),
    ("kafka node not ready", kafka_errors.NodeNotReadyError()),
    ("kafka producer closed", kafka_errors.ProducerClosed()),
    ("socket reset", ConnectionResetError(104, "Connection reset by peer")),
    ("socket refused", ConnectionRefusedError(111, "Connection refused")),
    ("time-out (asyncio.TimeoutError)", TimeoutError()),
    ("wrapped in a domain error", _chained(RuntimeError("could not save"),
                                           redis_errors.OutOfMemoryError("OOM"))),
    ("a group of transient ones", ExceptionGroup("both", [
        redis_errors.ReadOnlyError("READONLY"), kafka_errors.RequestTimedOutError()])),
]

PERMANENT: list[tuple[str, BaseException]] = [
    ("malformed CloudEvent", PoisonMessage("missing header ce_id")),
    ("schema violation", _validation_error()),
    ("unknown version", PoisonMessage("unknown event version homeward.x.v9")),
    ("not JSON", json.JSONDecodeError("Expecting value", "{x", 1)),
    ("missing field (a bug)", KeyError("case_id")),
    ("a bug", RuntimeError("handler bug")),
    ("a type error (a bug)", TypeError("unsupported operand")),
    ("redis wrong type", redis_errors.ResponseError(
        "WRONGTYPE Operation against a key holding the wrong kind of value")),
    ("redis syntax error", redis_errors.ResponseError("ERR syntax error")),
    ("redis script error", redis_errors.ResponseError("ERR Error running script")),
    ("kafka message too large", kafka_errors.MessageSizeTooLargeError()),
    ("kafka unsupported version", kafka_errors.UnsupportedVersionError()),
    ("file missing", FileNotFoundError(2, "No such file")),
    ("poison met while handling a transient one", _during(
        PoisonMessage("bad"), redis_errors.ConnectionError("gone"))),
    ("a group with one poison", ExceptionGroup("mixed", [
        redis_errors.ReadOnlyError("READONLY"), PoisonMessage("bad")])),
]


@pytest.mark.parametrize("exc", [e for _, e in TRANSIENT], ids=[n for n, _ in TRANSIENT])
def test_transient_faults_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [e for _, e in PERMANENT], ids=[n for n, _ in PERMANENT])
def test_messages_that_can_never_succeed_are_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_the_metric_names_the_redis_reply() -> None:
    assert kind_of(redis_errors.ResponseError("OOM command not allowed")) == "OOM"
    assert kind_of(redis_errors.OutOfMemoryError("command not allowed")) == "OOM"
    assert kind_of(redis_errors.MasterDownError("Link with MASTER is down")) == "MASTERDOWN"
    assert kind_of(redis_errors.BusyLoadingError("loading")) == "LOADING"
    assert kind_of(redis_errors.ResponseError("BUSY running a script")) == "BUSY"
    assert kind_of(kafka_errors.RequestTimedOutError()) == "RequestTimedOutError"


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.01, max_value=2),
       st.floats(min_value=0.5, max_value=30))
def test_backoff_grows_and_is_capped(attempt: int, base: float, cap: float) -> None:
    delay = backoff_s(attempt, base, cap)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


async def test_readiness_fails_while_retrying_and_only_for_its_own_consumers() -> None:
    retrying = Retrying()
    mine, other = retrying.check("dispatch", "dispatch-timers"), retrying.check("notify")
    assert await mine() and await other()
    assert retrying.failed("dispatch/reports/0", redis_errors.OutOfMemoryError("OOM")) == 1
    assert retrying.failed("dispatch/reports/0", redis_errors.OutOfMemoryError("OOM")) == 2
    retrying.failed("dispatch/reports/1", redis_errors.ReadOnlyError("READONLY"))
    assert not await mine() and await other()
    retrying.passed("dispatch/reports/0")
    assert not await mine()  # partition 1 still retries
    retrying.passed("dispatch/reports/1")
    assert await mine()
    assert retrying.failed("dispatch/reports/0", TimeoutError()) == 1  # counts afresh


async def test_a_key_that_stops_failing_without_a_success_goes_stale() -> None:
    """Its partition moved to another process: that one reports for it now."""
    retrying = Retrying(stale_s=0.05)
    retrying.failed("dispatch/reports/3", TimeoutError())
    assert not await retrying.check("dispatch")()
    await asyncio.sleep(0.1)
    assert await retrying.check("dispatch")()
