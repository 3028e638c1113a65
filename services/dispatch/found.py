"""Use cases of issue 16 items 4–6 in dispatch: unidentified-child records matched against open
cases and every new case against recent records (both ways), the commander's confirmation, DNA
sample records; dependencies passed in.

Records are kept beside the cases in Redis (`dispatch:unidentified:<record id>`, unsealed, and
an index by found time), rebuilt from homeward.unidentified-children.v1 like the rest of
dispatch's Redis state; candidates and samples are events on the case log (candidates.py,
dna.py). A proposal is also put on the live stream under the record's region, so the commanders
where the child was found see it as well as the case's (003 §三(二): regions support each
other).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from services.dispatch import candidates, dna, purge
from services.dispatch.adapters import STREAM, CaseRepository, served
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case, Change, Outcome, Refused
from services.dispatch.handlers import Dispatch
from services.dispatch.matching import FOUND_BEFORE_TOLERANCE, score
from services.dispatch.records import DnaSample, DnaStatus
from shared import pii, topics
from shared.casekeys import open_event
from shared.events import CASE_PURGED, UNIDENTIFIED_CHILD_REPORTED, CasePurged, CloudEvent
from shared.kafka import Bootstrap, EventPublisher, replay_topic, subscribe
from shared.regions import within
from shared.unidentified import RECORD_FIELDS, UnidentifiedChildReported

log = logging.getLogger(__name__)

RECORD = "dispatch:unidentified:"  # + record id: the record as received (JSON, unsealed)
RECORDS = "dispatch:unidentified"  # sorted set: record id -> found time (epoch s)
GROUP = "homeward-dispatch-unidentified"


class RecordStore:
    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis

    async def put(self, record: UnidentifiedChildReported) -> bool:
        """Keep the record; False when it was kept before (a redelivery)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(RECORD + record.record_id, record.model_dump_json(), nx=True)
            pipe.zadd(RECORDS, {record.record_id: record.found_at.timestamp()})
            fresh, _ = await pipe.execute()
        return bool(fresh)

    async def get(self, record_id: str) -> UnidentifiedChildReported | None:
        raw = await self.redis.get(RECORD + record_id)
        return UnidentifiedChildReported.model_validate_json(raw) if raw else None

    async def since(self, moment: datetime, limit: int = 2000) -> list[UnidentifiedChildReported]:
        ids = await self.redis.zrangebyscore(RECORDS, moment.timestamp(), "+inf", start=0,
                                             num=limit)
        if not ids:
            return []
        raws = await self.redis.mget([RECORD + str(i) for i in ids])
        return [UnidentifiedChildReported.model_validate_json(r) for r in raws if r]

    async def purge(self, record_id: str) -> None:
        """The personal fields gone (issue 13): the markers stay in their place."""
        record = await self.get(record_id)
        if record is not None:
            redacted = pii.redact(record.model_dump(mode="json"), RECORD_FIELDS)
            await self.redis.set(RECORD + record_id, json.dumps(redacted, ensure_ascii=False))


