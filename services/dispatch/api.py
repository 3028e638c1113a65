"""HTTP entrypoints of dispatch (thin: authorise, read, answer)."""


from typing import Annotated

from fastapi import APIRouter, Depends

from services.dispatch.adapters import CaseRepository
from services.dispatch.domain import Case
from shared.auth import Principal, Role
from shared.web import ApiError, Authenticator


def build_router(auth: Authenticator, cases: CaseRepository) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["cases"])
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]

    async def visible_case(case_id: str, who: Principal) -> Case:
        case = await cases.get(case_id)
        # Outside the caller's region the case does not exist for them (no leak of existence).
        if case is None or not who.can_see(case.region_code):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id")
        return case

    @router.get("/cases", response_model=list[Case])
    async def list_cases(who: Commander) -> list[Case]:
        found = []
        for case_id in await cases.list_ids():
            case = await cases.get(case_id)
            if case is not None and who.can_see(case.region_code):
                found.append(case)
        return found

    @router.get("/cases/{case_id}", response_model=Case)
    async def get_case(case_id: str, who: Commander) -> Case:
        return await visible_case(case_id, who)

    return router
