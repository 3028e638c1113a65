"""docker-compose.cluster.yml (issue 14 item 6): the three-node SASL/ACL option over
docker-compose.yml stays valid, refuses to start without its secrets, and gives each service its
own principal (shared.kafka_acl)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shared import kafka_acl
from tests.unit.test_deploy import compose_command

ROOT = Path(__file__).resolve().parents[2]
FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.cluster.yml")]
SECRETS = {f"HOMEWARD_KAFKA_{n}": "test-value" for n in (
    "CLUSTER_ID", "BROKER_PASSWORD", "ADMIN_PASSWORD", "ALERT_PASSWORD", "DISPATCH_PASSWORD",
    "NOTIFY_PASSWORD")}
# What docker-compose.yml itself requires (issues 12, 13, 17, 19): given, so a refusal is the
# cluster's.
BASE_SECRETS = {"HOMEWARD_JWT_SECRET": "test-jwt-secret",
                "HOMEWARD_IDENTITY_SECRET": "test-identity-secret",
                "HOMEWARD_NOTIFY_SUBSCRIBER_KEYS": '["k1:test"]',
                "HOMEWARD_SIGNING_HOST_DIR": "/srv/homeward/signing",
                "HOMEWARD_SIGNING_KEYS": '{"2026-11": "active"}',
                "HOMEWARD_PII_MASTER_KEYS": "k1:test"}
SECRETS = SECRETS | BASE_SECRETS


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOMEWARD_")}
    return subprocess.run([*compose_command(), *FILES, *args], capture_output=True, text=True,
                          cwd=ROOT, env=clean | env)


def merged() -> dict[str, Any]:
    result = compose("config", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout)["services"])


def test_cluster_option_is_valid_and_needs_its_secrets() -> None:
    assert compose("config", "-q", env=SECRETS).returncode == 0
    missing = compose("config", "-q", env=BASE_SECRETS)
    assert missing.returncode != 0 and "HOMEWARD_KAFKA_" in missing.stderr


def test_three_nodes_and_one_principal_per_service() -> None:
    services = merged()
    nodes = [services[n]["environment"]["NODE_ID"] for n in ("kafka", "kafka-2", "kafka-3")]
    assert nodes == ["1", "2", "3"]
    for name in kafka_acl.SERVICES:
        env = services[name]["environment"]
        assert env["HOMEWARD_KAFKA_USERNAME"] == kafka_acl.principal(name)
        assert env["HOMEWARD_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["HOMEWARD_KAFKA_BOOTSTRAP"].count(",") == 2
        assert (env["HOMEWARD_KAFKA_REPLICATION_FACTOR"],
                env["HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    topics_job = services["topics"]
    assert "shared.kafka_admin setup-env" in " ".join(topics_job["command"])
    for name in kafka_acl.SERVICES:
        assert f"HOMEWARD_KAFKA_PASSWORD_{name.upper()}" in topics_job["environment"]
    script = (ROOT / "deploy" / "compose" / "kafka-node.sh").read_text()
    assert "allow.everyone.if.no.acl.found=false" in script
    assert "CLIENT:SASL_PLAINTEXT" in script
