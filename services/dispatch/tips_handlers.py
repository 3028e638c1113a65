"""Use cases of sightings (issue 16 §1–3): attach a tip with its assessment (and a local check
when it lies in another county), triage it, report a check, add the checking county's head to
the case group. Committed through Dispatch's one path (`_command` / `_commit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.dispatch import checks, domain
from services.dispatch.domain import Case, Change, Refused
from services.dispatch.tips_domain import assess
from shared.boundaries import boundary_index
from shared.events import CheckResult, TipReceived, TipVerdict

if TYPE_CHECKING:
    from services.dispatch.handlers import Dispatch


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


def plan_attach(dispatch: Dispatch, case: Case, tip: TipReceived) -> list[Change]:
    """The tip attached with its assessment; a local check for its county when that is not the
    case's own (one open check per county)."""
    now = dispatch.clock()
    rules = dispatch.sightings
    county = county_of(tip.location.lat, tip.location.lon)
    assessment = assess(case.lat, case.lon, case.last_seen_at or case.opened_at, tip, now,
                        rules.tiers, rules.max_km, rules.unit_s, county)
    changes = domain.plan_tip(case, tip, now, assessment)
    if case.is_open and checks.needs_check(case, county):
        try:
            check = checks.plan_check(
                case, tip.tip_id, county, dispatch.roster,
                timedelta(seconds=rules.check_deadline_s), "dispatch", checks.SOURCE, now,
                f"{case.case_id}:tip:{tip.tip_id}")
        except Refused:
            return changes  # no organ for that county: the tip is attached all the same
        changes[0].data["details"]["tip"]["check_id"] = check[0].data["details"]["check"][
            "check_id"]
        changes += check
    return changes


def plan_due(case: Case, timer: str, now: datetime) -> list[Change]:
    """What a due timer of the case means: an overdue local check (`check:<id>`), else an
    overdue task."""
    if timer.startswith(checks.CHECK_TIMER):
        return checks.plan_check_overdue(case, timer.removeprefix(checks.CHECK_TIMER), now)
    return domain.plan_overdue(case, timer, now)


async def triage(dispatch: Dispatch, case_id: str, tip_id: str, verdict: TipVerdict,
                 reason: str, actor: str, check_region: str | None,
                 linked_case_id: str | None) -> Case:
    tip = await _tip(dispatch, case_id, tip_id)
    deadline = timedelta(seconds=dispatch.sightings.check_deadline_s)

    def plan(case: Case, now: datetime, eid: str) -> list[Change]:
        return checks.plan_triage(case, tip, verdict, reason, actor, dispatch.roster, deadline,
                                  now, eid, check_region, linked_case_id)

    case = await dispatch._command(case_id, plan)
    if linked_case_id:  # the tip goes to that case too: its group is told, its console shows it
        linked = await dispatch.cases.get(linked_case_id)
        if linked is not None:
            fields = set(TipReceived.model_fields)
            await dispatch._attach(linked.case_id, TipReceived.model_validate(
                {k: v for k, v in tip.items() if k in fields}))
    return case


async def report(dispatch: Dispatch, case_id: str, check_id: str, result: CheckResult,
                 note: str, actor: str, region: str) -> Case:
    return await dispatch._command(case_id, lambda c, now, eid: checks.plan_report(
        c, check_id, result, note, actor, region, now, eid))


async def cooperate(dispatch: Dispatch, case_id: str, check_id: str, reason: str,
                    actor: str) -> Case:
    return await dispatch._command(case_id, lambda c, now, eid: checks.plan_cooperate(
        c, check_id, reason, actor, dispatch.roster, now, eid))


async def _tip(dispatch: Dispatch, case_id: str, tip_id: str) -> dict[str, Any]:
    case = await dispatch.cases.get(case_id)
    if case is None:
        raise Refused(404, "not_found", f"no case {case_id}", "case_id")
    found = await dispatch.cases.tips.one(case.case_id, tip_id)
    if found is None:
        raise Refused(404, "not_found", f"no tip {tip_id} on case {case_id}", "tip_id")
    return found
