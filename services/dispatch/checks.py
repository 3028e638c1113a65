"""Commands on a case's sightings (issue 16 §2–3), free of I/O: a tip's triage, a local check
(核查) for another county, that county's report, and its commander joining the case group.

Every one is an event on the case with who (`actor`) and why (`reason`), so the timeline shows
it (领导责任倒查). Source of the cross-region duty: 003 §三(二) (the regions where a child went
missing and where they may have been taken support each other); the national platform sends
each tip to the police where the child was seen, to check (issue 16).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from services.dispatch.domain import Case, Change, Member, Refused, case_event
from services.dispatch.opening import leader_of
from services.dispatch.roster import Organ, Roster
from services.dispatch.tips_domain import LocalCheck, open_check_for
from shared import events as ev
from shared.auth import Principal
from shared.events import CheckResult, TipVerdict
from shared.regions import within

SOURCE = "003 §三(二)：失踪地与可能被带往地公安机关相互支持配合"


def _require_open(case: Case) -> None:
    if not case.is_open:
        raise Refused(409, "case_not_open", f"case {case.case_id} is {case.status}", "status")


def needs_check(case: Case, county: str) -> bool:
    """A sighting in `county` calls for a local check: it lies outside the case's own county
    (region), and no check for that county is open on the case."""
    if not county or within(case.region_code, county):
        return False
    return all(not (c.is_open and c.region_code == county) for c in case.checks)


def plan_check(case: Case, tip_id: str, county: str, roster: Roster, deadline: timedelta,
               actor: str, reason: str, now: datetime, event_id: str) -> list[Change]:
    """A local check for the county bureau of `county` (the roster's organ there; its head, or
    the deputy when the head is away, is the assignee and is told), due `deadline` from now."""
    organ = roster.organ_at(county, "county")
    if organ is None:
        raise Refused(409, "no_organ", f"no public security organ for {county}", "check_region")
    head = leader_of(organ, roster)
    check = LocalCheck(check_id=f"K{event_id[-10:]}", tip_id=tip_id, region_code=county,
                       organ_code=organ.code, organ_name=organ.name,
                       assignee=f"{head.title} {head.name}", phone=head.phone,
                       due_at=now + deadline,
                       assigned_at=now, assigned_by=actor)
    told = Member(duty="local_check", name=head.name, title=head.title, phone=head.phone,
                  organ_code=organ.code, organ_name=organ.name)
    return [case_event(case.case_id, case.region_code, ev.CASE_CHECK_ASSIGNED,
                       f"{event_id}:check", now, actor, reason or SOURCE,
                       check=check.model_dump(mode="json"), check_region=county,
                       notify=[told.model_dump()])]


def plan_triage(case: Case, tip: dict[str, Any], verdict: TipVerdict, reason: str, actor: str,
                roster: Roster, deadline: timedelta, now: datetime, event_id: str,
                check_region: str | None = None,
                linked_case_id: str | None = None) -> list[Change]:
    """The commander's verdict on a tip, with a local check in `check_region` when asked (a
    county-level code outside the case's own region) and a link to another case."""
    _require_open(case)
    changes: list[Change] = []
    check_id = None
    if check_region:
        if within(case.region_code, check_region) or within(check_region, case.region_code):
            raise Refused(409, "check_in_own_region", f"{check_region} is inside the case's "
                          f"own region {case.region_code}: its own group checks there",
                          "check_region")
        changes = plan_check(case, str(tip["tip_id"]), check_region, roster, deadline, actor,
                             reason, now, event_id)
        check_id = changes[0].data["details"]["check"]["check_id"]
    if linked_case_id == case.case_id:
        raise Refused(409, "same_case", "a tip cannot be linked to its own case",
                      "linked_case_id")
    triaged = case_event(case.case_id, case.region_code, ev.CASE_TIP_TRIAGED,
                         f"{event_id}:triage", now, actor, reason, tip_id=str(tip["tip_id"]),
                         verdict=verdict, linked_case_id=linked_case_id, check_id=check_id,
                         check_region=check_region)
    return [triaged, *changes]


def check_of(case: Case, check_id: str) -> LocalCheck:
    found = next((c for c in case.checks if c.check_id == check_id), None)
    if found is None:
        raise Refused(404, "not_found", f"no check {check_id} in case {case.case_id}",
                      "check_id")
    return found


