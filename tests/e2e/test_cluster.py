"""Production footing on real brokers (issue 14 items 2-3): a three-node KRaft cluster with
SASL/SCRAM and ACLs, the three services each connecting as its own principal.

* Least privilege: each service's principal can read exactly the topics the ACL table grants
  it (alert cannot read the subscribers, the push bodies or the case log), and the whole
  pipeline still works.
* Broker loss: reports at 25/s; one broker SIGKILLed at 10 s and restarted at 40 s, the active
  controller SIGKILLed at 50 s (restarted at 60 s). Then every report has exactly one case with
  its leader and duties and a push at every hub, one distinct case.opened per case, one
  webhook-id per (alert version, hub), nothing in any DLQ, and no under-replicated partition.

The cluster, Redis and services are this module's own (killing brokers must not disturb other
tests). Report count: the issue's 1,000 at 25/s (40 s of load).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError
from confluent_kafka import TopicPartition as ConfluentPartition

from deploy.local.cluster_stack import start_cluster_services
from deploy.local.kafka_cluster import KafkaCluster
from deploy.local.stack import RedisServer, ServiceProcess, free_port, stack_env
from shared import kafka_acl, topic_policy, topics
from shared.auth import Role
from shared.kafka_admin import load_credentials
from tests.e2e.test_faults import (
    HUB_OFFSETS,
    alert_pushes,
    bearer,
    distinct_report,
    register_hubs,
    wait_for,
)
from tests.helpers import WebhookSink, ids_per_case, read_topic

pytestmark = pytest.mark.e2e

REPORTS = 1_000
RATE_PER_S = 25


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.kafka = KafkaCluster(root / "kafka", 3, load_credentials(root / "credentials.json"))
        self.redis = RedisServer(root / "redis", port=free_port())
        self.ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
        self.services: dict[str, ServiceProcess] = {}

    def start(self) -> Cluster:
        self.redis.start()
        self.kafka.start()
        self.kafka.ensure_topics_and_principals()
        self.services = start_cluster_services(self.kafka, self.redis.url, self.root,
                                               self.ports, stack_env(self.root))
        return self

    def stop(self) -> None:
        for proc in self.services.values():
            proc.stop()
        self.kafka.stop()
        self.redis.stop()

    def url(self, name: str) -> str:
        return self.services[name].url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    stack = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield stack
    stack.stop()


def may_read(cluster: Cluster, user: str, topic: str) -> bool:
    """Whether `user` may fetch from `topic`: False on the broker's authorisation error.
    (librdkafka's consumer reports both outcomes as events, where aiokafka retries a refused
    metadata request until its timeout.)"""
    access = cluster.kafka.access(user)
    consumer = Consumer({"bootstrap.servers": access.bootstrap, "group.id": f"probe-{user}",
                         "security.protocol": access.protocol,
                         "sasl.mechanism": access.mechanism, "sasl.username": access.username,
                         "sasl.password": access.password, "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        # Without even Describe, the metadata answer already carries the refusal.
        described = consumer.list_topics(topic, timeout=20).topics[topic].error
        if described is not None and described.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return False
        consumer.assign([ConfluentPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None or error.code() == KafkaError._PARTITION_EOF:
                return True  # a record, or the end of the partition: the fetch was allowed
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                return False
        raise AssertionError(f"{user} on {topic}: neither data nor a refusal in 30 s")
    finally:
        consumer.close()


async def test_each_principal_reads_only_what_its_acls_grant(cluster: Cluster) -> None:
    # The cases first, then every (service, topic) pair against the table.
    assert not may_read(cluster, "alert", topics.SUBSCRIBERS)
    assert not may_read(cluster, "alert", topics.DISPATCH)
    assert not may_read(cluster, "alert", topics.ALERTS)
    assert not may_read(cluster, "alert", topics.REPORTS)
    assert may_read(cluster, "alert", topics.DELIVERIES)
    for user in kafka_acl.SERVICES:
        allowed = kafka_acl.readable_topics(user)
        for declared in topic_policy.TOPICS:
            got = may_read(cluster, user, declared.name)
            assert got == (declared.name in allowed), (user, declared.name)


async def dlq_messages(cluster: Cluster) -> dict[str, int]:
    """Messages on every dead-letter topic (end offsets), read as the admin."""
    consumer = AIOKafkaConsumer(**cluster.kafka.access().client_options(), group_id=None)
    await consumer.start()
    try:
        names = [t.name for t in topic_policy.TOPICS if t.name.endswith(".dlq")]
        parts = [TopicPartition(n, p) for n in names for p in range(topics.PARTITIONS)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    counts: dict[str, int] = defaultdict(int)
    for tp, end in ends.items():
        counts[tp.topic] += end
    return {n: c for n, c in counts.items() if c}


async def post_reports(alert: str, posted: dict[str, str]) -> None:
    operator = bearer(Role.operator, "140403")
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:

        async def post(n: int) -> None:
            body = distinct_report(n)
            key = f"cluster-{n}-{time.time_ns()}"
            for _ in range(40):
                try:
                    got = await http.post(f"{alert}/api/v1/reports", json=body,
                                          headers={**operator, "Idempotency-Key": key})
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                assert got.status_code == 202, got.text
                posted[got.json()["report_id"]] = got.json()["case_id"]
                return
            raise AssertionError(f"report {n} never accepted")

        began = time.monotonic()
        tasks = []
        for n in range(REPORTS):
            await asyncio.sleep(max(0.0, began + n / RATE_PER_S - time.monotonic()))
            tasks.append(asyncio.create_task(post(n)))
        await asyncio.gather(*tasks)


async def lose_brokers(cluster: Cluster) -> list[str]:
    kafka = cluster.kafka
    done: list[str] = []
    began = time.monotonic()

    async def at(second: float, what: str, action: Any) -> None:
        await asyncio.sleep(max(0.0, began + second - time.monotonic()))
        done.append(f"{time.monotonic() - began:5.1f}s {what}")
        await asyncio.to_thread(action)

    controller = kafka.active_controller()
    victim = next(n.node_id for n in kafka.nodes if n.node_id != controller)
    await at(10, f"broker {victim} SIGKILL", lambda: kafka.kill_node(victim))
    # Restarted without waiting for its port: the controller loss at 50 s comes on time.
    await at(40, f"broker {victim} restarted",
             lambda: kafka.start_node(victim, wait=False))
    leader: list[int] = []

    def kill_controller() -> None:
        leader.append(kafka.active_controller())
        kafka.kill_node(leader[0])

    await at(50, "active controller SIGKILL", kill_controller)
    done[-1] += f" (node {leader[0]})"
    await at(60, "the controller's node restarted", lambda: kafka.start_node(leader[0]))
    return done


async def test_survives_a_broker_loss_and_the_controller_loss(cluster: Cluster) -> None:
    sinks = [WebhookSink() for _ in HUB_OFFSETS]
    for sink in sinks:
        sink.__enter__()
    try:
        await register_hubs(cluster.url("notify"), sinks)
        posted: dict[str, str] = {}
        _, done = await asyncio.gather(post_reports(cluster.url("alert"), posted),
                                       lose_brokers(cluster))
        print("\n".join(done))
        assert len(posted) == REPORTS
        cases = set(posted.values())
        assert len(cases) == REPORTS, "every report opens its own case"

        async def all_pushed() -> bool | dict[int, int]:
            missing = {i: len(cases - {p["case_id"] for p in alert_pushes(s, cases)})
                       for i, s in enumerate(sinks)}
            return True if not any(missing.values()) else missing

        await wait_for(all_pushed, 240, "a push of every case at every hub")

        commander = bearer(Role.commander, "140000")
        async with httpx.AsyncClient(timeout=30) as http:
            async def all_cases_open() -> bool | int:
                bad = 0
                for case_id in sorted(cases):
                    got = await http.get(f"{cluster.url('dispatch')}/api/v1/cases/{case_id}",
                                         headers=commander)
                    body = got.json() if got.status_code == 200 else {}
                    duties = set(body.get("duties") or {})
                    if not body.get("leader") or \
                            duties != {"investigation", "rescue", "family_liaison"}:
                        bad += 1
                return True if bad == 0 else bad

            await wait_for(all_cases_open, 120, "every case open with its leader and duties")

        async def fully_replicated() -> bool | list[tuple[str, int]]:
            lagging = await cluster.kafka.under_replicated()
            return True if not lagging else lagging

        await wait_for(fully_replicated, 120, "no under-replicated partition")
        await asyncio.sleep(5)  # let any late duplicate arrive before counting

        admin = cluster.kafka.access()
        events = await read_topic(admin.bootstrap, topics.DISPATCH, access=admin)
        opened = ids_per_case(events, "homeward.case.opened.v1", cases)
        assert set(opened) == cases
        assert {c: ids for c, ids in opened.items() if len(ids) != 1} == {}

        for i, sink in enumerate(sinks):
            ids_per_version: dict[tuple[str, Any], set[str]] = defaultdict(set)
            for push in alert_pushes(sink, cases):
                ids_per_version[(push["case_id"], push.get("version"), push.get("type"))].add(
                    push["webhook_id"])
            doubled = {v: ids for v, ids in ids_per_version.items() if len(ids) != 1}
            assert doubled == {}, f"hub {i}: distinct deliveries doubled: {doubled}"

        assert await dlq_messages(cluster) == {}
    finally:
        for sink in sinks:
            sink.__exit__(None, None, None)
