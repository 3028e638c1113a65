"""Notify's fan-out and radius selection:

- fan-out: one alert to N (10,000) webhook recipients on a local sink (a separate process
  listening on several ports, one "endpoint" each), through Notify's real path (Redis ledger
  before/after each send, Standard Webhooks signing, a receipt per delivery on Kafka); compared
  in the same run with a raw aiohttp client posting the same bodies to the same URLs with the
  same connection limits, and with Apprise (json:// targets on the same sink);
- radius selection: GEOSEARCH among 1,000,000 volunteers spread uniformly over China's
  bounding box, at every tier radius in turn: p99 over all queries (the goal), and per tier
  (a 500 km circle holds ~50,000 of them).

Everything is on 127.0.0.1 and bounded in count."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Result

RECIPIENTS = int(os.environ.get("HOMEWARD_BENCH_FANOUT_RECIPIENTS", "10000"))
APPRISE_RECIPIENTS = int(os.environ.get("HOMEWARD_BENCH_APPRISE_RECIPIENTS", "2000"))
VOLUNTEERS = int(os.environ.get("HOMEWARD_BENCH_VOLUNTEERS", "1000000"))
QUERIES = int(os.environ.get("HOMEWARD_BENCH_RADIUS_QUERIES", "400"))
ROUNDS = int(os.environ.get("HOMEWARD_BENCH_FANOUT_ROUNDS", "3"))
ENDPOINTS = 32       # sink ports: recipients are spread over them round-robin
PER_ENDPOINT = 16    # notify_per_endpoint_limit, and the raw client's limit_per_host
CENTRE = (36.19, 113.11)


def _sink_main(endpoints: int, conn: Any) -> None:
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def serve() -> None:
        app = web.Application()
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

    asyncio.run(serve())


def start_sink() -> tuple[Any, list[int]]:
    """The sink in a process of its own, each endpoint on a port the kernel picked."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_sink_main, args=(ENDPOINTS, child), daemon=True)
    proc.start()
    if not parent.poll(30):
        proc.kill()
        raise RuntimeError("sink did not start")
    return proc, list(parent.recv())


async def _fanout(bootstrap: str, redis_url: str, ports: list[int]) -> dict[str, float]:
    from services.notify.adapters import make_redis
    from services.notify.app import build_notify, make_notify_broker
    from services.notify.domain import AlertState, Subscriber, VersionInfo, push_body
    from shared.kafka import EventPublisher
    from shared.settings import Settings
    from tests.helpers import report_body

    settings = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url,
                        webhook_allow_networks=["127.0.0.1/32"],
                        notify_per_endpoint_limit=PER_ENDPOINT,
                        notify_fanout_parallel=ENDPOINTS * PER_ENDPOINT)
    redis = make_redis(redis_url)
    await redis.flushdb()
    broker = make_notify_broker(bootstrap)
    notify = build_notify(settings, redis, EventPublisher(broker, "/homeward/notify"))
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/hook/{i}" for i in range(RECIPIENTS)]
    subs = [Subscriber.model_validate({
        "kind": "media", "name": f"m{i}", "subscriber_id": f"S{i:06d}", "secret":
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "channel": {"type": "webhook", "url": u},
        "location": {"lat": CENTRE[0] + random.uniform(-0.3, 0.3),
                     "lon": CENTRE[1] + random.uniform(-0.3, 0.3)}})
        for i, u in enumerate(urls)]
    await notify.subscribers.add_many(subs)
    now = datetime.now(UTC)
    alert = AlertState(
        alert_id="A-140403-20261122-BENCH1", case_id="140403-20261122-BENCH1",
        region_code="140403", exercise=False, released=True, seen_at=now, lat=CENTRE[0],
        lon=CENTRE[1], radius_km=100.0, issued_at=now,
        versions=[VersionInfo(version=1, msg_type="Alert", sent=now, radius_km=100.0)],
        report=report_body())
    body = push_body(alert, "public", notify.link(alert.alert_id), "110", 1000, now)
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    import aiohttp

    async def raw() -> float:
        """The same bodies to the same URLs with the same connection limits."""
        connector = aiohttp.TCPConnector(limit=1024, limit_per_host=PER_ENDPOINT)
        async with aiohttp.ClientSession(connector=connector) as session:
            limit = asyncio.Semaphore(ENDPOINTS * PER_ENDPOINT)

            async def post(url: str) -> None:
                async with limit, session.post(url, data=payload, headers={
                        "content-type": "application/json"}) as response:
                    await response.read()

            began = time.perf_counter()
            await asyncio.gather(*(post(u) for u in urls))
            return RECIPIENTS / (time.perf_counter() - began)

    async def fan_out(round_: int) -> float:
        case_id = f"140403-20261122-BENCH{round_}"
        one = alert.model_copy(update={"alert_id": f"A-{case_id}", "case_id": case_id})
        await notify.alerts.save(one)
        began = time.perf_counter()
        await notify.planner.fan_out(one)
        rate = RECIPIENTS / (time.perf_counter() - began)
        states = [d["state"] for d in await notify.ledger.of_case(case_id)]
        assert states.count("sent") == RECIPIENTS, "not every delivery was sent"
        return rate

    out: dict[str, float] = {}
    raws, notifies, ratios = [], [], []
    await broker.start()
    try:
        # Interleaved rounds, so both clients see the same load of a shared machine.
        for round_ in range(ROUNDS):
            raws.append(await raw())
            notifies.append(await fan_out(round_))
            ratios.append(notifies[-1] / raws[-1])
    finally:
        await broker.stop()
        await notify.webhooks.close()
        await redis.flushdb()
        await redis.aclose()
    out["raw"] = statistics.median(raws)
    out["notify"] = statistics.median(notifies)
    out["ratio"] = statistics.median(ratios)
    out["sent"] = RECIPIENTS

    # Apprise: json:// targets on the same sink (fewer, it is much slower), rate per second.
    import apprise

    notifier = apprise.Apprise()
    for i in range(APPRISE_RECIPIENTS):
        notifier.add(f"json://127.0.0.1:{ports[i % len(ports)]}/hook/a{i}")
    began = time.perf_counter()
    ok = await notifier.async_notify(body=body["text"], title="儿童失踪协查")
    out["apprise"] = APPRISE_RECIPIENTS / (time.perf_counter() - began)
    out["apprise_ok"] = float(bool(ok))
    return out


