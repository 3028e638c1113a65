"""Use cases of dispatch; dependencies are passed in.

Every change goes the same way (`_commit`): the domain plans events, they are published on
homeward.dispatch.v1 keyed by case id (all sent in order, then confirmed together), and only
then folded into the Redis projection. Event ids are stable, so a redelivered report or a
repeated timer publishes the same ids and the projection ignores what it has applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from services.dispatch import domain
from services.dispatch.adapters import CaseRepository, replay_topic
from services.dispatch.domain import Case, Change, Outcome, Refused
from services.dispatch.roster import Organ, Post, Roster
from services.dispatch.rules import Policy, load_rules
from shared import topics
from shared.events import (
    CASE_OPENED,
    ORGAN_AVAILABILITY_CHANGED,
    REPORT_ACCEPTED,
    TIP_RECEIVED,
    CloudEvent,
    TipReceived,
)
from shared.kafka import Bootstrap, EventPublisher
from shared.regions import RegionIndex
from shared.report import ReportAccepted

log = logging.getLogger(__name__)


class UnknownCase(Exception):
    """A tip for a case dispatch has never seen: dead-lettered with this error."""


@dataclass
class Dispatch:
    cases: CaseRepository
    roster: Roster
    publisher: EventPublisher
    policy: Policy = field(default_factory=load_rules)
    deadline_scale: float = 1.0
    duplicate_km: float = 50.0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock))

    # --- plumbing ------------------------------------------------------------------------------
    async def _publish(self, changes: list[Change]) -> None:
        """Send in order (one partition per case keeps it), then wait for every ack."""
        broker = self.publisher.broker
        pending = []
        for change in changes:
            event = CloudEvent(id=change.event_id, type=change.type,
                               source=self.publisher.source, subject=change.case_id,
                               data=change.data)
            pending.append(await broker.publish(
                event.value(), topics.DISPATCH, key=change.case_id.encode(),
                headers=event.headers(), no_confirm=True))
            if change.type == CASE_OPENED:  # the intake side's copy (shared.topics.PROGRESS)
                pending.append(await broker.publish(
                    event.value(), topics.PROGRESS, key=change.case_id.encode(),
                    headers=event.headers(), no_confirm=True))
        await asyncio.gather(*pending)

    async def _commit(self, case: Case | None, changes: list[Change]) -> Case | None:
        if not changes:
            return case
        if case is not None:
            changes = domain.mirror(case, changes)
        await self._publish(changes)
        new = domain.fold(changes, case)
        if new is not None:
            await self.cases.save(new, changes)
        return new

    def _lock(self, case_id: str) -> asyncio.Lock:
        if len(self._locks) > 10_000:
            for key in [k for k, lock in self._locks.items() if not lock.locked()]:
                del self._locks[key]
        return self._locks[case_id]

    # --- Kafka entrypoints ------------------------------------------------------------------
    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Open the case group, or link the report to the open case of the same child."""
        accepted = ReportAccepted.model_validate(event.data)
        async with self._lock(accepted.case_id):
            keys = domain.duplicate_keys(accepted)
            known, candidates = await self.cases.seen(accepted.case_id, keys)
            if known:
                return  # redelivered: everything was done and stored
            now = self.clock()
            duplicate = await self._duplicate_of(accepted, keys, candidates)
            if duplicate is not None:
                existing, match, km = duplicate
                async with self._lock(existing.case_id):
                    fresh = await self.cases.get_own(existing.case_id) or existing
                    await self._commit(fresh, domain.plan_link(fresh, accepted, match, km, now))
                return
            await self._commit(None, domain.plan_open(accepted, self.policy, self.roster, now,
                                                      self.deadline_scale))

    async def _duplicate_of(self, accepted: ReportAccepted, keys: list[str],
                            candidates: list[str]) -> tuple[Case, str, float] | None:
        seen = accepted.report.last_seen
        for case in await self.cases.many(candidates):
            if not case.is_open or case.case_id == accepted.case_id:
                continue
            if case.lat is None or case.lon is None:
                continue
            km = RegionIndex.distance_km(case.lat, case.lon, seen.lat, seen.lon)
            if km > self.duplicate_km:
                continue
            match = "name_birth_date" if keys[0] in case.duplicate_keys and len(keys) > 1 \
                else "reporter_phone"
            return case, match, km
        return None

    async def on_tip(self, event: CloudEvent) -> None:
        if event.type != TIP_RECEIVED:
            return
        tip = TipReceived.model_validate(event.data)
        case = await self.cases.get(tip.case_id)
        if case is None:
            raise UnknownCase(f"tip {tip.tip_id} for unknown case {tip.case_id}")
        async with self._lock(case.case_id):
            case = await self.cases.get_own(case.case_id) or case
            await self._commit(case, domain.plan_tip(case, tip, self.clock()))

    # --- commands from the API --------------------------------------------------------------
    async def _command(self, case_id: str,
                       plan: Callable[[Case, datetime, str], list[Change]]) -> Case:
        async with self._lock(case_id):
            case = await self.cases.get(case_id)
            if case is None:
                raise Refused(404, "not_found", f"no case {case_id}", "case_id")
            changes = plan(case, self.clock(), uuid.uuid4().hex)
            return await self._commit(case, changes) or case

    async def escalate(self, case_id: str, level: Literal["city", "province"], reason: str,
                       actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_escalate(
            c, level, reason, actor, self.roster, now, eid))

    async def add_member(self, case_id: str, member: domain.Member, reason: str,
                         actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_add_member(
            c, member, reason, actor, now, eid))

    async def release(self, case_id: str, actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_release(
            c, actor, now, eid))

    async def complete_task(self, case_id: str, task_id: str, note: str, actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_complete(
            c, task_id, note, actor, now, eid))

    async def found(self, case_id: str, outcome: Outcome, found_at: datetime, note: str,
                    actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_found(
            c, outcome, found_at, note, actor, now, eid))

    async def close(self, case_id: str, reason: str, actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_close(
            c, reason, actor, now, eid))

    async def set_availability(self, organ: Organ, post: Post, available: bool, reason: str,
                               actor: str) -> list[str]:
        """Record who is (un)available and why; hand open cases led by them over. Returns the
        ids of the cases handed over."""
        now = self.clock()
        event_id = uuid.uuid4().hex
        event = CloudEvent(id=event_id, type=ORGAN_AVAILABILITY_CHANGED,
                           source=self.publisher.source, subject=organ.code,
                           data={"organ_code": organ.code, "post": post, "available": available,
                                 "reason": reason, "actor": actor, "at": now.isoformat()})
        await self.publisher.publish(topics.DISPATCH, event)
        self.roster.set_available(organ.code, post, available)
        await self.cases.save_availability(organ.code, post, available)
        if available:
            return []
        current = self.roster.organ(organ.code) or organ
        handed = []
        for case in await self.cases.many(await self.cases.list_ids(5000)):
            if case.leader is None or case.leader.organ_code != organ.code:
                continue
            async with self._lock(case.case_id):
                fresh = await self.cases.get_own(case.case_id) or case
                changes = domain.plan_handover(fresh, current, post, reason, actor, self.roster,
                                               now, event_id)
                if changes:
                    await self._commit(fresh, changes)
                    handed.append(case.case_id)
        return handed

    # --- overdue timers ---------------------------------------------------------------------
    async def fire_due_timers(self) -> int:
        """Emit task_overdue for every task past its deadline (or its next repeat)."""
        fired = 0
        for case_id, task_id in await self.cases.due_timers(time.time()):
            async with self._lock(case_id):
                case = await self.cases.get_own(case_id)
                changes = domain.plan_overdue(case, task_id, self.clock()) if case else []
                if not changes:
                    await self.cases.drop_timer(case_id, task_id)
                    continue
                await self._commit(case, changes)
                fired += 1
        return fired

    async def run_timers(self, tick_s: float, stop: asyncio.Event) -> None:
        """Fire due timers every tick until `stop` is set. (Stopped by the event rather than by
        cancellation alone: a cancellation landing inside a client library's own timeout can
        be swallowed, and the loop would then never end.)"""
        while not stop.is_set():
            try:
                await self.fire_due_timers()
            except Exception:
                log.exception("overdue timers failed; retrying next tick")
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass

    # --- rebuild -------------------------------------------------------------------------------
    async def rebuild(self, bootstrap: Bootstrap) -> int:
        """Replay homeward.dispatch.v1 into an empty Redis: the same cases, same timelines."""
        cases: dict[str, Case] = {}
        applied: dict[str, list[Change]] = defaultdict(list)

        async def handle(event: CloudEvent) -> None:
            if event.type == ORGAN_AVAILABILITY_CHANGED:
                code, post = str(event.data["organ_code"]), str(event.data["post"])
                if post in ("head", "deputy"):
                    available = bool(event.data["available"])
                    self.roster.set_available(code, post, available)  # type: ignore[arg-type]
                    await self.cases.save_availability(code, post, available)
                return
            if not event.type.startswith("homeward.case."):
                return
            change = Change(type=event.type, event_id=event.id, case_id=event.subject,
                            data=event.data)
            case = domain.apply_in_place(cases.get(event.subject), event.type, event.id,
                                         event.data)
            if case is not None:
                cases[case.case_id] = case
                applied[case.case_id].append(change)

        count = await replay_topic(bootstrap, handle)
        for case_id, case in cases.items():
            await self.cases.save(case, applied[case_id])
        await self.cases.mark_ready()
        log.info("rebuilt %d cases from %d events", len(cases), count)
        return len(cases)


def is_report(event: CloudEvent) -> bool:
    return event.type == REPORT_ACCEPTED
