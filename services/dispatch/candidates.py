"""Candidates: unidentified-child records scored against a case (issue 16 item 4), as events on
the case log — proposed (by the matching rule, services/dispatch/matching.py) and confirmed (by
the commander, which marks the child found and cancels the alert as any found does, or by a DNA
match, dna.py, which links without ending the search: ending it stays a deliberate act).

Pure: plans return `Change`s, `apply_*` fold them into the case (registered in projection.APPLIERS).
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch import projection
from services.dispatch.domain import Case, Change, Outcome, Refused, case_event
from services.dispatch.ending import plan_found
from services.dispatch.matching import FoundChild, MissingChild, Score
from services.dispatch.records import Candidate
from shared import events as ev
from shared.events import CaseEvent
from shared.unidentified import UnidentifiedChildReported


def missing_child(case: Case) -> MissingChild | None:
    """The case side of the rule; None when the case cannot be matched (no profile or place:
    an old event, or a linked report's alias) or is not a live search."""
    profile = case.child_profile
    if not case.is_open or profile is None or case.lat is None or case.lon is None:
        return None
    return MissingChild(sex=profile.sex, age=profile.age, height_cm=profile.height_cm,
                        description=profile.description,
                        last_seen_at=case.last_seen_at or case.opened_at,
                        lat=case.lat, lon=case.lon)


def found_child(record: UnidentifiedChildReported) -> FoundChild:
    return FoundChild(sex=record.sex.value, age_min=record.age_min, age_max=record.age_max,
                      height_cm=record.height_cm, description=record.description,
                      found_at=record.found_at, lat=record.lat, lon=record.lon)


def comparable(case: Case, record: UnidentifiedChildReported) -> bool:
    """Whether the pair may be compared at all: a drill only with a drill, a record only once
    per case."""
    return record.exercise == case.exercise and not any(
        c.record_id == record.record_id for c in case.candidates)


def plan_propose(case: Case, record: UnidentifiedChildReported, scored: Score,
                 now: datetime) -> list[Change]:
    """The record as a candidate of the case (stable event id: a redelivered record proposes
    nothing twice)."""
    if not comparable(case, record):
        return []
    offered = Candidate(
        record_id=record.record_id, region_code=record.region_code,
        organisation=record.organisation, found_at=record.found_at, sex=record.sex.value,
        age_min=record.age_min, age_max=record.age_max, height_cm=record.height_cm,
        score=scored.score, reasons=scored.reasons, distance_km=scored.distance_km,
        hours_since=scored.hours_since, proposed_at=now)
    return [case_event(case.case_id, case.region_code, ev.CASE_CANDIDATE_PROPOSED,
                       f"{case.case_id}:candidate:{record.record_id}", now, "dispatch",
                       "来历不明儿童比对（002 §三㈢）", candidate=offered.model_dump(mode="json"))]


def plan_confirm(case: Case, record_id: str, outcome: Outcome, found_at: datetime | None,
                 note: str, actor: str, now: datetime, event_id: str, confirm: bool = False,
                 receiving_organisation: str = "") -> list[Change]:
    """The commander confirms the record is this case's child: the candidate is confirmed and
    the case found with `outcome` (default time: when the child was found), naming the record
    — the usual Cancel follows. 404 `not_a_candidate`; the found's own refusals (case not open,
    public alert without `confirm`, placement without receiving organisation)."""
    offered = next((c for c in case.candidates if c.record_id == record_id), None)
    if offered is None:
        raise Refused(404, "not_a_candidate", f"record {record_id}", "record_id")
    found = plan_found(case, outcome, found_at or offered.found_at, note, actor, now,
                       f"{event_id}:found", confirm, None, receiving_organisation, record_id)
    confirmed = case_event(case.case_id, case.region_code, ev.CASE_CANDIDATE_CONFIRMED,
                           f"{event_id}:confirmed", now, actor, note, record_id=record_id,
                           via="commander")
    return [confirmed, *found]


def plan_dna_link(case: Case, record: UnidentifiedChildReported | None, record_id: str,
                  scored: Score | None, actor: str, now: datetime, event_id: str) -> list[Change]:
    """A DNA match reported on the found child's sample: the record becomes a confirmed
    candidate (proposed first when the rule had not offered it), the search is not ended."""
    changes: list[Change] = []
    if record is not None and scored is not None and comparable(case, record):
        changes += plan_propose(case, record, scored, now)
    elif not any(c.record_id == record_id for c in case.candidates):
        raise Refused(404, "not_found", f"no unidentified-child record {record_id}",
                      "record_id")
    changes.append(case_event(case.case_id, case.region_code, ev.CASE_CANDIDATE_CONFIRMED,
                              f"{event_id}:dna-confirmed", now, actor, "DNA 比中",
                              record_id=record_id, via="dna"))
    return changes


def apply_proposed(case: Case, event: CaseEvent) -> str:
    offered = Candidate.model_validate(event.details["candidate"])
    if not any(c.record_id == offered.record_id for c in case.candidates):
        case.candidates.append(offered)
    return f"{offered.record_id} {offered.organisation} score {offered.score:.2f}"


def apply_confirmed(case: Case, event: CaseEvent) -> str:
    record_id = str(event.details.get("record_id"))
    via = str(event.details.get("via") or "commander")
    for c in case.candidates:
        if c.record_id == record_id:
            c.status, c.confirmed_at, c.confirmed_by = "confirmed", event.at, event.actor
            c.confirmed_via = "dna" if via == "dna" else "commander"
    return f"{record_id} ({via})"


projection.APPLIERS[ev.CASE_CANDIDATE_PROPOSED] = apply_proposed
projection.APPLIERS[ev.CASE_CANDIDATE_CONFIRMED] = apply_confirmed
