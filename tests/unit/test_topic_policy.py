"""One topic declaration (issue 13 item 1, issue 14): every topic declared once, retention by
purpose, replication from settings, and every place that creates topics uses it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from shared import topic_policy, topics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def topic_names_in_code() -> set[str]:
    """Every `homeward.` topic name a module of shared.topics spells or derives."""
    names = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)
             and v.startswith("homeward.")}
    return names | set(topics.ALL_TOPICS) | set(topics.COMPACTED_TOPICS)


def test_every_topic_has_exactly_one_declaration() -> None:
    declared = [t.name for t in topic_policy.TOPICS]
    assert len(declared) == len(set(declared))
    assert set(declared) == topic_names_in_code()


@pytest.mark.parametrize(("name", "policy", "bounded"), [
    (topics.DISPATCH, "delete", False),           # case log: replayed for years
    (topics.REPORTS, "delete", False),            # intake system of record
    (topics.SUBSCRIBERS, "compact", False),       # state snapshot
    (topics.ALERTS, "compact", False),
    (topics.TIPS, "delete", True),                # operational
    (topics.DELIVERIES, "delete", True),          # receipts
    (topics.PROGRESS, "delete", True),            # the operator's progress view
    (topics.DELIVERIES_DLQ, "delete", True),
    *((topics.dlq(t), "delete", True) for t in topics.INPUT_TOPICS),
])
def test_retention_by_purpose(name: str, policy: str, bounded: bool) -> None:
    declared = topic_policy.policy(name)
    configs = declared.configs(min_insync_replicas=2)
    assert configs["cleanup.policy"] == policy
    assert configs["min.insync.replicas"] == "2"
    retention = int(configs["retention.ms"])
    if bounded:
        assert 0 < retention <= 90 * topic_policy.DAY_MS
    else:
        assert retention == topic_policy.UNBOUNDED
    assert declared.purpose and declared.partitions == topics.PARTITIONS


def test_replication_is_a_setting_with_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    local = Settings()
    assert (local.kafka_replication_factor, local.kafka_min_insync_replicas) == (1, 1)
    monkeypatch.setenv("HOMEWARD_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS", "2")
    production = Settings()
    assert (production.kafka_replication_factor, production.kafka_min_insync_replicas) == (3, 2)
    with pytest.raises(ValidationError, match="MIN_INSYNC"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)


def calls_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_stack_fixtures_and_compose_create_topics_from_the_declaration() -> None:
    assert "ensure_topics" in calls_in(ROOT / "deploy" / "local" / "stack.py")
    assert "ensure_topics" in calls_in(ROOT / "tests" / "conftest.py")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["topics"]["command"] == [
        "python", "-m", "shared.kafka", "ensure-topics"]
    # Nothing else creates a topic by hand: NewTopic appears only in shared/kafka.py.
    creators = {p.relative_to(ROOT).as_posix() for d in ("shared", "services", "deploy")
                for p in (ROOT / d).rglob("*.py") if "NewTopic(" in p.read_text()}
    assert creators == {"shared/kafka.py"}


def test_the_key_store_keeps_its_tombstones_for_good() -> None:
    """A purged case stays purged after any rebuild of the key store (shared/casekeys.py): its
    tombstone is never compacted away, while the other topics keep Kafka's default."""
    keys = topic_policy.policy(topics.CASE_KEYS).configs(min_insync_replicas=1)
    assert keys["cleanup.policy"] == "compact"
    assert int(keys["delete.retention.ms"]) == 2**63 - 1
    others = [t.name for t in topic_policy.TOPICS
              if "delete.retention.ms" in t.configs(1) and t.name != topics.CASE_KEYS]
    assert others == []
