"""HTTP entrypoints of the alert service (thin: parse, authorise, call a handler)."""


from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.alert.adapters import ReportStatusStore
from services.alert.handlers import Intake
from shared.auth import Principal, Role
from shared.report import Report
from shared.web import ApiError, Authenticator


class ReportAnswer(BaseModel):
    report_id: str
    case_id: str
    status: str


def build_router(auth: Authenticator, intake: Intake, statuses: ReportStatusStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["reports"])
    Operator = Annotated[Principal, Depends(auth.require(Role.operator))]

    @router.post("/reports", status_code=202, response_model=ReportAnswer)
    async def post_report(report: Report, operator: Operator) -> ReportAnswer:
        accepted = await intake.accept(report, operator)
        return ReportAnswer(
            report_id=accepted.report_id, case_id=accepted.case_id, status="accepted"
        )

    @router.get("/reports/{report_id}", response_model=ReportAnswer)
    async def get_report(report_id: str, operator: Operator) -> ReportAnswer:
        found = await statuses.get(report_id)
        if found is None:
            raise ApiError(404, "not_found", f"no report {report_id}", "report_id")
        return ReportAnswer(report_id=report_id, **found)

    return router
