"""The Prometheus series an on-call engineer reads (issue 15 item 2), served on each service's
internal ops port (`/metrics`, shared.web_ops.ops_app). The services call the small hooks below
where the thing happens; the samplers read what only a query can tell (outbox backlog, consumer
lag, DLQ depth, timers in Redis) every `interval_s`.

Series (units in the name; times are seconds):

* `homeward_report_to_case_group_seconds` (dispatch): report accepted by alert → case group
  opened with its leader (ReportAccepted.accepted_at to the commit of case.opened).
* `homeward_report_to_first_hub_push_seconds` (notify): report accepted → the first hub of its
  alert answered a push with success.
* `homeward_delivery_outcomes_total{status,audience,channel}` (notify): every delivery receipt
  (sent, retrying, failed, dead, gone, ack_overdue, acknowledged), audience = subscriber kind.
* `homeward_delivery_latency_seconds{audience}` (notify): alert version issued → delivered.
* `homeward_hub_ack_seconds` (notify): hub push sent → acknowledged at the hub console.
* `homeward_delivery_retries_in_flight`, `homeward_hub_acks_overdue` (notify, sampled):
  deliveries waiting for a retry; hub pushes past their ack deadline, not acknowledged.
* `homeward_dlq_messages_total{topic}` (every service): messages this process dead-lettered;
  `homeward_dlq_depth_messages{topic}` (sampled): messages on a DLQ within its retention.
* `homeward_alert_outbox_backlog`, `homeward_alert_outbox_oldest_age_seconds` (alert, sampled).
* `homeward_consumer_lag_messages{group,topic}` (every service, sampled): end offset minus the
  group's committed offset, summed over partitions.

Several processes of one service (alert's intake workers, issue 15 item 4) share one
`/metrics`: their supervisor sets PROMETHEUS_MULTIPROC_DIR (`multiprocess_dir`) before the
workers start, prometheus-client keeps each process's values in files there, and `exposition`
sums counters and histograms over every process (dead ones included: totals never go back);
a sampled gauge shows the most recent value any process set (only the worker holding the
duties samples them).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

# Seconds: from tens of milliseconds (a healthy flow) to minutes (Kafka away, a backlog).
FLOW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Seconds for a person at a hub console to acknowledge: up to hours.
ACK_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)

# A sampled gauge across processes: the value the most recent sample set (prometheus-client's
# multiprocess mode; one process alone: its own value).
SAMPLED: Final = "mostrecent"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REPORT_TO_CASE_GROUP = Histogram(
    "homeward_report_to_case_group_seconds",
    "Report accepted by intake to its case group opened with a leader (dispatch)",
    buckets=FLOW_BUCKETS)
REPORT_TO_FIRST_PUSH = Histogram(
    "homeward_report_to_first_hub_push_seconds",
    "Report accepted by intake to the first hub push answered with success (notify)",
    buckets=FLOW_BUCKETS)
DELIVERY_OUTCOMES = Counter(
    "homeward_delivery_outcomes_total",
    "Delivery receipts by status (sent, retrying, failed, dead, gone, ack_overdue, "
    "acknowledged), audience (subscriber kind) and channel",
    ["status", "audience", "channel"])
DELIVERY_LATENCY = Histogram(
    "homeward_delivery_latency_seconds",
    "Alert version issued to the recipient's success answer, by audience",
    ["audience"], buckets=FLOW_BUCKETS)
HUB_ACK = Histogram(
    "homeward_hub_ack_seconds", "Hub push sent to acknowledged at the hub console",
    buckets=ACK_BUCKETS)
RETRIES_IN_FLIGHT = Gauge(
    "homeward_delivery_retries_in_flight", "Deliveries waiting for their next try",
    multiprocess_mode=SAMPLED)
ACKS_OVERDUE = Gauge(
    "homeward_hub_acks_overdue",
    "Hub pushes past their acknowledgement deadline and not acknowledged",
    multiprocess_mode=SAMPLED)
DLQ_MESSAGES = Counter(
    "homeward_dlq_messages_total", "Messages this process put on a dead-letter topic",
    ["topic"])
DLQ_DEPTH = Gauge(
    "homeward_dlq_depth_messages",
    "Messages on a dead-letter topic (end minus earliest offset)", ["topic"],
    multiprocess_mode=SAMPLED)
OUTBOX_BACKLOG = Gauge(
    "homeward_alert_outbox_backlog", "Outbox rows (reports, tips) not yet published to Kafka",
    multiprocess_mode=SAMPLED)
OUTBOX_AGE = Gauge(
    "homeward_alert_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none waits)",
    multiprocess_mode=SAMPLED)
CONSUMER_LAG = Gauge(
    "homeward_consumer_lag_messages",
    "Messages a consumer group has not committed yet, summed over the topic's partitions",
    ["group", "topic"], multiprocess_mode=SAMPLED)

# What a dashboard or rule may name: tests check the deploy/ queries against this list.
SERIES = ("homeward_report_to_case_group_seconds", "homeward_report_to_first_hub_push_seconds",
          "homeward_delivery_outcomes_total", "homeward_delivery_latency_seconds",
          "homeward_hub_ack_seconds", "homeward_delivery_retries_in_flight",
          "homeward_hub_acks_overdue", "homeward_dlq_messages_total",
          "homeward_dlq_depth_messages", "homeward_alert_outbox_backlog",
          "homeward_alert_outbox_oldest_age_seconds", "homeward_consumer_lag_messages",
          "homeward_messages_handled_total")


def multiprocess_dir(path: os.PathLike[str] | str) -> None:
    """Make the processes this one starts afterwards keep their metric values in files under
    `path` (its `*.db` files deleted: values of an earlier run must not be summed in). Call in
    the supervisor before it starts the workers (uvicorn spawns them: they import
    prometheus-client afresh, in multiprocess mode)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = os.fspath(directory)


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process's metrics, or, in multiprocess mode (MULTIPROC_ENV
    set), of every process writing to that directory; and its content type."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    # The serving process's own process_* and python_* series (CPU, memory, open files): the
    # multiprocess collector has none, and the ops dashboards expect them.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _seconds(start: datetime, end: datetime | None = None) -> float:
    end = end or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())


