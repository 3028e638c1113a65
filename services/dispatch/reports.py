"""A report accepted by intake (homeward.report.accepted.v1): its case group opened
(opening.py), or the report linked to the open case of the same child (links.py).

Whose child it is is decided by an atomic claim on the child's identity keys (keyed HMACs,
shared/identity.py), so two reports of one child handled at the same moment by different
consumers link rather than open two searches.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from services.dispatch import links
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case
from services.dispatch.opening import plan_open
from services.dispatch.roster import Roster
from services.dispatch.rules import Policy
from shared import metrics
from shared.case_ids import CaseIdCollision
from shared.events import CloudEvent
from shared.identity import (
    ChildIdentity,
    Sighting,
    contradiction,
    identity_of,
    link_evidence,
    sighting_of,
)
from shared.identity_claims import claimant_record
from shared.report import ReportAccepted

__all__ = ["Reports"]

log = logging.getLogger(__name__)


@dataclass
class Reports:
    """Opens or links the reports of the dispatch consumer. `deadline_scale` scales the tasks'
    deadlines; a second report is linked when within `duplicate_km` and the repository's
    duplicate window of the first; a claim's case is waited for up to `claim_wait_s`;
    `after_open` hooks are called with each case opened (outside its lock)."""

    caselog: CaseLog
    policy: Policy
    roster: Roster
    deadline_scale: float = 1.0
    duplicate_km: float = 50.0
    identity_secret: str = ""
    claim_wait_s: float = 10.0
    after_open: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)

    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Open the case group, or link the report to the open case of the same child. A
        redelivered report finds everything done and stored (the hooks are idempotent)."""
        accepted = ReportAccepted.model_validate(event.data)
        cases = self.caselog.cases
        async with self.caselog.lock(accepted.case_id):
            if await cases.known(accepted.case_id):
                new = await self.check_same_report(accepted.case_id, accepted.report_id)
            else:
                new = await self._open_or_link(accepted)
        if new is not None:
            for hook in self.after_open:
                await hook(new)

    async def check_same_report(self, case_id: str, report_id: str) -> Case | None:
        """A known case id is this report's own (a redelivery or a replay) unless the case, or
        the link the id was given, holds another report id: then two reports drew one id
        (shared.case_ids), and taking the second for a redelivery would drop a child's report
        without a word. Raises CaseIdCollision (dead-lettered, never retried). Also called
        before a report's sealed fields are opened (consumers.py): the second report of a
        collision is sealed with a key the case does not hold. Returns the case the id is
        its own (None when the id was given to a linked report)."""
        cases = self.caselog.cases
        own = await cases.get_own(case_id)
        if own is not None:
            held_by = own.report_id
        else:
            target = await cases.linked_to(case_id)
            case = await cases.get_own(target) if target else None
            link = None if case is None else next(
                (x for x in case.links if x.case_id == case_id), None)
            if link is None:
                return None  # nothing to compare with: taken as before
            held_by = link.report_id
        if held_by != report_id:
            log.error("case id %s drawn by two reports: %s holds it, %s is dead-lettered",
                      case_id, held_by, report_id)
            raise CaseIdCollision(case_id, held_by, report_id)
        return own

    async def _open_or_link(self, accepted: ReportAccepted) -> Case | None:
        """Under the report's lock: the case opened, or None when the report was linked."""
        cases = self.caselog.cases
        child = identity_of(accepted)
        keyed = child.keyed(self.identity_secret)
        keys = [k for _, k in keyed]
        owner, at = await cases.claims.claim(keys, accepted.case_id)
        now = self.caselog.clock()
        if at is not None and owner != accepted.case_id:
            existing = await self._claimed_case(owner)
            evidence = None
            if existing is None or not existing.is_open:
                # The claim's case is no longer a live search, or never came to be (its
                # report was dead-lettered): this report starts the child's search.
                await cases.claims.take_over(keys, accepted.case_id)
            elif (why := contradiction(keyed[at][0], existing.child_name,
                                       existing.duplicate_keys, child, keyed)) is not None:
                # Another child (twins): this report opens its own search, with the keys
                # its claim had given the other case.
                log.info("report %s is not of case %s's child: %s differs", accepted.report_id,
                         existing.case_id, why)
                await cases.claims.hand_over([k for i, k in enumerate(keys) if i != at],
                                             existing.case_id, accepted.case_id)
            elif existing.lat is not None and existing.lon is not None:
                evidence = link_evidence(
                    keyed[at][0], ChildIdentity(name=existing.child_name), Sighting(
                        at=existing.last_seen_at or existing.opened_at, lat=existing.lat,
                        lon=existing.lon),
                    child, sighting_of(accepted), self.duplicate_km,
                    timedelta(seconds=cases.duplicate_window_s))
            if existing is not None and evidence is not None:
                async with self.caselog.lock(existing.case_id):
                    fresh = await cases.get_own(existing.case_id) or existing
                    await self.caselog.commit(fresh, links.plan_link(fresh, accepted, evidence,
                                                                     now))
                return None
        opened = await self.caselog.commit(None, plan_open(accepted, self.policy, self.roster,
                                                           now, self.deadline_scale, keys))
        metrics.case_group_formed(accepted.accepted_at)
        return opened

    async def _claimed_case(self, owner: str) -> Case | None:
        """The case that claimed the child: another consumer may still be opening it, so wait
        up to `claim_wait_s`; None if it never appears."""
        case = await claimant_record(lambda: self.caselog.cases.get(owner), self.claim_wait_s)
        if case is None:
            log.warning("case %s claimed a child but was never stored", owner)
        return case
