"""Faults under load (issue 7): 2,000 reports at a steady rate while the broker is paused for
30 s, dispatch and notify are each SIGKILLed twice, and Redis is restarted. Afterwards every
report has exactly one case with its leader and duties, and every hub in range holds exactly one
distinct delivery per alert version (a resend must carry the same webhook-id).

Everything runs as separate processes on a Kafka and Redis of this module's own, so pausing
the broker cannot disturb other tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.auth import Role, mint_token
from shared.kafka import ensure_topics
from shared.settings import Settings
from shared.topics import DISPATCH
from tests.helpers import WebhookSink, ids_per_case, read_topic, report_body, run_sync

pytestmark = pytest.mark.e2e

REPORTS = 2_000
RATE_PER_S = 25
LAST_SEEN = (36.19, 113.11)  # 长治市潞州区
# Four hubs within 100 km (≈ 11, 22, 33, 44 km north-east of the last-seen point).
HUB_OFFSETS = [(0.1 * i, 0.05 * i) for i in range(1, 5)]


class Faults:
    """The module's own broker, Redis and services, with the means to hurt them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kafka = KafkaServer(root / "kafka", port=free_port())
        self.redis = RedisServer(root / "redis", port=free_port())
        self.ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
        self.services: dict[str, ServiceProcess] = {}

    def start(self) -> Faults:
        self.redis.start()
        self.kafka.start()
        run_sync(ensure_topics(self.kafka.bootstrap))
        self.services = start_services(self.kafka.bootstrap, self.redis.url, self.root,
                                       self.ports)
        return self

    def stop(self) -> None:
        for proc in self.services.values():
            proc.stop()
        self.kafka.resume()
        self.kafka.stop()
        self.redis.stop()

    def url(self, name: str) -> str:
        return self.services[name].url

    def sigkill_and_restart(self, name: str) -> None:
        """SIGKILL, then start again at once (readiness comes whenever Kafka answers)."""
        self.services[name].kill()
        self.services[name].start()

    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis.start()


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    stack = Faults(tmp_path_factory.mktemp("faults")).start()
    yield stack
    stack.stop()


def bearer(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


def distinct_report(n: int) -> dict[str, Any]:
    """Different children and families: no two of them may be linked as the same child."""
    return report_body(
        child__name=f"测试儿童{n:04d}",
        child__birth_date=f"20{10 + n % 8:02d}-0{1 + n % 9}-1{n % 10}",
        reporter__phone=f"139{n:08d}",
    )


async def post_reports(alert: str, posted: dict[str, str]) -> None:
    """REPORTS reports at RATE_PER_S; a failed attempt is retried with the same key."""
    operator = bearer(Role.operator, "140403")
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def post(n: int) -> None:
            key = f"faults-{n}-{uuid.uuid4().hex}"
            body = distinct_report(n)
            for _ in range(20):
                try:
                    got = await http.post(f"{alert}/api/v1/reports", json=body,
                                          headers={**operator, "Idempotency-Key": key})
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                assert got.status_code == 202, got.text
                posted[got.json()["report_id"]] = got.json()["case_id"]
                return
            raise AssertionError(f"report {n} never accepted")

        began = time.monotonic()
        tasks = []
        for n in range(REPORTS):
            await asyncio.sleep(max(0.0, began + n / RATE_PER_S - time.monotonic()))
            tasks.append(asyncio.create_task(post(n)))
        await asyncio.gather(*tasks)


async def inflict(faults: Faults) -> list[str]:
    """The schedule of faults over the ~80 s of load; returns what was done, for the report."""
    done: list[str] = []
    began = time.monotonic()

    async def at(second: float, what: str, action: Any) -> None:
        await asyncio.sleep(max(0.0, began + second - time.monotonic()))
        await asyncio.to_thread(action)
        done.append(f"{time.monotonic() - began:5.1f}s {what}")

    await at(5, "broker SIGSTOP", faults.kafka.pause)
    await at(20, "dispatch SIGKILL #1", lambda: faults.sigkill_and_restart("dispatch"))
    await at(28, "notify SIGKILL #1", lambda: faults.sigkill_and_restart("notify"))
    await at(35, "broker SIGCONT (paused 30 s)", faults.kafka.resume)
    await at(50, "dispatch SIGKILL #2", lambda: faults.sigkill_and_restart("dispatch"))
    await at(56, "notify SIGKILL #2", lambda: faults.sigkill_and_restart("notify"))
    await at(65, "redis restart", faults.restart_redis)
    return done


async def register_hubs(notify: str, sinks: list[WebhookSink]) -> list[str]:
    admin = bearer(Role.admin, "000000")
    ids = []
    async with httpx.AsyncClient(timeout=10) as http:
        for i, (sink, (dlat, dlon)) in enumerate(zip(sinks, HUB_OFFSETS, strict=True)):
            got = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
                "kind": "hub", "name": f"故障测试站{i}",
                "location": {"lat": LAST_SEEN[0] + dlat, "lon": LAST_SEEN[1] + dlon},
                "channel": {"type": "webhook", "url": sink.url}})
            assert got.status_code == 201, got.text
            ids.append(got.json()["subscriber_id"])
    return ids


