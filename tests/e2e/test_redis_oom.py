"""Redis refusing writes (issue 19, item 5): Redis is set to `maxmemory 1mb` with `noeviction`
(every write answers `OOM command not allowed`) for ~15 s while 20 reports are filed, then
restored. Dispatch and notify retry from the same offset meanwhile and say so on /readyz (503)
and in homeward_transient_faults_total; afterwards every report has its case group and its hub
push, and nothing of this test is on any dead-letter topic.

The services run as processes on the session's Kafka and Redis (like test_redis_flush)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local.stack import KafkaServer, RedisServer, free_port, start_services
from shared import topics
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import WebhookSink, eventually, redis_refusing_writes, report_body

pytestmark = pytest.mark.e2e

REPORTS = 20
OOM_S = 15.0
LAST_SEEN = (36.19, 113.11)  # 长治市潞州区


def token(role: Role, region: str, hub_id: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(Settings(), role, region, hub_id=hub_id)}


async def test_redis_out_of_memory_is_retried_never_dead_lettered(
    kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
) -> None:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "redis-oom", ports)
    try:
        with WebhookSink() as sink:
            async with httpx.AsyncClient(timeout=20) as http:
                await scenario(http, {n: p.url for n, p in procs.items()},
                               {n: p.ops_url for n, p in procs.items()}, redis_server.url,
                               sink, kafka.bootstrap)
    finally:
        for proc in procs.values():
            proc.stop()


async def scenario(http: httpx.AsyncClient, urls: dict[str, str], ops: dict[str, str],
                   redis_url: str, sink: WebhookSink, bootstrap: str) -> None:
    """`urls`: each service's API port; `ops`: its internal port (/metrics)."""
    tag = uuid.uuid4().hex[:8]
    hub_id = f"oom-{tag}"
    got = await http.post(f"{urls['notify']}/api/v1/subscribers",
                          headers=token(Role.admin, "000000"), json={
                              "kind": "hub", "name": f"hub {tag}", "hub_id": hub_id,
                              "location": {"lat": LAST_SEEN[0] + 0.1, "lon": LAST_SEEN[1]},
                              "channel": {"type": "webhook", "url": sink.url}})
    assert got.status_code == 201, got.text
    operator = token(Role.operator, "140403")
    for name in ("dispatch", "notify"):
        assert (await http.get(f"{urls[name]}/readyz")).status_code == 200

    refused_at = time.monotonic()
    cases: list[str] = []
    readiness: dict[str, set[int]] = {"dispatch": set(), "notify": set()}
    async with redis_refusing_writes(redis_url):
        for n in range(REPORTS):
            body = report_body(child__name=f"内存{n}{tag}",
                               reporter__phone=f"137{int(tag, 16) % 10**6:06d}{n:02d}")
            posted = await http.post(f"{urls['alert']}/api/v1/reports", json=body,
                                     headers=operator)
            assert posted.status_code == 202, posted.text  # the outbox needs no Redis
            cases.append(posted.json()["case_id"])
            for name in readiness:
                readiness[name].add((await http.get(f"{urls[name]}/readyz")).status_code)
            await asyncio.sleep(0.2)
        while time.monotonic() - refused_at < OOM_S:
            for name in readiness:
                readiness[name].add((await http.get(f"{urls[name]}/readyz")).status_code)
            await asyncio.sleep(0.5)
        # Nothing got through while Redis refused writes.
        got = await http.get(f"{urls['dispatch']}/api/v1/cases/{cases[0]}",
                             headers=token(Role.commander, "140400"))
        assert got.status_code == 404, got.text
    assert all(503 in seen for seen in readiness.values()), readiness

    commander = token(Role.commander, "140400")

    async def every_case_formed() -> bool:
        for case_id in cases:
            got = await http.get(f"{urls['dispatch']}/api/v1/cases/{case_id}", headers=commander)
            if got.status_code != 200 or not got.json().get("leader"):
                return False
        return True

    def pushed() -> set[str]:
        return {json.loads(r["body"]).get("case_id") for r in list(sink.requests)}

    await eventually(every_case_formed, timeout=90, interval=1)
    await eventually(lambda: asyncio.sleep(0, pushed() >= set(cases)), timeout=90, interval=1)
    for name in ("dispatch", "notify"):
        await eventually(lambda n=name: _ready(http, urls[n]), timeout=30)
        metrics = (await http.get(f"{ops[name]}/metrics")).text
        assert any(line.startswith("homeward_transient_faults_total{")
                   and 'kind="OOM"' in line and not line.endswith(" 0.0")
                   for line in metrics.splitlines()), name

    dead = await keys_on(bootstrap, [*(topics.dlq(t) for t in topics.INPUT_TOPICS),
                                     topics.DELIVERIES_DLQ])
    assert not dead & set(cases), dead & set(cases)
    assert set(cases) <= await keys_on(bootstrap, [topics.REPORTS])  # the reader reads


async def keys_on(bootstrap: str, names: list[str]) -> set[str]:
    """The keys of every message on `names`, read up to their ends (no waiting for silence)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    keys: set[str] = set()
    try:
        # Every Homeward topic has topics.PARTITIONS partitions (shared.kafka.ensure_topics).
        parts = [TopicPartition(t, p) for t in names for p in range(topics.PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys.update(r.key.decode() for r in records if r.key)
    finally:
        await consumer.stop()
    return keys



async def _ready(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(f"{url}/readyz")).status_code == 200
