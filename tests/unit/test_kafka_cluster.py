"""The local cluster's broker configuration (deploy/local/kafka_cluster.py), without starting it:
replication from the cluster size, SASL/SCRAM listeners and ACL enforcement when credentials
are given, each service's settings naming its own principal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deploy.local.kafka_cluster import KafkaCluster
from shared import kafka_acl
from shared.kafka_admin import credentials_from_env, load_credentials
from shared.settings import Settings


def properties(cluster: KafkaCluster) -> list[dict[str, str]]:
    cluster._plan()
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes)
    out = []
    for node in cluster.nodes:
        node.data_dir.mkdir(parents=True)
        text = cluster._config(node, voters).read_text()
        out.append(dict(line.split("=", 1) for line in text.splitlines() if line))
    return out


@pytest.mark.parametrize(("brokers", "replicas", "min_insync"), [(1, "1", "1"), (3, "3", "2")])
def test_replication_follows_the_cluster_size(tmp_path: Path, brokers: int, replicas: str,
                                              min_insync: str) -> None:
    configs = properties(KafkaCluster(tmp_path, brokers))
    assert [c["node.id"] for c in configs] == [str(i) for i in range(1, brokers + 1)]
    for config in configs:
        assert config["process.roles"] == "broker,controller"
        assert len(config["controller.quorum.voters"].split(",")) == brokers
        assert (config["default.replication.factor"], config["min.insync.replicas"]) == (
            replicas, min_insync)
        assert config["unclean.leader.election.enable"] == "false"
        assert "authorizer.class.name" not in config


def test_sasl_listeners_enforce_acls(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path / "credentials.json")
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
    assert load_credentials(tmp_path / "credentials.json") == credentials  # reused, not rotated
    cluster = KafkaCluster(tmp_path / "kafka", 3, credentials)
    for config in properties(cluster):
        protocols = dict(p.split(":") for p in config["listener.security.protocol.map"].split(","))
        assert protocols == {"CONTROLLER": "PLAINTEXT", "CLIENT": "SASL_PLAINTEXT",
                             "INTERNAL": "SASL_PLAINTEXT"}
        assert config["allow.everyone.if.no.acl.found"] == "false"
        assert config["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert set(config["super.users"].split(";")) == {
            "User:homeward-broker", "User:homeward-admin", "User:ANONYMOUS"}
    for service in kafka_acl.SERVICES:
        settings = Settings(**{k.removeprefix("HOMEWARD_").lower(): v
                               for k, v in cluster.service_env(service).items()})
        assert settings.kafka_username == kafka_acl.principal(service)
        assert settings.kafka_password.get_secret_value() == credentials[service]
        assert settings.kafka_security_protocol == "SASL_PLAINTEXT"
        assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)


def test_compose_credentials_come_from_the_environment() -> None:
    env = {"HOMEWARD_KAFKA_PASSWORD_ALERT": "a", "HOMEWARD_KAFKA_PASSWORD_NOTIFY": "n"}
    assert credentials_from_env(env) == {"alert": "a", "notify": "n"}


@pytest.mark.parametrize(("args", "expected"), [
    ([], "-m deploy.local.stack up"),
    (["BROKERS=3"], "-m deploy.local.cluster_stack up --brokers 3"),
    (["BROKERS=3", "SASL=1"], "-m deploy.local.cluster_stack up --brokers 3 --sasl"),
])
def test_make_up_takes_the_cluster_flags(args: list[str], expected: str) -> None:
    root = Path(__file__).resolve().parents[2]
    # Under `make test` this make is nested: without MAKELEVEL/MAKEFLAGS from the outer one it
    # prints no "Entering/Leaving directory" lines, and only the recipe that starts the stack
    # counts.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    shown = subprocess.run(["make", "--no-print-directory", "-n", "up", *args], cwd=root,
                           env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    started = [line.strip() for line in shown if "-m deploy.local." in line]
    assert started == [started[-1]] and started[-1].endswith(expected), shown
