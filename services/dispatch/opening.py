"""The case group formed for a new report, free of I/O: which rules fire (rules.yaml, see
rules.py) decides its priority, mechanisms, leader level, duties and tasks; the roster
(roster.py) gives the people — the organ's head, its deputy when the head is away, the organ
above when both are (一长三员, 002 §三㈠).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.dispatch.domain import Change, Member, Task, case_event
from services.dispatch.roster import Organ, Roster
from services.dispatch.rules import Decision, Facts, Policy, decide
from shared import events as ev
from shared.events import CaseOpened, ChildProfile, Leader
from shared.identity import identity_of
from shared.regions import within
from shared.report import ADULT_AGE, ReportAccepted, Subject

__all__ = ["facts_of", "identity_keys", "leader_of", "member_of", "plan_open"]


def facts_of(accepted: ReportAccepted) -> Facts:
    """The facts the rules decide on (rules.py): region, subject, kind, minor at the last-seen
    date, especially serious, and whether the operator is outside the last-seen region."""
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
    """The organ's member for `duty` (or the person at `post`: head, deputy) as a case member."""
    person = getattr(organ, post) if post else organ.members[duty]
    return Member(duty=duty, name=person.name, title=person.title, phone=person.phone,
                  organ_code=organ.code, organ_name=organ.name)


def identity_keys(accepted: ReportAccepted, secret: str) -> list[str]:
    """The child's identity keys (keyed HMACs, shared/identity.py); never the reporter's phone."""
    return identity_of(accepted).keys(secret)


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


