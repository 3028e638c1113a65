"""What follows on a case from something happening rather than from a commander, free of I/O:
a tip arrives (attached; the leader and the investigation member are told), a task's deadline
passes (reported to the leader, repeated), the leader becomes unavailable (the next in line
takes over, roster.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.dispatch.domain import Case, Change, Member, Tip, case_event
from services.dispatch.opening import leader_of
from services.dispatch.roster import Organ, Roster
from shared import events as ev
from shared.display import people_time
from shared.events import TipAssessment, TipReceived

__all__ = ["plan_handover", "plan_overdue", "plan_tip"]


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
    """An open task past its deadline reported to the leader, counted (each repeat its own
    event id); nothing when the task is done or the case is no longer open."""
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
