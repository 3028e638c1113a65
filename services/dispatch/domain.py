"""The case group, event-sourced and free of I/O.

Commands (`plan_*`) look at the current case and decide which events happen, or refuse with a
reason; services.dispatch.projection folds each event into the case. Replaying the dispatch topic
through it rebuilds the same cases with the same timelines. Which rules fire is data
(rules.yaml, see rules.py); the people come from the roster (roster.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.dispatch.records import Candidate, DnaSample
from services.dispatch.roster import Organ, Roster
from services.dispatch.rules import LEVELS, Decision, Facts, Level, Policy, decide
from services.dispatch.tips_domain import LocalCheck
from shared import errors
from shared import events as ev
from shared.display import people_time
from shared.events import (
    CaseEvent,
    CaseFound,
    CaseOpened,
    CaseReopened,
    ChildProfile,
    Leader,
    ReleaseApproved,
    TipAssessment,
    TipReceived,
)
from shared.identity import LinkEvidence, identity_of, normalise_name
from shared.regions import within
from shared.report import ADULT_AGE, PlaceConflict, ReportAccepted, Subject

Status = Literal["opened", "active", "found", "false_report", "closed"]
OPEN: frozenset[str] = frozenset({"opened", "active"})
Outcome = ev.Outcome


class Refused(errors.Refused):
    """A command the case's state does not allow (409) or a thing that is not there (404):
    Refused(status, code, message, field) (shared/errors.py maps it to HTTP; the translated
    message names `what` was refused)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(status, code, message, field, what=message)


class Member(BaseModel):
    duty: str
    name: str
    title: str
    phone: str = ""
    organ_code: str
    organ_name: str = ""


class Task(BaseModel):
    task_id: str
    title: str
    title_en: str = ""
    duty: str
    assignee: str = ""
    due_at: datetime
    status: Literal["open", "done"] = "open"
    completed_at: datetime | None = None
    completed_by: str = ""
    note: str = ""
    overdue_count: int = 0
    last_overdue_at: datetime | None = None
    sources: list[dict[str, str]] = Field(default_factory=list)


class Escalation(BaseModel):
    level: str
    reason: str
    by: str
    at: datetime
    supervision: str | None = None


class Tip(BaseModel):
    tip_id: str
    case_id: str = Field(default="", description="the case id the tipster named (a linked "
                         "report's id leads to its case)")
    seen_at: datetime
    location: dict[str, Any]
    description: str
    contact: str = ""
    received_at: datetime
    source: str = "public"
    hub_id: str | None = None
    notified: list[str] = Field(default_factory=list, description="leader, investigation member")
    assessment: TipAssessment | None = Field(default=None, description="distance, bearing, "
                                             "radius, plausibility, rank (tips_domain.py)")
    triage: dict[str, Any] | None = Field(default=None, description="the latest verdict: "
                                          "verdict, reason, by, at, linked_case_id, check_id")
    check_id: str | None = Field(default=None, description="the local check it started")


class TimelineEntry(BaseModel):
    event_id: str = ""
    at: datetime
    actor: str
    action: str
    what: str = ""
    why: str = ""


class Link(BaseModel):
    """A second report taken for the same child as this case's, with the evidence."""

    report_id: str
    case_id: str = Field(description="the case id the second report's operator was given")
    evidence: LinkEvidence
    at: datetime
    operator: str = ""