def plan_report(case: Case, check_id: str, result: CheckResult, note: str, actor: str,
                region: str, now: datetime, event_id: str) -> list[Change]:
    """The checking county's answer: only its commanders (region over the check's county), only
    while the check is open (409 check_closed after)."""
    check = check_of(case, check_id)
    if not within(region, check.region_code):
        raise Refused(403, "not_check_region", f"check {check_id} is for "
                      f"{check.organ_name or check.region_code}", "check_id")
    if not check.is_open:
        raise Refused(409, "check_closed", f"check {check_id} was reported already", "check_id")
    return [case_event(case.case_id, case.region_code, ev.CASE_CHECK_REPORTED,
                       f"{event_id}:reported", now, actor, note, check_id=check_id,
                       result=result, note=note, check_region=check.region_code)]


CHECK_TIMER = "check:"  # + check id: the timer member's task part (adapters' timers)


def plan_check_overdue(case: Case, check_id: str, now: datetime) -> list[Change]:
    """An open check past its deadline (or its next repeat): an event on the case, the case
    leader and the checking county's head told. Nothing for a closed check or case."""
    check = next((c for c in case.checks if c.check_id == check_id), None)
    if check is None or not check.is_open or not case.is_open:
        return []
    count = check.overdue_count + 1
    told = [m for m in (_leader(case), _head_of(check)) if m is not None]
    return [case_event(case.case_id, case.region_code, ev.CASE_CHECK_OVERDUE,
                       f"{case.case_id}:check:{check_id}:overdue:{count}", now, "dispatch",
                       "核查时限已过，未反馈，向专案组长报告", check_id=check_id, count=count,
                       check_region=check.region_code,
                       notify=[m.model_dump() for m in told])]


def _leader(case: Case) -> Member | None:
    lead = case.leader
    if lead is None:
        return None
    return Member(duty="leader", name=lead.name, title=lead.title, phone=lead.phone,
                  organ_code=lead.organ_code, organ_name=lead.organ_name)


def _head_of(check: LocalCheck) -> Member | None:
    title, _, name = check.assignee.rpartition(" ")
    return None if not name else Member(duty="local_check", name=name, title=title,
                                        phone=check.phone, organ_code=check.organ_code,
                                        organ_name=check.organ_name)


def plan_cooperate(case: Case, check_id: str, reason: str, actor: str, roster: Roster,
                   now: datetime, event_id: str) -> list[Change]:
    """The checking county's head joins the case group as a cooperating member (003 §三(二));
    notify then sends them the group's bulletin. 409 when already a member."""
    _require_open(case)
    check = check_of(case, check_id)
    organ: Organ | None = roster.organ(check.organ_code) or roster.organ_at(check.region_code,
                                                                              "county")
    if organ is None:
        raise Refused(409, "no_organ", f"no organ for {check.region_code}", "check_id")
    head = leader_of(organ, roster)
    if any(m.duty == "cooperation" and m.organ_code == head.organ_code for m in case.members):
        raise Refused(409, "already_member", f"{head.organ_name} already cooperates on the "
                      "case", "check_id")
    member = Member(duty="cooperation", name=head.name, title=head.title, phone=head.phone,
                    organ_code=head.organ_code, organ_name=head.organ_name)
    return [case_event(case.case_id, case.region_code, ev.CASE_MEMBER_ADDED,
                       f"{event_id}:cooperation", now, actor, reason or SOURCE,
                       member=member.model_dump(), check_id=check_id)]


def may_read(case: Case, who: Principal) -> bool:
    """A commander reads a case inside their region, or while a local check of the case for
    their county is open (and not after)."""
    return who.can_see(case.region_code) or open_check_for(case.checks, who.region) is not None


def streamed_to(fields: dict[str, str], region: str) -> bool:
    """Whether a live-stream entry of another region's case is for a commander of `region`:
    the check events of a check in their county."""
    if fields.get("type") not in (ev.CASE_CHECK_ASSIGNED, ev.CASE_CHECK_REPORTED,
                                  ev.CASE_CHECK_OVERDUE):
        return False
    try:
        details = json.loads(fields.get("data") or "{}").get("details") or {}
    except ValueError:
        return False
    county = str(details.get("check_region") or "")
    return bool(county) and within(region, county)
