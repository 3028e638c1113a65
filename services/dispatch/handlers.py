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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.dispatch import domain, links, projection, purge
from services.dispatch.adapters import CaseRepository, replay_topic
from services.dispatch.domain import Case, Change, Outcome, Refused
from services.dispatch.roster import Organ, Post, Roster
from services.dispatch.rules import Policy, load_rules
from services.dispatch.tips import TIPS_PARKED, TIPS_UNPARKED
from services.dispatch.tips_handlers import SightingRules, plan_attach, plan_due
from shared import metrics, topics
from shared.casekeys import CaseKeys, open_event, sealed_data
from shared.events import (
    CASE_TIP_ATTACHED,
    ORGAN_AVAILABILITY_CHANGED,
    PROGRESS_TYPES,
    REPORT_ACCEPTED,
    TIP_PARKED,
    TIP_RECEIVED,
    CloudEvent,
    TipReceived,
)
from shared.faults import RETRYING_NOW, is_transient
from shared.identity import ChildIdentity, Sighting, identity_of, link_evidence, sighting_of
from shared.kafka import Bootstrap, EventPublisher
from shared.report import ReportAccepted

log = logging.getLogger(__name__)
TIMERS_KEY = "homeward-dispatch-timers"  # readiness: 503 while the timers meet transient faults
PARKED_LOOK_S = 2.0  # a held tip's case is looked for again this often