class Case(BaseModel):
    case_id: str
    report_id: str
    region_code: str
    operator_region: str = ""
    status: Status = "opened"
    outcome: Outcome | None = None
    priority: str
    mechanisms: list[str]
    rules: list[dict[str, Any]] = Field(default_factory=list)
    leader: Leader | None
    leader_level: str = "county"
    duties: dict[str, Member | None]
    members: list[Member] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    supervision: str | None = None
    release_approved: bool = False
    links: list[Link] = Field(default_factory=list)
    incident: str | None = Field(default=None, description="the leading case of the incident "
                                 "this child's case is tied into (several children)")
    incident_cases: list[str] = Field(default_factory=list,
                                      description="every case (child) of that incident")
    held_reports: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="internal: each linked report as accepted, by its "
        "case id, so that unlinking opens its own group; never served")
    may_add_members: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    opened_at: datetime
    last_seen_at: datetime | None = None
    found_at: datetime | None = None
    closed_at: datetime | None = None
    exercise: bool = False
    child_name: str
    kind: str
    subject: str = "child"
    lat: float | None = None
    lon: float | None = None
    duplicate_keys: list[str] = Field(default_factory=list)
    place_conflict: PlaceConflict | None = None
    checks: list[LocalCheck] = Field(default_factory=list, description="local checks (核查) "
                                     "of sightings in other counties (issue 16 §2)")
    purged_at: datetime | None = Field(default=None, description="personal data purged "
                                       "(issue 13): ids, times, decisions and outcomes remain")
    # Issue 16: the child as reported (matching), unidentified-child records scored against
    # it, DNA sample records, and how the search ended when the child was placed or matched.
    child_profile: ChildProfile | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    dna_samples: list[DnaSample] = Field(default_factory=list)
    receiving_organisation: str = ""
    found_record: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)

    def applied(self, event_id: str) -> bool:
        return any(t.event_id == event_id for t in self.timeline)


class Change(BaseModel):
    """One event to publish: type, stable id (redelivery publishes the same id), data."""

    type: str
    event_id: str
    case_id: str
    data: dict[str, Any]


# --- rules → a new case group ----------------------------------------------------------------

def facts_of(accepted: ReportAccepted) -> Facts:
    report = accepted.report
    seen = report.last_seen.at.date()
    minor = report.subject is Subject.child or report.child.age_at(seen) < ADULT_AGE
    return Facts(
        region_code=report.last_seen.region_code, subject=report.subject,
        kind=report.circumstances.kind, minor=minor,
        especially_serious=report.circumstances.especially_serious,
        cross_region=not within(accepted.operator_region, report.last_seen.region_code),
    )


def leader_of(organ: Organ, roster: Roster) -> Leader:
    """The head; the responsible deputy when the head is unavailable; when both are away, the
    leader of the organ above."""
    for post in ("head", "deputy"):
        person = getattr(organ, post)
        if person.available:
            return Leader(organ_code=organ.code, organ_name=organ.name, name=person.name,
                          title=person.title, phone=person.phone, post=post)
    parent = roster.parent_of(organ)
    if parent is not None:
        return leader_of(parent, roster)
    person = organ.deputy
    return Leader(organ_code=organ.code, organ_name=organ.name, name=person.name,
                  title=person.title, phone=person.phone, post="deputy")


def member_of(organ: Organ, duty: str, post: str | None = None) -> Member:
    person = getattr(organ, post) if post else organ.members[duty]
    return Member(duty=duty, name=person.name, title=person.title, phone=person.phone,
                  organ_code=organ.code, organ_name=organ.name)


def identity_keys(accepted: ReportAccepted, secret: str) -> list[str]:
    """The child's identity keys (keyed HMACs, shared/identity.py); never the reporter's phone."""
    return identity_of(accepted).keys(secret)


def case_event(case_id: str, region: str, type_: str, event_id: str, at: datetime,
           actor: str = "dispatch", reason: str = "", **details: Any) -> Change:
    data = CaseEvent(case_id=case_id, region_code=region, actor=actor, reason=reason, at=at,
                     details=details)
    return Change(type=type_, event_id=event_id, case_id=case_id,
                  data=data.model_dump(mode="json"))


