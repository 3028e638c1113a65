"""schemathesis against each service's OpenAPI document, called as every role: no 5xx, and
every answer (status, content type, body) matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.auth import Role, mint_token
from shared.settings import Settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
TOKENS = {role: mint_token(Settings(), role, "140400", hub_id="HUB1" if role == Role.hub else None,
                           permissions=["release"] if role == Role.operator else None,
                           org="测试医院" if role == Role.mandated_reporter else None)
          for role in Role}


@pytest.fixture(scope="module")
def fuzz_stack(kafka: KafkaServer, redis_server: RedisServer,
               data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    """A stack of its own on Redis database 1, so the garbage it files stays away from others."""
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    procs = start_services(kafka.bootstrap, redis_url, data_dir / "fuzz", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def _load(service: ServiceProcess) -> schemathesis.BaseSchema:
    # The document is served on the internal port (issue 12); the API on the public one.
    schema = schemathesis.openapi.from_url(f"{service.ops_url}/openapi.json")
    schema.config.update(base_url=service.url)
    # Live streams never end; they are exercised by their own tests.
    return schema.exclude(path_regex=r".*/stream$")


def exercise(case: Case) -> None:
    """The same generated request as each role and without a token."""
    for token in [*TOKENS.values(), None]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)


FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("service", ["alert", "dispatch", "notify"])
def test_every_operation_as_every_role(
    fuzz_stack: dict[str, ServiceProcess], service: str
) -> None:
    schema = _load(fuzz_stack[service])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{service} documents no operation"
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Case) -> None:
            exercise(case)

        try:
            run()
        except Exception as exc:
            raise AssertionError(f"{service} {operation.label}: {exc}") from exc
