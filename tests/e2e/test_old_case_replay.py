"""A case opened longer ago than the broker's default retention is rebuilt whole (issue 13,
"Must show"): its first events are 40 days old, a Redis flush follows, and the case comes back
with the same leader, duties, tasks, overdue timers and timeline.

The test has a broker of its own whose retention check runs every half second (the default is
every 5 minutes); otherwise it keeps Kafka's defaults, among them the 7-day `log.retention.hours`.
The case's first events are written by dispatch's own handler, with its clock and the records'
timestamps 40 days back; the same records go to a control topic declared without a retention of
its own. When the broker has deleted them from the control topic (the default would have lost
the case's history), the case log still holds them (`retention.ms=-1` from
shared/topic_policy.py), and a dispatch started on a flushed Redis replays them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from deploy.local.stack import (
    KafkaServer,
    RedisServer,
    ServiceProcess,
    free_port,
    service_env,
)
from services.dispatch.adapters import TIMERS, CaseRepository
from services.dispatch.handlers import Dispatch
from services.dispatch.roster import load_roster
from services.dispatch.rules import load_rules
from shared import topic_policy, topics
from shared.auth import Role, mint_token
from shared.casekeys import CaseKeys
from shared.events import REPORT_ACCEPTED, CloudEvent
from shared.kafka import EventPublisher, ensure_topics, make_broker
from shared.pii import MasterKeys
from shared.report import ReportAccepted
from shared.settings import Settings
from tests.helpers import eventually, report_body, run_sync

pytestmark = pytest.mark.e2e

AGE = timedelta(days=40)  # older than the broker's default retention of 7 days
CONTROL = "homeward.test.default-retention"  # declared with no retention: the broker's default
COMMANDER = {"Authorization": "Bearer " + mint_token(Settings(), Role.commander, "140400")}


@pytest.fixture(scope="module")
def aged_kafka(data_dir: Path) -> Iterator[KafkaServer]:
    """A broker of this module only: retention checked every 500 ms from its start, segments
    deleted from disk 1 s after; every other setting is Kafka's default."""
    server = KafkaServer(data_dir / "aged-kafka", port=free_port(), properties=(
        "log.retention.check.interval.ms=500", "log.initial.task.delay.ms=0",
        "file.delete.delay.ms=1000")).start()
    run_sync(ensure_topics(server.bootstrap))
    yield server
    server.stop()


class Then:
    """Dispatch's broker as it was `AGE` ago: every record it publishes is stamped then."""

    def __init__(self, broker: Any, at: datetime) -> None:
        self.broker = broker
        self.at_ms = int(at.timestamp() * 1000)

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        return await self.broker.publish(*args, timestamp_ms=self.at_ms, **kwargs)


async def open_case_back_then(bootstrap: str, redis_url: str, then: datetime) -> str:
    """Dispatch's own handler opens a case with its clock at `then`; returns the case id."""
    settings = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url)
    redis = Redis.from_url(redis_url, decode_responses=True)
    broker = make_broker(bootstrap, "homeward-dispatch-back-then")
    keys = CaseKeys(redis, bootstrap, MasterKeys.parse(settings.pii_master_keys))
    publisher = EventPublisher(broker, source="/homeward/dispatch")
    publisher.broker = cast(Any, Then(broker, then))
    dispatch = Dispatch(CaseRepository(redis), load_roster(settings.roster_file), publisher,
                        policy=load_rules(settings.dispatch_rules_file), keys=keys,
                        identity_secret=settings.identity_secret, clock=lambda: then)
    case_id = f"140403-{then:%Y%m%d}-{uuid.uuid4().hex[:6].upper()}"
    accepted = ReportAccepted.model_validate({
        "report_id": uuid.uuid4().hex, "case_id": case_id, "accepted_at": then.isoformat(),
        "operator": "op-then", "operator_region": "140400",
        "report": report_body(child__name="旧案童", child__birth_date="2016-03-09",
                              last_seen__at=(then - timedelta(minutes=30)).isoformat())})
    await broker.start()
    try:
        await dispatch.reports.on_report_accepted(CloudEvent.of(
            REPORT_ACCEPTED, "/homeward/alert", case_id, accepted))
    finally:
        await broker.stop()
        await keys.stop()
        await redis.flushdb()  # what dispatch derived then: the processes below replay it
        await redis.aclose()
    return case_id


