"""Use cases of tips and sightings (issue 12, issue 16 §1–3): attach a tip to its case once,
with its assessment (and a local check when it lies in another county); hold a tip whose case
is not known yet (services/dispatch/tips.py), never dead-lettered; triage a tip, report a check,
add the checking county's head to the case group. Committed through the one write path
(caselog.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.dispatch import checks
from services.dispatch.caselog import CaseLog
from services.dispatch.domain import Case, Change, Refused
from services.dispatch.reactions import plan_overdue, plan_tip
from services.dispatch.roster import Roster
from services.dispatch.tips import TIPS_PARKED, TIPS_UNPARKED
from services.dispatch.tips_domain import assess
from shared import topics
from shared.boundaries import boundary_index
from shared.casekeys import sealed_data
from shared.events import TIP_PARKED, TIP_RECEIVED, CheckResult, CloudEvent, TipReceived, TipVerdict

__all__ = ["PARKED_LOOK_S", "SightingRules", "Tips", "county_of", "plan_due"]

PARKED_LOOK_S = 2.0  # a held tip's case is looked for again this often


@dataclass(frozen=True)
class SightingRules:
    """Settings the sighting rules read: the radius tiers (Settings.radius_tiers_km,
    radius_max_km, notify_tier_unit_s) and the local check's deadline
    (Settings.dispatch_check_deadline_s)."""

    tiers: list[tuple[float, float]] = field(
        default_factory=lambda: [(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)])
    max_km: float = 500.0
    unit_s: float = 3600.0
    check_deadline_s: float = 2 * 3600.0


def county_of(lat: float, lon: float) -> str:
    """The county-level code whose boundary holds the point, '' outside every county."""
    located = boundary_index().locate(lat, lon)
    return located.code if located is not None else ""


def plan_due(case: Case, timer: str, now: datetime) -> list[Change]:
    """What a due timer of the case means: an overdue local check (`check:<id>`), else an
    overdue task."""
    if timer.startswith(checks.CHECK_TIMER):
        return checks.plan_check_overdue(case, timer.removeprefix(checks.CHECK_TIMER), now)
    return plan_overdue(case, timer, now)



@dataclass
class Tips:
    """The tips consumer's and the sighting commands' use cases, under the sighting rules."""

    caselog: CaseLog
    roster: Roster
    sightings: SightingRules = field(default_factory=SightingRules)

    # --- a tip attached, or held until its case is known ----------------------------------
    async def on_tip(self, event: CloudEvent) -> None:
        """Attach a tip to its case (once); a tip for a case not known yet is held
        (services/dispatch/tips.py), never dead-lettered."""
        if event.type != TIP_RECEIVED:
            return
        tip = TipReceived.model_validate(event.data)
        case = await self.caselog.cases.get(tip.case_id)
        if case is None:
            await self._park(tip)
            return
        await self._attach(case.case_id, tip)

    async def _attach(self, case_id: str, tip: TipReceived) -> None:
        cases = self.caselog.cases
        async with self.caselog.lock(case_id):
            case = await cases.get_own(case_id)
            if case is None or await cases.tips.has(case.case_id, tip.tip_id):
                return
            await self.caselog.commit(case, self._plan_attach(case, tip))

    def _plan_attach(self, case: Case, tip: TipReceived) -> list[Change]:
        """The tip attached with its assessment; a local check for its county when that is not
        the case's own (one open check per county)."""
        now = self.caselog.clock()
        rules = self.sightings
        county = county_of(tip.location.lat, tip.location.lon)
        assessment = assess(case.lat, case.lon, case.last_seen_at or case.opened_at, tip, now,
                            rules.tiers, rules.max_km, rules.unit_s, county)
        changes = plan_tip(case, tip, now, assessment)
        if case.is_open and checks.needs_check(case, county):
            try:
                check = checks.plan_check(
                    case, tip.tip_id, county, self.roster,
                    timedelta(seconds=rules.check_deadline_s), "dispatch", checks.SOURCE, now,
                    f"{case.case_id}:tip:{tip.tip_id}")
            except Refused:
                return changes  # no organ for that county: the tip is attached all the same
            changes[0].data["details"]["tip"]["check_id"] = check[0].data["details"]["check"][
                "check_id"]
            changes += check
        return changes

    async def _park(self, tip: TipReceived) -> None:
        """On the dispatch topic first (a rebuild restores it), then in the parked store."""
        now = time.time()
        publisher = self.caselog.publisher
        await publisher.publish(topics.DISPATCH, CloudEvent(
            id=f"{tip.tip_id}:parked", type=TIP_PARKED, source=publisher.source,
            subject=tip.case_id,
            data=await sealed_data(self.caselog.keys, TIP_PARKED, tip.case_id,
                                   {**tip.model_dump(mode="json"), "parked_at": now})))
        await self.caselog.cases.tips.park(tip, now, now + PARKED_LOOK_S)
        TIPS_PARKED.inc()

    async def attach_parked(self, case_id: str) -> int:
        """Attach the tips held for `case_id` if that case (or the case its report was linked
        to) is known now. Returns how many were attached."""
        cases = self.caselog.cases
        held = await cases.tips.parked_for(case_id)
        if not held:
            return 0
        case = await cases.get(case_id)
        if case is None:
            return 0
        for tip in held:
            await self._attach(case.case_id, tip)
        TIPS_UNPARKED.inc(len(held))
        return len(held)

    async def sweep_parked(self) -> int:
        """Look again for the cases of held tips (the report consumer asks after each report;
        this catches a tip parked while its report was being handled)."""
        store = self.caselog.cases.tips
        attached = 0
        now = time.time()
        for case_id in await store.cases_to_look_for(now):
            if not await store.parked_for(case_id):
                await store.forget_case(case_id)
                continue
            found = await self.attach_parked(case_id)
            if found:
                attached += found
                await store.forget_case(case_id)
            else:
                await store.look_again(case_id, now + PARKED_LOOK_S)
        await store.held()
        return attached

    # --- the commanders' sighting commands ---------------------------------------------------
    async def triage(self, case_id: str, tip_id: str, verdict: TipVerdict, reason: str,
                     actor: str, check_region: str | None, linked_case_id: str | None) -> Case:
        """A tip's verdict (checks.plan_triage); a tip linked to another case goes to that case
        too: its group is told, its console shows it."""
        tip = await self._tip(case_id, tip_id)
        deadline = timedelta(seconds=self.sightings.check_deadline_s)

        def plan(case: Case, now: datetime, eid: str) -> list[Change]:
            return checks.plan_triage(case, tip, verdict, reason, actor, self.roster, deadline,
                                      now, eid, check_region, linked_case_id)

        case = await self.caselog.command(case_id, plan)
        if linked_case_id:
            linked = await self.caselog.cases.get(linked_case_id)
            if linked is not None:
                fields = set(TipReceived.model_fields)
                await self._attach(linked.case_id, TipReceived.model_validate(
                    {k: v for k, v in tip.items() if k in fields}))
        return case

    async def report(self, case_id: str, check_id: str, result: CheckResult, note: str,
                     actor: str, region: str) -> Case:
        """The checking county's report of a local check (checks.plan_report)."""
        return await self.caselog.command(case_id, lambda c, now, eid: checks.plan_report(
            c, check_id, result, note, actor, region, now, eid))

    async def cooperate(self, case_id: str, check_id: str, reason: str, actor: str) -> Case:
        """The checking county's head added to the case group (checks.plan_cooperate)."""
        return await self.caselog.command(case_id, lambda c, now, eid: checks.plan_cooperate(
            c, check_id, reason, actor, self.roster, now, eid))

    async def _tip(self, case_id: str, tip_id: str) -> dict[str, Any]:
        case = await self.caselog.cases.get(case_id)
        if case is None:
            raise Refused(404, "not_found", f"no case {case_id}", "case_id")
        found = await self.caselog.cases.tips.one(case.case_id, tip_id)
        if found is None:
            raise Refused(404, "not_found", f"no tip {tip_id} on case {case_id}", "tip_id")
        return found
