"""Kafka topic names: the system of record. Every message is keyed by case id."""

REPORTS = "homeward.reports.v1"
DISPATCH = "homeward.dispatch.v1"
TIPS = "homeward.tips.v1"
DELIVERIES = "homeward.deliveries.v1"

# What the intake side may learn of its reports' cases (issue 14: least privilege): dispatch
# copies the case events the alert service needs here (shared.events.PROGRESS_TYPES), same id,
# so it shows the operator the leader, refuses tips on a closed case and opens/deletes photos
# (issue 13) without a right to read the whole case log.
PROGRESS = "homeward.progress.v1"

INPUT_TOPICS = (REPORTS, DISPATCH, TIPS, DELIVERIES, PROGRESS)
PARTITIONS = 6


def dlq(topic: str) -> str:
    """The dead-letter topic of `topic`: poison messages land there with the error."""
    return f"{topic}.dlq"


# Subscribers (notify), compacted and keyed by subscriber id: the geo indexes in Redis are
# rebuilt from it when Redis has lost them. Created by notify with cleanup.policy=compact.
SUBSCRIBERS = "homeward.subscribers.v1"

# Alerts (notify), compacted: `alert:<alert id>` -> the alert's latest state, `body:<alert id>:
# <version>:<scope>` -> the push body of that version; with the subscribers log and the receipts
# on homeward.deliveries.v1 they rebuild notify's Redis. Created by notify with compaction.
ALERTS = "homeward.alerts.v1"

# Deliveries that failed their last try (notify): the commander sees them, an operator replays.
DELIVERIES_DLQ = "homeward.deliveries.dlq"

# Delivery jobs (notify's planner → notify's delivery workers, issue 18): one message per
# (alert version, recipient), KEYED BY RECIPIENT (subscriber id), so one case's fan-out spreads
# over every worker instance while each recipient's messages stay in order (an Alert, its
# Updates, then its Cancel). Two lanes, each consumed by its own consumer group, so a hub push
# never waits behind a bulk fan-out: restricted (hubs, the case group) and public (media,
# volunteers). More partitions than the case topics: they bound how many workers share a lane.
DELIVERY_JOBS_RESTRICTED = "homeward.delivery-jobs.restricted.v1"
DELIVERY_JOBS_PUBLIC = "homeward.delivery-jobs.public.v1"
JOB_TOPICS = (DELIVERY_JOBS_RESTRICTED, DELIVERY_JOBS_PUBLIC)
JOB_PARTITIONS = 12

ALL_TOPICS = (*INPUT_TOPICS, *(dlq(t) for t in INPUT_TOPICS), DELIVERIES_DLQ, *JOB_TOPICS,
              *(dlq(t) for t in JOB_TOPICS))

# Case data keys (issue 13 §2, shared/casekeys.py), compacted and keyed by case id: the value
# is the case's data key wrapped by a master key; purging a case writes its tombstone, after
# which every sealed personal field of the case, in every topic and DLQ, is unreadable.
CASE_KEYS = "homeward.case-keys.v1"

# Keyed by record id and compacted (the latest record of each key is kept).
COMPACTED_TOPICS = (SUBSCRIBERS, ALERTS, CASE_KEYS)

# Children met or found without a guardian (来历不明儿童, issue 16): alert's intake of police and
# mandated reporters' records, keyed by record id; dispatch matches them against open cases.
# Kept like the intake log (a child may stay unidentified for years); personal fields sealed with
# the record's own data key (shared/casekeys.py keyed by record id).
UNIDENTIFIED = "homeward.unidentified-children.v1"
ALL_TOPICS = (*ALL_TOPICS, UNIDENTIFIED, dlq(UNIDENTIFIED))
