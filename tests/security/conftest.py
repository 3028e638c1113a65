"""The security suite (issue 12): one stack of the three services on the session's Kafka and
Redis, shared by every file here (Redis database 2, so its keys and connections are its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.auth import Role, mint_token
from shared.settings import Settings

SECURITY_DB = 2


@pytest.fixture(scope="package")
def security_redis_url(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{SECURITY_DB}"


@pytest.fixture(scope="package")
def security_stack(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
                   security_redis_url: str) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, security_redis_url, data_dir / "security", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def bearer(role: Role, region: str, hub_id: str | None = None, sub: str | None = None,
           ttl_s: int | None = None) -> dict[str, str]:
    """A valid token of the suite's key (tests/conftest.py sets HOMEWARD_JWT_SECRET)."""
    lifetime = {} if ttl_s is None else {"ttl_s": ttl_s}
    token = mint_token(Settings(), role, region, hub_id=hub_id, sub=sub, **lifetime)
    return {"Authorization": f"Bearer {token}"}
