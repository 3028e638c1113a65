"""What notify's benchmarks share (issue 18's lanes architecture), all on 127.0.0.1:

- `Sink`: a separate process listening on several ports (one "endpoint" each) that answers
  every POST with 204, counts them and keeps the arrival time (`time.time()`) of the first
  request to each `/hub/...` path;
- `Workers`: notify delivery-worker processes, each the real service (`create_app` with its
  lanes' consumers, no planner, no timers) in a process of its own;
- `planner_notify`: the bench process's notify whose planner publishes its jobs to the lanes
  (KafkaLanes), as the service does;
- `Receipts`: counts the `delivery.sent` receipts of each case on the receipts topic (the end
  of the real path: a receipt is published after the ledger says `sent`).

Every process here runs on the event loop the services run on (uvloop:
`shared.serve.run_on_service_loop`), the raw client it is compared with too.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.serve import run_on_service_loop

ENDPOINTS = 32       # sink ports for the bulk recipients: recipients spread over them round-robin
HUB_ENDPOINTS = 4    # sink ports of their own for hubs (they are other hosts than the media)
PER_ENDPOINT = 16    # notify_per_endpoint_limit, and the raw client's limit_per_host
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# cProfile the worker processes into this directory (one .prof per process), when set.
PROFILE_DIR = os.environ.get("HOMEWARD_BENCH_PROFILE", "")


def _sink_main(endpoints: int, conn: Any) -> None:
    from aiohttp import web

    count = 0
    hubs: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        if request.path.startswith("/hub/") and request.path not in hubs:
            hubs[request.path] = time.time()
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": count, "hubs": hubs})

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/_stats", stats)
        app.router.add_post("/{tail:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ports = []
        for _ in range(endpoints):
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        conn.send(ports)
        await asyncio.Event().wait()

    run_on_service_loop(serve())


class Sink:
    """The webhook receivers, in a process of their own, each port one the kernel picked."""

    def __init__(self, endpoints: int = ENDPOINTS + HUB_ENDPOINTS) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sink_main, args=(endpoints, child), daemon=True)
        self.proc.start()
        if not parent.poll(30):
            self.proc.kill()
            raise RuntimeError("sink did not start")
        ports: list[int] = parent.recv()
        self.ports, self.hub_ports = ports[:ENDPOINTS], ports[ENDPOINTS:]

    def url(self, i: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/{path}"

    def hub_url(self, i: int, path: str) -> str:
        return f"http://127.0.0.1:{self.hub_ports[i % len(self.hub_ports)]}/hub/{path}"

    async def stats(self, session: Any) -> dict[str, Any]:
        async with session.get(f"http://127.0.0.1:{self.ports[0]}/_stats") as response:
            return dict(await response.json())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.join(5)


def standalone(run: Callable[[str, str, Path], list[Any]]) -> None:
    """`python -m bench.notify_<part>`: one benchmark on a Kafka and a Redis of its own."""
    import tempfile

    from deploy.local.stack import KafkaServer, RedisServer, free_port
    from shared.kafka import ensure_topics

    tmp = Path(tempfile.mkdtemp(prefix="homeward-bench-notify-"))
    kafka = KafkaServer(tmp / "kafka", port=free_port())
    redis = RedisServer(tmp / "redis", port=free_port())
    try:
        redis.start()
        kafka.start()
        run_on_service_loop(ensure_topics(kafka.bootstrap))
        for r in run(kafka.bootstrap, redis.url, tmp):
            print(r.as_dict())
    finally:
        kafka.stop()
        redis.stop()


def use_local_keys(data_dir: Path) -> None:
    """The keys no repository holds (deploy.local.stack.stack_env, generated into `data_dir`
    once) in this process's environment, which the spawned workers inherit."""
    from deploy.local.stack import stack_env

    os.environ.update(stack_env(data_dir))


def settings_of(bootstrap: str, redis_url: str, **overrides: Any) -> dict[str, Any]:
    """The settings every notify process of a benchmark shares (as keywords: they cross into
    spawned processes)."""
    return {"kafka_bootstrap": bootstrap, "redis_url": redis_url,
            "webhook_allow_networks": ["127.0.0.1/32"], "notify_rebuild_on_empty": False,
            "notify_planner": False, "notify_per_endpoint_limit": PER_ENDPOINT,
            "notify_fanout_parallel": ENDPOINTS * PER_ENDPOINT, **overrides}


