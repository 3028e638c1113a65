"""Session fixtures: a real Kafka broker and a real Redis on free ports, started once for the
whole run (only when a test asks for them) and stopped at the end."""

from __future__ import annotations

import asyncio
import atexit
import gc
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from deploy.local.keycloak import KeycloakServer
from deploy.local.stack import KafkaServer, RedisServer, free_port, local_signing_keys
from services.notify.sealing import new_key
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.helpers import run_sync

# There is no default key (issue 12): the suite signs with a random key of the production size,
# set before any test module builds Settings(); the services the tests start inherit it.
os.environ.setdefault("HOMEWARD_JWT_SECRET", secrets.token_urlsafe(48))
# Likewise notify's key sealing subscriber secrets and channel URLs at rest.
os.environ.setdefault("HOMEWARD_NOTIFY_SUBSCRIBER_KEYS", json.dumps([new_key("test")]))
os.environ.setdefault("HOMEWARD_IDENTITY_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("HOMEWARD_PII_MASTER_KEYS", f"test-1:{secrets.token_urlsafe(32)}")
# Nor a default signing key outside development (issue 17): notify signs with a key generated
# for this run, named the way production names its keys.
if "HOMEWARD_SIGNING_KEYS" not in os.environ:
    _signing = Path(tempfile.mkdtemp(prefix="homeward-signing-"))
    atexit.register(shutil.rmtree, _signing, ignore_errors=True)
    os.environ.update(local_signing_keys(_signing))

ARTIFACTS = Path(os.environ.get("HOMEWARD_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="homeward-test-"))
    yield path
    # Keep the logs of a failed run where CI can show them.
    ARTIFACTS.mkdir(exist_ok=True)
    for log in path.rglob("*.log"):
        shutil.copy(log, ARTIFACTS / f"{log.parent.name}-{log.name}")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(data_dir: Path) -> Iterator[KafkaServer]:
    server = KafkaServer(data_dir / "kafka", port=free_port()).start()
    run_sync(ensure_topics(server.bootstrap))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(data_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir / "redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keycloak(data_dir: Path) -> Iterator[KeycloakServer]:
    """One Keycloak with the `homeward` realm for the whole run (issue 20), started only when
    a test asks for it (~40 s on this machine)."""
    server = KeycloakServer(data_dir / "keycloak", port=free_port()).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def settings(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path) -> Settings:
    return Settings(
        kafka_bootstrap=kafka.bootstrap,
        redis_url=redis_server.url,
        data_dir=data_dir,
        webhook_allow_networks=["127.0.0.1/32", "::1/128"],  # the local sinks only
    )


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


ORDER = ("tests/unit/", "tests/integration/", "tests/e2e/", "tests/fuzz/", "tests/security/",
         "tests/browser/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fast tests first; browser tests last, because Playwright's sync API holds an event
    loop for the rest of the session, which the asyncio tests must not run under."""

    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(ORDER) if prefix in item.nodeid), 0)

    items.sort(key=rank)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    """When pytest-timeout stops a test (`timeout` in pyproject.toml), its traceback shows only
    the event loop's select(); add where every unfinished asyncio task was waiting, which is
    where the test hung."""
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and call.excinfo and "Timeout" in str(call.excinfo.value)):
        return
    stacks = io.StringIO()
    for task in [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]:
        task.print_stack(limit=12, file=stacks)
    report.sections.append(("unfinished asyncio tasks at the timeout", stacks.getvalue()))
