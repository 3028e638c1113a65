"""How the search of a case ends or resumes, free of I/O: found (or a false report), reopened
when the found was wrong, closed once found — never before (案件不破，专案组不撤). Nothing ends
a search except these deliberate commands.
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch.domain import Case, Change, Outcome, Refused, case_event, require_open
from shared import events as ev
from shared.case_ids import alert_id
from shared.events import CaseFound, CaseReopened
from shared.identity import normalise_name

__all__ = ["cancels", "plan_close", "plan_found", "plan_reopen"]


def cancels(case: Case) -> list[str]:
    """What a found on this case cancels: its alert (and its linked reports', the same child),
    for hubs, and for media, volunteers and the public feed once released."""
    audiences = "hubs, case group" + (", media, volunteers, public feed"
                                      if case.release_approved else "")
    ids = [case.case_id, *(link.case_id for link in case.links)]
    return [f"{alert_id(cid)} ({audiences})" for cid in ids]


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
    require_open(case)
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
    if case.purged_at is not None:
        # Nothing is left to search with: the child's name, photos and description were
        # destroyed with the case key (issue 13), so notify could re-alert no one.
        raise Refused(409, "case_purged", f"case {case.case_id}'s personal data was purged at "
                      f"{case.purged_at.isoformat()}; a search cannot be reopened without it: "
                      "file a new report (it forms a new case group)", "status")
    data = CaseReopened(case_id=case.case_id, region_code=case.region_code, actor=actor,
                        reason=reason, at=now, previous_outcome=case.outcome or "",
                        details={"exercise": case.exercise})
    return [Change(type=ev.CASE_REOPENED, event_id=event_id, case_id=case.case_id,
                   data=data.model_dump(mode="json"))]


def plan_close(case: Case, reason: str, actor: str, now: datetime,
               event_id: str) -> list[Change]:
    """The case group stood down: only once found or a false report (409 case_unsolved while
    the search goes on, case_closed when already closed)."""
    if case.status == "closed":
        raise Refused(409, "case_closed", f"case {case.case_id} is already closed", "status")
    if case.is_open:
        raise Refused(409, "case_unsolved",
                      "案件不破，专案组不撤: the case is neither found nor solved; mark it found "
                      "(or a false report) first", "status")
    return [case_event(case.case_id, case.region_code, ev.CASE_CLOSED, event_id, now, actor,
                       reason)]

