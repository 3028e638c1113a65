"""Durable intake (validate, fsync'd outbox row, 202) against a bare FastAPI endpoint that
validates the same model, in the same run, same server settings, same load, and the same
number of worker processes (HOMEWARD_ALERT_WORKERS, default the machine's cores: issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import Result, WrkRun, wrk_post
from deploy.local.stack import ROOT, ServiceProcess, free_port, service_env, wait_for_port
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import report_body

SECONDS = int(os.environ.get("HOMEWARD_BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("HOMEWARD_BENCH_ROUNDS", "3"))
CONNECTIONS = 32


def run(bootstrap: str, redis_url: str, data_dir: Path) -> list[Result]:
    body = report_body()
    token = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}

    workers = Settings().alert_workers
    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port),
         "--no-access-log", "--log-level", "warning", "--workers", str(workers)], cwd=ROOT,
    )
    port = free_port()
    env = {**service_env(bootstrap, redis_url, data_dir, {"alert": port, "dispatch": 0,
                                                          "notify": 0}),
           "HOMEWARD_PORT": str(port), "HOMEWARD_ACCESS_LOG": "false",
           "HOMEWARD_ALERT_WORKERS": str(workers)}
    alert = ServiceProcess("alert", port, env, data_dir / "bench-alert.log").start()
    bare_url = f"http://127.0.0.1:{bare_port}/api/v1/reports"
    durable_url = f"{alert.url}/api/v1/reports"
    try:
        wait_for_port(bare_port, 30, bare)
        alert.wait_ready()
        for url in (bare_url, durable_url):  # warm up
            wrk_post(url, body, token, 2, CONNECTIONS)
        # Alternate the two so both see the same machine (the relay keeps publishing to
        # Kafka while the durable side runs: that is part of its cost).
        baselines, durables = [], []
        for _ in range(ROUNDS):
            baselines.append(wrk_post(bare_url, body, token, SECONDS, CONNECTIONS))
            durables.append(wrk_post(durable_url, body, token, SECONDS, CONNECTIONS))
    finally:
        bare.terminate()
        bare.wait(10)
        alert.stop()
    return [*summarise(median(durables), median(baselines)),
            Result("intake_workers", workers, "processes")]


def median(runs: list[WrkRun]) -> WrkRun:
    return sorted(runs, key=lambda r: r.requests_per_s)[len(runs) // 2]


def summarise(durable: WrkRun, baseline: WrkRun) -> list[Result]:
    for run_, what in ((durable, "durable intake"), (baseline, "bare endpoint")):
        if run_.non_2xx or run_.errors:
            raise RuntimeError(f"{what}: {run_.non_2xx} non-2xx, {run_.errors} socket errors")
    ratio = durable.requests_per_s / baseline.requests_per_s
    return [
        Result("intake_ratio_vs_bare_fastapi", round(ratio, 3), "ratio", ">= 0.6", ratio >= 0.6),
        Result("intake_rps", round(durable.requests_per_s, 1), "req/s"),
        Result("intake_p50_ms", round(durable.p50_ms, 2), "ms"),
        Result("intake_p99_ms", round(durable.p99_ms, 2), "ms"),
        Result("bare_fastapi_rps", round(baseline.requests_per_s, 1), "req/s"),
        Result("bare_fastapi_p50_ms", round(baseline.p50_ms, 2), "ms"),
        Result("bare_fastapi_p99_ms", round(baseline.p99_ms, 2), "ms"),
    ]