def _worker_main(settings: dict[str, Any], conn: Any, profile: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    profiler = cProfile.Profile() if profile else None

    async def serve() -> None:
        from services.notify.app import create_app
        from shared import telemetry
        from shared.serve import settle_heap
        from shared.settings import Settings

        telemetry.setup("notify")  # as shared.serve does before the app (tracing as configured)
        app = create_app(Settings(**settings), timers=False, consume=True)
        if os.environ.get("HOMEWARD_BENCH_TRACE"):
            _trace(app.state.notify.worker)
        async with app.router.lifespan_context(app):
            settle_heap()  # as shared.serve does once a service's app has started
            conn.send("ready")
            while True:
                command = await asyncio.to_thread(conn.recv)
                if command == "assigned":
                    conn.send({lane.topic: len(lane.consumer.assignment())
                               for lane in app.state.lanes if lane.consumer is not None})
                elif command == "cpu":
                    conn.send(time.process_time())
                elif command == "profile" and profiler is not None:
                    profiler.enable()
                    conn.send("ok")
                else:
                    break
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(Path(profile) / f"worker-{os.getpid()}.prof"))
            conn.send(app.state.notify.worker.sender.sent)

    run_on_service_loop(serve())


def _trace(worker: Any) -> None:
    """Diagnostics (HOMEWARD_BENCH_TRACE set), on stderr: for each restricted batch, how long
    after the planner made its first job the worker took it and how long working it took; for
    each public one, its size and how long it took."""
    import sys
    from datetime import UTC, datetime

    from shared import topics

    handle = worker.handle

    async def traced(events: list[Any], *args: Any, **kwargs: Any) -> None:
        topic = kwargs.get("topic", args[2] if len(args) > 2 else "")
        lag = (datetime.now(UTC) - min(e.time for e in events)).total_seconds() * 1000
        began = time.perf_counter()
        await handle(events, *args, **kwargs)
        took = (time.perf_counter() - began) * 1000
        lane = "restricted" if topic == topics.DELIVERY_JOBS_RESTRICTED else "public"
        print(f"{lane} batch of {len(events)}: taken {lag:.0f} ms after its first job was made, "
              f"worked in {took:.0f} ms", file=sys.stderr)

    worker.handle = traced


class Workers:
    """Delivery-worker processes (each consumes both lanes in the lanes' consumer groups)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.procs: list[tuple[Any, Any]] = []

    def add(self, **overrides: Any) -> None:
        """One more worker process; `overrides`: settings of its own (e.g. notify_lanes)."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main,
                           args=({**self.settings, **overrides}, child, PROFILE_DIR),
                           daemon=True)
        proc.start()
        if not parent.poll(60) or parent.recv() != "ready":
            proc.kill()
            raise RuntimeError("delivery worker did not start")
        self.procs.append((proc, parent))

    async def settled(self, timeout_s: float = 60.0) -> None:
        """Until every lane's partitions are shared by the workers that consume it, each of
        them holding some."""
        from shared import topics

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            owned: list[dict[str, int]] = []
            for _, conn in self.procs:
                conn.send("assigned")
                owned.append(await asyncio.to_thread(conn.recv))
            if all(all(o.values()) for o in owned) and all(
                    sum(o.get(t, 0) for o in owned) == topics.JOB_PARTITIONS
                    for t in topics.JOB_TOPICS):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the workers did not share the lanes' partitions in time")

    def cpu(self) -> float:
        """CPU seconds the worker processes have used so far, together."""
        total = 0.0
        for _, conn in self.procs:
            conn.send("cpu")
            total += float(conn.recv())
        return total

    def profile(self) -> None:
        """Start profiling (HOMEWARD_BENCH_PROFILE set): what follows is the measured part."""
        if PROFILE_DIR:
            for _, conn in self.procs:
                conn.send("profile")
                conn.recv()

    def stop(self) -> list[int]:
        """Stop every worker; the requests each made."""
        sent = []
        for proc, conn in self.procs:
            with contextlib.suppress(OSError, EOFError):
                conn.send("stop")
                if conn.poll(30):
                    sent.append(int(conn.recv()))
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        self.procs = []
        return sent


