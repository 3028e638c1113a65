"""deploy/k8s (issue 14 items 4-5): both overlays build with kustomize and pass kubeconform
-strict against the committed schemas (no network); the KafkaTopics and KafkaUsers are the topic
declaration and the ACL table; every workload probes and has limits; secrets are referenced.
Issue 20: Keycloak (the pinned image) imports the realm generated from the local realm file
without its local-only accounts and client, and the services trust it."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.k8s import generate
from deploy.keycloak import realm
from deploy.local.keycloak import SAMPLE_PASSWORD, keycloak_version
from shared import kafka_acl, topic_policy
from shared.auth import Role

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TOOLS = ROOT / ".tools" / "bin"
SCHEMAS = K8S / "schemas"
OVERLAYS = ("local", "production")
SERVICES = {"alert": 8000, "dispatch": 8001, "notify": 8002}


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} missing: run `make install` (deploy/local/install.sh)"
    return str(path)


@cache
def built(overlay: str) -> str:
    result = subprocess.run([tool("kustomize"), "build", str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(built(overlay)) if d]


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in objects(overlay) if d["kind"] == kind}


KUBERNETES_SCHEMA = "kubernetes/{{ .ResourceKind }}{{ .KindSuffix }}.json"
CRD_SCHEMA = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def kubeconform(manifest: Path) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict with only the committed schemas: an unknown kind fails instead of
    being fetched or skipped."""
    return subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", "1.34.0",
         "-schema-location", f"{SCHEMAS}/{KUBERNETES_SCHEMA}",
         "-schema-location", f"{SCHEMAS}/{CRD_SCHEMA}", str(manifest)],
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_kubeconform_strict_offline(overlay: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(built(overlay))
    result = kubeconform(manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


def test_kubeconform_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The check can fail: a misspelt field in a KafkaTopic and in a Deployment is refused."""
    bad = built("production").replace("  topicName: homeward.tips.v1\n",
                                        "  topicName: homeward.tips.v1\n  partition: 3\n")
    bad = bad.replace("  replicas: 2\n", "  replica: 2\n", 1)
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(bad)
    result = kubeconform(manifest)
    assert result.returncode != 0
    assert "Invalid: 2" in result.stdout


def test_committed_topics_and_users_equal_the_generated() -> None:
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize(("overlay", "replicas", "min_insync"),
                         [("local", 1, "1"), ("production", 3, "2")])
def test_every_declared_topic_has_a_kafka_topic(overlay: str, replicas: int,
                                                 min_insync: str) -> None:
    kafka_topics = {d["spec"]["topicName"]: d["spec"]
                    for d in of_kind(overlay, "KafkaTopic").values()}
    assert set(kafka_topics) == {t.name for t in topic_policy.TOPICS}
    for declared in topic_policy.TOPICS:
        spec = kafka_topics[declared.name]
        assert spec["partitions"] == declared.partitions
        assert spec["replicas"] == replicas
        assert spec["config"] == declared.configs(int(min_insync))
    kafka = of_kind(overlay, "Kafka")["homeward"]["spec"]["kafka"]
    assert kafka["config"]["min.insync.replicas"] == int(min_insync)
    config = of_kind(overlay, "ConfigMap")["homeward-config"]["data"]
    assert config["HOMEWARD_KAFKA_REPLICATION_FACTOR"] == str(replicas)
    assert config["HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS"] == min_insync


def grants_of(user: dict[str, Any]) -> set[kafka_acl.Grant]:
    grants = set()
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        for operation in rule["operations"]:
            grants.add(kafka_acl.Grant(resource["type"], resource.get("name", "kafka-cluster"),
                                       operation, resource.get("patternType", "literal")))
    return grants


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_kafka_user_with_the_stack_acls(overlay: str) -> None:
    users = of_kind(overlay, "KafkaUser")
    for name in (*SERVICES, kafka_acl.KEDA):
        user = users[kafka_acl.principal(name)]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert grants_of(user) == set(kafka_acl.ACLS[name])
    # The service runs as its own principal, its password from the User Operator's Secret.
    for name, workload in workloads(overlay).items():
        if name not in SERVICES:
            continue
        env = {e["name"]: e for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HOMEWARD_KAFKA_USERNAME"]["value"] == kafka_acl.principal(name)
        assert env["HOMEWARD_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": kafka_acl.principal(name), "key": "password"}


def workloads(overlay: str) -> dict[str, dict[str, Any]]:
    return {**of_kind(overlay, "Deployment"), **of_kind(overlay, "StatefulSet")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_probes_and_has_requests_and_limits(overlay: str) -> None:
    found = workloads(overlay)
    assert set(SERVICES) | {"redis"} <= set(found)
    assert found["alert"]["kind"] == "StatefulSet"
    assert [t["metadata"]["name"] for t in found["alert"]["spec"]["volumeClaimTemplates"]] == [
        "outbox"]
    for name, workload in found.items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container.get("readinessProbe") and container.get("livenessProbe"), name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            if name in SERVICES:
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


SECRET_WORDS = ("PASSWORD", "SECRET", "REDIS_URL", "SUBSCRIBER_KEYS", "MASTER_KEYS")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined(overlay: str) -> None:
    assert not of_kind(overlay, "Secret")
    for name, workload in workloads(overlay).items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if any(w in env["name"] for w in SECRET_WORDS):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], (name, env)
    config = of_kind(overlay, "ConfigMap")["homeward-config"]["data"]
    assert not [k for k in config if any(w in k for w in SECRET_WORDS)]


# The keys a service refuses to start without outside development (shared.settings; notify's
# subscriber key ring, services/notify/sealing.py), each from a Secret the operator creates.
REQUIRED_SECRETS = {
    "HOMEWARD_JWT_SECRET": {"name": "homeward-jwt", "key": "secret"},
    "HOMEWARD_IDENTITY_SECRET": {"name": "homeward-identity", "key": "secret"},
    # The master keys wrapping every case's data key (issue 13, shared/pii.py).
    "HOMEWARD_PII_MASTER_KEYS": {"name": "homeward-pii-master-keys", "key": "keys"},
}
NOTIFY_SECRETS = {
    "HOMEWARD_NOTIFY_SUBSCRIBER_KEYS": {"name": "homeward-notify-subscriber-keys", "key": "keys"},
    # The issuer's signing keys (issue 17): states here, the PEM files mounted below.
    "HOMEWARD_SIGNING_KEYS": {"name": "homeward-signing", "key": "states"},
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_gets_the_keys_it_needs_from_secrets(overlay: str) -> None:
    for name, workload in workloads(overlay).items():
        if name not in SERVICES:
            continue
        env = {e["name"]: e for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}
        wanted = REQUIRED_SECRETS | (NOTIFY_SECRETS if name == "notify" else {})
        for variable, ref in wanted.items():
            assert env[variable]["valueFrom"]["secretKeyRef"] == ref, (name, variable)
        if name != "notify":  # least privilege: only notify opens subscriber secrets
            assert not set(NOTIFY_SECRETS) & set(env), name
            continue
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        signing = mounts[env["HOMEWARD_SIGNING_DIR"]["value"]]
        assert signing["readOnly"]
        assert volumes[signing["name"]]["secret"]["secretName"] == "homeward-signing"


def test_production_is_replicated_budgeted_and_spread() -> None:
    found = workloads("production")
    budgets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for d in of_kind("production", "PodDisruptionBudget").values()}
    assert set(SERVICES) | {"redis"} <= budgets
    for name in SERVICES:
        spec = found[name]["spec"]
        assert spec["replicas"] >= 2
        assert spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    pools = of_kind("production", "KafkaNodePool")
    assert {tuple(p["spec"]["roles"]): p["spec"]["replicas"] for p in pools.values()} == {
        ("controller",): 3, ("broker",): 3}
    local_pools = of_kind("local", "KafkaNodePool")
    assert [p["spec"]["roles"] for p in local_pools.values()] == [["controller", "broker"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_scale_on_lag_and_networks_are_closed(overlay: str) -> None:
    scaled = of_kind(overlay, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == {"dispatch", "notify"}
    for s in scaled.values():
        trigger = s["spec"]["triggers"][0]
        assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] in {
            g.name for g in kafka_acl.ACLS[kafka_acl.KEDA] if g.resource == "group"}
        assert s["spec"]["maxReplicaCount"] <= 6  # never more consumers than partitions
    policies = of_kind(overlay, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {},
                                                        "policyTypes": ["Ingress"]}
    assert "redis-from-services" in policies


# --- Keycloak and the realm (issue 20) ---------------------------------------------------------

def keycloak_pod(overlay: str) -> dict[str, Any]:
    return dict(workloads(overlay)["keycloak"]["spec"]["template"]["spec"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keycloak_runs_the_pinned_image_and_imports_the_production_realm(overlay: str) -> None:
    pod = keycloak_pod(overlay)
    (container,) = pod["containers"]
    assert container["image"] == f"quay.io/keycloak/keycloak:{keycloak_version()}"
    assert "--import-realm" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "realm")
    assert mount["mountPath"] == "/opt/keycloak/data/import" and mount["readOnly"]
    volume = next(v for v in pod["volumes"] if v["name"] == "realm")
    config_maps = of_kind(overlay, "ConfigMap")
    realm_map = config_maps[volume["configMap"]["name"]]  # the generated name, hash and all
    assert volume["configMap"]["name"].startswith("keycloak-realm-")
    assert list(realm_map["data"]) == ["realm-homeward.json"]
    text = realm_map["data"]["realm-homeward.json"]
    assert json.loads(text) == realm.production_realm()
    assert (K8S / "base" / "realm-homeward.json").read_text(encoding="utf-8") == text


def local_only_leftovers(text: str) -> set[str]:
    """What of the local realm's local-only parts a realm file (text) still carries."""
    found = {word for word in (SAMPLE_PASSWORD, "local-only", "homeward-dev", "127.0.0.1",
                               "localhost", "operator-140403") if word in text}
    document = json.loads(text)
    if [u for u in document["users"] if "serviceAccountClientId" not in u]:
        found.add("people")
    if [c for c in document["clients"] if c.get("directAccessGrantsEnabled")]:
        found.add("password grant")
    if [c for c in document["clients"] if "secret" in c]:
        found.add("client secret")
    if document.get("browserFlow") != realm.COMMANDER_OTP_FLOW:
        found.add("no OTP for commanders")
    return found


def test_the_kubernetes_realm_has_no_local_accounts_clients_or_secrets() -> None:
    """What only the local realm may carry is gone: people (sample accounts and their password),
    the password-grant client, the call-centre secret, loopback redirects; commanders must use
    a one-time code. (The same check finds all of it in the local realm file.)"""
    production = (K8S / "base" / "realm-homeward.json").read_text(encoding="utf-8")
    assert local_only_leftovers(production) == set()
    local = realm.LOCAL_REALM_FILE.read_text(encoding="utf-8")
    assert local_only_leftovers(local) == {
        SAMPLE_PASSWORD, "local-only", "homeward-dev", "127.0.0.1", "localhost",
        "operator-140403", "people", "password grant", "client secret", "no OTP for commanders"}
    document = json.loads(production)
    assert {r["name"] for r in document["roles"]["realm"]} == {r.value for r in Role}
    assert {c["clientId"] for c in document["clients"]} == {
        c["clientId"] for c in json.loads(local)["clients"]} - realm.LOCAL_ONLY_CLIENTS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_services_trust_the_clusters_keycloak(overlay: str) -> None:
    config = of_kind(overlay, "ConfigMap")["homeward-config"]["data"]
    keycloak_config = of_kind(overlay, "ConfigMap")["keycloak-config"]["data"]
    assert config["HOMEWARD_OIDC_ISSUER"] == f"{keycloak_config['KC_HOSTNAME']}/realms/homeward"
    service = of_kind(overlay, "Service")["keycloak"]
    (port,) = service["spec"]["ports"]
    jwks = urllib.parse.urlsplit(config["HOMEWARD_OIDC_JWKS_URL"])
    assert (jwks.hostname, jwks.port) == ("keycloak", port["port"])
    assert jwks.path == "/realms/homeward/protocol/openid-connect/certs"
    for name, workload in workloads(overlay).items():
        if name in (*SERVICES, "keycloak"):  # the realm's ${HOMEWARD_*_URL} too
            (container, *_) = workload["spec"]["template"]["spec"]["containers"]
            assert {"configMapRef": {"name": "homeward-config"}} in container["envFrom"], name
    # The network lets browsers and the services reach it; alert and dispatch may call it.
    policies = of_kind(overlay, "NetworkPolicy")
    (selector,) = policies["services-http"]["spec"]["podSelector"]["matchExpressions"]
    assert "keycloak" in selector["values"]
    egress = policies["internal-egress"]["spec"]["egress"]
    assert any("keycloak" in e.get("values", [])
               for rule in egress for peer in rule["to"]
               for e in peer.get("podSelector", {}).get("matchExpressions", []))


@pytest.mark.parametrize(("overlay", "db_optional"), [("local", True), ("production", False)])
def test_keycloak_database_and_admin_come_from_secrets(overlay: str, db_optional: bool) -> None:
    (container,) = keycloak_pod(overlay)["containers"]
    env = {e["name"]: e for e in container["env"]}
    for variable, (secret, key) in {
        "KC_DB_URL": ("homeward-keycloak-db", "url"),
        "KC_DB_USERNAME": ("homeward-keycloak-db", "username"),
        "KC_DB_PASSWORD": ("homeward-keycloak-db", "password"),
        "KC_BOOTSTRAP_ADMIN_USERNAME": ("homeward-keycloak-admin", "username"),
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ("homeward-keycloak-admin", "password"),
    }.items():
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret, key)
        assert ref.get("optional", False) == (db_optional and variable.startswith("KC_DB_"))
    keycloak_config = of_kind(overlay, "ConfigMap")["keycloak-config"]["data"]
    assert not [k for k in keycloak_config if any(w in k for w in SECRET_WORDS)]
    if overlay == "local":  # development mode on its own file database
        assert container["args"][0] == "start-dev" and keycloak_config["KC_DB"] == "dev-file"
    else:
        assert container["args"][0] == "start" and keycloak_config["KC_DB"] == "postgres"
        assert workloads(overlay)["keycloak"]["spec"]["replicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_placeholder_of_the_realm_is_in_keycloaks_environment(overlay: str) -> None:
    """Keycloak fills the realm's `${VAR}` from its environment at import; one it lacks would
    stay literal (a console that cannot redirect back, a call-centre token without a region)."""
    text = (K8S / "base" / "realm-homeward.json").read_text(encoding="utf-8")
    wanted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text))
    assert wanted >= {"HOMEWARD_ALERT_URL", "HOMEWARD_DISPATCH_URL", "HOMEWARD_NOTIFY_URL",
                      "HOMEWARD_CALLCENTRE_REGION"}
    (container,) = keycloak_pod(overlay)["containers"]
    config_maps = of_kind(overlay, "ConfigMap")
    given = {key for source in container["envFrom"]
             for key in config_maps[source["configMapRef"]["name"]]["data"]}
    assert wanted <= given, wanted - given
