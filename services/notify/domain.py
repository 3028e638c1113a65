"""An alert's state and how it changes, free of I/O (issue 18 §1: the planner loads, decides
with these rules and publishes): ids, the radius tiers of the national platform, versions
(Alert, Update, Cancel), dispatch's notes of a case, and a child's report merged with a second
report or amended. Who may hear of an alert is in `audience`, what they read in `content`;
delivery's rules are in `delivery_rules` and `ledger_rules`."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared import case_ids
from shared.case_ids import ALERT_ID, CASE_ID
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CaseEvent,
    CaseFound,
    CaseOpened,
)
from shared.identity import LinkEvidence
from shared.verification import short_code

__all__ = ["ALERT_ID", "CASE_ID", "AlertState", "CaseNotes", "MergedReport", "VersionInfo",
           "alert_id_of", "amend_report", "delivery_id", "fold_notes", "merge_report",
           "next_boundary", "radius_km"]



# --- radius tiers ------------------------------------------------------------------------------


def radius_km(elapsed: timedelta, tiers: list[tuple[float, float]], max_km: float,
              unit_s: float = 3600.0) -> float:
    """The radius of the national platform: 100 km within 1 h, 200 within 2 h, 300 within 3 h,
    then 500 (tiers are (hours, km) pairs in ascending order; `unit_s` seconds per hour)."""
    hours = max(elapsed.total_seconds(), 0) / unit_s
    for limit_h, km in tiers:
        if hours <= limit_h:
            return km
    return max_km


def next_boundary(seen_at: datetime, now: datetime, tiers: list[tuple[float, float]],
                  unit_s: float = 3600.0) -> datetime | None:
    """When the radius next grows (just after the next tier's limit), or None at the last tier."""
    for limit_h, _ in tiers:
        boundary = seen_at + timedelta(seconds=limit_h * unit_s + 0.001)
        if boundary > now:
            return boundary
    return None


# --- ids ---------------------------------------------------------------------------------------


def alert_id_of(case_id: str) -> str:
    return case_ids.alert_id(case_id)


def delivery_id(alert_id: str, version: int, subscriber_id: str) -> str:
    """Stable per (alert version, recipient): the webhook-id of every retry of that delivery."""
    digest = hashlib.sha256(f"{alert_id}|{version}|{subscriber_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


# --- alert state -------------------------------------------------------------------------------


class MergedReport(BaseModel):
    """A second report of the child of this alert (shared/identity.py): its details reached
    everyone as an Update instead of a second Alert. Kept as accepted, so that an unlink by the
    commander gives that report an alert of its own."""

    report_id: str
    case_id: str
    accepted: dict[str, Any]
    evidence: LinkEvidence


class VersionInfo(BaseModel):
    version: int
    msg_type: Literal["Alert", "Update", "Cancel"]
    sent: datetime
    radius_km: float
    note: str = ""


class AlertState(BaseModel):
    """One alert per case; each change (widening, release, cancellation) is a new version."""

    alert_id: str
    case_id: str
    region_code: str
    exercise: bool
    released: bool
    cancelled: bool = False
    outcome: str = ""
    seen_at: datetime
    lat: float
    lon: float
    radius_km: float
    version: int = 1
    issued_at: datetime
    versions: list[VersionInfo]
    # The accepted report (restricted content); dropped at cancellation.
    report: dict[str, Any] | None = None
    leader: dict[str, Any] | None = None
    # Internal, never rendered: the report kept through a cancellation so that a reopen can
    # issue the alert again; other reports of the same child merged into this alert.
    held_report: dict[str, Any] | None = None
    merged: list[MergedReport] = Field(default_factory=list)

    @property
    def short_code(self) -> str:
        """What people type on /verify (shared.verification.short_code of the alert id)."""
        return short_code(self.alert_id)

    @property
    def public_listed(self) -> bool:
        return self.released and not self.exercise and not self.cancelled

    @property
    def status(self) -> str:
        return "Exercise" if self.exercise else "Actual"

    def bump(self, msg_type: Literal["Alert", "Update", "Cancel"], at: datetime,
             note: str = "") -> None:
        self.version += 1
        self.versions.append(VersionInfo(version=self.version, msg_type=msg_type, sent=at,
                                         radius_km=self.radius_km, note=note))


class CaseNotes(BaseModel):
    """What dispatch said about a case, kept even when it arrives before the report."""

    released: bool = False
    found: bool = False
    outcome: str = ""
    leader: dict[str, Any] | None = None
    members: list[dict[str, Any]] = Field(default_factory=list)


def fold_notes(notes: CaseNotes, event_type: str, data: dict[str, Any]) -> CaseNotes:
    """What one of dispatch's events adds to the notes of its case (as the handlers do live)."""
    if event_type == CASE_OPENED:
        opened = CaseOpened.model_validate(data)
        if opened.leader is not None:
            notes.leader = opened.leader.model_dump(mode="json")
    elif event_type == CASE_MEMBER_ADDED:
        details = CaseEvent.model_validate(data).details
        member = details.get("member", details)
        if isinstance(member, dict) and member.get("phone") and all(
                m.get("phone") != member["phone"] for m in notes.members):
            notes.members.append(member)
    elif event_type == CASE_RELEASE_APPROVED:
        notes.released = True
    elif event_type == CASE_FOUND and not notes.found:
        notes.found, notes.outcome = True, CaseFound.model_validate(data).outcome
    elif event_type == CASE_REOPENED:
        notes.found, notes.outcome = False, ""
    return notes


def merge_report(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The alert's restricted content after a second report of the same child: the first
    report's place and time stay (the radius keeps growing from the first sighting); what the
    second adds — description, photos, suspect, vehicle, notes — is added."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in first.items()}
    child, other = out.setdefault("child", {}), second.get("child") or {}
    for key in ("description",):
        if other.get(key) and other[key] not in str(child.get(key, "")):
            child[key] = "；".join(x for x in (child.get(key), other[key]) if x)
    child["photo_urls"] = list(dict.fromkeys([*child.get("photo_urls", []),
                                              *other.get("photo_urls", [])]))
    for key in ("height_cm", "weight_kg", "id_number"):
        if child.get(key) is None and other.get(key) is not None:
            child[key] = other[key]
    circ, more = out.setdefault("circumstances", {}), second.get("circumstances") or {}
    for key in ("suspect", "vehicle", "companions", "notes"):
        if more.get(key) and more[key] not in str(circ.get(key, "")):
            circ[key] = "；".join(x for x in (circ.get(key), more[key]) if x)
    return out


def amend_report(report: dict[str, Any], amended: dict[str, Any],
                 paths: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The alert's restricted content after the commander's amendment (issue 18 §5,
    homeward.case.details_amended.v1): each amended field (a key of `paths`, e.g.
    shared.events.AMENDABLE_DETAILS) replaces the report's value at its path; others are
    ignored. Returns a new dict; equal to `report` when nothing changed."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in report.items()}
    for name, value in amended.items():
        if name in paths:
            part, key = paths[name]
            out.setdefault(part, {})[key] = value
    return out
