"""Alert's intake workers share one /metrics (issue 15 item 3): each worker process writes its
values to the multiprocess directory its supervisor set, and one scrape sums them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.web_ops import ops_app

ROOT = Path(__file__).resolve().parents[2]

# One worker's work: what the consumers, the outbox sampler and dispatch hooks record.
WORKER = """
import sys
from datetime import UTC, datetime, timedelta
from shared import metrics
from shared.kafka import MESSAGES_HANDLED
handled, backlog = int(sys.argv[1]), int(sys.argv[2])
MESSAGES_HANDLED.labels("homeward.progress.v1", "homeward-alert-progress", "ok").inc(handled)
metrics.case_group_formed(datetime.now(UTC) - timedelta(seconds=0.02))
metrics.OUTBOX_BACKLOG.set(backlog)
"""


def run_worker(directory: Path, handled: int, backlog: int) -> None:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    subprocess.run([sys.executable, "-c", WORKER, str(handled), str(backlog)], cwd=ROOT,
                   env=env, check=True, timeout=60)


def scrape(directory: Path, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, tuple], float]:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(directory))
    response = TestClient(ops_app(FastAPI())).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def test_one_scrape_sums_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")  # the supervisor sets it for its workers
    metrics.multiprocess_dir(tmp_path / "alert-metrics")
    directory = Path(os.environ[metrics.MULTIPROC_ENV])
    run_worker(directory, handled=3, backlog=7)
    run_worker(directory, handled=4, backlog=2)  # the later sample of the backlog
    assert len(list(directory.glob("*.db"))) >= 2  # each process kept its own files

    seen = scrape(directory, monkeypatch)
    handled = ("homeward_messages_handled_total", (
        ("group", "homeward-alert-progress"), ("outcome", "ok"),
        ("topic", "homeward.progress.v1")))
    assert seen[handled] == 7.0
    assert seen[("homeward_report_to_case_group_seconds_count", ())] == 2.0
    assert seen[("homeward_report_to_case_group_seconds_bucket", (("le", "0.01"),))] == 0.0
    assert seen[("homeward_report_to_case_group_seconds_bucket", (("le", "+Inf"),))] == 2.0
    # A sampled gauge: the most recent sample, not a sum of two processes' samples.
    assert seen[("homeward_alert_outbox_backlog", ())] == 2.0


def test_a_new_run_starts_from_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "alert-metrics"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    metrics.multiprocess_dir(directory)
    run_worker(directory, handled=5, backlog=1)
    metrics.multiprocess_dir(directory)  # the supervisor started again
    run_worker(directory, handled=1, backlog=0)
    handled = ("homeward_messages_handled_total", (
        ("group", "homeward-alert-progress"), ("outcome", "ok"),
        ("topic", "homeward.progress.v1")))
    assert scrape(directory, monkeypatch)[handled] == 1.0


def test_one_process_alone_serves_its_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    before = metrics.OUTBOX_AGE._value.get()
    metrics.OUTBOX_AGE.set(12.5)
    try:
        body, content_type = metrics.exposition()
    finally:
        metrics.OUTBOX_AGE.set(before)
    assert content_type.startswith("text/plain")
    assert b"homeward_alert_outbox_oldest_age_seconds 12.5" in body
