"""1,000 malformed or schema-violating messages on each input topic: every consumer group
puts each one on `<topic>.dlq` with the error, and keeps processing the good messages sent in
between."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared import topics
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import another_child, eventually, read_topic, report_body

pytestmark = pytest.mark.e2e

PER_TOPIC = 1000
GOOD_EVERY = 100
KNOWN_TYPE = {
    topics.REPORTS: "homeward.report.accepted.v1",
    topics.DISPATCH: "homeward.case.opened.v1",
    topics.TIPS: "homeward.tip.received.v1",
    topics.DELIVERIES: "homeward.delivery.sent.v1",
    topics.PROGRESS: "homeward.case.opened.v1",
}
# Who reads what (the consumers.py of each service); checked against the broker below.
READERS = {
    topics.REPORTS: {"homeward-dispatch", "homeward-notify"},
    topics.DISPATCH: {"homeward-notify"},
    topics.TIPS: {"homeward-dispatch-tips"},
    topics.DELIVERIES: {"homeward-alert-progress"},
    # alert follows dispatch's case.opened copies, not the case log (issue 14, least privilege)
    topics.PROGRESS: {"homeward-alert-progress"},
}
SOURCE_OF_GROUP = {"homeward-dispatch": "/homeward/dispatch", "homeward-notify": "/homeward/notify",
                   "homeward-dispatch-tips": "/homeward/dispatch",
                   "homeward-alert-progress": "/homeward/alert"}


@pytest.fixture(scope="module")
def poison_stack(kafka: KafkaServer, redis_server: RedisServer,
                 data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "poison", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def malformed(n: int, topic: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Five kinds, in turn: not JSON, no CloudEvents headers, wrong spec version, not an
    object, and a known type whose data violates its schema."""
    good_headers = [("ce_specversion", b"1.0"), ("ce_id", f"poison-{n}".encode()),
                    ("ce_type", KNOWN_TYPE[topic].encode()), ("ce_source", b"/fuzz"),
                    ("ce_subject", b"x"), ("ce_time", b"2026-11-22T10:00:00+08:00")]
    kind = n % 5
    if kind == 0:
        return b"{not json", good_headers
    if kind == 1:
        return b'{"case_id": "x"}', []
    if kind == 2:
        return b"{}", [("ce_specversion", b"0.3"), *good_headers[1:]]
    if kind == 3:
        return b"[1, 2, 3]", good_headers
    return json.dumps({"case_id": 5, "unexpected": True}).encode(), good_headers


async def groups_reading(bootstrap: str) -> dict[str, set[str]]:
    """topic -> the Homeward consumer groups that have committed offsets on it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found: dict[str, set[str]] = {t: set() for t in KNOWN_TYPE}
        for group, _ in [(g[0], g[1]) for g in await admin.list_consumer_groups()]:
            if group not in SOURCE_OF_GROUP:
                continue
            offsets = await admin.list_consumer_group_offsets(group)
            for tp in offsets:
                if tp.topic in found:
                    found[tp.topic].add(group)
        return found
    finally:
        await admin.close()


async def lag(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = await producer.partitions_for(topic)
        from aiokafka import AIOKafkaConsumer

        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await probe.start()
        try:
            ends = await probe.end_offsets([TopicPartition(topic, p) for p in partitions])
        finally:
            await probe.stop()
        return sum(end - (committed[tp].offset if tp in committed else 0)
                   for tp, end in ends.items())
    finally:
        await producer.stop()
        await admin.close()


async def test_poison_goes_to_the_dlq_and_good_messages_still_flow(
    poison_stack: dict[str, ServiceProcess], kafka: KafkaServer
) -> None:
    run = uuid.uuid4().hex[:8]
    operator = {"Authorization": f"Bearer {mint_token(Settings(), Role.operator, '140403')}"}
    commander = {"Authorization": f"Bearer {mint_token(Settings(), Role.commander, '140400')}"}
    async with httpx.AsyncClient(timeout=10) as http:
        # One report first, so every consumer group has joined and committed on its topics.
        warm = await http.post(f"{poison_stack['alert'].url}/api/v1/reports", headers=operator,
                               json=report_body(**another_child()))
        assert warm.status_code == 202
        await eventually(lambda: _all_joined(kafka.bootstrap), timeout=60)

        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5)
        await producer.start()
        good_cases: list[str] = []
        try:
            for topic in KNOWN_TYPE:
                for n in range(PER_TOPIC):
                    value, headers = malformed(n, topic)
                    await producer.send(topic, value, key=f"poison-{run}-{n}".encode(),
                                        headers=headers)
                    if topic == topics.REPORTS and n % GOOD_EVERY == GOOD_EVERY - 1:
                        good = await http.post(f"{poison_stack['alert'].url}/api/v1/reports",
                                               headers=operator,
                                               json=report_body(**another_child()))
                        good_cases.append(good.json()["case_id"])
            await producer.flush()
        finally:
            await producer.stop()

        # The good reports sent in between were all processed.
        for case_id in good_cases:
            async def opened(case_id: str = case_id) -> bool:
                got = await http.get(f"{poison_stack['dispatch'].url}/api/v1/cases/{case_id}",
                                     headers=commander)
                return got.status_code == 200

            await eventually(opened, timeout=120)

    assert await groups_reading(kafka.bootstrap) == READERS
    for topic, groups in READERS.items():
        for group in groups:
            await eventually(lambda g=group, t=topic: _caught_up(kafka.bootstrap, g, t),
                             timeout=180)
        dead = [m for m in await read_topic(kafka.bootstrap, topics.dlq(topic))
                if (m["key"] or "").startswith(f"poison-{run}-")]
        for group in groups:
            mine = [m for m in dead if m["headers"].get("dlq_source") == SOURCE_OF_GROUP[group]]
            assert len({m["key"] for m in mine}) == PER_TOPIC, (topic, group, len(mine))
            assert all(m["headers"]["dlq_error"] and m["headers"]["dlq_topic"] == topic
                       for m in mine)


async def _all_joined(bootstrap: str) -> dict[str, set[str]] | None:
    found = await groups_reading(bootstrap)
    return found if found[topics.REPORTS] >= {"homeward-dispatch", "homeward-notify"} else None


async def _caught_up(bootstrap: str, group: str, topic: str) -> bool:
    return await lag(bootstrap, group, topic) == 0