def plan_open(accepted: ReportAccepted, policy: Policy, roster: Roster, now: datetime,
              deadline_scale: float = 1.0, keys: list[str] | None = None) -> list[Change]:
    """The events that form the case group for a new report."""
    report = accepted.report
    region = report.last_seen.region_code
    decision = decide(policy, facts_of(accepted))
    organ = roster.organ_at(region, decision.leader_level)
    leader = leader_of(organ, roster) if organ else None
    case_id = accepted.case_id
    rules = [a.model_dump(mode="json") for a in decision.applied]
    opened = CaseOpened(
        case_id=case_id, report_id=accepted.report_id, region_code=region, opened_at=now,
        priority=decision.priority, mechanisms=decision.mechanisms, leader=leader,
        exercise=report.exercise, child_name=report.child.name,
        kind=report.circumstances.kind.value, subject=report.subject.value,
        last_seen_at=report.last_seen.at, lat=report.last_seen.lat, lon=report.last_seen.lon,
        operator_region=accepted.operator_region, leader_level=decision.leader_level,
        may_add_members=decision.may_add_members, rules=rules,
        duplicate_keys=keys or [], place_conflict=accepted.place_conflict,
        child_profile=ChildProfile(sex=report.child.sex.value,
                                   age=report.child.age_at(report.last_seen.at.date()),
                                   height_cm=report.child.height_cm,
                                   description=report.child.description),
    )
    changes = [Change(type=ev.CASE_OPENED, event_id=f"{case_id}:opened", case_id=case_id,
                      data=opened.model_dump(mode="json"))]
    members: dict[str, Member] = {}
    if organ is not None:
        for duty in decision.duties:
            members[duty] = member_of(organ, duty)
            changes.append(case_event(case_id, region, ev.CASE_MEMBER_ADDED,
                                  f"{case_id}:member:{duty}", now,
                                  reason=_why(decision, "one_head_three_duties"),
                                  member=members[duty].model_dump()))
    if decision.cooperation:
        reporting = roster.organ_at(accepted.operator_region, "county")
        if reporting is not None and (organ is None or reporting.code != organ.code):
            chief = leader_of(reporting, roster)
            member = Member(duty="cooperation", name=chief.name, title=chief.title,
                            phone=chief.phone, organ_code=reporting.code,
                            organ_name=reporting.name)
            changes.append(case_event(case_id, region, ev.CASE_MEMBER_ADDED,
                                  f"{case_id}:member:cooperation", now,
                                  reason=_why(decision, "cross_region"),
                                  member=member.model_dump()))
    if organ is not None and organ.level != "county":
        local = roster.organ_at(region, "county")
        if local is not None and local.code != organ.code:
            chief = leader_of(local, roster)
            member = Member(duty="local_bureau", name=chief.name, title=chief.title,
                            phone=chief.phone, organ_code=local.code, organ_name=local.name)
            changes.append(case_event(case_id, region, ev.CASE_MEMBER_ADDED,
                                  f"{case_id}:member:local_bureau", now,
                                  reason="失踪地县级公安机关参加专案组",
                                  member=member.model_dump()))
    if decision.supervision:
        changes.append(case_event(
            case_id, region, ev.CASE_ESCALATED, f"{case_id}:escalated:rules", now,
            reason=_why(decision, "stolen_child", "especially_serious"),
            level=decision.leader_level, supervision=decision.supervision))
    for name in decision.tasks:
        spec = policy.tasks[name]
        if spec.duty == "leader":
            assignee = leader.name if leader else ""
        else:
            assignee = members[spec.duty].name if spec.duty in members else ""
        task = Task(task_id=name, title=spec.title, title_en=spec.title_en, duty=spec.duty,
                    assignee=assignee,
                    due_at=now + timedelta(minutes=spec.due_minutes * deadline_scale),
                    sources=[c.model_dump() for c in spec.sources])
        changes.append(case_event(case_id, region, ev.CASE_TASK_ASSIGNED,
                              f"{case_id}:task:{name}:assigned", now,
                              reason=f"{spec.sources[0].doc} {spec.sources[0].passage}",
                              task=task.model_dump(mode="json")))
    return changes


