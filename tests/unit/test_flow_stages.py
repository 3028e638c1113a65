"""The flow benchmark's explanation of leader_p99_ms (bench.flow_stages): each report's
stages from its times, only reports with every time counted; quantiles as the benchmark
takes them; CPU sampled from /proc for a process and its children, and for the machine."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from bench.flow_stages import CpuSampler, quantile, stages


def test_stages_per_report_in_ms() -> None:
    accepted = {"A": 100.000, "B": 100.010, "C": 100.020, "D": 100.030}
    reported = {"A": 100.004, "B": 100.009, "C": 100.060}  # B: published before its 202 came
    opened = {"A": 100.020, "B": 100.030, "C": 100.500, "D": 100.2}
    seen = {"A": 100.025, "B": 100.031, "C": 100.510, "D": 100.3}
    st = stages(accepted, reported, opened, seen)
    # D has no report record (not counted); the others in the order of `accepted`.
    assert [round(v, 3) for v in st.relay] == [4.0, -1.0, 40.0]
    assert [round(v, 3) for v in st.dispatch] == [16.0, 21.0, 440.0]
    assert [round(v, 3) for v in st.measuring] == [5.0, 1.0, 10.0]


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([5.0], 0.99, 5.0),
    ([3.0, 1.0, 2.0], 0.5, 2.0),
    ([float(v) for v in range(1, 101)], 0.99, 99.0),  # the 99th of 100, as bench.flow
    ([float(v) for v in range(1, 501)], 0.99, 495.0),
    ([1.0, 1000.0], 0.0, 1.0),
])
def test_quantile(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


def test_quantile_of_nothing_is_nan() -> None:
    assert math.isnan(quantile([], 0.5))


def test_cpu_of_a_process_and_its_children() -> None:
    burn = "import time\nend = time.time() + 1.2\nwhile time.time() < end: pass\n"
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys\n"
                               f"subprocess.run([sys.executable, '-c', {burn!r}])\n"])
    sampler = CpuSampler({"busy": parent.pid, "me": os.getpid()}, period_s=0.05).start()
    began = time.time()
    try:
        parent.wait(20)
    finally:
        sampler.stop()
    cores = sampler.cores(began + 0.4, began + 1.0)  # while the child burns
    assert cores["busy"] > 0.3, cores  # the child's time, counted with its parent
    assert cores["me"] < 0.5, cores
    assert cores["machine"] >= cores["busy"] - 0.1
    assert sampler.cores(began + 100, began + 200) == {}  # no samples then
