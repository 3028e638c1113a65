"""Whole-stack latencies, measured from the moment the operator's 202 arrives:
- first push: until the first hub's webhook is received (10 reports/s),
- leader: until `homeward.case.opened.v1` with the leader is on the dispatch topic
  (50 reports/s).
The three services run as processes on the bench's own Kafka and Redis; the load comes from
this process over 127.0.0.1, bounded in count.

What the leader figure is made of is printed after it (bench.flow_stages): each report's
stages (202 -> report on Kafka -> case.opened on Kafka -> seen here) from the records' times,
and the cores each service and the whole machine used during the leader phase.

Before either is measured, reports are posted at 50 a second for WARMUP_SECONDS and worked
through, not counted: a broker just started compiles its hot paths in its first minute of
traffic (its JVM took 45-60% of a core at 50 reports/s then, 26-33% after; the case-group
p99 of that minute was 85-115 ms against 43-50 ms after, measured 2026-12-01), which a broker
in service has long done.

This process is also the clock: its heap is settled (shared.serve.settle_heap, as in every
service) and its cyclic garbage collector is off while it posts and listens, as timeit does,
so a collection in the measuring process (a 50-100 ms pause for a full one) is not counted as
a report's latency."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.common import Result
from bench.flow_stages import CpuSampler, quantile, read_times, stages
from deploy.local.stack import free_port, start_services
from shared import topics
from shared.auth import Role, mint_token
from shared.serve import settle_heap
from shared.settings import Settings
from tests.helpers import report_body

PUSH_RATE, PUSH_SECONDS = 10, int(os.environ.get("HOMEWARD_BENCH_PUSH_SECONDS", "20"))
WARMUP_SECONDS = int(os.environ.get("HOMEWARD_BENCH_WARMUP_SECONDS", "10"))
LEADER_RATE, LEADER_SECONDS = 50, int(os.environ.get("HOMEWARD_BENCH_LEADER_SECONDS", "10"))


class TimedSink:
    """Records when each case's first push arrives (wall clock, same process as the client)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            # Keeps its connections open, as a hub's receiver does (HTTP/1.1). The HTTP/1.0
            # default closed each after one push: notify opened a TCP connection per push and
            # this process started a thread per push, on the same two cores the leader figure
            # is measured on (4% of notify's CPU in connecting, py-spy, 2026-12-02).
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                case_id = _case_of(body)
                if case_id:
                    sink.first.setdefault(case_id, at)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _case_of(body: bytes) -> str | None:
    import json

    try:
        return str(json.loads(body)["case_id"])
    except (ValueError, KeyError, TypeError):
        return None


async def post_at_rate(alert: str, rate: int, seconds: int) -> dict[str, float]:
    """Post `rate` reports a second for `seconds`; case id -> when its 202 arrived."""
    token = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    accepted: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=alert, timeout=10) as client:

        async def one() -> None:
            # Distinct children and reporters: the same child reported twice within 24 h
            # nearby is linked to one case group, which is not the path measured here.
            body = report_body(child__name=f"测{uuid.uuid4().hex[:6]}",
                               reporter__phone=f"139{uuid.uuid4().int % 10**8:08d}")
            response = await client.post("/api/v1/reports", headers=token, json=body)
            if response.status_code == 202:
                accepted[response.json()["case_id"]] = time.time()

        began, tasks = time.monotonic(), []
        for n in range(rate * seconds):
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return accepted


