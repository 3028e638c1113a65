"""`make up BROKERS=3` / `make up SASL=1`: the local stack on a KafkaCluster (deploy/local/
kafka_cluster.py) of one or three KRaft nodes, optionally with SASL/SCRAM and ACLs, each service
connecting as its own principal. The default `make up` (one plaintext broker) stays
deploy/local/stack.py; this runner reuses its Redis, Keycloak, generated keys
(stack.stack_env: the same environment the services get there) and its foreground (stack.serve).

Credentials: generated once into <data dir>/kafka-credentials.json (mode 0600) and passed to
each service as HOMEWARD_KAFKA_USERNAME / HOMEWARD_KAFKA_PASSWORD (shared.settings).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from deploy.local.kafka_cluster import KafkaCluster
from deploy.local.keycloak import KeycloakServer, commander_otp_wanted
from deploy.local.stack import (
    ROOT,
    SERVICES,
    RedisServer,
    ServiceProcess,
    serve,
    service_env,
    stack_env,
    start_all,
    start_keycloak,
)


def start_cluster_services(cluster: KafkaCluster, redis_url: str, data_dir: Path,
                           ports: dict[str, int],
                           extra_env: dict[str, str] | None = None) -> dict[str, ServiceProcess]:
    """The three services as processes, each reaching `cluster` as its own principal;
    `extra_env` is the stack's (stack.stack_env: generated keys, Keycloak's issuer)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    common = service_env(cluster.bootstrap, redis_url, data_dir, ports) | (extra_env or {})
    return start_all([ServiceProcess(
        name, ports[name],
        {**common, **cluster.service_env(name), "HOMEWARD_PORT": str(ports[name])},
        data_dir / f"{name}.log") for name in SERVICES])


@contextlib.contextmanager
def running_cluster_stack(data_dir: Path, brokers: int, sasl: bool, redis_port: int,
                          ports: dict[str, int],
                          keycloak_port: int = 0) -> Iterator[dict[str, object]]:
    """Like stack.running_stack (the same keys, Keycloak, Redis and services) on a cluster."""
    from shared.kafka_admin import load_credentials

    credentials = load_credentials(data_dir / "kafka-credentials.json") if sasl else None
    cluster = KafkaCluster(data_dir / "kafka-cluster", brokers, credentials)
    redis = RedisServer(data_dir / "redis", port=redis_port)
    started: list[KafkaCluster | RedisServer | ServiceProcess | KeycloakServer] = []
    try:
        keycloak = start_keycloak(data_dir, keycloak_port, commander_otp_wanted())
        if keycloak is not None:
            started.append(keycloak)
        started.append(redis.start())
        started.append(cluster)
        cluster.start()
        cluster.ensure_topics_and_principals()
        services = start_cluster_services(cluster, redis.url, data_dir, ports,
                                          stack_env(data_dir, keycloak))
        started.extend(services.values())
        yield {"kafka": cluster, "redis": redis, **services,
               **({"keycloak": keycloak} if keycloak else {})}
    finally:
        for item in reversed(started):
            item.stop()


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
    for name, port in (("alert", 8000), ("dispatch", 8001), ("notify", 8002),
                       ("keycloak", 8180)):
        parser.add_argument(f"--{name}-port", type=int, default=int(
            os.environ.get(f"HOMEWARD_{name.upper()}_PORT", str(port))))
    args = parser.parse_args(argv)
    ports = {"alert": args.alert_port, "dispatch": args.dispatch_port,
             "notify": args.notify_port}
    data_dir = args.data_dir / f"cluster-{args.brokers}{'-sasl' if args.sasl else ''}"

    def heading(stack: dict[str, object]) -> str:
        cluster = stack["kafka"]
        assert isinstance(cluster, KafkaCluster)
        sasl = f", SASL/SCRAM + ACLs, credentials {data_dir / 'kafka-credentials.json'}" \
            if args.sasl else ""
        return (f"Kafka {cluster.bootstrap}: {args.brokers} node(s), replication "
                f"{cluster.replication_factor}, min.insync {cluster.min_insync_replicas}{sasl}; "
                f"Redis on 127.0.0.1:{args.redis_port}")

    return serve(lambda: running_cluster_stack(data_dir, args.brokers, args.sasl,
                                               args.redis_port, ports, args.keycloak_port),
                 heading, data_dir)


if __name__ == "__main__":
    raise SystemExit(main())
