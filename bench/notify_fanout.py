"""Notify's fan-out through issue 18's lanes, and radius selection:

- fan-out: one alert to N (10,000) webhook recipients on a local sink (bench.notify_stack.Sink,
  a separate process listening on several ports, one "endpoint" each), through the real path:
  the planner publishes one job per recipient to the public lane (keyed by recipient), a
  delivery-worker process (the notify service, bench.notify_stack.Workers) claims each ledger
  record, signs (Standard Webhooks), posts, marks it `sent` and publishes a receipt; the time
  runs from the planner's call to the last receipt read back from the receipts topic. Compared
  in the same run, rounds interleaved, with a raw aiohttp client posting the same bodies to the
  same URLs with the same connection limits (`fanout_ratio_vs_raw_aiohttp`), and with Apprise
  (json:// targets on the same sink);
- scaling: the same fan-out with two worker processes, deliveries/s ÷ those of one
  (`fanout_scaling_2_instances`, printed beside both rates);
- radius selection: GEOSEARCH among 1,000,000 volunteers spread uniformly over China's
  bounding box, at every tier radius in turn: p99 over all queries (the goal), and per tier
  (a 500 km circle holds ~50,000 of them).

Everything is on 127.0.0.1 and bounded in count."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import Result
from bench.notify_stack import (
    ENDPOINTS,
    PER_ENDPOINT,
    Receipts,
    Sink,
    Workers,
    around,
    close_planner,
    payload_of,
    planner_notify,
    public_alert,
    settings_of,
    standalone,
    subscribers,
    use_local_keys,
)
from shared.serve import run_on_service_loop

RECIPIENTS = int(os.environ.get("HOMEWARD_BENCH_FANOUT_RECIPIENTS", "10000"))
APPRISE_RECIPIENTS = int(os.environ.get("HOMEWARD_BENCH_APPRISE_RECIPIENTS", "2000"))
VOLUNTEERS = int(os.environ.get("HOMEWARD_BENCH_VOLUNTEERS", "1000000"))
QUERIES = int(os.environ.get("HOMEWARD_BENCH_RADIUS_QUERIES", "400"))
ROUNDS = int(os.environ.get("HOMEWARD_BENCH_FANOUT_ROUNDS", "3"))
CENTRE = (36.19, 113.11)


async def raw_rate(urls: list[str], payload: bytes) -> float:
    """Posts/s of a raw aiohttp client: the same bodies to the same URLs with the same
    connection limits as notify's (per host, and in flight)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=1024, limit_per_host=PER_ENDPOINT)
    async with aiohttp.ClientSession(connector=connector) as session:
        limit = asyncio.Semaphore(ENDPOINTS * PER_ENDPOINT)

        async def post(url: str) -> None:
            async with limit, session.post(url, data=payload, headers={
                    "content-type": "application/json"}) as response:
                await response.read()

        began = time.perf_counter()
        await asyncio.gather(*(post(u) for u in urls))
        return len(urls) / (time.perf_counter() - began)