async def opened_times(bootstrap: str, stop: asyncio.Event, seen: dict[str, float]) -> None:
    consumer = AIOKafkaConsumer(topics.DISPATCH, bootstrap_servers=bootstrap,
                                group_id=f"bench-{uuid.uuid4().hex}", auto_offset_reset="latest",
                                fetch_max_wait_ms=5, enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            at = time.time()
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("ce_type") in {"homeward.case.opened.v1",
                                                  "homeward.case.leader_assigned.v1"}:
                        seen.setdefault(headers["ce_subject"], at)
    finally:
        await consumer.stop()


async def _worked_through(sink: TimedSink, opened: dict[str, float], cases: dict[str, float],
                          within_s: float) -> None:
    """Until every case in `cases` has its first push and its case group (or `within_s`)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and not all(  # noqa: ASYNC110 - two collections, bounded
            c in sink.first and c in opened for c in cases):
        await asyncio.sleep(0.2)


async def measure(bootstrap: str, alert: str, notify: str,
                  pids: dict[str, int] | None = None) -> list[Result]:
    """The figures; `pids`: the services' processes by name, whose CPU is sampled
    (bench.flow_stages)."""
    sampler = CpuSampler(pids or {})
    sink = TimedSink()
    admin = {"Authorization": f"Bearer {mint_token(Settings(), Role.admin, '000000')}"}
    async with httpx.AsyncClient() as client:
        registered = await client.post(f"{notify}/api/v1/subscribers", headers=admin, json={
            "kind": "hub", "name": "长治站", "location": {"lat": 36.22, "lon": 113.12},
            "channel": {"type": "webhook", "url": sink.url}})
        registered.raise_for_status()

    stop = asyncio.Event()
    opened: dict[str, float] = {}
    follower = asyncio.create_task(opened_times(bootstrap, stop, opened))
    await asyncio.sleep(3)  # the follower joins before the first report
    warm = await post_at_rate(alert, LEADER_RATE, WARMUP_SECONDS)
    await _worked_through(sink, opened, warm, 30)
    settle_heap()
    gc.disable()  # the measuring process does not pause to collect (the module's docstring)
    sampler.start()
    try:
        pushed_accepted = await post_at_rate(alert, PUSH_RATE, PUSH_SECONDS)
        leader_began = time.time()
        leader_accepted = await post_at_rate(alert, LEADER_RATE, LEADER_SECONDS)
        leader_ended = time.time()
        await _worked_through(sink, opened, {**pushed_accepted, **leader_accepted}, 30)
    finally:
        gc.enable()
        gc.unfreeze()  # the benchmarks after this one in the same process run as before
        sampler.stop()
    stop.set()
    await follower
    sink.server.shutdown()
    try:  # an explanation only: the figures above stand without it
        async with asyncio.timeout(60):
            times = await read_times(bootstrap)
        explained = _where_reports_waited(times, leader_accepted, opened,
                                          sampler.cores(leader_began, leader_ended))
    except Exception as exc:
        print(f"where the leader phase's reports waited: not read ({exc!r})")
        explained = []

    push_ms = [(sink.first[c] - t) * 1000 for c, t in pushed_accepted.items() if c in sink.first]
    leader_ms = [(opened[c] - t) * 1000 for c, t in leader_accepted.items() if c in opened]
    missing_push = len(pushed_accepted) - len(push_ms)
    missing_leader = len(leader_accepted) - len(leader_ms)
    results = [
        Result("first_push_p50_ms", round(quantile(push_ms, 0.5), 1), "ms", "<= 50",
               quantile(push_ms, 0.5) <= 50),
        Result("first_push_p99_ms", round(quantile(push_ms, 0.99), 1), "ms", "<= 250",
               quantile(push_ms, 0.99) <= 250),
        Result("first_push_mean_ms", round(statistics.fmean(push_ms), 1), "ms"),
        Result("first_push_missing", missing_push, "reports", "== 0", missing_push == 0),
        Result("leader_p50_ms", round(quantile(leader_ms, 0.5), 1), "ms"),
        Result("leader_p99_ms", round(quantile(leader_ms, 0.99), 1), "ms", "<= 100",
               quantile(leader_ms, 0.99) <= 100),
        Result("leader_missing", missing_leader, "reports", "== 0", missing_leader == 0),
        *explained,
    ]
    return results


def _where_reports_waited(times: tuple[dict[str, float], dict[str, float]],
                          accepted: dict[str, float], seen: dict[str, float],
                          cores: dict[str, float]) -> list[Result]:
    """Print and return the leader phase's stages (bench.flow_stages) and the cores each
    service used meanwhile: what leader_p99_ms is made of."""
    st = stages(accepted, *times, seen)
    out: list[Result] = []
    if not st.relay:
        return out
    for name, values in (("relay", st.relay), ("dispatch", st.dispatch),
                         ("measuring", st.measuring)):
        for q in (0.5, 0.99):
            out.append(Result(f"leader_stage_{name}_p{round(q * 100)}_ms",
                              round(quantile(values, q), 1), "ms"))
    print(f"leader phase, {len(st.relay)} reports, ms p50/p99: 202 -> report on Kafka "
          f"(relay) {quantile(st.relay, 0.5):.1f}/{quantile(st.relay, 0.99):.1f}; -> "
          f"case.opened on Kafka (dispatch) {quantile(st.dispatch, 0.5):.1f}/"
          f"{quantile(st.dispatch, 0.99):.1f}; -> seen here {quantile(st.measuring, 0.5):.1f}/"
          f"{quantile(st.measuring, 0.99):.1f}")
    if cores:
        machine = cores.pop("machine", 0.0)
        print(f"CPU meanwhile, cores: {', '.join(f'{k} {v:.2f}' for k, v in cores.items())}; "
              f"the whole machine {machine:.2f} of {os.cpu_count()}")
        out.append(Result("leader_cpu_machine_cores", machine, "cores"))
        out += [Result(f"leader_cpu_{k}_cores", v, "cores") for k, v in cores.items()]
    return out


def run(bootstrap: str, redis_url: str, data_dir: Path) -> list[Result]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(bootstrap, redis_url, data_dir / "flow", ports,
                           extra_env={"HOMEWARD_ACCESS_LOG": "false"})
    try:
        pids = {name: p.proc.pid for name, p in procs.items() if p.proc is not None}
        # asyncio's own loop here, not the services' (their processes run uvloop): this
        # process is the load and the hubs' receiver (TimedSink's threads), and its two alternating
        # pairs on uvloop read first pushes 607-680 ms at p99 against 72-315 on asyncio's loop.
        return asyncio.run(measure(bootstrap, procs["alert"].url, procs["notify"].url, pids))
    finally:
        for proc in procs.values():
            proc.stop()
