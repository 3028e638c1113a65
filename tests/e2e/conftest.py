"""End-to-end modules share the session's Kafka and Redis. A module's alerts keep notify's
durable timers busy after its stack stopped: a hub's push of an active alert is retried for as
long as the alert lasts (issue 18 §4), and each alert widens on its tiers. Their sinks are gone,
so every later stack would inherit an ever-growing backlog of retries and widenings to dead
endpoints, which it works through while the next module's reports wait. Each module therefore
leaves notify's timers empty behind it (the deliveries and alerts themselves stay as they are).

The end-to-end modules also get a broker and a Redis of their own, as the browser tests do: the
integration tests before them register hundreds of hubs (tests/integration/test_notify_lanes.py:
300 at the same place as these reports) on the session's subscriber log, whose sinks are gone.
A stack started after them rebuilds those hubs, and every report would then be pushed to each
of them, retried for as long as its alert lasts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from deploy.local.stack import KafkaServer, RedisServer, free_port
from services.notify.planner import WIDEN
from services.notify.sending import ACKS, RETRIES
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.helpers import run_sync


@pytest.fixture(scope="session")
def kafka(data_dir: Path) -> Iterator[KafkaServer]:
    """The end-to-end tests' own broker (overrides the session one, see above)."""
    server = KafkaServer(data_dir / "e2e-kafka", port=free_port()).start()
    run_sync(ensure_topics(server.bootstrap))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(data_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir / "e2e-redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path) -> Settings:
    """The session's settings, pointed at the end-to-end broker and Redis (a test that opens
    sealed records finds their case keys there)."""
    return Settings(kafka_bootstrap=kafka.bootstrap, redis_url=redis_server.url,
                    data_dir=data_dir, webhook_allow_networks=["127.0.0.1/32", "::1/128"])


@pytest.fixture(scope="module", autouse=True)
def leave_no_timers(redis_server: RedisServer) -> Iterator[None]:
    yield
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.delete(*(f"notify:timer:{timer}" for timer in (RETRIES, WIDEN, ACKS)))
    finally:
        client.close()
