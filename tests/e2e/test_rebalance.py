"""Two instances of dispatch and of notify in one consumer group (issue 7): the partitions are
split between them, and a rebalance mid-run (one instance of each leaves, then comes back)
loses and doubles nothing."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, service_env
from shared.auth import Role, mint_token
from shared.settings import Settings
from shared.topics import DISPATCH, REPORTS
from tests.helpers import WebhookSink, ids_per_case, read_topic, report_body

pytestmark = pytest.mark.e2e

REPORTS_POSTED = 600
RATE_PER_S = 50
LAST_SEEN = (36.19, 113.11)
INSTANCES = ("alert", "dispatch", "dispatch-2", "notify", "notify-2")


@pytest.fixture(scope="module")
def instances(kafka: KafkaServer, redis_server: RedisServer,
              data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in INSTANCES}
    env = service_env(kafka.bootstrap, redis_server.url, data_dir, ports)
    procs = {
        name: ServiceProcess(name.split("-")[0], port, {**env, "HOMEWARD_PORT": str(port)},
                             data_dir / f"rebalance-{name}.log").start()
        for name, port in ports.items()
    }
    for proc in procs.values():
        proc.wait_ready()
    yield procs
    for proc in procs.values():
        proc.stop()


def bearer(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


async def handled(http: httpx.AsyncClient, proc: ServiceProcess, topic: str) -> float:
    """How many messages of `topic` this one process has handled (its /metrics)."""
    text = (await http.get(f"{proc.ops_url}/metrics")).text
    pattern = rf'^homeward_messages_handled_total\{{(?=[^}}]*outcome="ok")' \
              rf'(?=[^}}]*topic="{re.escape(topic)}")[^}}]*\}} ([\d.e+]+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


async def test_two_instances_split_the_work_and_a_rebalance_loses_and_doubles_nothing(
    instances: dict[str, ServiceProcess],
) -> None:
    with WebhookSink() as sink_a, WebhookSink() as sink_b:
        admin = bearer(Role.admin, "000000")
        async with httpx.AsyncClient(timeout=30) as http:
            for i, sink in enumerate((sink_a, sink_b)):
                got = await http.post(f"{instances['notify'].url}/api/v1/subscribers",
                                      headers=admin, json={
                    "kind": "hub", "name": f"再均衡测试站{i}",
                    "location": {"lat": LAST_SEEN[0] + 0.1 * (i + 1), "lon": LAST_SEEN[1]},
                    "channel": {"type": "webhook", "url": sink.url}})
                assert got.status_code == 201, got.text

            posted: dict[str, str] = {}
            operator = bearer(Role.operator, "140403")

            async def post(n: int) -> None:
                body = report_body(child__name=f"再均衡{n:04d}", reporter__phone=f"137{n:08d}",
                                   child__birth_date=f"201{n % 10}-0{1 + n % 9}-2{n % 8}")
                got = await http.post(f"{instances['alert'].url}/api/v1/reports", json=body,
                                      headers={**operator, "Idempotency-Key": uuid.uuid4().hex})
                assert got.status_code == 202, got.text
                posted[got.json()["report_id"]] = got.json()["case_id"]

            async def post_all() -> None:
                began = time.monotonic()
                tasks = []
                for n in range(REPORTS_POSTED):
                    await asyncio.sleep(max(0.0, began + n / RATE_PER_S - time.monotonic()))
                    tasks.append(asyncio.create_task(post(n)))
                await asyncio.gather(*tasks)

            split: dict[str, float] = {}

            async def rebalance() -> None:
                # Both instances of each service work before one of them leaves.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    for name in INSTANCES[1:]:
                        split[name] = await handled(http, instances[name], REPORTS)
                    if all(split.values()):
                        break
                    await asyncio.sleep(0.2)
                for name in ("dispatch-2", "notify-2"):
                    await asyncio.to_thread(instances[name].stop)  # SIGTERM: leaves the group
                await asyncio.sleep(3)
                for name in ("dispatch-2", "notify-2"):
                    instances[name].start()
                for name in ("dispatch-2", "notify-2"):
                    await asyncio.to_thread(instances[name].wait_ready)

            await asyncio.gather(post_all(), rebalance())
            assert all(split.values()), f"an instance got no partitions: {split}"
            cases = set(posted.values())
            assert len(cases) == REPORTS_POSTED

            def pushes(sink: WebhookSink) -> list[dict[str, Any]]:
                out = []
                for r in list(sink.requests):
                    body = json.loads(r["body"])
                    if body.get("case_id") in cases:
                        out.append({**body, "webhook_id": r["headers"].get("webhook-id")})
                return out

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if all({p["case_id"] for p in pushes(s)} == cases for s in (sink_a, sink_b)):
                    break
                await asyncio.sleep(1)
            await asyncio.sleep(5)  # room for a late duplicate
            for sink in (sink_a, sink_b):
                got = pushes(sink)
                assert {p["case_id"] for p in got} == cases
                ids: dict[tuple[Any, ...], set[str]] = defaultdict(set)
                for p in got:
                    ids[(p["case_id"], p.get("version"), p.get("type"))].add(p["webhook_id"])
                assert {k: v for k, v in ids.items() if len(v) != 1} == {}

        events = await read_topic(instances["alert"].env["HOMEWARD_KAFKA_BOOTSTRAP"], DISPATCH)
        # One distinct case.opened per case; a resend after a crash carries the same ce_id.
        opened = ids_per_case(events, "homeward.case.opened.v1", cases)
        assert set(opened) == cases
        assert {c: ids for c, ids in opened.items() if len(ids) != 1} == {}