class Receipts:
    """Counts `delivery.sent` receipts per case (the receipt's key) from the end of the receipts
    topic as it was at `start`."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.sent: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from shared import topics

        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                         enable_auto_commit=False, fetch_max_wait_ms=20)
        await self.consumer.start()
        parts = [TopicPartition(topics.DELIVERIES, p)
                 for p in self.consumer.partitions_for_topic(topics.DELIVERIES) or
                 await self._partitions()]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        self._task = asyncio.create_task(self._run())

    async def _partitions(self) -> set[int]:
        from shared import topics

        await self.consumer._client.force_metadata_update()
        return self.consumer.partitions_for_topic(topics.DELIVERIES) or set()

    async def _run(self) -> None:
        from shared.events import DELIVERY_SENT

        sent = DELIVERY_SENT.encode()
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            for records in batch.values():
                for r in records:
                    if dict(r.headers or ()).get("ce_type") == sent and r.key:
                        self.sent[r.key.decode()] += 1

    async def wait(self, case_id: str, count: int, timeout_s: float = 300.0) -> float:
        """Until `count` receipts of `case_id` were read; the time.perf_counter() then."""
        deadline = time.monotonic() + timeout_s
        while self.sent[case_id] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case_id}: {self.sent[case_id]} of {count} receipts")
            await asyncio.sleep(0.005)
        return time.perf_counter()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def planner_notify(settings: dict[str, Any]) -> Any:
    """The bench process's notify: its planner publishes jobs to the lanes; its broker started.
    Redis is flushed first (the benchmark's own database)."""
    from services.notify.adapters import make_redis
    from services.notify.app import build_notify, make_notify_broker
    from services.notify.lanes import KafkaLanes
    from shared.kafka import EventPublisher
    from shared.serve import settle_heap
    from shared.settings import Settings

    s = Settings(**settings)
    redis = make_redis(s.redis_url)
    await redis.flushdb()
    broker = make_notify_broker(s.kafka_bootstrap)
    publisher = EventPublisher(broker, "/homeward/notify")
    notify = build_notify(s, redis, publisher, lanes=KafkaLanes(publisher))
    await broker.start()
    settle_heap()  # this process stands in for notify's: its heap settled as shared.serve does
    return notify


async def close_planner(notify: Any) -> None:
    await notify.publisher.broker.stop()
    await notify.webhooks.close()
    if notify.keys is not None:
        await notify.keys.stop()
    await notify.alerts.redis.flushdb()
    await notify.alerts.redis.aclose()


def around(centre: tuple[float, float], spread: float, n: int) -> list[tuple[float, float]]:
    """`n` places within `spread` degrees of `centre`."""
    rng = random.Random(n)
    return [(centre[0] + rng.uniform(-spread, spread), centre[1] + rng.uniform(-spread, spread))
            for _ in range(n)]


def subscribers(kind: str, urls: list[str], places: list[tuple[float, float]],
                prefix: str) -> list[Any]:
    """Webhook subscribers of `kind`, one per URL, at `places`."""
    from services.notify.audience import Subscriber

    return [Subscriber.model_validate({
        "kind": kind, "name": f"{prefix}{i}", "subscriber_id": f"S{prefix}{i:06d}",
        "secret": SECRET, "region_code": "140403", "channel": {"type": "webhook", "url": u},
        "location": {"lat": lat, "lon": lon}})
        for i, (u, (lat, lon)) in enumerate(zip(urls, places, strict=True))]


def public_alert(case_id: str, centre: tuple[float, float], radius_km: float) -> Any:
    """A released alert (version 1) around `centre`: its fan-out goes to media and volunteers."""
    from datetime import UTC, datetime

    from services.notify.domain import AlertState, VersionInfo
    from tests.helpers import report_body

    now = datetime.now(UTC)
    return AlertState(
        alert_id=f"A-{case_id}", case_id=case_id, region_code="140403", exercise=False,
        released=True, seen_at=now, lat=centre[0], lon=centre[1], radius_km=radius_km,
        issued_at=now, versions=[VersionInfo(version=1, msg_type="Alert", sent=now,
                                             radius_km=radius_km)],
        report=report_body())


def payload_of(notify: Any, alert: Any) -> bytes:
    """The public bulletin of `alert` as the raw client posts it."""
    from datetime import UTC, datetime

    from services.notify.content import push_body

    body = push_body(alert, "public", notify.link(alert.alert_id), "110", 1000,
                     datetime.now(UTC))
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