async def case_records(bootstrap: str, case_id: str) -> list[Any]:
    """The case's records on the case log, read from its partition's start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topics.DISPATCH, p) for p in range(topics.PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [r for r in records if r.key == case_id.encode()]
        return out
    finally:
        await consumer.stop()


async def copy_to_control(bootstrap: str, records: list[Any]) -> None:
    """The same records (timestamps kept) on a topic with the broker's default retention, then
    one of today that closes their segment."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(CONTROL, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(CONTROL, r.value, key=r.key, partition=0,
                                         timestamp_ms=r.timestamp, headers=list(r.headers))
        await producer.send_and_wait(CONTROL, b"today", partition=0)
    finally:
        await producer.stop()


async def start_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return cast(dict[TopicPartition, int], await consumer.beginning_offsets(tps))
    finally:
        await consumer.stop()


def start_dispatch(env: dict[str, str], port: int, log: Path) -> ServiceProcess:
    proc = ServiceProcess("dispatch", port, {**env, "HOMEWARD_PORT": str(port)}, log).start()
    proc.wait_ready()
    return proc


async def settled(http: httpx.AsyncClient, url: str, redis: Redis,
                  case_id: str) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    """The case as served and its timers, once no timer of it is due (each overdue task has
    been reported; the next report is far off) and two reads a tick apart agree."""
    async def read() -> tuple[dict[str, Any], list[tuple[str, float]]] | None:
        got = await http.get(f"{url}/api/v1/cases/{case_id}", headers=COMMANDER)
        timers = [(m, s) for m, s in await redis.zrange(TIMERS, 0, -1, withscores=True)
                  if m.startswith(f"{case_id}|")]
        if got.status_code != 200 or any(s <= datetime.now(UTC).timestamp() for _, s in timers):
            return None
        await asyncio.sleep(1.5)
        again = await http.get(f"{url}/api/v1/cases/{case_id}", headers=COMMANDER)
        return (got.json(), timers) if again.json() == got.json() else None

    return await eventually(read, timeout=45, interval=0.5)


async def test_a_case_older_than_the_default_retention_is_rebuilt_whole(
    aged_kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/9"  # a database of this test's own
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    then = datetime.now(UTC) - AGE
    case_id = await open_case_back_then(aged_kafka.bootstrap, redis_url, then)
    old = await case_records(aged_kafka.bootstrap, case_id)
    assert len(old) >= 3 and all(r.timestamp < (then + timedelta(minutes=1)).timestamp() * 1000
                                 for r in old)
    await copy_to_control(aged_kafka.bootstrap, old)

    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    env = {**service_env(aged_kafka.bootstrap, redis_url, data_dir / "aged", ports),
           "HOMEWARD_DISPATCH_TIMER_TICK_S": "0.5",
           # Each overdue task is reported once in this test, then not for months.
           "HOMEWARD_DISPATCH_OVERDUE_REPEAT_S": str(200 * 86400)}
    (data_dir / "aged").mkdir(exist_ok=True)
    log = data_dir / "aged" / "dispatch.log"
    dispatch = start_dispatch(env, ports["dispatch"], log)
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            # Dispatch replayed the 40-day-old events into an empty Redis and reported the
            # overdue tasks today: the case's log now has events of both days.
            before, timers_before = await settled(http, dispatch.url, redis, case_id)
            assert before["opened_at"].startswith(then.date().isoformat())
            assert before["leader"] and before["duties"] and before["tasks"], before
            assert before["child_name"] == "旧案童"  # its key came back from the key store
            assert timers_before, "the open tasks have timers"
            recent = await case_records(aged_kafka.bootstrap, case_id)
            assert len(recent) > len(old), "overdue reports of today on the case log"

            # The broker's default retention drops 40-day-old records: the control copies go.
            control = TopicPartition(CONTROL, 0)

            async def control_dropped() -> bool:
                return (await start_offsets(aged_kafka.bootstrap, [control]))[control] >= len(old)

            await eventually(control_dropped, timeout=30, interval=0.5)
            # The case log kept them although their segment was closed by today's events.
            part = TopicPartition(topics.DISPATCH, old[0].partition)
            assert (await start_offsets(aged_kafka.bootstrap, [part]))[part] == 0
            segments = list((aged_kafka.data_dir / "kraft-logs" /
                             f"{topics.DISPATCH}-{part.partition}").glob("*.log"))
            assert len(segments) >= 2, segments
            assert [r.offset for r in await case_records(aged_kafka.bootstrap, case_id)][
                :len(old)] == [r.offset for r in old]
            assert topic_policy.policy(topics.DISPATCH).retention_ms == topic_policy.UNBOUNDED

            dispatch.stop()
            await redis.flushdb()
            dispatch = start_dispatch(env, ports["dispatch"], log)
            after, timers_after = await settled(http, dispatch.url, redis, case_id)
            assert after == before
            assert timers_after == timers_before
    finally:
        dispatch.stop()
        await redis.flushdb()
        await redis.aclose()