async def _fanout(bootstrap: str, redis_url: str, sink: Sink) -> dict[str, float]:
    settings = settings_of(bootstrap, redis_url)
    notify = await planner_notify(settings)
    receipts = Receipts(bootstrap)
    workers = Workers(settings)
    urls = [sink.url(i, f"hook/{i}") for i in range(RECIPIENTS)]
    await notify.subscribers.add_many(subscribers("media", urls, around(CENTRE, 0.3, RECIPIENTS),
                                                  "m"))
    payload = payload_of(notify, public_alert("140403-20261122-BENCH0", CENTRE, 100.0))

    cpu: dict[str, list[float]] = {"raw": [], "worker": [], "planner": []}

    async def fan_out(name: str, count: int = RECIPIENTS) -> float:
        """Deliveries/s of one alert's fan-out, planner's call to the last receipt."""
        alert = public_alert(f"140403-20261122-{name}", CENTRE, 100.0)
        await notify.alerts.save(alert)
        worker_cpu, own_cpu = workers.cpu(), time.process_time()
        began = time.perf_counter()
        await notify.planner.fanout.fan_out(alert)
        cpu["planner"].append((time.process_time() - own_cpu) / count * 1e6)
        rate = count / (await receipts.wait(alert.case_id, count) - began)
        cpu["worker"].append((workers.cpu() - worker_cpu) / count * 1e6)
        return rate

    async def raw() -> float:
        own_cpu = time.process_time()
        rate = await raw_rate(urls, payload)
        cpu["raw"].append((time.process_time() - own_cpu) / len(urls) * 1e6)
        return rate

    out: dict[str, float] = {}
    raws, ones, twos, ratios = [], [], [], []
    await receipts.start()
    try:
        workers.add()
        await workers.settled()
        await fan_out("WARM1")  # connections, caches and the consumers' first fetches
        workers.profile()
        # Interleaved rounds, so both clients see the same load of a shared machine.
        for round_ in range(ROUNDS):
            raws.append(await raw())
            ones.append(await fan_out(f"ONE{round_}"))
            ratios.append(ones[-1] / raws[-1])
        workers.add()
        await workers.settled()
        await fan_out("WARM2")
        for round_ in range(ROUNDS):
            twos.append(await fan_out(f"TWO{round_}"))
        states = [d["state"] for d in await notify.ledger.of_case("140403-20261122-TWO0")]
        assert states.count("sent") == RECIPIENTS, "not every delivery was sent"
        shares = workers.stop()
        print(f"fan-out: requests made by each worker process over the run: {shares}")
    finally:
        workers.stop()
        await receipts.stop()
        await close_planner(notify)
    out["raw"] = statistics.median(raws)
    out["notify"] = statistics.median(ones)
    out["ratio"] = statistics.median(ratios)
    out["two"] = statistics.median(twos)
    print("CPU per delivery, µs (median of the rounds): raw aiohttp client "
          f"{statistics.median(cpu['raw']):.0f}, notify's planner "
          f"{statistics.median(cpu['planner']):.0f}, its delivery workers "
          f"{statistics.median(cpu['worker']):.0f}")

    # Apprise: json:// targets on the same sink (fewer, it is much slower), rate per second.
    import apprise

    notifier = apprise.Apprise()
    for i in range(APPRISE_RECIPIENTS):
        notifier.add(f"json://127.0.0.1:{sink.ports[i % len(sink.ports)]}/hook/a{i}")
    began = time.perf_counter()
    ok = await notifier.async_notify(body="儿童失踪协查", title="儿童失踪协查")
    out["apprise"] = APPRISE_RECIPIENTS / (time.perf_counter() - began)
    out["apprise_ok"] = float(bool(ok))
    return out


async def _radius(redis_url: str) -> dict[float, list[float]]:
    from redis.asyncio import Redis

    from services.notify.adapters import SubscriberRepository
    from services.notify.audience import SubscriberKind
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
    use_local_keys(data_dir)
    sink = Sink()
    try:
        rates = run_on_service_loop(_fanout(bootstrap, bench_redis, sink))
    finally:
        sink.stop()
    scaling = rates["two"] / rates["notify"]
    print(f"fan-out to {RECIPIENTS} (median of {ROUNDS} interleaved rounds): notify through "
          f"the lanes, 1 worker process {rates['notify']:.0f}/s, raw aiohttp "
          f"{rates['raw']:.0f}/s (ratio {rates['ratio']:.3f}); 2 worker processes "
          f"{rates['two']:.0f}/s (x{scaling:.2f}); apprise {rates['apprise']:.0f}/s "
          f"(ok={bool(rates['apprise_ok'])})")
    times = run_on_service_loop(_radius(bench_redis))
    ratio_raw = round(rates["ratio"], 3)
    ratio_apprise = round(rates["notify"] / rates["apprise"], 2)
    radius_p99 = round(p99([t for ts in times.values() for t in ts]), 2)
    per_tier = [Result(f"radius_select_p99_ms_{km:g}km", round(p99(ts), 2), "ms")
                for km, ts in times.items()]
    return [
        Result("notify_fanout_deliveries_per_s", round(rates["notify"]), "1/s"),
        Result("notify_fanout_2_workers_per_s", round(rates["two"]), "1/s"),
        Result("raw_aiohttp_posts_per_s", round(rates["raw"]), "1/s"),
        Result("apprise_posts_per_s", round(rates["apprise"]), "1/s"),
        Result("fanout_ratio_vs_raw_aiohttp", ratio_raw, "ratio", ">=0.8", ratio_raw >= 0.8),
        Result("fanout_scaling_2_instances", round(scaling, 2), "ratio"),
        Result("fanout_ratio_vs_apprise", ratio_apprise, "ratio", ">=1", ratio_apprise >= 1),
        Result("radius_select_p99_ms", radius_p99, "ms", "<=50", radius_p99 <= 50),
        *per_tier,
    ]


if __name__ == "__main__":
    standalone(run)
