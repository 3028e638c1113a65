"""A report that got 202 is never lost and never published twice: not while the broker is
down, not when the service is killed between commit and publish."""

import asyncio
import contextlib
import os
import signal
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
    for message in await read_topic(bootstrap, topics.REPORTS):
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




def _workers(supervisor: int) -> list[int]:
    """The worker processes of the alert supervisor `supervisor` (Linux /proc)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    workers = []
    for pid in children:
        with contextlib.suppress(OSError):  # gone meanwhile
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(int(pid))
    return workers


def _duties_holder(lock: Path) -> int:
    """The pid holding the flock on `lock` (Linux /proc/locks)."""
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return int(parts[4])
    raise AssertionError("nobody holds the duties lock")


async def test_sigkill_of_a_worker_loses_nothing(
    kafka: KafkaServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 15: two intake workers share the outbox; one of them holds the relay. SIGKILL of
    the other while reports flow: each report it answered 202 is published exactly once by
    the relay. SIGKILL of the relay's holder: another worker takes the duties over and every
    report answered 202 is published; a batch sent but not yet marked may go twice with the
    same ce_id, which consumers drop (the outbox's at-least-once)."""
    port = free_port()
    env = {**service_env(kafka.bootstrap, redis_server.url, tmp_path,
                         {"alert": port, "dispatch": 0, "notify": 0}),
           "HOMEWARD_PORT": str(port), "HOMEWARD_ALERT_WORKERS": "2"}
    service = ServiceProcess("alert", port, env, tmp_path / "alert.log").start()
    phases: list[list[httpx.Response]] = [[], []]
    try:
        service.wait_ready()
        assert service.proc is not None
        pid = service.proc.pid
        lock = tmp_path / "alert-duties.lock"
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            async def post(n: int, into: list[httpx.Response]) -> None:
                try:
                    into.append(await client.post("/api/v1/reports", headers=OPERATOR,
                                                  json=report_body(child__name=f"孩子{n}")))
                except httpx.HTTPError:
                    pass  # its worker was killed mid-request: no 202, no promise

            for phase, answered in enumerate(phases):
                holder = _duties_holder(lock)
                workers = _workers(pid)
                assert len(workers) == 2 and holder in workers
                victim = holder if phase else next(w for w in workers if w != holder)
                sending = asyncio.gather(*(post(n, answered) for n in range(40)))
                await asyncio.sleep(0.05)
                os.kill(victim, signal.SIGKILL)
                await sending
                await asyncio.gather(*(post(n, answered) for n in range(10)))

                async def replaced(gone: int = victim) -> bool:
                    now = _workers(pid)
                    ready = (await client.get("/readyz")).json()
                    return len(now) == 2 and gone not in now and \
                        ready["checks"].get("relay") == "ok"

                await eventually(replaced, timeout=30)  # a new worker; a relay holder again
                await eventually(lambda: _backlog_empty(client), timeout=60)
    finally:
        service.stop()
    published = await published_ids(kafka.bootstrap)
    for phase, answered in enumerate(phases):
        ours = {a.json()["report_id"] for a in answered if a.status_code == 202}
        assert len(ours) >= 10, phase
        counts = {k: v for k, v in published.items() if k in ours}
        assert set(counts) == ours, phase  # nothing lost
        if phase == 0:
            assert set(counts.values()) == {1}  # the relay was not interrupted