def case_group_formed(accepted_at: datetime, now: datetime | None = None) -> None:
    """Dispatch opened the case group of a report accepted at `accepted_at`."""
    REPORT_TO_CASE_GROUP.observe(_seconds(accepted_at, now))


class FirstPushes:
    """Reports whose alert this process opened and whose first hub push it has not seen yet:
    alert id -> accepted at. Bounded (the oldest forgotten first); a process that did not see
    the report (a restart, another instance) does not observe its first push."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._waiting: OrderedDict[str, datetime] = OrderedDict()

    def opened(self, alert_id: str, accepted_at: datetime) -> None:
        self._waiting[alert_id] = accepted_at
        while len(self._waiting) > self.limit:
            self._waiting.popitem(last=False)

    def pushed(self, alert_id: str, at: datetime) -> None:
        accepted_at = self._waiting.pop(alert_id, None)
        if accepted_at is not None:
            REPORT_TO_FIRST_PUSH.observe(_seconds(accepted_at, at))


FIRST_PUSHES = FirstPushes()


def alert_opened(alert_id: str, accepted_at: datetime) -> None:
    """Notify opened the alert of a report accepted at `accepted_at`."""
    FIRST_PUSHES.opened(alert_id, accepted_at)


def delivery_receipt(status: str, audience: str, channel: str, at: datetime,
                     alert_id: str = "", issued_at: str | None = None) -> None:
    """A delivery receipt (shared.events.DeliveryReceipt's status, kind, channel, at). For
    `sent`: the latency from `issued_at` (the push body's ISO time) and, for a hub, the
    report's first push."""
    DELIVERY_OUTCOMES.labels(status, audience or "unknown", channel or "unknown").inc()
    if status != "sent":
        return
    if issued_at:
        try:
            DELIVERY_LATENCY.labels(audience or "unknown").observe(
                _seconds(datetime.fromisoformat(issued_at), at))
        except ValueError:
            pass
    if audience == "hub" and alert_id:
        FIRST_PUSHES.pushed(alert_id, at)


def hub_acknowledged(record: Mapping[str, str], at: datetime) -> None:
    """A hub acknowledged the delivery whose ledger `record` has `sent_at` (or `at`)."""
    sent = record.get("sent_at") or record.get("at")
    if not sent:
        return
    try:
        HUB_ACK.observe(_seconds(datetime.fromisoformat(sent), at))
    except ValueError:
        pass


def dead_lettered(topic: str) -> None:
    DLQ_MESSAGES.labels(topic).inc()


# --- samplers ---------------------------------------------------------------------------------

Sample = Callable[[], Awaitable[None]]


async def sample_forever(samples: Iterable[Sample], interval_s: float = 10.0) -> None:
    """Run every sample, then again every `interval_s`, until cancelled; a failing sample is
    logged and tried again next time (the gauges keep their last value)."""
    samples = list(samples)
    try:
        while True:
            for sample in samples:
                try:
                    await sample()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("metrics sample %s failed: %r",
                                getattr(sample, "__name__", sample), exc)
            await asyncio.sleep(interval_s)
    finally:
        for sample in samples:
            if isinstance(sample, KafkaSampler):
                await sample.stop()


def timers_sample(retries: Callable[[], Awaitable[int]],
                  overdue: Callable[[], Awaitable[int]]) -> Sample:
    """Notify's durable timers: deliveries waiting for a retry, hub pushes past their ack
    deadline (counts read by the callables)."""

    async def timers() -> None:
        RETRIES_IN_FLIGHT.set(await retries())
        ACKS_OVERDUE.set(await overdue())

    return timers


def outbox_sample(backlog: Callable[[], Awaitable[tuple[int, float]]]) -> Sample:
    """Outbox backlog and age from `backlog()` (count, age of the oldest in seconds)."""

    async def outbox() -> None:
        count, age = await backlog()
        OUTBOX_BACKLOG.set(count)
        OUTBOX_AGE.set(age)

    return outbox


class KafkaSampler:
    """Consumer lag of `groups` (group id -> the topics it reads) and depth of `dlqs`, read
    with the service's own principal (it reads those topics and writes those DLQs, which
    allows describing them). Clients start on the first sample and stop with `stop`."""

    def __init__(self, options: dict[str, Any], groups: Mapping[str, Iterable[str]],
                 dlqs: Iterable[str] = ()) -> None:
        self.options = options
        self.groups = {g: list(t) for g, t in groups.items()}
        self.dlqs = list(dlqs)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **self.options)
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                        request_timeout_ms=10_000, **self.options)
            await admin.start()
            try:
                await consumer.start()
            except BaseException:
                await admin.close()
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    @staticmethod
    async def _partitions(admin: AIOKafkaAdminClient,
                          topics: Iterable[str]) -> list[TopicPartition]:
        described = await admin.describe_topics(list(topics))
        return [TopicPartition(d["topic"], p["partition"]) for d in described
                if not d.get("error_code") for p in d.get("partitions", ())]

    async def __call__(self) -> None:
        try:
            await self._sample()
        except Exception:
            await self.stop()  # a new connection next time
            raise

    async def _sample(self) -> None:
        admin, consumer = await self._clients()
        read = sorted({t for topics in self.groups.values() for t in topics})
        tps = await self._partitions(admin, [*read, *self.dlqs])
        if not tps:
            return
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for dlq in self.dlqs:
            DLQ_DEPTH.labels(dlq).set(sum(ends[tp] - starts[tp] for tp in tps if tp.topic == dlq))
        for group, topics in self.groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            for topic in topics:
                lag = 0
                for tp in (tp for tp in tps if tp.topic == topic):
                    done = committed.get(tp)
                    position = done.offset if done is not None and done.offset >= 0 \
                        else starts[tp]
                    lag += max(0, ends[tp] - position)
                CONSUMER_LAG.labels(group, topic).set(lag)

    async def stop(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()
