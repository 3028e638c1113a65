"""Payloads of the case events dispatch writes on homeward.dispatch.v1 (the only writer of case
state): the opened case, then every `homeward.case.*.v1` after it, and the amendments of a
child's details (dispatch's, and the operators' through alert before the case group formed;
issue 18 §5). The event type names are shared.events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.identity import LinkEvidence
from shared.report import PlaceConflict

__all__ = ["AMENDABLE_DETAILS", "CaseEvent", "CaseFound", "CaseOpened", "CasePurged",
           "CaseReopened", "ChildProfile", "DetailsAmended", "IncidentTied", "Leader", "Outcome",
           "ReleaseApproved", "ReportAmended", "ReportLinked", "ReportUnlinked"]


class Leader(BaseModel):
    organ_code: str
    organ_name: str
    name: str
    title: str
    phone: str = ""
    post: str = Field(default="head", description="head, or deputy when the head is away")


class ChildProfile(BaseModel):
    """What an unidentified child is matched on (issue 16), from the report; `description` is
    sealed with the case's key (shared.pii.CASE_OPENED_FIELDS)."""

    sex: str
    age: int = Field(description="completed years at the last sighting")
    height_cm: int | None = None
    description: str = ""


class CaseOpened(BaseModel):
    """Data of `homeward.case.opened.v1`."""

    case_id: str
    report_id: str
    region_code: str
    opened_at: datetime
    priority: str
    mechanisms: list[str]
    leader: Leader | None
    exercise: bool = False
    # What the case projection is rebuilt from on replay (all optional for older events).
    child_name: str = ""
    kind: str = "missing"
    subject: str = "child"
    last_seen_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    operator_region: str = ""
    leader_level: str = "county"
    supervision: str | None = None
    may_add_members: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list,
                                        description="the rules applied, with their sources")
    duplicate_keys: list[str] = Field(
        default_factory=list, description="child-identity keys (keyed HMACs, shared/identity.py) "
        "the case claims; internal, never served by an API")
    place_conflict: PlaceConflict | None = Field(
        default=None, description="the report's place parts disagreed at intake (issue 11)")
    linked_to: str | None = Field(
        default=None, description="a second report of the same child: the case id of the one "
        "case group it joined (no group of its own); found/closed/release of that case are "
        "mirrored under this case id")
    child_profile: ChildProfile | None = Field(
        default=None, description="sex, age, height and description for matching "
        "unidentified-child records (issue 16)")


class CaseEvent(BaseModel):
    """Data of every `homeward.case.*.v1` event after `opened`: who did what to which case, why.

    `details` carries the type-specific part (e.g. the task for task_*, the member for
    member_added, `{"level": "city"}` for escalated); the types notify relies on have their own
    models below.
    """

    case_id: str
    region_code: str
    actor: str = Field(description="`sub` of who acted, or `dispatch` for the rules engine")
    reason: str = ""
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class ReportLinked(CaseEvent):
    """Data of `homeward.case.report_linked.v1`, keyed by the case the report joined."""

    report_id: str
    duplicate_case_id: str = Field(description="the case id the report's operator was given")
    evidence: LinkEvidence


class ReportUnlinked(CaseEvent):
    """Data of `homeward.case.report_unlinked.v1`, keyed by the case the report had joined:
    the report is a child of its own again (its case group is opened under
    `duplicate_case_id`, and notify gives it an alert of its own)."""

    report_id: str
    duplicate_case_id: str


class IncidentTied(CaseEvent):
    """Data of `homeward.case.incident_tied.v1`, on every case of the incident: the leading
    case's id and every case (child) of the incident. Nothing is mirrored between them."""

    incident_id: str = Field(description="the leading case's id")
    cases: list[str]


class CaseReopened(CaseEvent):
    """Data of `homeward.case.reopened.v1`: the search goes on; the radius continues from the
    original last-seen time."""

    previous_outcome: str = ""


class ReleaseApproved(CaseEvent):
    """Data of `homeward.case.release_approved.v1`: public audiences may now be told."""


class CaseFound(CaseEvent):
    """Data of `homeward.case.found.v1`: every recipient gets a cancellation."""

    outcome: Literal["found_safe", "found_harmed", "found_deceased", "false_report",
                     "placed_with_civil_affairs"]
    found_at: datetime
    receiving_organisation: str = Field(
        default="", description="placed_with_civil_affairs: the civil-affairs organisation "
        "that received the child (002 §三㈥4.: 交由民政部门予以妥善安置)")
    record_id: str | None = Field(
        default=None, description="the unidentified-child record the child was found as "
        "(a confirmed candidate, issue 16)")


class CasePurged(CaseEvent):
    """Data of `homeward.case.purged.v1`: personal data of the case's child, reporter and
    tipsters is gone (its data key deleted, shared/casekeys.py); ids, region, times, leader,
    duties, decisions and outcomes stay (issue 13 §3)."""

    outcome: str = Field(description="the outcome the purge followed (found_*, false_report, "
                         "closed)")
    ended_at: datetime = Field(description="when the case ended; the purge is grace later")


class DetailsAmended(CaseEvent):
    """Data of `homeward.case.details_amended.v1` (dispatch `PATCH /api/v1/cases/{id}/details`):
    `details.amended` the new values (field → value, keys of AMENDABLE_DETAILS; personal:
    sealed with the case key, shared.casekeys.DISPATCH_FIELDS), `details.fields` their names
    (clear: the timeline's "who amended what")."""

    @property
    def amended(self) -> dict[str, Any]:
        value = self.details.get("amended")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def fields(self) -> list[str]:
        return [str(f) for f in self.details.get("fields", [])]


class ReportAmended(DetailsAmended):
    """Data of `homeward.report.amended.v1` (alert `PATCH /api/v1/reports/{report_id}`): the
    same shape as DetailsAmended (`details.amended` sealed with the case key under the same
    path, `details.fields` clear), plus the report it amends; `actor` the operator's `sub`."""

    report_id: str


# What `PATCH /api/v1/cases/{case_id}/details` may change (issue 18 §5): paths into the report
# (shared.report; clothing is part of the child's `description` there).
AMENDABLE_DETAILS: dict[str, tuple[str, str]] = {
    "description": ("child", "description"),
    "photo_urls": ("child", "photo_urls"),
    "height_cm": ("child", "height_cm"),
    "weight_kg": ("child", "weight_kg"),
    "suspect": ("circumstances", "suspect"),
    "vehicle": ("circumstances", "vehicle"),
}


# How a search ends (the `outcome` of CaseFound); named for the Cancel preview (issue 17 §4).
Outcome = Literal["found_safe", "found_harmed", "found_deceased", "false_report",
                  "placed_with_civil_affairs"]
