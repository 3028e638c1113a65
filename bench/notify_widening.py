"""Notify's widening with 1,000,000 volunteers in Redis (issue 18 §6): `widening_first_delivery_ms`
is the time from a tier boundary being due (the planner's `widen` called at that instant) to the
first delivery job of the widened version being readable on its lane topic
(homeward.delivery-jobs.public.v1, read by a consumer in a process of its own), i.e. the moment
a delivery worker can start sending. p50 and p99 over several boundaries (100→200, 200→300,
300→500 km around two places), side by side in the same run with the old all-at-once selection
(`notify_select_page=0`, one GEOSEARCH per kind: every recipient selected before the first job
leaves).

The volunteers are spread uniformly over China's bounding box, loaded by pipelined GEOADD; only
those within 500 km of the two places get a (sealed) subscriber record, the others are there
for the geo index's size. The planner's clock is the bench's: each boundary is made due at
once, so the figure leaves out the timer loop's own wake-up (notify_tick_s).
Everything is on 127.0.0.1 and bounded in count."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Result
from shared.serve import run_on_service_loop

VOLUNTEERS = int(os.environ.get("HOMEWARD_BENCH_VOLUNTEERS", "1000000"))
PLACES = [(36.19, 113.11), (30.59, 114.31)]  # Changzhi, Wuhan
BOUNDARIES = (1.0, 2.0, 3.0)  # "hours" of the default tiers: 100→200, 200→300, 300→500 km
GOAL_MS = 100.0


def _watch_main(bootstrap: str, topic: str, conn: Any) -> None:
    """For each (alert id, version) it is asked about: reads the lane from its end at that
    moment ("armed"), answers the wall-clock time the first job of that version arrived."""
    from aiokafka import AIOKafkaConsumer

    async def watch() -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="latest", fetch_max_wait_ms=5)
        await consumer.start()
        await consumer.seek_to_end()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            wanted = await loop.run_in_executor(None, conn.recv)
            if wanted is None:
                break
            alert_id, version = wanted
            # From the lane's end now (not behind the previous widening's jobs): armed.
            parts = list(consumer.assignment())
            for tp, end in (await consumer.end_offsets(parts)).items():
                consumer.seek(tp, end)
            conn.send("armed")
            needle = f'"alert_id":"{alert_id}"'.encode()
            tag = f'"version":{version},'.encode()
            seen = None
            while seen is None:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        if seen is None and needle in r.value and tag in r.value:
                            seen = time.time()
            conn.send(seen)
        await consumer.stop()

    run_on_service_loop(watch())


async def _load(redis: Any, seal: Any, rng: random.Random) -> None:
    from services.notify.audience import Subscriber
    from services.notify.selection import distance_km

    began = time.perf_counter()
    await redis.flushdb()
    key = "notify:geo:volunteer"
    lats = [rng.uniform(20.0, 50.0) for _ in range(VOLUNTEERS)]
    lons = [rng.uniform(75.0, 132.0) for _ in range(VOLUNTEERS)]
    async with redis.pipeline(transaction=False) as pipe:
        for start in range(0, VOLUNTEERS, 20_000):
            batch: list[Any] = []
            for i in range(start, min(start + 20_000, VOLUNTEERS)):
                batch += [lons[i], lats[i], f"V{i:07d}"]
            pipe.geoadd(key, batch)
            if start % 100_000 == 80_000:
                await pipe.execute()  # 100,000 a round trip
        await pipe.execute()
    records = 0
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(VOLUNTEERS):
            if all(distance_km(p[0], p[1], lats[i], lons[i]) > 501 for p in PLACES):
                continue
            sub = Subscriber.model_validate({
                "kind": "volunteer", "name": f"v{i}", "subscriber_id": f"V{i:07d}",
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "channel": {"type": "webhook", "url": f"http://127.0.0.1:9/hook/{i}"},
                "location": {"lat": lats[i], "lon": lons[i]}})
            pipe.set(f"notify:sub:{sub.subscriber_id}", seal.dumps(sub))
            records += 1
            if records % 5000 == 0:
                await pipe.execute()
        await pipe.execute()
    print(f"widening: {VOLUNTEERS} volunteers in the geo index, {records} records "
          f"({time.perf_counter() - began:.1f} s to load)")


async def _widenings(bootstrap: str, redis_url: str) -> dict[str, list[float]]:
    from services.notify.adapters import make_redis
    from services.notify.app import build_notify, make_notify_broker
    from services.notify.audience import SubscriberKind
    from services.notify.delivery_rules import lane_of
    from services.notify.domain import AlertState, VersionInfo
    from services.notify.lanes import KafkaLanes
    from services.notify.sealing import SubscriberSeal
    from shared.kafka import EventPublisher
    from shared.serve import settle_heap
    from shared.settings import Settings
    from tests.helpers import report_body

    modes: dict[str, dict[str, Any]] = {"paged": {}, "all_at_once": {"notify_select_page": 0,
                                          "notify_select_cells_above": 10**12}}
    redis = make_redis(redis_url)
    base = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url, environment="development")
    await _load(redis, SubscriberSeal.from_settings(base), random.Random(5))
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    watcher = ctx.Process(target=_watch_main,
                          args=(bootstrap, lane_of(SubscriberKind.volunteer), child),
                          daemon=True)
    watcher.start()
    if not parent.poll(60):
        watcher.kill()
        raise RuntimeError("lane watcher did not start")
    parent.recv()
    broker = make_notify_broker(bootstrap)
    publisher = EventPublisher(broker, "/homeward/notify")
    notifies = {m: build_notify(base.model_copy(update=o), redis, publisher,
                                lanes=KafkaLanes(publisher))
                for m, o in modes.items()}
    out: dict[str, list[float]] = {f"{m}_{x}": [] for m in modes for x in ("first", "all")}
    unit = timedelta(seconds=base.notify_tier_unit_s)
    await broker.start()
    # This process stands in for notify's planner, whose heap shared.serve settles once the
    # app has started: without it, each full collection walked every module's objects and
    # paused a widening for 100-300 ms (gc.callbacks, 2026-12-01), the outliers of stop 17.
    settle_heap()
    try:
        for n, (lat, lon) in enumerate(PLACES):
            for mode, notify in notifies.items():  # the two selections take turns
                planner = notify.planner
                seen = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
                now = [seen + unit / 2]
                planner.ctx.clock = lambda now=now: now[0]  # type: ignore[misc]
                case_id = f"140403-20261122-W{n}{mode[0].upper()}"
                alert = AlertState(
                    alert_id=f"A-{case_id}", case_id=case_id, region_code="140403",
                    exercise=False, released=True, seen_at=seen, lat=lat, lon=lon,
                    radius_km=100.0, issued_at=now[0],
                    versions=[VersionInfo(version=1, msg_type="Alert", sent=now[0],
                                          radius_km=100.0)], report=report_body())
                await planner.ctx.save(alert)
                await planner.fanout.fan_out(alert)
                for version, hours in enumerate(BOUNDARIES, start=2):
                    now[0] = seen + unit * hours + timedelta(seconds=1)
                    parent.send((alert.alert_id, version))
                    if not parent.poll(60) or parent.recv() != "armed":
                        raise RuntimeError("lane watcher did not arm")
                    due = time.time()
                    began = time.perf_counter()
                    await planner.widen(alert.alert_id)
                    out[f"{mode}_all"].append((time.perf_counter() - began) * 1000)
                    if not parent.poll(60):
                        raise RuntimeError("no job of the widened version on the lane")
                    out[f"{mode}_first"].append((parent.recv() - due) * 1000)
    finally:
        parent.send(None)
        watcher.join(10)
        if watcher.is_alive():
            watcher.kill()
        await broker.stop()
        for notify in notifies.values():
            await notify.webhooks.close()
        await redis.flushdb()
        await redis.aclose()
    return out


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(bootstrap: str, redis_url: str, data_dir: Path) -> list[Result]:
    times = run_on_service_loop(_widenings(bootstrap, redis_url.rsplit("/", 1)[0] + "/4"))
    for key, values in times.items():
        print(f"widening {key}: " + ", ".join(f"{v:.0f}" for v in values) + " ms")
    p50, p99 = _pct(times["paged_first"], 50), _pct(times["paged_first"], 99)
    return [
        Result("widening_first_delivery_ms", round(p99, 1), "ms", f"<={GOAL_MS:g}",
               p99 <= GOAL_MS),
        Result("widening_first_delivery_p50_ms", round(p50, 1), "ms"),
        Result("widening_first_delivery_all_at_once_p50_ms",
               round(_pct(times["all_at_once_first"], 50), 1), "ms"),
        Result("widening_first_delivery_all_at_once_p99_ms",
               round(_pct(times["all_at_once_first"], 99), 1), "ms"),
        Result("widening_whole_fan_out_p50_ms", round(_pct(times["paged_all"], 50)), "ms"),
        Result("widening_whole_fan_out_all_at_once_p50_ms",
               round(_pct(times["all_at_once_all"], 50)), "ms"),
    ]


if __name__ == "__main__":
    import tempfile

    from deploy.local.stack import KafkaServer, RedisServer, free_port
    from shared.kafka import ensure_topics

    tmp = Path(tempfile.mkdtemp(prefix="homeward-bench-widening-"))
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