def _why(decision: Decision, *rule_ids: str) -> str:
    """The rules behind a decision, with their sources, as the timeline's `why`."""
    parts = []
    for applied in decision.applied:
        if applied.rule in rule_ids:
            cites = "；".join(f"{c.doc} {c.passage}" for c in applied.sources)
            parts.append(f"{applied.summary}（{cites}）")
    return " / ".join(parts)


# --- commands on an existing case --------------------------------------------------------------

def _require_open(case: Case) -> None:
    if not case.is_open:
        raise Refused(409, "case_not_open", f"case {case.case_id} is {case.status}", "status")


def plan_escalate(case: Case, level: Literal["city", "province"], reason: str, actor: str,
                  roster: Roster, now: datetime, event_id: str) -> list[Change]:
    _require_open(case)
    cid, region = case.case_id, case.region_code
    if level == "city":
        if LEVELS.index(_level(case.leader_level)) >= LEVELS.index("prefecture"):
            raise Refused(409, "already_escalated",
                          "the case is already led at prefecture level or above", "level")
        organ = roster.organ_at(region, "prefecture")
        if organ is None:
            raise Refused(409, "no_organ", f"no prefecture organ over {region}", "level")
        leader = leader_of(organ, roster)
        changes = [case_event(cid, region, ev.CASE_ESCALATED, f"{event_id}:escalated", now, actor,
                          reason, level="city", supervision=case.supervision)]
        changes.append(case_event(cid, region, ev.CASE_LEADER_ASSIGNED, f"{event_id}:leader", now,
                              actor, reason, leader=leader.model_dump(), level="prefecture",
                              previous=case.leader.model_dump() if case.leader else None))
        if case.leader is not None:
            former = Member(duty="local_bureau", name=case.leader.name,
                            title=case.leader.title, phone=case.leader.phone,
                            organ_code=case.leader.organ_code,
                            organ_name=case.leader.organ_name)
            changes.append(case_event(cid, region, ev.CASE_MEMBER_ADDED, f"{event_id}:member", now,
                                  actor, "原专案组长所在公安机关继续参加专案组",
                                  member=former.model_dump()))
        return changes
    if case.supervision == "province":
        raise Refused(409, "already_escalated", "the case is already under provincial "
                      "supervision (挂牌督办)", "level")
    organ = roster.organ_at(region, "province")
    changes = [case_event(cid, region, ev.CASE_ESCALATED, f"{event_id}:escalated", now, actor,
                      reason, level="province", supervision="province")]
    if organ is not None:
        changes.append(case_event(cid, region, ev.CASE_MEMBER_ADDED, f"{event_id}:member", now,
                              actor, "省级公安机关挂牌督办",
                              member=member_of(organ, "supervision", "deputy").model_dump()))
    return changes


def _level(value: str) -> Level:
    for level in LEVELS:
        if level == value:
            return level
    return "county"


def plan_add_member(case: Case, member: Member, reason: str, actor: str, now: datetime,
                    event_id: str) -> list[Change]:
    """A member the rules let others send (博尔塔拉: the procuratorate, 002 §三㈠)."""
    _require_open(case)
    if member.duty not in case.may_add_members:
        allowed = ", ".join(case.may_add_members) or "none"
        raise Refused(409, "member_not_allowed", f"the rules of this case do not let a "
                      f"{member.duty} member join (allowed: {allowed})", "duty")
    return [case_event(case.case_id, case.region_code, ev.CASE_MEMBER_ADDED, event_id, now, actor,
                   reason, member=member.model_dump())]


