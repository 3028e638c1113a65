"""HTTP entrypoints of sightings (issue 16 §2–3): a tip's triage, local checks (核查) — the
checking county's list, its report, its head joining the case group — and who may read a case
because of a check."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from services.dispatch.adapters import CaseRepository
from services.dispatch.api import CaseView
from services.dispatch.checks import may_read
from services.dispatch.domain import Case, Refused
from services.dispatch.tips_domain import LocalCheck
from services.dispatch.tips_handlers import Tips
from shared.auth import Principal, Role
from shared.case_ids import CASE_REF
from shared.events import CheckResult, TipVerdict
from shared.faults import is_transient
from shared.text import Text
from shared.web import ApiError, Authenticator

CASE_ID = CASE_REF
COUNTY = r"^[0-9]{6}$"


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    verdict: TipVerdict
    reason: Text = Field(min_length=1, max_length=500, description="why: the timeline's record")
    check_region: str | None = Field(default=None, pattern=COUNTY, description="assign a "
                                     "local check (核查) to this county's bureau")
    linked_case_id: str | None = Field(default=None, pattern=CASE_ID,
                                       description="another case the tip belongs to")


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    result: CheckResult
    note: Text = Field(default="", max_length=1000)


class CooperateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: Text = Field(default="", max_length=500)


class CheckTask(BaseModel):
    case_id: str
    case_region: str
    check: LocalCheck


def build_checks_router(auth: Authenticator, cases: CaseRepository, tips: Tips) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["tips"])
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    CaseId = Annotated[str, PathParam(pattern=CASE_ID)]
    TipId = Annotated[str, PathParam(pattern=r"^[0-9A-Za-z_-]{1,80}$")]
    CheckId = Annotated[str, PathParam(pattern=r"^K[0-9A-Za-z_-]{1,40}$")]

    async def case_for(case_id: str, who: Principal, own: bool) -> Case:
        case = await cases.get(case_id)
        if case is None or not (who.can_see(case.region_code) if own else may_read(case, who)):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        return case

    async def run(command: Callable[[], Awaitable[Case]]) -> Case:
        try:
            return await command()
        except Refused:
            raise  # answers for itself (shared/errors.py)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise ApiError(503, "unavailable", "Kafka or Redis is not reachable; check the "
                           "case and retry", headers={"Retry-After": "5"}) from exc

    @router.post("/cases/{case_id}/tips/{tip_id}/triage", response_model=CaseView)
    async def triage(case_id: CaseId, tip_id: TipId, body: TriageRequest,
                     who: Commander) -> Case:
        """Mark a tip credible / not credible / duplicate, with why; optionally assign a local
        check to `check_region` (409 check_in_own_region inside the case's region) and link
        another case (which must be visible to the caller; the tip is attached to it too, and
        its group told). A timeline event with who and why; the tip's `triage` is the latest
        verdict. 404 for an unknown tip."""
        case = await case_for(case_id, who, own=True)
        if body.linked_case_id:
            await case_for(body.linked_case_id, who, own=True)
        return await run(lambda: tips.triage(
            case.case_id, tip_id, body.verdict, body.reason, who.sub,
            body.check_region, body.linked_case_id))

    @router.get("/checks", response_model=list[CheckTask])
    async def my_checks(who: Commander) -> list[CheckTask]:
        """Open local checks (核查) assigned to counties inside the caller's region, due first,
        for cases outside it as well (the county that checks is not the case's)."""
        out = []
        for case in await cases.many(await cases.list_ids(2000)):
            for check in case.checks:
                if check.is_open and who.can_see(check.region_code):
                    out.append(CheckTask(case_id=case.case_id, case_region=case.region_code,
                                         check=check))
        return sorted(out, key=lambda t: t.check.due_at)

    @router.post("/cases/{case_id}/checks/{check_id}/report", response_model=CaseView)
    async def report(case_id: CaseId, check_id: CheckId, body: ReportRequest,
                     who: Commander) -> Case:
        """The checking county reports: confirmed / not_found / note, with a note. Its
        commanders only (403 not_check_region); once (409 check_closed)."""
        case = await case_for(case_id, who, own=False)
        return await run(lambda: tips.report(
            case.case_id, check_id, body.result, body.note, who.sub, who.region))

    @router.post("/cases/{case_id}/checks/{check_id}/cooperate", response_model=CaseView)
    async def cooperate(case_id: CaseId, check_id: CheckId, who: Commander,
                        body: CooperateRequest | None = None) -> Case:
        """The case's commanders add the checking county's head to the case group as a
        cooperating member (003 §三(二)); 409 already_member."""
        case = await case_for(case_id, who, own=True)
        reason = body.reason if body else ""
        return await run(lambda: tips.cooperate(case.case_id, check_id, reason, who.sub))

    return router
