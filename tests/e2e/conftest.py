"""End-to-end modules share the session's Kafka and Redis. A module's alerts keep notify's
durable timers busy after its stack stopped: a hub's push of an active alert is retried for as
long as the alert lasts (issue 18 §4), and each alert widens on its tiers. Their sinks are gone,
so every later stack would inherit an ever-growing backlog of retries and widenings to dead
endpoints, which it works through while the next module's reports wait. Each module therefore
leaves notify's timers empty behind it (the deliveries and alerts themselves stay as they are)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from deploy.local.stack import RedisServer
from services.notify.delivery import ACKS, RETRIES
from services.notify.planner import WIDEN


@pytest.fixture(scope="module", autouse=True)
def leave_no_timers(redis_server: RedisServer) -> Iterator[None]:
    yield
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.delete(*(f"notify:timer:{timer}" for timer in (RETRIES, WIDEN, ACKS)))
    finally:
        client.close()