def alert_pushes(sink: WebhookSink, cases: set[str]) -> list[dict[str, Any]]:
    """The sink's pushes for this test's cases, with the webhook-id of each request."""
    out = []
    for request in list(sink.requests):
        body = json.loads(request["body"])
        if body.get("case_id") in cases:
            out.append({**body, "webhook_id": request["headers"].get("webhook-id")})
    return out


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last is True:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"{what} not reached within {timeout}s: {last}")


async def test_nothing_lost_or_doubled_under_faults(faults: Faults) -> None:
    sinks = [WebhookSink() for _ in HUB_OFFSETS]
    for sink in sinks:
        sink.__enter__()
    try:
        await register_hubs(faults.url("notify"), sinks)
        posted: dict[str, str] = {}
        _, done = await asyncio.gather(post_reports(faults.url("alert"), posted),
                                       inflict(faults))
        print("\n".join(done))
        assert len(posted) == REPORTS
        cases = set(posted.values())
        assert len(cases) == REPORTS, "every report opens its own case"

        await asyncio.to_thread(faults.services["dispatch"].wait_ready, 120)
        await asyncio.to_thread(faults.services["notify"].wait_ready, 120)

        # Every hub eventually holds a push for every case.
        async def all_pushed() -> bool | dict[int, int]:
            missing = {i: len(cases - {p["case_id"] for p in alert_pushes(s, cases)})
                       for i, s in enumerate(sinks)}
            return True if not any(missing.values()) else missing

        await wait_for(all_pushed, 240, "a push of every case at every hub")

        # Every case is readable with its leader and its three duties.
        commander = bearer(Role.commander, "140000")
        async with httpx.AsyncClient(timeout=30) as http:
            async def all_cases_open() -> bool | int:
                bad = 0
                for case_id in sorted(cases):
                    got = await http.get(f"{faults.url('dispatch')}/api/v1/cases/{case_id}",
                                         headers=commander)
                    body = got.json() if got.status_code == 200 else {}
                    duties = set(body.get("duties") or {})
                    if not body.get("leader") or \
                            duties != {"investigation", "rescue", "family_liaison"}:
                        bad += 1
                return True if bad == 0 else bad

            await wait_for(all_cases_open, 120, "every case open with its leader and three duties")
            sample = (await http.get(f"{faults.url('dispatch')}/api/v1/cases/{min(cases)}",
                                     headers=commander)).json()
            assert sample["leader"]["organ_name"] == "长治市公安局潞州分局"

        await asyncio.sleep(5)  # let any late duplicate arrive before counting

        # Exactly one case.opened per case on the dispatch topic.
        events = await read_topic(faults.kafka.bootstrap, DISPATCH)
        # One distinct case.opened per case; a resend after a crash carries the same ce_id.
        opened = ids_per_case(events, "homeward.case.opened.v1", cases)
        assert set(opened) == cases
        assert {c: ids for c, ids in opened.items() if len(ids) != 1} == {}

        # At each hub, one distinct delivery (webhook-id) per alert version; resends share it.
        resends = 0
        for i, sink in enumerate(sinks):
            ids_per_version: dict[tuple[str, Any], set[str]] = defaultdict(set)
            pushes = alert_pushes(sink, cases)
            for push in pushes:
                version = (push["case_id"], push.get("version"), push.get("type"))
                ids_per_version[version].add(push["webhook_id"])
            doubled = {v: ids for v, ids in ids_per_version.items() if len(ids) != 1}
            assert doubled == {}, f"hub {i}: distinct deliveries doubled: {doubled}"
            resends += len(pushes) - len(ids_per_version)
        print(f"resends carrying the same webhook-id: {resends}")
    finally:
        for sink in sinks:
            sink.__exit__(None, None, None)

