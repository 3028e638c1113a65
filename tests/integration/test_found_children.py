"""Unidentified-child records in dispatch on real Kafka and Redis (issue 16): matched both ways
(a record against open cases, a new case against records already filed), and purged with the
case they were confirmed on (issue 13: the record's key and its personal fields go)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.dispatch.adapters import CaseRepository, load_roster
from services.dispatch.found import FoundChildren, RecordStore
from services.dispatch.handlers import Dispatch
from shared import pii, topics
from shared.casekeys import CaseKeys
from shared.events import CASE_PURGED, UNIDENTIFIED_CHILD_REPORTED, CloudEvent
from shared.kafka import EventPublisher, make_broker
from shared.pii import PURGED, MasterKeys
from shared.settings import Settings
from shared.unidentified import RECORD_FIELDS, UnidentifiedChildReported
from tests.helpers import eventually, read_topic
from tests.integration.test_services import accepted_event

SEEN = datetime.now(UTC) - timedelta(hours=2, minutes=5)


def record_event(sex: str = "male", height_cm: int = 117) -> tuple[str, CloudEvent]:
    record_id = f"U-140923-{SEEN:%Y%m%d}-{uuid.uuid4().hex[:6].upper()}"
    data = UnidentifiedChildReported(
        record_id=record_id, received_at=datetime.now(UTC), reporter="nurse",
        reporter_role="mandated_reporter", organisation="代县人民医院", region_code="140923",
        lat=38.888, lon=113.11, address="代县人民医院", found_at=SEEN + timedelta(hours=2),
        sex=sex, age_min=6, age_max=8, height_cm=height_cm,  # type: ignore[arg-type]
        description="蓝色羽绒服，黑色运动鞋", circumstances="独自在急诊科")
    return record_id, CloudEvent.of(UNIDENTIFIED_CHILD_REPORTED, "/test", record_id, data,
                                    event_id=record_id)


@pytest.fixture
async def found(settings: Settings, redis: Redis) -> AsyncIterator[FoundChildren]:
    broker = make_broker(settings.kafka_bootstrap, "test-found")
    keys = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(settings.pii_master_keys))
    dispatch = Dispatch(CaseRepository(redis, purge_grace_s=0), load_roster(),
                        EventPublisher(broker, "/homeward/dispatch"), keys=keys)
    children = FoundChildren(dispatch, RecordStore(redis))
    dispatch.after_open.append(children.on_case_opened)
    dispatch.after_purge.append(children.on_case_purged)
    async with broker:
        await broker.start()
        yield children
    await keys.stop()


def report(case_id: str) -> CloudEvent:
    return accepted_event(case_id, child__name=f"童{uuid.uuid4().hex[:4]}",
                          last_seen__at=SEEN.isoformat())


def new_case_id() -> str:
    return f"140403-{SEEN:%Y%m%d}-{uuid.uuid4().hex[:6].upper()}"


async def candidates_of(found: FoundChildren, case_id: str) -> list[Any]:
    case = await found.cases.get(case_id)
    assert case is not None
    return case.candidates


async def test_a_record_meets_open_cases_and_a_new_case_meets_records(
        found: FoundChildren) -> None:
    first = new_case_id()
    await found.dispatch.reports.on_report_accepted(report(first))
    wrong_sex, wrong = record_event(sex="female")
    too_tall, tall = record_event(height_cm=157)
    record_id, matching = record_event()
    for event in (wrong, tall, matching):
        await found.on_record(event)
        await found.on_record(event)  # a redelivery proposes nothing twice
    assert [c.record_id for c in await candidates_of(found, first)] == [record_id]

    second = new_case_id()  # the other way round: a report after the records
    await found.dispatch.reports.on_report_accepted(report(second))
    offered = await candidates_of(found, second)
    assert [c.record_id for c in offered] == [record_id]
    assert offered[0].score >= 0.8 and offered[0].region_code == "140923"
    assert {wrong_sex, too_tall}.isdisjoint(c.record_id for c in offered)


async def test_a_confirmed_record_is_purged_with_its_case(found: FoundChildren,
                                                          settings: Settings) -> None:
    case_id = new_case_id()
    await found.dispatch.reports.on_report_accepted(report(case_id))
    record_id, event = record_event()
    assert found.dispatch.keys is not None
    await found.dispatch.keys.get_or_create(record_id)  # alert makes it with the record
    await found.on_record(event)
    case = await found.confirm(case_id, record_id, "found_safe", None, "辨认", "cmd", "140400",
                               False, "")
    assert case.status == "found" and case.found_record == record_id
    await found.dispatch.purger.purge(case_id)  # the grace is 0 here
    assert await found.dispatch.keys.purged(record_id)
    kept = await found.records.get(record_id)
    assert kept is not None
    assert (kept.description, kept.circumstances, kept.address) == (PURGED, PURGED, "")
    assert (kept.sex, kept.age_min, kept.region_code) == ("male", 6, "140923")
    # Alert deletes the record's photos and outbox rows on this (it follows the progress topic).
    told = [m for m in await read_topic(settings.kafka_bootstrap, topics.PROGRESS)
            if m["key"] == record_id]
    assert [m["headers"]["ce_type"] for m in told] == [CASE_PURGED]


async def test_the_record_store_is_rebuilt_from_the_topic(found: FoundChildren,
                                                          settings: Settings) -> None:
    """Kafka is the record of record: Redis lost, the records come back (unsealed with their
    keys), and a new case is matched against them again."""
    record_id, event = record_event()
    keys = found.dispatch.keys
    assert keys is not None
    key = await keys.get_or_create(record_id)
    event.data = pii.seal(event.data, RECORD_FIELDS, record_id, key)
    await found.dispatch.publisher.publish(topics.UNIDENTIFIED, event)
    await found.records.redis.delete(f"dispatch:unidentified:{record_id}")
    assert await found.records.get(record_id) is None

    async def back() -> UnidentifiedChildReported | None:
        await found.rebuild(settings.kafka_bootstrap)
        return await found.records.get(record_id)

    rebuilt = await eventually(back, timeout=20)
    assert rebuilt.description == "蓝色羽绒服，黑色运动鞋"  # opened with the record's key
    case_id = new_case_id()
    await found.dispatch.reports.on_report_accepted(report(case_id))
    assert record_id in [c.record_id for c in await candidates_of(found, case_id)]
