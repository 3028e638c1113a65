"""Links between reports of one child, and who may end or widen a search — pure rules.

A link needs evidence that it is the same child (shared/identity.py); it is recorded on the
case with that evidence and can be undone by the commander (`plan_unlink`). Release, found,
close, unlink and reopen belong to the case leader's organ level or above (issue 19 §1, §4).
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch.domain import Case, Change, Refused, case_event
from shared import events as ev
from shared.events import CaseOpened, IncidentTied, ReportLinked, ReportUnlinked
from shared.identity import LinkEvidence
from shared.regions import within
from shared.report import ReportAccepted


def leading_organ(case: Case) -> tuple[str, str]:
    """(organ code, name) of the organ whose head leads the case group (the county of the
    case's place when no leader could be named)."""
    if case.leader is not None:
        return case.leader.organ_code, case.leader.organ_name
    return case.region_code, ""


def require_authority(case: Case, region: str, action: str) -> None:
    """Release, found, close, unlink and reopen belong to the case leader's organ level or
    above (一长三包: the leader answers for the case; issue 19 §4): the caller's region must
    contain the leading organ. After escalation to the city a county commander is refused."""
    code, name = leading_organ(case)
    if not within(region, code):
        raise Refused(403, "below_leader_level",
                      f"{action}: the case is led by {name or code} ({code}, "
                      f"{case.leader_level} level); only that level or above may {action} "
                      f"(your region: {region})", "case_id")


def plan_link(case: Case, accepted: ReportAccepted, evidence: LinkEvidence,
              now: datetime) -> list[Change]:
    """A second report of the same child (identity evidence, near in time and place) joins the
    open case group: recorded on that case with the evidence, and announced under the report's
    own case id (which the operator was given) as opened with the same leader and `linked_to`,
    so the report's followers learn who answers for it."""
    if any(link.report_id == accepted.report_id for link in case.links):
        return []
    alias = CaseOpened(
        case_id=accepted.case_id, report_id=accepted.report_id, region_code=case.region_code,
        opened_at=now, priority=case.priority, mechanisms=case.mechanisms, leader=case.leader,
        exercise=accepted.report.exercise, child_name=accepted.report.child.name,
        kind=case.kind, subject=case.subject, linked_to=case.case_id,
        operator_region=accepted.operator_region)
    alias_id = accepted.case_id
    rule = "姓名与出生日期相同" if evidence.rule == "name_birth_date" else "身份证号相同"
    linked = ReportLinked(
        case_id=case.case_id, region_code=case.region_code, actor="dispatch",
        reason=f"同一儿童（{rule}，相距{evidence.distance_km:g}公里、{evidence.hours_apart:g}小时）"
               "再次报案，并入已有专案组",
        at=now, report_id=accepted.report_id, duplicate_case_id=alias_id, evidence=evidence,
        details={"operator": accepted.operator, "match": evidence.rule,
                 "accepted": accepted.model_dump(mode="json")})
    changes = [Change(type=ev.CASE_REPORT_LINKED,
                      event_id=f"{case.case_id}:linked:{accepted.report_id}",
                      case_id=case.case_id, data=linked.model_dump(mode="json")),
               Change(type=ev.CASE_OPENED, event_id=f"{alias_id}:opened", case_id=alias_id,
                      data=alias.model_dump(mode="json"))]
    for member in case.members:  # the group, announced under the report's id too
        changes.append(case_event(alias_id, case.region_code, ev.CASE_MEMBER_ADDED,
                              f"{alias_id}:member:{member.duty}:{member.organ_code}", now,
                              reason="并入已有专案组", member=member.model_dump(),
                              linked_to=case.case_id))
    return changes


def plan_unlink(case: Case, report_id: str, reason: str, actor: str, now: datetime,
                event_id: str) -> tuple[list[Change], ReportAccepted]:
    """Undo a link: the event on this case, and the report as accepted, whose own case group
    the caller then opens (`plan_open`)."""
    link = next((x for x in case.links if x.report_id == report_id), None)
    if link is None:
        raise Refused(404, "not_linked", f"report {report_id} is not linked to case "
                      f"{case.case_id}", "report_id")
    held = case.held_reports.get(link.case_id)
    if held is None:
        raise Refused(409, "report_not_held", f"report {report_id} was linked before reports "
                      "were kept for unlinking; open it anew", "report_id")
    data = ReportUnlinked(case_id=case.case_id, region_code=case.region_code, actor=actor,
                          reason=reason, at=now, report_id=report_id,
                          duplicate_case_id=link.case_id,
                          details={"evidence": link.evidence.model_dump(mode="json")})
    return ([Change(type=ev.CASE_REPORT_UNLINKED, event_id=f"{event_id}:unlinked",
                    case_id=case.case_id, data=data.model_dump(mode="json"))],
            ReportAccepted.model_validate(held))


def plan_incident(lead: Case, others: list[Case], reason: str, actor: str, now: datetime,
                  event_id: str) -> list[Change]:
    """Tie the cases of several children of one incident under `lead`: each case records the
    incident (who, why); every child keeps its own alert, found state and Cancel (issue 19 §2)."""
    cases = [lead, *others]
    ids = list(dict.fromkeys(c.case_id for c in cases))
    if len(ids) < 2:
        raise Refused(422, "incident_needs_two", "an incident ties at least two cases",
                      "case_ids")
    for case in cases:
        if case.exercise != lead.exercise:
            raise Refused(409, "drill_and_real", "a drill is never tied to a real case",
                          "case_ids")
        if case.incident is not None and case.incident != lead.case_id:
            raise Refused(409, "in_another_incident", f"case {case.case_id} is already in "
                          f"incident {case.incident}", "case_ids")
    changes = []
    for case in cases:
        data = IncidentTied(case_id=case.case_id, region_code=case.region_code, actor=actor,
                            reason=reason, at=now, incident_id=lead.case_id, cases=ids)
        changes.append(Change(type=ev.CASE_INCIDENT_TIED, event_id=f"{event_id}:{case.case_id}",
                              case_id=case.case_id, data=data.model_dump(mode="json")))
    return changes


MIRRORED = frozenset({ev.CASE_LEADER_ASSIGNED, ev.CASE_MEMBER_ADDED, ev.CASE_RELEASE_APPROVED,
                      ev.CASE_FOUND, ev.CASE_CLOSED, ev.CASE_REOPENED})


def mirror(case: Case, changes: list[Change]) -> list[Change]:
    """The same changes under each linked report's case id (for those who follow that id:
    notify's alerts for it are cancelled when the child is found, and so on). Links hold only
    on evidence that it is the same child, so a found never reaches another child."""
    out = list(changes)
    linked = [link.case_id for link in case.links]
    for change in changes:
        if change.type not in MIRRORED or change.case_id != case.case_id:
            continue
        for alias in linked:
            data = dict(change.data, case_id=alias)
            data["details"] = dict(data.get("details") or {}, linked_to=case.case_id)
            out.append(Change(type=change.type, event_id=f"{change.event_id}:{alias}",
                              case_id=alias, data=data))
    return out


