"""DNA sample records of a case (issue 16 item 5): the family's samples and the found child's,
each through collected → entered (into the national anti-trafficking DNA database) → compared
→ match / no_match, every step validated and kept with who and when. References and statuses
only: no genetic data is ever stored.

Sources: 001 §二（三） and 004 (2)(5): "采集失踪儿童父母和来历不明、疑似被拐儿童的血样，检验录入
全国打拐DNA信息库" — the case's `dna_samples` duty (rules.yaml) is done when a family sample is
entered; 002 §三㈢: found children's samples "全部入库比对". A match reported on a found child's
sample links its unidentified-child record as a confirmed candidate (candidates.py).

Pure: plans return `Change`s; `apply_*` fold them (registered in projection.APPLIERS).
"""

from __future__ import annotations

from datetime import datetime

from services.dispatch import projection
from services.dispatch.domain import Case, Change, Refused, case_event
from services.dispatch.records import NEXT_STATUS, DnaSample, DnaStatus, DnaStep
from shared import events as ev
from shared.events import CaseEvent

DUTY = "dna_samples"  # the task rules.yaml assigns to the investigation member


def _require_not_closed(case: Case) -> None:
    # Samples go on after a found (the family's sample confirms it); not on a closed case.
    if case.status == "closed":
        raise Refused(409, "case_not_open", f"case {case.case_id} is closed", "status")


def plan_record(case: Case, sample: DnaSample, actor: str, now: datetime) -> list[Change]:
    """A new sample, `collected`: refused 409 `sample_exists` for a sample id already used."""
    _require_not_closed(case)
    if any(s.sample_id == sample.sample_id for s in case.dna_samples):
        raise Refused(409, "sample_exists", f"sample {sample.sample_id} exists", "sample_id")
    sample = sample.model_copy(update={"status": "collected", "history": [
        DnaStep(status="collected", at=sample.taken_at, by=sample.taken_by)]})
    return [case_event(case.case_id, case.region_code, ev.CASE_DNA_SAMPLE_RECORDED,
                       f"{case.case_id}:dna:{sample.sample_id}", now, actor,
                       f"{_subject(sample)}血样已采集", sample=sample.model_dump(mode="json"))]


def plan_step(case: Case, sample_id: str, target: DnaStatus, note: str, actor: str,
              now: datetime, event_id: str, record_id: str | None = None) -> list[Change]:
    """Move a sample on. 404 `not_found` (sample_id); 409 `dna_transition` for a step out of
    order; 422 `dna_record_required` for a found child's match without its record. A family
    sample `entered` completes the DNA duty; a match naming a record is returned with
    `record_id` set in the step's details, for the caller to link (candidates.plan_dna_link)."""
    _require_not_closed(case)
    sample = next((s for s in case.dna_samples if s.sample_id == sample_id), None)
    if sample is None:
        raise Refused(404, "not_found", f"no sample {sample_id}", "sample_id")
    if target not in NEXT_STATUS[sample.status]:
        raise Refused(409, "dna_transition", f"a sample cannot go from {sample.status} to "
                      f"{target}", "status")
    record = record_id or sample.record_id
    if target == "match" and sample.subject == "found_child" and not record:
        raise Refused(422, "dna_record_required", "a found child's match needs its record_id",
                      "record_id")
    changes = [case_event(case.case_id, case.region_code, ev.CASE_DNA_SAMPLE_UPDATED,
                          f"{event_id}:dna", now, actor, note, sample_id=sample_id,
                          status=target, record_id=record if target == "match" else None)]
    task = case.task(DUTY)
    if sample.subject == "family" and target == "entered" and case.is_open \
            and task is not None and task.status == "open":
        changes.append(case_event(
            case.case_id, case.region_code, ev.CASE_TASK_COMPLETED, f"{event_id}:duty", now,
            actor, "家属血样已录入全国打拐DNA信息库（001 §二（三））", task_id=DUTY,
            note=f"样本 {sample_id}，实验室编号 {sample.lab_reference}"))
    return changes


def _subject(sample: DnaSample) -> str:
    return "家属" if sample.subject == "family" else "被找到儿童"


def apply_recorded(case: Case, event: CaseEvent) -> str:
    sample = DnaSample.model_validate(event.details["sample"])
    if not any(s.sample_id == sample.sample_id for s in case.dna_samples):
        case.dna_samples.append(sample)
    return f"{sample.sample_id} {sample.subject} {sample.lab_reference}: collected"


def apply_updated(case: Case, event: CaseEvent) -> str:
    sample_id, status = str(event.details["sample_id"]), str(event.details["status"])
    for sample in case.dna_samples:
        if sample.sample_id == sample_id and status in NEXT_STATUS[sample.status]:
            sample.status = status  # type: ignore[assignment]
            sample.history.append(DnaStep(status=sample.status, at=event.at, by=event.actor,
                                          note=event.reason))
            if event.details.get("record_id"):
                sample.record_id = str(event.details["record_id"])
    return f"{sample_id}: {status}"


projection.APPLIERS[ev.CASE_DNA_SAMPLE_RECORDED] = apply_recorded
projection.APPLIERS[ev.CASE_DNA_SAMPLE_UPDATED] = apply_updated
