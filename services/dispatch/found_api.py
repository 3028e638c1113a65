"""HTTP entrypoints of issue 16 items 4–6 in dispatch (thin: authorise, call found.py):
a case's candidates and their confirmation, its DNA samples, and an unidentified-child record
as its region's commanders see it."""


from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.dispatch.api import CASE_ID, CaseView, commanded
from services.dispatch.domain import Case, Outcome
from services.dispatch.found import FoundChildren, new_sample_id
from services.dispatch.records import Candidate, DnaSample, DnaStatus
from shared.auth import Principal, Role
from shared.report import rule
from shared.text import Line, Text
from shared.unidentified import RECORD_ID, UnidentifiedChildReported
from shared.web import ApiError, Authenticator


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CandidateView(Candidate):
    record: dict[str, Any] | None = Field(
        default=None, description="the unidentified-child record (restricted: description, "
        "photos, circumstances, where found) as the reporter filed it")


class CandidatesAnswer(BaseModel):
    case_id: str
    region_code: str
    status: str
    outcome: str | None
    found_record: str | None = None
    candidates: list[CandidateView] = Field(description="highest score first")


class ConfirmRequest(Body):
    outcome: Outcome = "found_safe"
    found_at: AwareDatetime | None = Field(default=None, description="default: when the "
                                           "record says the child was found")
    note: Text = Field(default="", max_length=1000)
    confirm: bool = Field(default=False, description="required (true) when the alert is "
                          "public, as for found")
    receiving_organisation: Line = Field(default="", max_length=100)


class DnaRequest(Body):
    """A new sample (no `sample_id`: subject, taken_by, taken_at, place, lab_reference), or the
    next step of one (`sample_id` and `status`; `record_id` with a found child's match)."""

    sample_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    subject: Literal["family", "found_child"] | None = None
    donor: Line = Field(default="", max_length=20)
    taken_by: Line = Field(default="", max_length=100)
    taken_at: AwareDatetime | None = None
    place: Line = Field(default="", max_length=200)
    lab_reference: Line = Field(default="", max_length=100)
    record_id: str | None = Field(default=None, pattern=RECORD_ID)
    status: DnaStatus | None = None
    note: Text = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _complete(self) -> "DnaRequest":
        if self.sample_id is not None and self.status is not None:
            return self
        if self.sample_id is not None:
            raise rule("missing", "status is required to move a sample on", field="status")
        for name in ("subject", "taken_by", "taken_at", "place", "lab_reference"):
            if not getattr(self, name):
                raise rule("missing", f"{name} is required for a new sample", field=name)
        return self


class RecordView(BaseModel):
    record: UnidentifiedChildReported
    cases: list[str] = Field(description="cases it is a candidate of, that you can see")


def build_found_router(auth: Authenticator, found: FoundChildren) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["unidentified children"])
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    CaseId = Annotated[str, PathParam(pattern=CASE_ID)]
    RecordId = Annotated[str, PathParam(pattern=RECORD_ID)]

    def not_found(case_id: str) -> ApiError:
        return ApiError(404, "not_found", f"no case {case_id}", "case_id", what=f"case {case_id}")

    async def case_of(case_id: str, who: Principal, either_side: bool = False) -> Case:
        case = await found.cases.get(case_id)
        if case is None:
            raise not_found(case_id)
        if who.can_see(case.region_code) or (either_side and found.visible_to(case, who.region)):
            return case
        raise not_found(case_id)  # outside the caller's region it does not exist for them

    @router.get("/cases/{case_id}/candidates", response_model=CandidatesAnswer)
    async def list_candidates(case_id: CaseId, who: Commander) -> CandidatesAnswer:
        """Unidentified-child records scored as this case's child, with the rule's reasons
        (services/dispatch/matching.py), highest first. The case's commanders see all; the
        commanders of a record's region (where the child was found) see that record's."""
        case = await case_of(case_id, who, either_side=True)
        mine = set(found.visible_to(case, who.region))
        views = []
        for offered in sorted(case.candidates, key=lambda c: -c.score):
            if offered.record_id in mine:
                record = await found.records.get(offered.record_id)
                views.append(CandidateView(**offered.model_dump(), record=record.model_dump(
                    mode="json") if record else None))
        return CandidatesAnswer(case_id=case.case_id, region_code=case.region_code,
                                status=case.status, outcome=case.outcome,
                                found_record=case.found_record, candidates=views)

    @router.post("/cases/{case_id}/candidates/{record_id}/confirm", response_model=CaseView)
    async def confirm(case_id: CaseId, record_id: RecordId, who: Commander,
                      body: ConfirmRequest | None = None) -> Case:
        """The record is this case's child: the case is found with `outcome` naming the
        record, and every alert of the child is cancelled as by found. The case leader's
        organ level or above (403 below_leader_level); 404 not_a_candidate; 409 as found."""
        body = body or ConfirmRequest()
        case = await case_of(case_id, who)
        return await commanded(found.confirm(
            case.case_id, record_id, body.outcome, body.found_at, body.note, who.sub,
            who.region, body.confirm, body.receiving_organisation))

    @router.get("/cases/{case_id}/dna-samples", response_model=list[DnaSample])
    async def list_samples(case_id: CaseId, who: Commander) -> list[DnaSample]:
        """The case's DNA sample records (references and statuses; no genetic data)."""
        return (await case_of(case_id, who)).dna_samples

    @router.post("/cases/{case_id}/dna-samples", response_model=DnaSample,
                 responses={201: {"description": "a new sample recorded"}})
    async def post_sample(case_id: CaseId, body: DnaRequest, who: Commander) -> JSONResponse:
        """Record a sample (201, status collected) or move one on (200): collected → entered
        → compared → match / no_match, nothing skipped or undone (409 dna_transition). A
        family sample entered completes the DNA duty; a found child's match (with its
        `record_id`) links that record as a confirmed candidate."""
        case = await case_of(case_id, who)
        if body.sample_id is not None and body.status is not None:
            new = await commanded(found.step_sample(case.case_id, body.sample_id, body.status,
                                                 body.note, who.sub, body.record_id))
            sample_id, status = body.sample_id, 200
        else:
            assert body.subject is not None and body.taken_at is not None
            sample_id, status = body.sample_id or new_sample_id(), 201
            new = await commanded(found.record_sample(case.case_id, DnaSample(
                sample_id=sample_id, subject=body.subject, donor=body.donor,
                taken_by=body.taken_by, taken_at=body.taken_at, place=body.place,
                lab_reference=body.lab_reference, record_id=body.record_id), who.sub))
        sample = next(s for s in new.dna_samples if s.sample_id == sample_id)
        return JSONResponse(sample.model_dump(mode="json"), status_code=status)

    @router.get("/unidentified-children/{record_id}", response_model=RecordView)
    async def get_record(record_id: RecordId, who: Commander) -> RecordView:
        """The record, to commanders of the region where the child was found, with the ids of
        the cases it is a candidate of, in any region: the side that found the child learns
        whom to coordinate with (issue 16), and reads nothing else of those cases (their
        reads are scoped by region)."""
        record = await found.records.get(record_id)
        if record is None or not who.can_see(record.region_code):
            raise ApiError(404, "not_found", f"no record {record_id}", "record_id",
                           what=f"record {record_id}")
        cases = [c.case_id for c in await found.cases.many(await found.cases.list_ids(5000))
                 if any(x.record_id == record_id for x in c.candidates)]
        return RecordView(record=record, cases=cases)

    return router

