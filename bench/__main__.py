"""`make bench`: start a stack of our own (Kafka, Redis on free ports), run each benchmark,
print a table and write bench/results/latest.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import flow, intake, notify_fanout, notify_priority, notify_widening
from bench.common import Result
from deploy.local.stack import KafkaServer, RedisServer, free_port, kafka_version, stack_env
from shared.kafka import ensure_topics
from shared.serve import run_on_service_loop

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "kafka": kafka_version()}


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="homeward-bench-"))
    kafka = KafkaServer(data_dir / "kafka", port=free_port())
    redis = RedisServer(data_dir / "redis", port=free_port())
    results: list[Result] = []
    began = time.monotonic()
    # The keys no repository holds (JWT, identity, PII master, signing), made in the bench's
    # data dir unless the environment names its own: the services and this process's tokens.
    os.environ.update(stack_env(data_dir))
    try:
        redis.start()
        kafka.start()
        run_on_service_loop(ensure_topics(kafka.bootstrap))
        wanted = set(sys.argv[1:]) or {"intake", "flow", "notify"}
        if "flow" in wanted:
            results += flow.run(kafka.bootstrap, redis.url, data_dir)
        if "notify" in wanted:
            results += notify_fanout.run(kafka.bootstrap, redis.url, data_dir)
            results += notify_priority.run(kafka.bootstrap, redis.url, data_dir)
        if "notify" in wanted or "widening" in wanted:
            results += notify_widening.run(kafka.bootstrap, redis.url, data_dir)
        # Last: the intake benchmark leaves tens of thousands of reports on the topic, which
        # the flow benchmark's consumers would otherwise have to work through first.
        if "intake" in wanted:
            results += intake.run(kafka.bootstrap, redis.url, data_dir)
    finally:
        kafka.stop()
        redis.stop()
    print(f"\n{'benchmark':<34} {'value':>12} {'unit':<8} {'goal':<10} met")
    for r in results:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.name:<34} {r.value:>12} {r.unit:<8} {r.goal:<10} {met}")
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": machine(), "seconds": round(time.monotonic() - began, 1),
           "results": [r.as_dict() for r in results]}
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"\nwritten to {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
