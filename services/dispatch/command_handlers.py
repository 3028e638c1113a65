"""The commanders' commands from the API, as use cases: on one case (escalate, add a member,
release, complete a task, found, amend, close, reopen: commands.py, ending.py), across cases
(unlink a report, tie an incident's cases: links.py), and on the roster (a leader's
availability, handing their open cases over: reactions.py). Each is committed through the one
write path (caselog.py); `authority` restricts a command to the case leader's organ level or
above (links.require_authority).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.dispatch import links, projection
from services.dispatch.caselog import CaseLog, Plan
from services.dispatch.commands import plan_add_member, plan_complete, plan_escalate, plan_release
from services.dispatch.domain import Case, Member, Outcome, Refused
from services.dispatch.ending import plan_close, plan_found, plan_reopen
from services.dispatch.opening import plan_open
from services.dispatch.reactions import plan_handover
from services.dispatch.roster import Organ, Post, Roster
from services.dispatch.rules import Policy
from shared import topics
from shared.events import ORGAN_AVAILABILITY_CHANGED, CloudEvent

__all__ = ["Availability", "Commands", "Links"]


@dataclass
class Commands:
    """Commands on one case, each planned and committed under the case's lock."""

    caselog: CaseLog
    roster: Roster

    async def escalate(self, case_id: str, level: Literal["city", "province"], reason: str,
                       actor: str) -> Case:
        """commands.plan_escalate."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_escalate(
            c, level, reason, actor, self.roster, now, eid))

    async def add_member(self, case_id: str, member: Member, reason: str, actor: str) -> Case:
        """commands.plan_add_member."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_add_member(
            c, member, reason, actor, now, eid))

    async def release(self, case_id: str, actor: str, region: str) -> Case:
        """commands.plan_release, by the case leader's organ level or above."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_release(
            c, actor, now, eid), (region, "release"))

    async def complete_task(self, case_id: str, task_id: str, note: str, actor: str) -> Case:
        """commands.plan_complete."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_complete(
            c, task_id, note, actor, now, eid))

    async def found(self, case_id: str, outcome: Outcome, found_at: datetime, note: str,
                    actor: str, region: str, confirm: bool = False,
                    child: str | None = None, receiving_organisation: str = "") -> Case:
        """ending.plan_found, by the case leader's organ level or above."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_found(
            c, outcome, found_at, note, actor, now, eid, confirm, child,
            receiving_organisation), (region, "found"))

    async def amend_details(self, case_id: str, plan: Plan, region: str) -> Case:
        """The child's details amended (services.dispatch.amend), by the case leader's organ
        level or above."""
        return await self.caselog.command(case_id, plan, (region, "amend"))

    async def close(self, case_id: str, reason: str, actor: str, region: str) -> Case:
        """ending.plan_close, by the case leader's organ level or above."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_close(
            c, reason, actor, now, eid), (region, "close"))

    async def reopen(self, case_id: str, reason: str, actor: str, region: str) -> Case:
        """ending.plan_reopen, by the case leader's organ level or above."""
        return await self.caselog.command(case_id, lambda c, now, eid: plan_reopen(
            c, reason, actor, now, eid), (region, "reopen"))


@dataclass
class Links:
    """Commands across cases: a linked report unlinked into its own group, several children's
    cases tied into one incident."""

    caselog: CaseLog
    policy: Policy
    roster: Roster
    deadline_scale: float = 1.0

    async def unlink(self, case_id: str, report_id: str, reason: str, actor: str,
                     region: str) -> Case:
        """Undo a link: recorded on the case (who, why), then the report's own case group is
        opened under the case id its operator was given, and notify alerts for that child."""
        cases = self.caselog.cases
        async with self.caselog.lock(case_id):
            case = await self.caselog.case_for(case_id, (region, "unlink"))
            eid = uuid.uuid4().hex
            now = self.caselog.clock()
            changes, accepted = links.plan_unlink(case, report_id, reason, actor, now, eid)
            opening = [c.model_copy(update={"event_id": f"{eid}:{c.event_id}"})
                       for c in plan_open(accepted, self.policy, self.roster, now,
                                          self.deadline_scale)]
            await self.caselog.publish(changes + opening)
            new = projection.fold(changes, case)
            assert new is not None
            await cases.save(new, changes)
            own = projection.fold(opening)
            if own is not None:
                await cases.save(own, opening)
            await cases.unalias(accepted.case_id)
            return new

    async def incident(self, case_id: str, others: list[str], reason: str, actor: str,
                       region: str) -> Case:
        """Tie the cases of several children of one incident under `case_id` (its leader's
        level or above); each case keeps its own alert, found state and Cancel."""
        cases = self.caselog.cases
        async with self.caselog.lock(case_id):
            lead = await self.caselog.case_for(case_id, (region, "incident"))
            tied_cases = []
            for other in others:
                case = await cases.get(other)
                if case is None:
                    raise Refused(404, "not_found", f"no case {other}", "case_ids")
                tied_cases.append(case)
            changes = links.plan_incident(lead, tied_cases, reason, actor, self.caselog.clock(),
                                          uuid.uuid4().hex)
            await self.caselog.publish(changes)
        tied = lead
        for change in changes:
            async with self.caselog.lock(change.case_id):
                fresh = await cases.get_own(change.case_id)
                new = projection.fold([change], fresh) if fresh is not None else None
                if new is not None:
                    await cases.save(new, [change])
                    if new.case_id == lead.case_id:
                        tied = new
        return tied


@dataclass
class Availability:
    """Who in the roster is (un)available, and the handover of the open cases they lead."""

    caselog: CaseLog
    roster: Roster

    async def set_availability(self, organ: Organ, post: Post, available: bool, reason: str,
                               actor: str) -> list[str]:
        """Record who is (un)available and why; hand open cases led by them over. Returns the
        ids of the cases handed over."""
        cases, publisher = self.caselog.cases, self.caselog.publisher
        now = self.caselog.clock()
        event_id = uuid.uuid4().hex
        event = CloudEvent(id=event_id, type=ORGAN_AVAILABILITY_CHANGED,
                           source=publisher.source, subject=organ.code,
                           data={"organ_code": organ.code, "post": post, "available": available,
                                 "reason": reason, "actor": actor, "at": now.isoformat()})
        await publisher.publish(topics.DISPATCH, event)
        self.roster.set_available(organ.code, post, available)
        await cases.save_availability(organ.code, post, available)
        if available:
            return []
        current = self.roster.organ(organ.code) or organ
        handed = []
        for case in await cases.many(await cases.list_ids(5000)):
            if case.leader is None or case.leader.organ_code != organ.code:
                continue
            async with self.caselog.lock(case.case_id):
                fresh = await cases.get_own(case.case_id) or case
                changes = plan_handover(fresh, current, post, reason, actor, self.roster, now,
                                        event_id)
                if changes:
                    await self.caselog.commit(fresh, changes)
                    handed.append(case.case_id)
        return handed