async def _radius(redis_url: str) -> dict[float, list[float]]:
    from redis.asyncio import Redis

    from services.notify.adapters import SubscriberRepository
    from services.notify.domain import SubscriberKind
    from services.notify.sealing import SubscriberSeal
    from shared.settings import Settings

    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    rng = random.Random(5)
    key = f"notify:geo:{SubscriberKind.volunteer.value}"
    batch: list[Any] = []
    for i in range(VOLUNTEERS):
        batch += [rng.uniform(75.0, 132.0), rng.uniform(20.0, 50.0), f"V{i}"]
        if len(batch) >= 30_000:
            await redis.geoadd(key, batch)
            batch = []
    if batch:
        await redis.geoadd(key, batch)
    repo = SubscriberRepository(redis, SubscriberSeal.from_settings(Settings()))
    tiers = [100.0, 200.0, 300.0, 500.0]
    times: dict[float, list[float]] = {km: [] for km in tiers}
    found = 0
    for q in range(QUERIES):
        lat, lon = rng.uniform(22.0, 45.0), rng.uniform(85.0, 125.0)
        km = tiers[q % len(tiers)]
        began = time.perf_counter()
        ids = await repo.ids_within(SubscriberKind.volunteer, lat, lon, km)
        times[km].append((time.perf_counter() - began) * 1000)
        found += len(ids)
    await redis.flushdb()
    await redis.aclose()
    print(f"radius selection: {QUERIES} queries, {found / QUERIES:.0f} volunteers on average")
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def run(bootstrap: str, redis_url: str, data_dir: Path) -> list[Result]:
    bench_redis = redis_url.rsplit("/", 1)[0] + "/3"
    sink, ports = start_sink()
    try:
        rates = asyncio.run(_fanout(bootstrap, bench_redis, ports))
    finally:
        sink.kill()
    print(f"fan-out to {RECIPIENTS} (median of {ROUNDS} interleaved rounds): notify "
          f"{rates['notify']:.0f}/s, raw aiohttp {rates['raw']:.0f}/s, "
          f"apprise {rates['apprise']:.0f}/s (ok={bool(rates['apprise_ok'])})")
    times = asyncio.run(_radius(bench_redis))
    ratio_raw = round(rates["ratio"], 3)
    ratio_apprise = round(rates["notify"] / rates["apprise"], 2)
    radius_p99 = round(p99([t for ts in times.values() for t in ts]), 2)
    per_tier = [Result(f"radius_select_p99_ms_{km:g}km", round(p99(ts), 2), "ms")
                for km, ts in times.items()]
    return [
        Result("notify_fanout_deliveries_per_s", round(rates["notify"]), "1/s"),
        Result("raw_aiohttp_posts_per_s", round(rates["raw"]), "1/s"),
        Result("apprise_posts_per_s", round(rates["apprise"]), "1/s"),
        Result("fanout_ratio_vs_raw_aiohttp", ratio_raw, "ratio", ">=0.8", ratio_raw >= 0.8),
        Result("fanout_ratio_vs_apprise", ratio_apprise, "ratio", ">=1", ratio_apprise >= 1),
        Result("radius_select_p99_ms", radius_p99, "ms", "<=50", radius_p99 <= 50),
        *per_tier,
    ]


if __name__ == "__main__":
    import tempfile

    from deploy.local.stack import KafkaServer, RedisServer, free_port
    from shared.kafka import ensure_topics

    tmp = Path(tempfile.mkdtemp(prefix="homeward-bench-notify-"))
    kafka = KafkaServer(tmp / "kafka", port=free_port())
    redis = RedisServer(tmp / "redis", port=free_port())
    try:
        redis.start()
        kafka.start()
        asyncio.run(ensure_topics(kafka.bootstrap))
        for r in run(kafka.bootstrap, redis.url, tmp):
            print(r.as_dict())
    finally:
        kafka.stop()
        redis.stop()