def plan_release(case: Case, actor: str, now: datetime, event_id: str) -> list[Change]:
    _require_open(case)
    if case.release_approved:
        raise Refused(409, "already_released", "public release is already approved")
    data = ReleaseApproved(case_id=case.case_id, region_code=case.region_code, actor=actor,
                           reason="批准向社会公开发布", at=now,
                           details={"exercise": case.exercise})
    changes = [Change(type=ev.CASE_RELEASE_APPROVED, event_id=f"{event_id}:release",
                      case_id=case.case_id, data=data.model_dump(mode="json"))]
    task = case.task("release_decision")
    if task is not None and task.status == "open":
        changes.append(case_event(case.case_id, case.region_code, ev.CASE_TASK_COMPLETED,
                              f"{event_id}:task", now, actor, "release approved",
                              task_id=task.task_id, note="批准公开发布"))
    return changes


def plan_complete(case: Case, task_id: str, note: str, actor: str, now: datetime,
                  event_id: str) -> list[Change]:
    task = case.task(task_id)
    if task is None:
        raise Refused(404, "not_found", f"no task {task_id} in case {case.case_id}", "task_id")
    _require_open(case)
    if task.status == "done":
        raise Refused(409, "task_done", f"task {task_id} is already done", "task_id")
    return [case_event(case.case_id, case.region_code, ev.CASE_TASK_COMPLETED, event_id, now,
                   actor, note, task_id=task_id, note=note)]


def cancels(case: Case) -> list[str]:
    """What a found on this case cancels: its alert (and its linked reports', the same child),
    for hubs, and for media, volunteers and the public feed once released."""
    audiences = "hubs, case group" + (", media, volunteers, public feed"
                                      if case.release_approved else "")
    ids = [case.case_id, *(link.case_id for link in case.links)]
    return [f"A-{cid} ({audiences})" for cid in ids]


def plan_found(case: Case, outcome: Outcome, found_at: datetime, note: str, actor: str,
               now: datetime, event_id: str, confirm: bool = False,
               child: str | None = None, receiving_organisation: str = "",
               record_id: str | None = None) -> list[Change]:
    """Found (or a false report) for the one child of this case. `child`, when given, must be
    that child's name (normalised); a public alert is cancelled only with `confirm`.
    `placed_with_civil_affairs` (no guardian found, or the guardian unfit: 002 §三㈥4.) needs
    the `receiving_organisation`; `record_id` names the unidentified-child record the child was
    found as (issue 16)."""
    if outcome == "placed_with_civil_affairs" and not receiving_organisation.strip():
        raise Refused(422, "receiving_organisation_required", "placement with civil affairs "
                      "needs the receiving organisation", "receiving_organisation")
    _require_open(case)
    if child is not None and normalise_name(child) != normalise_name(case.child_name):
        raise Refused(409, "child_mismatch", f"case {case.case_id} is the search for "
                      f"{case.child_name}, not {child}; mark found on that child's case",
                      "child")
    if case.release_approved and not case.exercise and not confirm:
        raise Refused(409, "confirm_required", "the child's alert is public; send "
                      "confirm: true to cancel: " + "; ".join(cancels(case)), "confirm")
    data = CaseFound(case_id=case.case_id, region_code=case.region_code, actor=actor,
                     reason=note, at=now, outcome=outcome, found_at=found_at,
                     receiving_organisation=receiving_organisation, record_id=record_id,
                     details={"note": note, "exercise": case.exercise})
    return [Change(type=ev.CASE_FOUND, event_id=event_id, case_id=case.case_id,
                   data=data.model_dump(mode="json"))]


def plan_reopen(case: Case, reason: str, actor: str, now: datetime,
                event_id: str) -> list[Change]:
    """A wrong found undone: the search goes on (notify re-alerts everyone who got the Cancel;
    the radius continues from the original last-seen time)."""
    if case.status not in ("found", "false_report"):
        raise Refused(409, "not_found_yet", f"case {case.case_id} is {case.status}; only a "
                      "found (or false report) can be reopened", "status")
    data = CaseReopened(case_id=case.case_id, region_code=case.region_code, actor=actor,
                        reason=reason, at=now, previous_outcome=case.outcome or "",
                        details={"exercise": case.exercise})
    return [Change(type=ev.CASE_REOPENED, event_id=event_id, case_id=case.case_id,
                   data=data.model_dump(mode="json"))]