@dataclass
class Dispatch:
    cases: CaseRepository
    roster: Roster
    publisher: EventPublisher
    policy: Policy = field(default_factory=load_rules)
    deadline_scale: float = 1.0
    duplicate_km: float = 50.0
    identity_secret: str = "homeward-local-identity-secret-change-me"
    claim_wait_s: float = 10.0
    keys: CaseKeys | None = None  # the case-key store: personal fields sealed (issue 13)
    sightings: SightingRules = field(default_factory=SightingRules)  # issue 16
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Use cases kept in their own modules (issue 16, services/dispatch/found.py): called with a
    # case just opened (outside its lock), a case just purged (as before the purge), and after a
    # rebuild of the case log.
    after_open: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)
    after_purge: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)
    after_rebuild: list[Callable[[Bootstrap], Awaitable[object]]] = field(default_factory=list)
    _locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock))

    # --- plumbing ------------------------------------------------------------------------------
    async def _publish(self, changes: list[Change]) -> None:
        """Send in order (one partition per case keeps it), then wait for every ack."""
        out: list[tuple[str, CloudEvent]] = []
        for change in changes:
            event = CloudEvent(id=change.event_id, type=change.type,
                               source=self.publisher.source, subject=change.case_id,
                               data=await sealed_data(self.keys, change.type, change.case_id,
                                                      change.data))
            out.append((topics.DISPATCH, event))
            if change.type in PROGRESS_TYPES:  # the intake side's copy (topics.PROGRESS)
                out.append((topics.PROGRESS, event))
        await self.publisher.publish_many(out)

    async def _commit(self, case: Case | None, changes: list[Change]) -> Case | None:
        if not changes:
            return case
        if case is not None:
            changes = links.mirror(case, changes)
        await self._publish(changes)
        new = projection.fold(changes, case)
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
        """Open the case group, or link the report to the open case of the same child. Whose
        child it is is decided by an atomic claim on the child's identity keys, so two reports
        of one child handled at the same moment by different consumers link."""
        accepted = ReportAccepted.model_validate(event.data)
        async with self._lock(accepted.case_id):
            if await self.cases.known(accepted.case_id):
                # Redelivered: everything was done and stored (the hooks are idempotent).
                new = await self.cases.get_own(accepted.case_id)
            else:
                new = await self._open_or_link(accepted)
        if new is not None:
            for hook in self.after_open:
                await hook(new)

    async def _open_or_link(self, accepted: ReportAccepted) -> Case | None:
        """Under the report's lock: the case opened, or None when the report was linked."""
        child = identity_of(accepted)
        keyed = child.keyed(self.identity_secret)
        keys = [k for _, k in keyed]
        owner, at = await self.cases.claims.claim(keys, accepted.case_id)
        now = self.clock()
        if at is not None and owner != accepted.case_id:
            existing = await self._claimed_case(owner)
            evidence = None
            if existing is None or not existing.is_open:
                # The claim's case is no longer a live search, or never came to be (its
                # report was dead-lettered): this report starts the child's search.
                await self.cases.claims.take_over(keys, accepted.case_id)
            elif existing.lat is not None and existing.lon is not None:
                evidence = link_evidence(
                    keyed[at][0], ChildIdentity(name=existing.child_name), Sighting(
                        at=existing.last_seen_at or existing.opened_at, lat=existing.lat,
                        lon=existing.lon),
                    child, sighting_of(accepted), self.duplicate_km,
                    timedelta(seconds=self.cases.duplicate_window_s))
            if existing is not None and evidence is not None:
                async with self._lock(existing.case_id):
                    fresh = await self.cases.get_own(existing.case_id) or existing
                    await self._commit(fresh, links.plan_link(fresh, accepted, evidence, now))
                return None
        opened = await self._commit(None, domain.plan_open(accepted, self.policy, self.roster,
                                                           now, self.deadline_scale, keys))
        metrics.case_group_formed(accepted.accepted_at)
        return opened

    async def _claimed_case(self, owner: str) -> Case | None:
        """The case that claimed the child: another consumer may still be opening it, so wait
        up to `claim_wait_s`; None if it never appears."""
        deadline = time.monotonic() + self.claim_wait_s
        while True:
            case = await self.cases.get(owner)
            if case is not None or time.monotonic() > deadline:
                if case is None:
                    log.warning("case %s claimed a child but was never stored", owner)
                return case
            await asyncio.sleep(0.05)

    async def on_tip(self, event: CloudEvent) -> None:
        """Attach a tip to its case (once); a tip for a case not known yet is held
        (services/dispatch/tips.py), never dead-lettered."""
        if event.type != TIP_RECEIVED:
            return
        tip = TipReceived.model_validate(event.data)
        case = await self.cases.get(tip.case_id)
        if case is None:
            await self._park(tip)
            return
        await self._attach(case.case_id, tip)

    async def _attach(self, case_id: str, tip: TipReceived) -> None:
        async with self._lock(case_id):
            case = await self.cases.get_own(case_id)
            if case is None or await self.cases.tips.has(case.case_id, tip.tip_id):
                return
            await self._commit(case, plan_attach(self, case, tip))

    async def _park(self, tip: TipReceived) -> None:
        """On the dispatch topic first (a rebuild restores it), then in the parked store."""
        now = time.time()
        await self.publisher.publish(topics.DISPATCH, CloudEvent(
            id=f"{tip.tip_id}:parked", type=TIP_PARKED, source=self.publisher.source,
            subject=tip.case_id,
            data=await sealed_data(self.keys, TIP_PARKED, tip.case_id,
                                   {**tip.model_dump(mode="json"), "parked_at": now})))
        await self.cases.tips.park(tip, now, now + PARKED_LOOK_S)
        TIPS_PARKED.inc()

    async def attach_parked(self, case_id: str) -> int:
        """Attach the tips held for `case_id` if that case (or the case its report was linked
        to) is known now. Returns how many were attached."""
        held = await self.cases.tips.parked_for(case_id)
        if not held:
            return 0
        case = await self.cases.get(case_id)
        if case is None:
            return 0
        for tip in held:
            await self._attach(case.case_id, tip)
        TIPS_UNPARKED.inc(len(held))
        return len(held)

    async def sweep_parked(self) -> int:
        """Look again for the cases of held tips (the report consumer asks after each report;
        this catches a tip parked while its report was being handled)."""
        attached = 0
        now = time.time()
        for case_id in await self.cases.tips.cases_to_look_for(now):
            if not await self.cases.tips.parked_for(case_id):
                await self.cases.tips.forget_case(case_id)
                continue
            found = await self.attach_parked(case_id)
            if found:
                attached += found
                await self.cases.tips.forget_case(case_id)
            else:
                await self.cases.tips.look_again(case_id, now + PARKED_LOOK_S)
        await self.cases.tips.held()
        return attached

    # --- commands from the API --------------------------------------------------------------
    async def _command(self, case_id: str,
                       plan: Callable[[Case, datetime, str], list[Change]],
                       authority: tuple[str, str] | None = None) -> Case:
        """Plan and commit a command; `authority` (caller's region, action) restricts it to the
        case leader's organ level or above."""
        async with self._lock(case_id):
            case = await self.cases.get(case_id)
            if case is None:
                raise Refused(404, "not_found", f"no case {case_id}", "case_id")
            if authority is not None:
                links.require_authority(case, *authority)
            changes = plan(case, self.clock(), uuid.uuid4().hex)
            return await self._commit(case, changes) or case

    async def command(self, case_id: str,
                      plan: Callable[[Case, datetime, str], list[Change]],
                      authority: tuple[str, str] | None = None) -> Case:
        """A command planned by a use case in its own module (found.py): as `_command`."""
        return await self._command(case_id, plan, authority)

    async def escalate(self, case_id: str, level: Literal["city", "province"], reason: str,
                       actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_escalate(
            c, level, reason, actor, self.roster, now, eid))

    async def add_member(self, case_id: str, member: domain.Member, reason: str,
                         actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_add_member(
            c, member, reason, actor, now, eid))

    async def release(self, case_id: str, actor: str, region: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_release(
            c, actor, now, eid), (region, "release"))

    async def complete_task(self, case_id: str, task_id: str, note: str, actor: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_complete(
            c, task_id, note, actor, now, eid))

    async def found(self, case_id: str, outcome: Outcome, found_at: datetime, note: str,
                    actor: str, region: str, confirm: bool = False,
                    child: str | None = None, receiving_organisation: str = "") -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_found(
            c, outcome, found_at, note, actor, now, eid, confirm, child,
            receiving_organisation), (region, "found"))

    async def amend_details(self, case_id: str,
                            plan: Callable[[Case, datetime, str], list[Change]],
                            region: str) -> Case:
        """The child's details amended (services.dispatch.amend), by the case leader's organ
        level or above."""
        return await self._command(case_id, plan, (region, "amend"))

    async def close(self, case_id: str, reason: str, actor: str, region: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_close(
            c, reason, actor, now, eid), (region, "close"))

    async def reopen(self, case_id: str, reason: str, actor: str, region: str) -> Case:
        return await self._command(case_id, lambda c, now, eid: domain.plan_reopen(
            c, reason, actor, now, eid), (region, "reopen"))

    async def unlink(self, case_id: str, report_id: str, reason: str, actor: str,
                     region: str) -> Case:
        """Undo a link: recorded on the case (who, why), then the report's own case group is
        opened under the case id its operator was given, and notify alerts for that child."""
        async with self._lock(case_id):
            case = await self.cases.get(case_id)
            if case is None:
                raise Refused(404, "not_found", f"no case {case_id}", "case_id")
            links.require_authority(case, region, "unlink")
            eid = uuid.uuid4().hex
            now = self.clock()
            changes, accepted = links.plan_unlink(case, report_id, reason, actor, now, eid)
            opening = [c.model_copy(update={"event_id": f"{eid}:{c.event_id}"})
                       for c in domain.plan_open(accepted, self.policy, self.roster, now,
                                                 self.deadline_scale)]
            await self._publish(changes + opening)
            new = projection.fold(changes, case)
            assert new is not None
            await self.cases.save(new, changes)
            own = projection.fold(opening)
            if own is not None:
                await self.cases.save(own, opening)
            await self.cases.unalias(accepted.case_id)
            return new

    async def incident(self, case_id: str, others: list[str], reason: str, actor: str,
                       region: str) -> Case:
        """Tie the cases of several children of one incident under `case_id` (its leader's
        level or above); each case keeps its own alert, found state and Cancel."""
        async with self._lock(case_id):
            lead = await self.cases.get(case_id)
            if lead is None:
                raise Refused(404, "not_found", f"no case {case_id}", "case_id")
            links.require_authority(lead, region, "incident")
            cases = []
            for other in others:
                case = await self.cases.get(other)
                if case is None:
                    raise Refused(404, "not_found", f"no case {other}", "case_ids")
                cases.append(case)
            changes = links.plan_incident(lead, cases, reason, actor, self.clock(),
                                          uuid.uuid4().hex)
            await self._publish(changes)
        tied = lead
        for change in changes:
            async with self._lock(change.case_id):
                fresh = await self.cases.get_own(change.case_id)
                new = projection.fold([change], fresh) if fresh is not None else None
                if new is not None:
                    await self.cases.save(new, [change])
                    if new.case_id == lead.case_id:
                        tied = new
        return tied

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
            if task_id == purge.TIMER:
                await self.purge(case_id)
                continue
            async with self._lock(case_id):
                case = await self.cases.get_own(case_id)
                changes = plan_due(case, task_id, self.clock()) if case else []
                if not changes:
                    await self.cases.drop_timer(case_id, task_id)
                    continue
                await self._commit(case, changes)
                fired += 1
        return fired

    async def purge(self, case_id: str) -> None:
        """The purge of an ended case past its grace (issue 13): `homeward.case.purged.v1`,
        then its data key (and those of the reports linked into it) deleted, then its claims
        and live-stream entries. Each step is idempotent; the timer goes only after all."""
        async with self._lock(case_id):
            case = await self.cases.get_own(case_id)
            if case is not None and not case.is_open:
                before = case
                if case.purged_at is None:
                    case = await self._commit(case, purge.plan_purge(case, self.clock()))
                if self.keys is not None:
                    for cid in {case_id, *(link.case_id for link in before.links)}:
                        await self.keys.purge(cid)
                # Its tips beside the case, and tips still held under its ids (issue 12 store).
                await self.cases.tips.purge(case_id, [case_id, *(x.case_id for x in before.links)])
                await self.cases.forget_personal(before)
                for hook in self.after_purge:
                    await hook(before)
            await self.cases.drop_timer(case_id, purge.TIMER)

    async def run_timers(self, tick_s: float, stop: asyncio.Event) -> None:
        """Fire due timers every tick until `stop` is set. (Stopped by the event rather than by
        cancellation alone: a cancellation landing inside a client library's own timeout can
        be swallowed, and the loop would then never end.)"""
        while not stop.is_set():
            try:
                await self.fire_due_timers()
                await self.sweep_parked()
                RETRYING_NOW.passed(TIMERS_KEY)
            except Exception as exc:
                # A timer whose change was refused (Redis OOM, READONLY) kept its due time:
                # it fires again next tick with the same event id.
                if is_transient(exc):
                    RETRYING_NOW.failed(TIMERS_KEY, exc)
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

        parked: dict[str, dict[str, Any]] = {}
        attached: set[str] = set()

        async def handle(event: CloudEvent) -> None:
            event = await open_event(event, self.keys)
            if event.type == TIP_PARKED:
                parked[str(event.data.get("tip_id"))] = event.data
                return
            if event.type == CASE_TIP_ATTACHED:
                attached.add(str(((event.data.get("details") or {}).get("tip") or {})
                                 .get("tip_id")))
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
            case = projection.apply_in_place(cases.get(event.subject), event.type, event.id,
                                         event.data)
            if case is not None:
                cases[case.case_id] = case
                applied[case.case_id].append(change)

        count = await replay_topic(bootstrap, handle)
        for case_id, case in cases.items():
            await self.cases.save(case, applied[case_id])
        for tip_id, data in parked.items():
            if tip_id not in attached:  # still held for its case
                at = float(data.get("parked_at") or time.time())
                await self.cases.tips.park(TipReceived.model_validate(data), at, time.time())
        for rebuilt in self.after_rebuild:
            await rebuilt(bootstrap)
        await self.cases.mark_ready()
        log.info("rebuilt %d cases from %d events", len(cases), count)
        return len(cases)


def is_report(event: CloudEvent) -> bool:
    return event.type == REPORT_ACCEPTED
