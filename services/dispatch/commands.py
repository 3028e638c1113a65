"""The commanders' commands on an open case, free of I/O: escalate (to the city, or under
provincial supervision 挂牌督办), add a member the rules allow, approve public release, complete
a task. Each plans its events or refuses with a reason (domain.Refused).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.dispatch.domain import Case, Change, Member, Refused, case_event, require_open
from services.dispatch.opening import leader_of, member_of
from services.dispatch.roster import Roster
from services.dispatch.rules import LEVELS, Level
from shared import events as ev
from shared.events import ReleaseApproved

__all__ = ["plan_add_member", "plan_complete", "plan_escalate", "plan_release"]


def plan_escalate(case: Case, level: Literal["city", "province"], reason: str, actor: str,
                  roster: Roster, now: datetime, event_id: str) -> list[Change]:
    """To the city: led by the prefecture organ's leader, the former leader's organ staying as
    a member (409 already_escalated at prefecture level or above, no_organ). To the province:
    provincial supervision (挂牌督办), its deputy a member (409 already_escalated)."""
    require_open(case)
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
    require_open(case)
    if member.duty not in case.may_add_members:
        allowed = ", ".join(case.may_add_members) or "none"
        raise Refused(409, "member_not_allowed", f"the rules of this case do not let a "
                      f"{member.duty} member join (allowed: {allowed})", "duty")
    return [case_event(case.case_id, case.region_code, ev.CASE_MEMBER_ADDED, event_id, now, actor,
                       reason, member=member.model_dump())]


def plan_release(case: Case, actor: str, now: datetime, event_id: str) -> list[Change]:
    """Public release approved (409 already_released), completing the release_decision task
    when it is open."""
    require_open(case)
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
    """A task done, with a note (404 not_found for an unknown task, 409 task_done)."""
    task = case.task(task_id)
    if task is None:
        raise Refused(404, "not_found", f"no task {task_id} in case {case.case_id}", "task_id")
    require_open(case)
    if task.status == "done":
        raise Refused(409, "task_done", f"task {task_id} is already done", "task_id")
    return [case_event(case.case_id, case.region_code, ev.CASE_TASK_COMPLETED, event_id, now,
                       actor, note, task_id=task_id, note=note)]

