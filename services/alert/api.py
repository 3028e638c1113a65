"""HTTP entrypoints of the alert service (thin: parse, authorise, call a handler)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.alert.domain import IntakeRefused
from services.alert.handlers import Intake, RateLimited
from shared.auth import Principal, Role
from shared.report import Report, TipRequest
from shared.web import ApiError, Authenticator


class Progress(BaseModel):
    leader: dict[str, str] | None = Field(description="the case-group leader dispatch assigned")
    hubs_pushed: int = Field(description="transport hubs that received the alert")


class ReportAnswer(BaseModel):
    report_id: str
    case_id: str
    status: str = Field(description="accepted (durable, not yet on Kafka) or published")
    progress: Progress | None = None


class TipAnswer(BaseModel):
    tip_id: str


def refused(exc: IntakeRefused) -> ApiError:
    return ApiError(exc.status, exc.code, field=exc.field)


def build_router(auth: Authenticator, intake: Intake) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    Operator = Annotated[Principal, Depends(auth.require(Role.operator))]

    @router.post("/reports", status_code=202, response_model=ReportAnswer, tags=["reports"])
    async def post_report(
        report: Report,
        operator: Operator,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """File a report. The answer comes after the report is on disk; Kafka may follow."""
        try:
            appended = await intake.file_report(report, operator, idempotency_key)
        except IntakeRefused as exc:
            raise refused(exc) from exc
        headers = {"Idempotent-Replayed": "true"} if appended.replayed else None
        # Answered as-is: the handler built it from ReportAnswer's fields, no second validation.
        return JSONResponse(appended.answer, status_code=202, headers=headers)

    @router.get("/reports/{report_id}", response_model=ReportAnswer, tags=["reports"])
    async def get_report(report_id: str, operator: Operator) -> ReportAnswer:
        found = await intake.report_status(report_id, operator)
        if found is None:
            raise ApiError(404, "not_found", field="report_id", what=f"report {report_id}")
        return ReportAnswer(**found)

    @router.post("/tips", status_code=202, response_model=TipAnswer, tags=["tips"])
    async def post_tip(tip: TipRequest, request: Request) -> TipAnswer:
        """A member of the public's sighting; no account needed, rate limited."""
        client = request.client.host if request.client else "unknown"
        try:
            tip_id = await intake.file_tip(tip, client)
        except RateLimited as exc:
            raise ApiError(429, "rate_limited", headers={"Retry-After": str(exc.retry_after)},
                           retry_after=exc.retry_after) from exc
        return TipAnswer(tip_id=tip_id)

    return router
