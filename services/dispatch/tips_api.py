"""HTTP entrypoints for tips: a case's tips, paged (commanders of its region), and tips held for
a case that never appeared (admins of the region the case id names)."""

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from services.dispatch.adapters import CaseRepository
from services.dispatch.checks import may_read
from services.dispatch.domain import Tip
from shared.auth import Principal, Role
from shared.case_ids import CASE_REF
from shared.regions import within
from shared.web import ApiError, Authenticator

CASE_ID = CASE_REF


class TipPage(BaseModel):
    total: int = Field(description="tips attached to the case")
    offset: int
    limit: int
    items: list[Tip] = Field(description="newest first")


class HeldTip(BaseModel):
    tip: dict[str, Any] = Field(description="the tip as received (homeward.tip.received.v1)")
    parked_at: datetime
    case_id: str = Field(description="the case id the tipster named, not known to dispatch")


class UnmatchedPage(BaseModel):
    total: int = Field(description="tips held longer than dispatch_tip_park_s in your region")
    offset: int
    limit: int
    items: list[HeldTip] = Field(description="oldest first")


def build_tips_router(auth: Authenticator, cases: CaseRepository,
                      park_s: float) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["tips"])
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    Admin = Annotated[Principal, Depends(auth.require(Role.admin))]
    Offset = Annotated[int, Query(ge=0, le=100_000)]
    Limit = Annotated[int, Query(ge=1, le=200)]

    @router.get("/cases/{case_id}/tips", response_model=TipPage)
    async def case_tips(case_id: Annotated[str, PathParam(pattern=CASE_ID)], who: Commander,
                        offset: Offset = 0, limit: Limit = 50) -> TipPage:
        """The case's tips, hub sightings first, then newest first, `limit` from `offset` (kept
        beside the case); each with its assessment and latest triage."""
        case = await cases.get(case_id)
        if case is None or not may_read(case, who):  # a checking county while its check is open
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        total, items = await cases.tips.page(case.case_id, offset, limit)
        return TipPage(total=total, offset=offset, limit=limit,
                       items=[Tip.model_validate(i) for i in items])

    @router.get("/tips/unmatched", response_model=UnmatchedPage)
    async def unmatched(who: Admin, offset: Offset = 0, limit: Limit = 50) -> UnmatchedPage:
        """Tips held for a case id dispatch has not seen within `dispatch_tip_park_s` (still
        held: attached if the case appears), of the admin's region (the case id's first six
        digits)."""
        _, held = await cases.tips.unmatched(time.time() - park_s, 0, 10_000)
        # Scoped by the admin's region (national admin: 000000), whatever can_see allows.
        mine = [h for h in held if within(who.region, str(h["tip"].get("case_id", ""))[:6])]
        return UnmatchedPage(total=len(mine), offset=offset, limit=limit, items=[
            HeldTip(tip=h["tip"], case_id=str(h["tip"].get("case_id", "")),
                    parked_at=datetime.fromtimestamp(float(h["parked_at"]), UTC))
            for h in mine[offset:offset + limit]])

    return router