def plan_close(case: Case, reason: str, actor: str, now: datetime,
               event_id: str) -> list[Change]:
    if case.status == "closed":
        raise Refused(409, "case_closed", f"case {case.case_id} is already closed", "status")
    if case.is_open:
        raise Refused(409, "case_unsolved",
                      "案件不破，专案组不撤: the case is neither found nor solved; mark it found "
                      "(or a false report) first", "status")
    return [case_event(case.case_id, case.region_code, ev.CASE_CLOSED, event_id, now, actor,
                   reason)]


def plan_tip(case: Case, tip: TipReceived, now: datetime,
             assessment: TipAssessment | None = None) -> list[Change]:
    """Attach a tip (kept beside the case, not in it: services/dispatch/tips.py); whether it
    was attached before is the caller's question to that store. `assessment` (tips_domain.py)
    travels with it: notify pushes it to the leader and the investigation member."""
    notified = [case.leader.name] if case.leader else []
    investigator = case.duties.get("investigation")
    if investigator is not None:
        notified.append(investigator.name)
    attached = Tip(tip_id=tip.tip_id, case_id=tip.case_id, seen_at=tip.seen_at,
                   location=tip.location.model_dump(), description=tip.description,
                   contact=tip.contact, received_at=tip.received_at, source=tip.source,
                   hub_id=tip.hub_id, notified=notified, assessment=assessment)
    extra: dict[str, Any] = {"assessment": assessment.model_dump(mode="json")} \
        if assessment else {}
    return [case_event(case.case_id, case.region_code, ev.CASE_TIP_ATTACHED,
                   f"{case.case_id}:tip:{tip.tip_id}", now, f"tip:{tip.source}",
                   tip=attached.model_dump(mode="json"),
                   notify=[m.model_dump() for m in _leader_and_investigator(case)], **extra)]


def _leader_and_investigator(case: Case) -> list[Member]:
    out = []
    if case.leader is not None:
        out.append(Member(duty="leader", name=case.leader.name, title=case.leader.title,
                          phone=case.leader.phone, organ_code=case.leader.organ_code,
                          organ_name=case.leader.organ_name))
    investigator = case.duties.get("investigation")
    if investigator is not None:
        out.append(investigator)
    return out


def plan_overdue(case: Case, task_id: str, now: datetime) -> list[Change]:
    task = case.task(task_id)
    if task is None or task.status != "open" or not case.is_open:
        return []
    count = task.overdue_count + 1
    return [case_event(case.case_id, case.region_code, ev.CASE_TASK_OVERDUE,
                   f"{case.case_id}:task:{task_id}:overdue:{count}", now, "dispatch",
                   f"时限已过（{people_time(task.due_at)}），向专案组长报告",
                   task_id=task_id, count=count, assignee=task.assignee,
                   notify=[m.model_dump() for m in _leader_and_investigator(case)[:1]])]


def plan_handover(case: Case, organ: Organ, post: str, reason: str, actor: str,
                  roster: Roster, now: datetime, event_id: str) -> list[Change]:
    """The leader of an open case became unavailable: the next in line takes over."""
    leader = case.leader
    if not case.is_open or leader is None or leader.organ_code != organ.code \
            or leader.post != post:
        return []
    successor = leader_of(organ, roster)
    if successor.name == leader.name and successor.organ_code == leader.organ_code:
        return []
    return [case_event(case.case_id, case.region_code, ev.CASE_LEADER_ASSIGNED,
                   f"{event_id}:{case.case_id}", now, actor, reason, handover=True,
                   leader=successor.model_dump(), level=case.leader_level,
                   previous=leader.model_dump())]