@dataclass
class FoundChildren:
    dispatch: Dispatch
    records: RecordStore
    min_score: float = 0.6
    window_days: float = 365.0  # a new case is compared with records found since this long
    clock: Callable[[], datetime] | None = None

    @property
    def cases(self) -> CaseRepository:
        return self.dispatch.cases

    @property
    def caselog(self) -> CaseLog:
        return self.dispatch.caselog

    def _now(self) -> datetime:
        return (self.clock or self.dispatch.clock)()

    # --- Kafka: a new record, matched against every open case ---------------------------------
    async def on_record(self, event: CloudEvent) -> None:
        if event.type != UNIDENTIFIED_CHILD_REPORTED:
            return
        record = UnidentifiedChildReported.model_validate(event.data)
        await self.records.put(record)
        for case in await self.cases.many(await self.cases.list_ids(5000)):
            await self._propose(case.case_id, record)

    async def _propose(self, case_id: str, record: UnidentifiedChildReported) -> Case | None:
        """Score the record against the case (under the case's lock) and commit the proposal
        when offered; put it on the live stream under the record's region too."""
        proposed: list[Change] = []

        def plan(case: Case, now: datetime, _: str) -> list[Change]:
            missing = candidates.missing_child(case)
            if missing is None or not candidates.comparable(case, record):
                return []
            scored = score(missing, candidates.found_child(record))
            if not scored.offered(self.min_score):
                return []
            proposed.extend(candidates.plan_propose(case, record, scored, now))
            return proposed

        try:
            case = await self.caselog.command(case_id, plan)
        except Refused:  # the case is gone (never, short of a Redis loss): nothing to propose
            return None
        if proposed and not within(case.region_code, record.region_code):
            await self._stream_to(record.region_code, proposed)
        return case

    async def _stream_to(self, region: str, changes: list[Change]) -> None:
        for change in changes:
            await self.cases.redis.xadd(STREAM, {
                "type": change.type, "event_id": change.event_id, "case_id": change.case_id,
                "region_code": region,
                "data": json.dumps(served(change.data), ensure_ascii=False)},
                maxlen=self.cases.stream_maxlen, approximate=True)

    # --- a new case, matched against recent records (Dispatch.after_open) ---------------------
    async def on_case_opened(self, case: Case) -> None:
        seen = case.last_seen_at or case.opened_at
        since = max(seen - FOUND_BEFORE_TOLERANCE,
                    self._now() - timedelta(days=self.window_days))
        for record in await self.records.since(since):
            await self._propose(case.case_id, record)

    # --- commands from the API ---------------------------------------------------------------
    async def confirm(self, case_id: str, record_id: str, outcome: Outcome,
                      found_at: datetime | None, note: str, actor: str, region: str,
                      confirm: bool, receiving_organisation: str) -> Case:
        """The record is the case's child: found with the record, the usual Cancel. The case
        leader's organ level or above (as found)."""
        return await self.caselog.command(case_id, lambda c, now, eid: candidates.plan_confirm(
            c, record_id, outcome, found_at, note, actor, now, eid, confirm,
            receiving_organisation), (region, "found"))

    async def record_sample(self, case_id: str, sample: DnaSample, actor: str) -> Case:
        return await self.caselog.command(case_id, lambda c, now, eid: dna.plan_record(
            c, sample, actor, now))

    async def step_sample(self, case_id: str, sample_id: str, status: DnaStatus, note: str,
                          actor: str, record_id: str | None) -> Case:
        """Move a sample on; a match naming an unidentified-child record links it as a
        confirmed candidate (scored when the rule had not proposed it)."""
        record = await self.records.get(record_id) if record_id else None

        def plan(case: Case, now: datetime, eid: str) -> list[Change]:
            changes = dna.plan_step(case, sample_id, status, note, actor, now, eid, record_id)
            linked = changes[0].data["details"].get("record_id")
            if status == "match" and linked:
                found = record if record is not None and record.record_id == linked else None
                missing = candidates.missing_child(case)
                scored = score(missing, candidates.found_child(found)) \
                    if missing is not None and found is not None else None
                changes += candidates.plan_dna_link(case, found, str(linked), scored, actor,
                                                    now, eid)
            return changes

        return await self.caselog.command(case_id, plan)

    # --- purge and rebuild -------------------------------------------------------------------
    async def on_case_purged(self, case: Case) -> None:
        """A purged case's confirmed records go with it: their keys and personal fields, and
        what alert keeps under their ids (photos, outbox rows) — told by `case.purged` under
        the record id on homeward.progress.v1, which alert follows (issue 13)."""
        ended = purge.ended_at(case) or self._now()
        for offered in case.candidates:
            if offered.status == "confirmed":
                if self.dispatch.keys is not None:
                    await self.dispatch.keys.purge(offered.record_id)
                await self.records.purge(offered.record_id)
                purged = CasePurged(case_id=offered.record_id, region_code=offered.region_code,
                                    actor="dispatch", reason=f"随案件 {case.case_id} 清除",
                                    at=self._now(), outcome=case.outcome or case.status,
                                    ended_at=ended)
                await self.dispatch.publisher.publish(topics.PROGRESS, CloudEvent.of(
                    CASE_PURGED, self.dispatch.publisher.source, offered.record_id, purged,
                    event_id=f"{offered.record_id}:purged"))

    async def rebuild(self, bootstrap: Bootstrap) -> int:
        """Refill the record store from homeward.unidentified-children.v1 (no matching)."""
        count = 0

        async def handle(event: CloudEvent) -> None:
            nonlocal count
            if event.type == UNIDENTIFIED_CHILD_REPORTED:
                opened = await open_event(event, self.dispatch.keys)
                await self.records.put(UnidentifiedChildReported.model_validate(opened.data))
                count += 1

        await replay_topic(bootstrap, handle, topics.UNIDENTIFIED)
        return count

    def visible_to(self, case: Case, region: str) -> list[str]:
        """The records of the case's candidates a commander of `region` sees: all within the
        case's region, else those found in theirs."""
        if within(region, case.region_code):
            return [c.record_id for c in case.candidates]
        return [c.record_id for c in case.candidates if within(region, c.region_code)]


def new_sample_id() -> str:
    return f"S{uuid.uuid4().hex[:10].upper()}"


def register(broker: KafkaBroker, found: FoundChildren, publisher: EventPublisher) -> None:
    """Consume unidentified-child records (group `homeward-dispatch-unidentified`); register
    the hooks on Dispatch: a new case is matched against recent records, a purged case takes
    its confirmed records with it, a rebuild refills the record store."""

    async def on_records(event: CloudEvent) -> None:
        await found.on_record(await open_event(event, found.dispatch.keys))

    subscribe(broker, topics.UNIDENTIFIED, GROUP, on_records, publisher)
    found.dispatch.after_open.append(found.on_case_opened)
    found.dispatch.after_purge.append(found.on_case_purged)
    found.dispatch.after_rebuild.append(found.rebuild)
