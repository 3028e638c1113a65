"""A fifth of the webhook endpoints fail for a minute (issue 7): 500s, timeouts, and 429 with
Retry-After. Afterwards every delivery completes within the retry schedule; an endpoint that
answers 410 is disabled; an alert cancelled during the outage is not delivered late."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.auth import Role, mint_token
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.helpers import eventually, report_body, run_sync

pytestmark = pytest.mark.e2e

OUTAGE_S = 60.0
LAST_SEEN = (36.19, 113.11)
ISSUED = "homeward.alert.issued.v1"
# Retries: full jitter up to 16 s, enough tries to outlast the outage many times over.
RETRIES = {"HOMEWARD_NOTIFY_RETRY_BASE_S": "2", "HOMEWARD_NOTIFY_RETRY_CAP_S": "16",
           "HOMEWARD_NOTIFY_RETRY_MAX_ATTEMPTS": "20", "HOMEWARD_WEBHOOK_TIMEOUT_S": "2"}


class ScriptedSink:
    """An endpoint that misbehaves in one way until `until` (monotonic), then answers 204.
    Every request is recorded with the status it got."""

    def __init__(self, behaviour: str, until: float = 0.0) -> None:
        self.behaviour = behaviour
        self.until = until
        self.requests: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, headers = sink.answer()
                if status == 0:  # a timeout: hold the connection past the sender's limit
                    time.sleep(3)
                    status = 204
                    answered = "timeout"
                else:
                    answered = str(status)
                sink.requests.append({"at": arrived, "status": answered,
                                      "id": self.headers.get("webhook-id"),
                                      "body": json.loads(body)})
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up on a slow answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self) -> tuple[int, dict[str, str]]:
        if self.behaviour == "gone":
            return 410, {}
        if self.behaviour == "ok" or time.monotonic() >= self.until:
            return 204, {}
        if self.behaviour == "500":
            return 500, {}
        if self.behaviour == "429":
            return 429, {"Retry-After": "7"}
        return 0, {}  # "timeout"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self, case_id: str, type_: str = ISSUED) -> list[dict[str, Any]]:
        """Requests for `case_id` of `type_` that the endpoint accepted (2xx in time)."""
        return [r for r in self.requests if r["body"].get("case_id") == case_id
                and r["body"].get("type") == type_ and r["status"] == "204"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    """A Kafka and Redis of this module's own: the retry schedule is measured here, and hubs
    that earlier tests registered (and a rebuild brings back) must not share the timers."""
    root = tmp_path_factory.mktemp("outage")
    kafka = KafkaServer(root / "kafka", port=free_port()).start()
    redis = RedisServer(root / "redis", port=free_port()).start()
    run_sync(ensure_topics(kafka.bootstrap))
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis.url, root, ports, extra_env=RETRIES)
    yield procs
    for proc in procs.values():
        proc.stop()
    kafka.stop()
    redis.stop()


def bearer(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


async def test_outage_of_a_fifth_of_the_endpoints(stack: dict[str, ServiceProcess]) -> None:
    alert, dispatch, notify = (stack[n].url for n in ("alert", "dispatch", "notify"))
    until = time.monotonic() + OUTAGE_S
    healthy = [ScriptedSink("ok") for _ in range(12)]
    failing = [ScriptedSink(kind, until) for kind in ("500", "timeout", "429")]
    gone = ScriptedSink("gone")
    sinks = [*healthy, *failing, gone]
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            subscriber_of: dict[int, str] = {}
            for i, sink in enumerate(sinks):
                got = await http.post(f"{notify}/api/v1/subscribers",
                                      headers=bearer(Role.admin, "000000"), json={
                    "kind": "hub", "name": f"故障端点{i}",
                    "location": {"lat": LAST_SEEN[0] + 0.02 * (i + 1), "lon": LAST_SEEN[1]},
                    "channel": {"type": "webhook", "url": sink.url}})
                assert got.status_code == 201, got.text
                subscriber_of[id(sink)] = got.json()["subscriber_id"]

            async def report(n: int) -> str:
                got = await http.post(f"{alert}/api/v1/reports",
                                      headers=bearer(Role.operator, "140403"),
                                      json=report_body(child__name=f"断网测试{n}",
                                                       reporter__phone=f"136{n:08d}"))
                assert got.status_code == 202, got.text
                return str(got.json()["case_id"])

            kept, cancelled = await report(1), await report(2)
            commander = bearer(Role.commander, "140400")

            async def opened() -> bool:
                got = await http.get(f"{dispatch}/api/v1/cases/{cancelled}", headers=commander)
                return got.status_code == 200

            await eventually(opened, timeout=30)
            await eventually(lambda: asyncio.sleep(
                0, all(s.delivered(cancelled) for s in healthy)), timeout=30)
            await asyncio.sleep(10)  # the failing ones have been tried and are waiting to retry
            found = await http.post(f"{dispatch}/api/v1/cases/{cancelled}/found",
                                    headers=commander, json={
                                        "outcome": "found_safe",
                                        "found_at": datetime.now(UTC).isoformat()})
            assert found.status_code == 200, found.text
            cancelled_at = time.monotonic()
            assert cancelled_at < until, "the cancellation must fall inside the outage"

            # After the outage, within the retry schedule (≤ 16 s between tries), the kept
            # alert reaches every endpoint that came back.
            deadline = until + 120
            while time.monotonic() < deadline:
                if all(s.delivered(kept) for s in (*healthy, *failing)):
                    break
                await asyncio.sleep(1)
            late = {s.behaviour: len(s.delivered(kept)) for s in failing}
            assert all(s.delivered(kept) for s in healthy)
            assert all(late.values()), f"not delivered after the outage: {late}"
            for sink in failing:
                delivered = sink.delivered(kept)
                # Once per version that reached it (an Alert superseded by the leader's Update
                # while retrying is not sent again).
                assert len({r["id"] for r in delivered}) == len(
                    {r["body"]["version"] for r in delivered})
                tries = [r for r in sink.requests if r["body"].get("case_id") == kept]
                # Per version (the Alert; the leader's Update, issue 18 §5, which supersedes
                # an Alert still retrying): its retries keep their webhook-id.
                for version in {r["body"]["version"] for r in tries}:
                    ids = {r["id"] for r in tries if r["body"]["version"] == version}
                    assert len(ids) == 1, "retries keep their webhook-id"
                assert len(tries) >= 2

            # The cancelled alert is never delivered to an endpoint after its cancellation.
            for sink in failing:
                after = [r for r in sink.requests if r["body"].get("case_id") == cancelled
                         and r["body"].get("type") == ISSUED and r["at"] > cancelled_at + 1]
                assert after == [], f"{sink.behaviour}: alert delivered after cancellation"
                assert sink.delivered(cancelled) == []

            # 410: disabled after the first answer; a later report does not go there.
            async def states(case_id: str) -> dict[str, set[str]]:
                """subscriber -> the states of its deliveries of the case (one per version)."""
                got = await http.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                                     headers=commander)
                out: dict[str, set[str]] = {}
                for d in got.json()["deliveries"]:
                    out.setdefault(d["subscriber_id"], set()).add(d["state"])
                return out

            by_subscriber = await states(kept)
            # The 410 came on whichever of the two alerts reached it first; after it, nothing.
            gone_states: set[str] = set()
            for c in (kept, cancelled):
                gone_states |= (await states(c)).get(subscriber_of[id(gone)], set())
            assert "gone" in gone_states
            for sink in (*healthy, *failing):
                # Delivered; an earlier version still retrying was superseded (`dropped`).
                assert by_subscriber[subscriber_of[id(sink)]] & {"sent", "acknowledged"}
                assert by_subscriber[subscriber_of[id(sink)]] <= {"sent", "acknowledged",
                                                                  "dropped"}
            before = len(gone.requests)
            later = await report(3)
            await eventually(lambda: asyncio.sleep(
                0, all(s.delivered(later) for s in healthy)), timeout=30)
            await asyncio.sleep(3)
            assert len(gone.requests) == before
    finally:
        for sink in sinks:
            sink.close()
