"""One Kafka principal per service and the least privilege each needs (issue 14 item 3).

The one ACL table: the local stack creates these users and ACLs, the tests check them against a
live broker, and the Kubernetes `KafkaUser` resources are generated from it
(`python -m deploy.k8s.generate`; tests/unit/test_k8s.py compares). Each grant names the
resource exactly (no prefixes, no wildcards).

Why each service needs what it has (the code that uses it):

* alert — writes reports and tips from its outbox (services/alert/adapters/relay.py
  `Relay`), follows the `case.opened`/`case.closed` copies on `homeward.progress.v1` and
  delivery receipts to show an operator the progress of a report and refuse tips on a closed case
  (services/alert/consumers.py, group `homeward-alert-progress`), dead-letters poison of what it
  reads. It cannot read the case log, subscribers, alerts (push bodies), reports or tips.
* alert (issue 16) — also writes unidentified-child records (`homeward.unidentified-children.v1`)
  from its outbox.
* dispatch — reads reports and tips (groups `homeward-dispatch`, `homeward-dispatch-tips`),
  unidentified-child records (group `homeward-dispatch-unidentified`),
  writes and replays the case log, copies `case.opened`/`case.closed` to the progress topic,
  dead-letters poison of what it reads.
* notify — reads reports and the case log (group `homeward-notify`), owns the compacted
  subscriber and alert logs, writes and replays delivery receipts, writes the deliveries DLQ;
  its planner writes the delivery-jobs topics and its workers read them (one group per lane).
* admin — creates topics, users and ACLs (`make up`, compose's `topics` job) as a super user;
  not in Kubernetes, where the Strimzi Topic and User Operators do it.
* keda — Kubernetes only: KEDA's Kafka scaler reads consumer-group lag (Describe on the groups
  and the topics they consume, nothing else).

The SCRAM user name of service `s` is `principal(s)` ("homeward-alert"...): the name of its
`KafkaUser`, whose Secret (created by Strimzi's User Operator) holds its password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared import topics

Operation = Literal["Read", "Write", "Describe"]
ResourceType = Literal["topic", "group"]
PatternType = Literal["literal"]

SERVICES = ("alert", "dispatch", "notify")
ADMIN = "admin"
KEDA = "keda"


@dataclass(frozen=True, order=True)
class Grant:
    """Allow `operation` on one topic or consumer group, named exactly."""

    resource: ResourceType
    name: str
    operation: Operation
    pattern: PatternType = "literal"


def _read(*names: str) -> list[Grant]:
    return [Grant("topic", n, op) for n in names for op in ("Read", "Describe")]


def _write(*names: str) -> list[Grant]:
    return [Grant("topic", n, op) for n in names for op in ("Write", "Describe")]


def _group(*names: str) -> list[Grant]:
    return [Grant("group", n, "Read") for n in names]


# The consumer group of each delivery-jobs lane (notify's workers, issue 18).
JOB_GROUPS: dict[str, str] = {
    topics.DELIVERY_JOBS_RESTRICTED: "homeward-notify-delivery-restricted",
    topics.DELIVERY_JOBS_PUBLIC: "homeward-notify-delivery-public",
}

ACLS: dict[str, frozenset[Grant]] = {
    "alert": frozenset([
        *_write(topics.REPORTS, topics.TIPS),
        *_read(topics.PROGRESS, topics.DELIVERIES, topics.CASE_KEYS),
        *_write(topics.dlq(topics.PROGRESS), topics.dlq(topics.DELIVERIES), topics.CASE_KEYS),
        *_group("homeward-alert-progress"),
        *_write(topics.UNIDENTIFIED),  # unidentified-child records from its outbox (issue 16)
    ]),
    "dispatch": frozenset([
        *_read(topics.REPORTS, topics.TIPS, topics.DISPATCH, topics.CASE_KEYS),
        *_write(topics.DISPATCH, topics.PROGRESS, topics.CASE_KEYS),
        *_write(topics.dlq(topics.REPORTS), topics.dlq(topics.TIPS)),
        *_group("homeward-dispatch", "homeward-dispatch-tips"),
        # unidentified-child records: matched against open cases (issue 16)
        *_read(topics.UNIDENTIFIED), *_write(topics.dlq(topics.UNIDENTIFIED)),
        *_group("homeward-dispatch-unidentified"),
    ]),
    "notify": frozenset([
        *_read(topics.REPORTS, topics.DISPATCH, topics.DELIVERIES, topics.SUBSCRIBERS,
               topics.ALERTS, topics.CASE_KEYS),
        *_write(topics.DELIVERIES, topics.DELIVERIES_DLQ, topics.SUBSCRIBERS, topics.ALERTS),
        *_write(topics.dlq(topics.REPORTS), topics.dlq(topics.DISPATCH)),
        # Its planner writes delivery jobs; its workers read them, one group per lane.
        *_read(*topics.JOB_TOPICS),
        *_write(*topics.JOB_TOPICS, *(topics.dlq(t) for t in topics.JOB_TOPICS)),
        *_group("homeward-notify", *JOB_GROUPS.values()),
    ]),
    # The admin is a super user of the local and compose clusters (it creates the users and
    # ACLs, which needs Alter on the cluster before any ACL exists); Kubernetes has none: the
    # Strimzi operators do its work there.
    ADMIN: frozenset(),
    KEDA: frozenset([
        *(Grant("topic", n, "Describe") for n in (topics.REPORTS, topics.DISPATCH)),
        *(Grant("group", n, "Describe") for n in ("homeward-dispatch", "homeward-notify")),
    ]),
}

USERS: tuple[str, ...] = (*SERVICES, ADMIN, KEDA)
BROKER = "broker"  # the inter-broker principal of the local cluster: a super user


def principal(user: str) -> str:
    """The SCRAM user name (and KafkaUser name) of `user`, e.g. "homeward-alert"."""
    return f"homeward-{user}"


def readable_topics(user: str) -> set[str]:
    """The topics `user` may read (for tests and docs)."""
    return {g.name for g in ACLS[user] if g.resource == "topic" and g.operation == "Read"}
