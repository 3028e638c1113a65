"""The case group's model, free of I/O: the case, its members, tasks and timeline, and the
events (`Change`) that make it.

Commands look at the current case and decide which events happen, or refuse with a reason:
the group formed for a new report (opening.py), the commanders' commands (commands.py), the
search ended or resumed (ending.py), what follows from a tip, a deadline or a leader's absence
(reactions.py). services.dispatch.projection folds each event into the case; replaying the
dispatch topic through it rebuilds the same cases with the same timelines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.dispatch.records import Candidate, DnaSample
from services.dispatch.tips_domain import LocalCheck
from shared import errors
from shared import events as ev
from shared.events import CaseEvent, ChildProfile, Leader, TipAssessment
from shared.identity import LinkEvidence
from shared.report import PlaceConflict

__all__ = ["OPEN", "Case", "Change", "Escalation", "Link", "Member", "Outcome", "Refused",
           "Status", "Task", "TimelineEntry", "Tip", "case_event", "require_open"]

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
    found_at: datetime | None = None  # as the commander gave it
    found_recorded_at: datetime | None = None  # when the found was recorded (purge clock)
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


def case_event(case_id: str, region: str, type_: str, event_id: str, at: datetime,
               actor: str = "dispatch", reason: str = "", **details: Any) -> Change:
    """A CaseEvent (shared/events.py) of `type_` on the case, `details` as its details."""
    data = CaseEvent(case_id=case_id, region_code=region, actor=actor, reason=reason, at=at,
                     details=details)
    return Change(type=type_, event_id=event_id, case_id=case_id,
                  data=data.model_dump(mode="json"))


def require_open(case: Case) -> None:
    """Refused (409 case_not_open) unless the search of `case` goes on."""
    if not case.is_open:
        raise Refused(409, "case_not_open", f"case {case.case_id} is {case.status}", "status")
