"""A report that got 202 is never lost and never published twice: not while the broker is
down, not when the service is killed between commit and publish."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, service_env
from shared import topics
from shared.auth import Role, mint_token
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body, run_sync
from tests.integration.test_alert_intake import alert_client

OPERATOR = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of this test's own, so stopping it does not disturb the others."""
    server = KafkaServer(tmp_path / "kafka", port=free_port()).start()
    run_sync(ensure_topics(server.bootstrap))
    yield server
    server.stop()


async def published_ids(bootstrap: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in await read_topic(bootstrap, topics.REPORTS, timeout=10):
        ce_id = message["headers"].get("ce_id")  # other tests leave poison on the topic
        if ce_id:
            counts[ce_id] = counts.get(ce_id, 0) + 1
    return counts


async def test_reports_wait_for_a_stopped_broker_and_arrive_exactly_once(
    own_kafka: KafkaServer, settings: Settings, tmp_path: Path
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path,
                                        "kafka_bootstrap": own_kafka.bootstrap})
    async with alert_client(local) as client:
        await eventually(lambda: _ready_with_kafka(client))
        own_kafka.stop()
        answers = await asyncio.gather(*(
            client.post("/api/v1/reports", json=report_body(child__name=f"孩子{n}"),
                        headers=OPERATOR)
            for n in range(200)))
        assert [a.status_code for a in answers] == [202] * 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # still taking reports
        assert ready.json()["backlog"] == 200
        assert ready.json()["checks"]["kafka"] == "failing"

        own_kafka.start()
        await eventually(lambda: _backlog_empty(client), timeout=90)

    counts = await published_ids(own_kafka.bootstrap)
    assert set(counts) == {a.json()["report_id"] for a in answers}
    assert set(counts.values()) == {1}


async def _ready_with_kafka(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).json()["checks"]["kafka"] == "ok"


async def _backlog_empty(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).json()["backlog"] == 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigkill_between_commit_and_publish_loses_and_doubles_nothing(
    kafka: KafkaServer, redis_server: RedisServer, tmp_path: Path, workers: int
) -> None:
    """With several intake workers (issue 15) the reports they committed are published by
    the one elected relay after the restart, each exactly once."""
    port = free_port()
    env = {**service_env(kafka.bootstrap, redis_server.url, tmp_path,
                         {"alert": port, "dispatch": 0, "notify": 0}),
           "HOMEWARD_PORT": str(port), "HOMEWARD_ALERT_WORKERS": str(workers)}
    paused = ServiceProcess("alert", port, {**env, "HOMEWARD_ALERT_RELAY_ENABLED": "false"},
                            tmp_path / "alert-paused.log").start()
    paused.wait_ready()
    async with httpx.AsyncClient(base_url=paused.url, timeout=10) as client:
        answers = [await client.post("/api/v1/reports", headers=OPERATOR,
                                     json=report_body(child__name=f"孩子{n}"))
                   for n in range(50)]
        assert {a.status_code for a in answers} == {202}
        statuses = {(await client.get(f"/api/v1/reports/{a.json()['report_id']}",
                                      headers=OPERATOR)).json()["status"] for a in answers}
        assert statuses == {"accepted"}  # committed, not yet published
    paused.kill()  # SIGKILL: no shutdown hook runs

    restarted = ServiceProcess("alert", port, env, tmp_path / "alert.log").start()
    try:
        restarted.wait_ready()
        async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as client:
            await eventually(lambda: _backlog_empty(client), timeout=60)
    finally:
        restarted.stop()
    ours = {a.json()["report_id"] for a in answers}
    counts = {k: v for k, v in (await published_ids(kafka.bootstrap)).items() if k in ours}
    assert set(counts) == ours
    assert set(counts.values()) == {1}


