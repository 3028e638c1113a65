"""The case projection of dispatch, free of I/O: `apply` folds one event of the case log into
the case (the projection every instance rebuilds by replaying homeward.dispatch.v1), `fold` a
list of planned changes, `scrub` a purged case. Split from domain.py, whose `plan_*` commands
decide the events; modules with events of their own (dna.py, candidates.py) register their
appliers in `APPLIERS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.dispatch.domain import Case, Change, Escalation, Link, Member, Task, TimelineEntry
from services.dispatch.roster import DUTIES
from services.dispatch.tips_domain import SIGHTING_TYPES, apply_sighting
from shared import events as ev
from shared.display import people_time
from shared.events import (
    CaseEvent,
    CaseFound,
    CaseOpened,
    IncidentTied,
    Leader,
    ReportLinked,
    ReportUnlinked,
)
from shared.pii import PURGED

# --- the projection -----------------------------------------------------------------------------

# Folds of event types kept in their own modules (candidates.py, dna.py register theirs): change
# the case in place, return the timeline's `what`.
APPLIERS: dict[str, Callable[[Case, CaseEvent], str]] = {}

_ACTIVATING = {ev.CASE_TASK_COMPLETED, ev.CASE_RELEASE_APPROVED, ev.CASE_TIP_ATTACHED}


def apply(case: Case | None, type_: str, event_id: str, data: dict[str, Any]) -> Case | None:
    """Fold one event into a copy of the case; an event already applied (same id) changes
    nothing."""
    return apply_in_place(case.model_copy(deep=True) if case is not None else None, type_, event_id,
                  data)


def apply_in_place(case: Case | None, type_: str, event_id: str,
                   data: dict[str, Any]) -> Case | None:
    """`apply`, changing `case` in place."""
    if type_ == ev.CASE_OPENED:
        opened = CaseOpened.model_validate(data)
        if case is not None or opened.linked_to:
            return case  # a linked report has no group of its own
        return _opened(opened, event_id)
    if case is None or case.applied(event_id) or not type_.startswith("homeward.case.") \
            or data.get("case_id") != case.case_id:
        return case
    if type_ == ev.CASE_TIP_ATTACHED:
        # The tip lives in the tip store (tips.py), not in the case document nor its timeline;
        # a tip still makes an opened case active.
        if case.status == "opened":
            case.status = "active"
        return case
    action = type_.removeprefix("homeward.case.").removesuffix(".v1")
    models: dict[str, type[CaseEvent]] = {
        ev.CASE_FOUND: CaseFound, ev.CASE_REPORT_LINKED: ReportLinked,
        ev.CASE_REPORT_UNLINKED: ReportUnlinked, ev.CASE_INCIDENT_TIED: IncidentTied}
    model = models.get(type_, CaseEvent)
    event = model.model_validate(data)
    d = event.details
    what = ""
    if type_ == ev.CASE_LEADER_ASSIGNED:
        case.leader = Leader.model_validate(d["leader"])
        case.leader_level = str(d.get("level") or case.leader_level)
        what = f"{case.leader.organ_name} {case.leader.title} {case.leader.name}"
        if d.get("handover"):
            what = f"移交 → {what}"
    elif type_ == ev.CASE_MEMBER_ADDED:
        member = Member.model_validate(d["member"])
        if member.duty in DUTIES:
            case.duties[member.duty] = member
        case.members = [m for m in case.members
                        if (m.duty, m.organ_code) != (member.duty, member.organ_code)]
        case.members.append(member)
        what = f"{member.duty}: {member.organ_name} {member.title} {member.name}"
    elif type_ == ev.CASE_ESCALATED:
        case.escalations.append(Escalation(level=str(d.get("level", "")), reason=event.reason,
                                           by=event.actor, at=event.at,
                                           supervision=d.get("supervision")))
        if d.get("supervision"):
            case.supervision = str(d["supervision"])
        what = f"{d.get('level')}" + (" 挂牌督办" if d.get("supervision") else "")
    elif type_ == ev.CASE_TASK_ASSIGNED:
        task = Task.model_validate(d["task"])
        case.tasks.append(task)
        what = f"{task.title} → {task.assignee}, {people_time(task.due_at)}"
    elif type_ == ev.CASE_TASK_COMPLETED:
        done = case.task(str(d.get("task_id")))
        if done is not None:
            done.status, done.completed_at, done.completed_by = "done", event.at, event.actor
            done.note = str(d.get("note") or "")
            what = done.title
    elif type_ == ev.CASE_TASK_OVERDUE:
        late = case.task(str(d.get("task_id")))
        if late is not None:
            late.overdue_count = int(d.get("count", late.overdue_count + 1))
            late.last_overdue_at = event.at
            what = f"{late.title} ×{late.overdue_count}"
    elif type_ == ev.CASE_RELEASE_APPROVED:
        case.release_approved = True
    elif type_ == ev.CASE_DETAILS_AMENDED:  # who amended what (the values stay in the event)
        what = ", ".join(str(f) for f in d.get("fields", []))
    elif type_ == ev.CASE_FOUND and isinstance(event, CaseFound):
        case.status = "false_report" if event.outcome == "false_report" else "found"
        case.outcome, case.found_at = event.outcome, event.found_at
        case.found_recorded_at = event.at
        case.receiving_organisation, case.found_record = (event.receiving_organisation,
                                                          event.record_id)
        what = event.outcome + (f" → {event.receiving_organisation}"
                                if event.receiving_organisation else "")
    elif type_ == ev.CASE_CLOSED:
        case.status, case.closed_at = "closed", event.at
    elif type_ == ev.CASE_INCIDENT_TIED and isinstance(event, IncidentTied):
        case.incident, case.incident_cases = event.incident_id, list(event.cases)
        what = f"incident {event.incident_id}: {len(event.cases)} children"
    elif type_ == ev.CASE_REOPENED:
        what = f"{case.outcome} → reopened"
        for offered in case.candidates:  # the record confirmed by that found was not the child
            if offered.record_id == case.found_record and offered.confirmed_via == "commander":
                offered.status, offered.confirmed_via = "proposed", ""
        case.status, case.outcome, case.found_at = "active", None, None
        case.found_recorded_at = None
        case.receiving_organisation, case.found_record = "", None
    elif type_ == ev.CASE_REPORT_LINKED and isinstance(event, ReportLinked):
        case.links.append(Link(report_id=event.report_id, case_id=event.duplicate_case_id,
                               evidence=event.evidence, at=event.at,
                               operator=str(d.get("operator", ""))))
        if isinstance(d.get("accepted"), dict):
            case.held_reports[event.duplicate_case_id] = d["accepted"]
        what = f"report {event.report_id} ({event.evidence.rule})"
    elif type_ in SIGHTING_TYPES:
        what = apply_sighting(case.checks, type_, d, event.actor, event.at)
    elif type_ == ev.CASE_PURGED:
        case.purged_at = event.at
        scrub(case)
        what = "personal data purged"
    elif type_ == ev.CASE_REPORT_UNLINKED and isinstance(event, ReportUnlinked):
        case.links = [x for x in case.links if x.report_id != event.report_id]
        case.held_reports.pop(event.duplicate_case_id, None)
        what = f"report {event.report_id} → {event.duplicate_case_id}"
    elif type_ in APPLIERS:
        what = APPLIERS[type_](case, event)
    if case.status == "opened" and (type_ in _ACTIVATING or event.actor != "dispatch"):
        case.status = "active"
    case.timeline.append(TimelineEntry(event_id=event_id, at=event.at, actor=event.actor,
                                       action=action, what=what, why=event.reason))
    return case


def scrub(case: Case) -> None:
    """Drop the personal data from the projection, in place (the purge applied, issue 13)."""
    case.child_name = PURGED
    case.duplicate_keys = []
    if case.child_profile is not None:
        case.child_profile.description = ""
    for offered in case.candidates:  # their reasons quote both descriptions (sealed likewise)
        offered.reasons = []
    case.held_reports = {}
    # (The tips live beside the case: TipStore.purge scrubs them.)
    for entry in case.timeline:
        if entry.action == "tip_attached":
            entry.what = PURGED


def _opened(opened: CaseOpened, event_id: str) -> Case:
    at = opened.opened_at
    timeline = [TimelineEntry(event_id=event_id, at=at, actor="dispatch", action="opened",
                              what=f"report {opened.report_id}",
                              why="；".join(str(r.get("summary", "")) for r in opened.rules
                                           if r.get("rule") == "rapid_search"))]
    if opened.leader is not None:
        lead = opened.leader
        why = "；".join(f"{r.get('summary')}" for r in opened.rules
                       if r.get("rule") in {"one_head_three_duties", "stolen_child",
                                            "especially_serious"})
        timeline.append(TimelineEntry(
            event_id=event_id, at=at, actor="dispatch", action="leader_assigned",
            what=f"{lead.organ_name} {lead.title} {lead.name}", why=why))
    else:
        timeline.append(TimelineEntry(event_id=event_id, at=at, actor="dispatch",
                                      action="leader_missing",
                                      what=f"no organ in the roster for {opened.region_code}"))
    if opened.place_conflict is not None:
        parts = "；".join(f"{p.source}: {p.region_code or '—'} {p.name}"
                         + (f" ({p.distance_km} km)" if p.distance_km is not None else "")
                         for p in opened.place_conflict.parts)
        timeline.append(TimelineEntry(
            event_id=event_id, at=at, actor="alert", action="place_conflict", what=parts,
            why=f"led from {opened.place_conflict.chosen} {opened.region_code}"))
    return Case(
        case_id=opened.case_id, report_id=opened.report_id, region_code=opened.region_code,
        operator_region=opened.operator_region, priority=opened.priority,
        mechanisms=opened.mechanisms, rules=opened.rules, leader=opened.leader,
        leader_level=opened.leader_level, duties={d: None for d in DUTIES},
        supervision=opened.supervision, may_add_members=opened.may_add_members,
        timeline=timeline, opened_at=at, last_seen_at=opened.last_seen_at,
        exercise=opened.exercise, child_name=opened.child_name, kind=opened.kind,
        subject=opened.subject, lat=opened.lat, lon=opened.lon,
        duplicate_keys=opened.duplicate_keys, place_conflict=opened.place_conflict,
        child_profile=opened.child_profile,
    )


def fold(changes: list[Change], case: Case | None = None) -> Case | None:
    """Apply the changes in order to a copy of the case (copied once)."""
    folded = case.model_copy(deep=True) if case is not None else None
    for change in changes:
        folded = apply_in_place(folded, change.type, change.event_id, change.data)
    return folded
