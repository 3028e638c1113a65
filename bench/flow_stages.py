"""Where a report waits in the flow benchmark (issue 15: find where a report waits, fix it
there), from what the run leaves behind, at no cost to the services measured:

- stages of each report's way to its case group, from the Kafka records' own timestamps (the
  producer's create time, milliseconds): the operator's 202 → the report on
  `homeward.reports.v1` (the outbox relay), → `homeward.case.opened.v1` on the dispatch topic
  (dispatch: fetch, work, publish), → seen by the benchmark's consumer (the measuring side);
- CPU used by each service's processes (an alert supervisor's workers with it) and by the
  whole machine (/proc/stat), sampled four times a second, over the same seconds.

Linux only (/proc). Printed by bench.flow; its medians and 99th percentiles also go into
bench/results/latest.json (no goals: they explain leader_p99_ms, they are not goals)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import topics
from shared.events import CASE_OPENED, REPORT_ACCEPTED

__all__ = ["CpuSampler", "Stages", "read_times", "stages"]

_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) `pid` has used, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _HZ
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle, not waiting for I/O) since boot: the
    first eight columns of /proc/stat's cpu line (guest time is already inside user)."""
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:9]]
    return (sum(cpu) - cpu[3] - cpu[4]) / _HZ


@dataclass
class CpuSampler:
    """Samples the CPU time of named processes (each with its children) and of the machine,
    in a thread, every `period_s`."""

    pids: Mapping[str, int]
    period_s: float = 0.25
    # (wall time, {name: {pid: CPU seconds}}); the machine under "machine", pid 0
    samples: list[tuple[float, dict[str, dict[int, float]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            row = {"machine": {0: _machine_busy_s()}}
            for name, pid in self.pids.items():
                used = {p: _cpu_s(p) for p in (pid, *_children(pid))}
                row[name] = {p: u for p, u in used.items() if u is not None}
            self.samples.append((time.time(), row))
            self._stop.wait(self.period_s)

    def cores(self, began: float, ended: float) -> dict[str, float]:
        """Average cores each name (and `machine`) used between the two wall-clock times:
        per process, what it used between the first and the last sample of the window that
        both saw it (a child that started or ended within the window counts only from or to
        then)."""
        inside = [(t, row) for t, row in self.samples if began <= t <= ended]
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        return {name: round(sum(used - first.get(name, {})[pid] for pid, used in per.items()
                                if pid in first.get(name, {})) / (t1 - t0), 2)
                for name, per in last.items()}


@dataclass(frozen=True)
class Stages:
    """Milliseconds of each stage, one value per report that has all of them."""

    relay: list[float]
    dispatch: list[float]
    measuring: list[float]


async def read_times(bootstrap: str) -> tuple[dict[str, float], dict[str, float]]:
    """Case id -> the first record time (s) of its report on the reports topic, and of its
    `homeward.case.opened.v1` on the dispatch topic: everything on both topics now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    wanted = {topics.REPORTS: REPORT_ACCEPTED.encode(), topics.DISPATCH: CASE_OPENED.encode()}
    found: dict[str, dict[str, float]] = {t: {} for t in wanted}
    try:
        for topic, ce_type in wanted.items():
            parts = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while any([await consumer.position(p) < ends[p] for p in parts]):
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batch.values():
                    for r in records:
                        headers = dict(r.headers or ())
                        subject = headers.get("ce_subject")
                        if headers.get("ce_type") == ce_type and subject:
                            found[topic].setdefault(subject.decode(), r.timestamp / 1000)
    finally:
        await consumer.stop()
    return found[topics.REPORTS], found[topics.DISPATCH]


def stages(accepted: Mapping[str, float], reported: Mapping[str, float],
           opened: Mapping[str, float], seen: Mapping[str, float]) -> Stages:
    """Each report's stages in ms: 202 (`accepted`) → on the reports topic (`reported`) →
    case.opened on the dispatch topic (`opened`) → seen by the benchmark (`seen`); all by case
    id, in seconds. A stage may be slightly negative: the relay can publish before the 202 has
    reached the client, and record times are whole milliseconds."""
    relay, dispatch, measuring = [], [], []
    for case_id, at in accepted.items():
        if case_id in reported and case_id in opened and case_id in seen:
            relay.append((reported[case_id] - at) * 1000)
            dispatch.append((opened[case_id] - reported[case_id]) * 1000)
            measuring.append((seen[case_id] - opened[case_id]) * 1000)
    return Stages(relay, dispatch, measuring)


def quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
