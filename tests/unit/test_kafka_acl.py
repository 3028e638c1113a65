"""The one ACL table (shared/kafka_acl.py): least privilege, and in step with the code."""

from __future__ import annotations

from services.alert import consumers as alert_consumers
from services.dispatch import consumers as dispatch_consumers
from services.dispatch import found as dispatch_found
from services.notify import consumers as notify_consumers
from shared import kafka_acl, topic_policy, topics


def groups(user: str) -> set[str]:
    return {g.name for g in kafka_acl.ACLS[user] if g.resource == "group"}


def test_each_service_may_join_exactly_its_consumer_groups() -> None:
    assert groups("alert") == {alert_consumers.GROUP}
    assert groups("dispatch") == {dispatch_consumers.GROUP, dispatch_consumers.TIPS_GROUP,
                                  dispatch_found.GROUP}
    # The planner's group, and one group per delivery-jobs lane (issue 18).
    assert groups("notify") == {notify_consumers.GROUP, *kafka_acl.JOB_GROUPS.values()}
    assert set(kafka_acl.JOB_GROUPS) == set(topics.JOB_TOPICS)
    assert set(topics.JOB_TOPICS) <= kafka_acl.readable_topics("notify")
    assert {g.operation for u in kafka_acl.SERVICES for g in kafka_acl.ACLS[u]
            if g.resource == "group"} == {"Read"}


def test_every_granted_topic_is_declared_and_named_exactly() -> None:
    declared = {t.name for t in topic_policy.TOPICS}
    for user, grants in kafka_acl.ACLS.items():
        for grant in grants:
            assert grant.pattern == "literal", (user, grant)
            if grant.resource == "topic":
                assert grant.name in declared, (user, grant)


def test_alert_reads_no_case_log_subscriber_push_body_report_or_tip() -> None:
    readable = kafka_acl.readable_topics("alert")
    assert not readable & {topics.DISPATCH, topics.SUBSCRIBERS, topics.ALERTS, topics.REPORTS,
                           topics.TIPS}
    assert kafka_acl.readable_topics("dispatch").isdisjoint({topics.SUBSCRIBERS, topics.ALERTS})
    assert kafka_acl.readable_topics(kafka_acl.KEDA) == set()  # lag only: Describe


def test_only_owners_write_the_logs() -> None:
    def writers(topic: str) -> set[str]:
        return {u for u, grants in kafka_acl.ACLS.items() for g in grants
                if g.name == topic and g.operation == "Write"}

    assert writers(topics.REPORTS) == {"alert"}
    assert writers(topics.TIPS) == {"alert"}
    assert writers(topics.DISPATCH) == writers(topics.PROGRESS) == {"dispatch"}
    assert writers(topics.SUBSCRIBERS) == writers(topics.ALERTS) == {"notify"}
    assert writers(topics.DELIVERIES) == {"notify"}
