"""Priority lanes (issue 18 §3): the first hub push of new reports while another case's public
bulk fan-out (40,000 deliveries) is in flight, `hub_push_p99_under_bulk_ms`.

Real path, 127.0.0.1 only: the bench process's planner takes each report
(`Planner.on_report_accepted`: opens the alert, logs it, publishes a job per hub to the
restricted lane); a delivery-worker process (the notify service, consuming both lanes) sends.
One sample per (report, hub): from the planner's call to the hub's first request arriving at
the sink (a separate process; both read the same `time.time()`). The baseline, printed beside
it, is the same with no bulk in flight, in the same run. Reports are taken only while at least
a tenth of the bulk is still undelivered (each sample says how much was)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Result
from bench.notify_stack import (
    Receipts,
    Sink,
    Workers,
    around,
    close_planner,
    planner_notify,
    public_alert,
    settings_of,
    standalone,
    subscribers,
    use_local_keys,
)
from shared.serve import run_on_service_loop

BULK = int(os.environ.get("HOMEWARD_BENCH_BULK_RECIPIENTS", "40000"))
REPORTS = int(os.environ.get("HOMEWARD_BENCH_HUB_REPORTS", "30"))
HUBS_PER_REPORT = 3
GAP_S = 0.15  # between two reports
BULK_CENTRE = (36.19, 113.11)


def report_site(i: int) -> tuple[float, float]:
    """Report i's place: far from the bulk case and from each other (over 150 km apart: a
    report's 100 km radius holds its own hubs only)."""
    return 20.0 + (i % 10) * 1.5, 90.0 + (i // 10) * 2.0


def accepted(i: int, tag: str) -> Any:
    from shared.events import REPORT_ACCEPTED, CloudEvent
    from shared.report import ReportAccepted, ResolvedReport
    from tests.helpers import another_child, report_body

    lat, lon = report_site(i)
    case_id = f"140403-20261130-{tag}{i:03d}{uuid.uuid4().hex[:4].upper()}"
    seen = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    body = report_body(last_seen__at=seen, last_seen__lat=lat, last_seen__lon=lon,
                       **another_child())
    event = ReportAccepted(report_id=f"R{case_id}", case_id=case_id,
                           accepted_at=datetime.now(UTC), operator="op-1",
                           operator_region="140403", report=ResolvedReport.model_validate(body))
    return CloudEvent.of(REPORT_ACCEPTED, "/bench", case_id, event, event_id=case_id)


async def hub_pushes(notify: Any, sink: Sink, http: Any, label: str, first: int, count: int,
                     receipts: Receipts | None = None, bulk_case: str = ""
                     ) -> tuple[list[float], list[int], list[float]]:
    """Reports `first`..`first+count-1`, one every GAP_S: each hub's first push, ms after the
    planner's call; how many bulk deliveries were still to go at each report (while a bulk
    is given, reports stop once less than a tenth of it remains); and how long the planner took
    over each report, ms (its part of the push's time)."""
    began: dict[int, float] = {}
    left: list[int] = []
    planning: list[float] = []
    for i in range(first, first + count):
        if receipts is not None:
            remaining = BULK - receipts.sent[bulk_case]
            if remaining < BULK // 10:
                break
            left.append(remaining)
        began[i] = time.time()
        await notify.on_report_accepted(accepted(i, label))
        planning.append((time.time() - began[i]) * 1000)
        await asyncio.sleep(GAP_S)
    wanted = {f"/hub/{label}/{i}-{j}": i for i in began for j in range(HUBS_PER_REPORT)}
    deadline = time.monotonic() + 60
    while True:
        arrived = (await sink.stats(http))["hubs"]
        if all(p in arrived for p in wanted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    missing = [p for p in wanted if p not in arrived]
    if missing:
        raise RuntimeError(f"hub pushes never arrived: {missing[:5]}")
    return [(arrived[p] - began[i]) * 1000 for p, i in wanted.items()], left, planning


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def _measure(bootstrap: str, redis_url: str, sink: Sink, label: str,
                   layout: list[list[str]]) -> dict[str, Any]:
    """One layout of delivery-worker processes (the lanes each consumes): hub pushes with no
    bulk, then under the bulk."""
    import aiohttp

    settings = settings_of(bootstrap, redis_url)
    notify = await planner_notify(settings)
    receipts = Receipts(bootstrap)
    workers = Workers(settings)
    reports = range(2 * REPORTS + 2)  # idle, under bulk, warm-up
    hubs = [(i, j) for i in reports for j in range(HUBS_PER_REPORT)]
    await notify.subscribers.add_many(subscribers(  # a few kilometres from their report
        "hub", [sink.hub_url(n, f"{label}/{i}-{j}") for n, (i, j) in enumerate(hubs)],
        [(report_site(i)[0] + 0.01 * j, report_site(i)[1] + 0.01) for i, j in hubs], "h"))
    await notify.subscribers.add_many(subscribers(
        "volunteer", [sink.url(i, f"bulk/{i}") for i in range(BULK)],
        around(BULK_CENTRE, 0.3, BULK), "v"))
    out: dict[str, Any] = {}
    await receipts.start()
    try:
        async with aiohttp.ClientSession() as http:
            for lanes in layout:
                workers.add(notify_lanes=lanes)
            await workers.settled()
            await hub_pushes(notify, sink, http, label, 2 * REPORTS, 2)  # warm-up
            idle, _, idle_plan = await hub_pushes(notify, sink, http, label, 0, REPORTS)
            bulk = public_alert(f"140403-20261130-BULK{label.upper()}", BULK_CENTRE, 100.0)
            await notify.alerts.save(bulk)
            began = time.perf_counter()
            await notify.planner.fanout.fan_out(bulk)
            out["planned_s"] = time.perf_counter() - began
            busy, left, busy_plan = await hub_pushes(notify, sink, http, label, REPORTS,
                                                     REPORTS, receipts, bulk.case_id)
            done = await receipts.wait(bulk.case_id, BULK)
            out["bulk_per_s"] = BULK / (done - began)
    finally:
        workers.stop()
        await receipts.stop()
        await close_planner(notify)
    if len(busy) < 2:
        raise RuntimeError("the bulk was delivered before the hub pushes could be measured")
    out.update(idle=idle, busy=busy, left=left, idle_plan=idle_plan, busy_plan=busy_plan)
    return out


def report(what: str, m: dict[str, Any]) -> None:
    med = statistics.median
    print(f"hub push ({what}), first request of each hub after the planner took the report: "
          f"p99 {p99(m['busy']):.0f} ms (median {med(m['busy']):.0f}) while a {BULK}-delivery "
          f"public fan-out was in flight ({len(m['busy'])} pushes of {len(m['left'])} reports, "
          f"{min(m['left'])}..{max(m['left'])} bulk deliveries still to go); baseline with no "
          f"bulk p99 {p99(m['idle']):.0f} ms (median {med(m['idle']):.0f}); the planner's part "
          f"median {med(m['busy_plan']):.0f} ms under bulk, {med(m['idle_plan']):.0f} ms "
          f"without; bulk planned in {m['planned_s']:.1f} s, delivered at "
          f"{m['bulk_per_s']:.0f}/s")


def run(bootstrap: str, redis_url: str, data_dir: Path) -> list[Result]:
    """The restricted lane in a worker process of its own (HOMEWARD_NOTIFY_LANES), the public
    lane in another: the figure; both lanes in one process: printed beside it."""
    bench_redis = redis_url.rsplit("/", 1)[0] + "/3"
    use_local_keys(data_dir)
    sink = Sink()
    try:
        split = run_on_service_loop(_measure(bootstrap, bench_redis, sink, "split",
                                     [["restricted"], ["public"]]))
        report("restricted lane in a worker process of its own", split)
        shared = run_on_service_loop(_measure(bootstrap, bench_redis, sink, "shared",
                                      [["restricted", "public"]]))
        report("both lanes in one worker process", shared)
    finally:
        sink.stop()
    busy = p99(split["busy"])
    return [
        Result("hub_push_p99_under_bulk_ms", round(busy, 1), "ms", "<=250", busy <= 250),
        Result("hub_push_p99_idle_ms", round(p99(split["idle"]), 1), "ms"),
        Result("hub_push_p99_under_bulk_one_process_ms", round(p99(shared["busy"]), 1), "ms"),
    ]


if __name__ == "__main__":
    standalone(run)
