"""`make up BROKERS=3` / `make up SASL=1`: the local stack on a KafkaCluster (deploy/local/
kafka_cluster.py) of one or three KRaft nodes, optionally with SASL/SCRAM and ACLs, each service
connecting as its own principal. The default `make up` (one plaintext broker) stays
deploy/local/stack.py; this runner reuses its Redis and service processes.

Credentials: generated once into <data dir>/kafka-credentials.json (mode 0600) and passed to
each service as HOMEWARD_KAFKA_USERNAME / HOMEWARD_KAFKA_PASSWORD (shared.settings).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from deploy.local.kafka_cluster import KafkaCluster
from deploy.local.stack import ROOT, SERVICES, RedisServer, ServiceProcess, service_env


def start_cluster_services(cluster: KafkaCluster, redis_url: str, data_dir: Path,
                           ports: dict[str, int],
                           extra_env: dict[str, str] | None = None) -> dict[str, ServiceProcess]:
    """The three services as processes, each reaching `cluster` as its own principal."""
    data_dir.mkdir(parents=True, exist_ok=True)
    common = service_env(cluster.bootstrap, redis_url, data_dir, ports) | (extra_env or {})
    procs = {name: ServiceProcess(
        name, ports[name],
        {**common, **cluster.service_env(name), "HOMEWARD_PORT": str(ports[name])},
        data_dir / f"{name}.log").start() for name in SERVICES}
    for proc in procs.values():
        proc.wait_ready()
    return procs


@contextlib.contextmanager
def running_cluster_stack(data_dir: Path, brokers: int, sasl: bool, redis_port: int,
                          ports: dict[str, int]) -> Iterator[dict[str, object]]:
    from shared.kafka_admin import load_credentials

    credentials = load_credentials(data_dir / "kafka-credentials.json") if sasl else None
    cluster = KafkaCluster(data_dir / "kafka-cluster", brokers, credentials)
    redis = RedisServer(data_dir / "redis", port=redis_port)
    services: dict[str, ServiceProcess] = {}
    try:
        redis.start()
        cluster.start()
        cluster.ensure_topics_and_principals()
        services = start_cluster_services(cluster, redis.url, data_dir, ports)
        yield {"kafka": cluster, "redis": redis, **services}
    finally:
        for proc in services.values():
            proc.stop()
        cluster.stop()
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Homeward on a local Kafka cluster")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--brokers", type=int, choices=[1, 3], default=3)
    parser.add_argument("--sasl", action="store_true",
                        help="SASL/SCRAM listeners, one user per service, ACLs")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("HOMEWARD_DATA_DIR", ROOT / ".data")))
    parser.add_argument("--redis-port", type=int,
                        default=int(os.environ.get("HOMEWARD_REDIS_PORT", "6379")))
    for name, port in (("alert", 8000), ("dispatch", 8001), ("notify", 8002)):
        parser.add_argument(f"--{name}-port", type=int, default=int(
            os.environ.get(f"HOMEWARD_{name.upper()}_PORT", str(port))))
    args = parser.parse_args(argv)
    ports = {"alert": args.alert_port, "dispatch": args.dispatch_port,
             "notify": args.notify_port}
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    data_dir = args.data_dir / f"cluster-{args.brokers}{'-sasl' if args.sasl else ''}"
    with running_cluster_stack(data_dir, args.brokers, args.sasl, args.redis_port,
                               ports) as stack:
        cluster = stack["kafka"]
        assert isinstance(cluster, KafkaCluster)
        print(f"\nHomeward is up on {args.brokers} Kafka node(s) "
              f"(replication {cluster.replication_factor}, min.insync "
              f"{cluster.min_insync_replicas}{', SASL/SCRAM + ACLs' if args.sasl else ''}):")
        print(f"  Kafka      {cluster.bootstrap}")
        if args.sasl:
            print(f"  credentials {data_dir / 'kafka-credentials.json'}")
        for name in SERVICES:
            svc = stack[name]
            assert isinstance(svc, ServiceProcess)
            print(f"  {name:<10} {svc.url}")
        print("Ctrl-C stops everything.", flush=True)
        while not stop:
            time.sleep(0.5)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
