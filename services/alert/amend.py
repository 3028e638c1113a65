"""The operators who took a report amend the child's details before the case group is formed
(issue 18, Contract: `PATCH /api/v1/reports/{report_id}`): the use case and its HTTP entrypoint.

Who may amend: the operator who filed the report, or an operator whose region covers the
report's last-seen county (`Principal.can_see`, shared/auth.py: every role acts only within its
region) — the same operators who may read the report's status (`GET /api/v1/reports/{id}`): the
call centre that took the call works in shifts, and the next operator on duty corrects what the
family adds. Anyone else gets 404, as for the status (no report ids are confirmed to them).

When: until dispatch opens the case (its `homeward.case.opened.v1`, copied to homeward.progress.v1
and followed by alert's progress consumer) or links the report to another child's case
(`homeward.case.report_linked.v1`, copied too: the 409 then names that case). From then on the
case group owns the details: 409 `case_group_formed` naming the case and dispatch's
`PATCH /api/v1/cases/{case_id}/details`.
In practice the window is the time dispatch needs to open the case — short while Kafka and dispatch
are up, as long as they are not (the report waits in the outbox, and so do its amendments, in
order). An amendment accepted in the instant the case opens is not lost: dispatch reads it after
its report on the same partition and records it on the case as `details_amended` with the
operator as actor (services/dispatch/amend.py: the timeline shows who amended what), and notify
applies it to the alert (both events carry the same values; the second changes nothing).

The amendment is `homeward.report.amended.v1` (shared.events.ReportAmended, the shape of
dispatch's `homeward.case.details_amended.v1`) on homeward.reports.v1 keyed by the case id, so it
follows its report on the same partition; its new values are sealed with the case key (issue 13,
shared.pii.AMENDED_FIELDS); it is durable in the outbox before the 202 (nothing accepted is
lost), and notify's planner turns it into an Update to every earlier recipient.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from services.alert.adapters.outbox_rows import OutboxEntry, Stored
from services.alert.domain import IntakeRefused
from services.alert.handlers import Intake, _json
from services.alert.retention import photo_names
from shared import pii, topics
from shared.amendment import DetailsAmendment
from shared.auth import Principal, Role
from shared.casekeys import CasePurged
from shared.events import AMENDABLE_DETAILS, REPORT_AMENDED, CloudEvent, ReportAmended
from shared.web import ApiError, Authenticator

# Where the case group amends the details once it is formed (dispatch, services/dispatch/amend.py).
CASE_DETAILS_PATH = "/api/v1/cases/{case_id}/details"


class AmendAnswer(BaseModel):
    report_id: str
    case_id: str
    amendment_id: str = Field(description="the event id of homeward.report.amended.v1")
    amended: list[str] = Field(description="the fields amended, sorted")
    status: str = Field(description="accepted: durable, Kafka may follow")


def may_amend(stored: Stored | None, who: Principal) -> bool:
    """Whether `who` may amend the stored report: the operator who filed it, or one whose
    region covers its county (the readers of its status)."""
    return (stored is not None and stored.kind == "report"
            and (stored.operator == who.sub or who.can_see(stored.region)))


def refuse_after_case_group(group: str | None) -> None:
    """409 `case_group_formed` (field report_id) once dispatch formed the report's case group
    (`group`: the case, the report's own or the one it was linked to as the same child): the
    case is the place, dispatch's PATCH /api/v1/cases/{case_id}/details (issue 18, Contract)."""
    if group is not None:
        raise IntakeRefused(409, "case_group_formed", "report_id", case_id=group,
                            amend_at=CASE_DETAILS_PATH.format(case_id=group))


@dataclass
class ReportAmendments:
    """Amends reports through the report intake's outbox, case keys, progress and photos."""

    intake: Intake
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def amend(self, report_id: str, body: DetailsAmendment, who: Principal,
                    idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """(the 202 answer, replayed). Raises IntakeRefused 422 `nothing_amended` (field
        body), 404 `not_found` (no such report for `who`), 409 `case_group_formed`, 409
        `idempotency_conflict`, 503 `progress_unavailable` (Redis cannot tell whether the case
        opened: refused, never guessed); CasePurged when the case's key was purged."""
        intake = self.intake
        amended = body.amended()
        if not amended:
            raise IntakeRefused(422, "nothing_amended", "body",
                                fields=", ".join(AMENDABLE_DETAILS))
        stored = await intake.outbox.get(report_id)
        if not may_amend(stored, who):
            raise IntakeRefused(404, "not_found", "report_id", what=f"report {report_id}")
        assert stored is not None
        case_id = str(stored.answer["case_id"])
        if intake.progress is not None:
            try:
                group = await intake.progress.case_group(case_id)
            except (RedisError, OSError) as exc:
                raise IntakeRefused(503, "progress_unavailable") from exc
            refuse_after_case_group(group)
        now = self.clock()
        amendment_id = f"A{uuid.uuid4().hex}"
        event = ReportAmended(
            case_id=case_id, region_code=stored.region, actor=who.sub, reason=body.reason,
            at=now, report_id=report_id,
            details={"amended": amended, "fields": sorted(amended)})
        headers, value = CloudEvent.encode(REPORT_AMENDED, intake.source, case_id, event,
                                           event_id=amendment_id)
        if intake.keys is not None:
            key = await intake.keys.find(case_id)
            if key is None:
                if await intake.keys.purged(case_id):
                    raise CasePurged(case_id)
                key = await intake.new_data_key(case_id, stored.region, who.sub)
            value = _json(pii.seal(event.model_dump(mode="json"), pii.AMENDED_FIELDS,
                                   case_id, key))
        if intake.photos is not None and amended.get("photo_urls"):
            await intake.photos.attach(
                case_id, stored.region, photo_names(amended["photo_urls"], intake.public_url),
                await intake.photos.released(case_id), who)
        answer = AmendAnswer(report_id=report_id, case_id=case_id, amendment_id=amendment_id,
                             amended=sorted(amended), status="accepted")
        digest = hashlib.sha256(f"{report_id}\n{body.model_dump_json()}".encode()).hexdigest()
        appended = await intake.commit(OutboxEntry(
            record_id=amendment_id, kind="amendment", topic=topics.REPORTS, key=case_id,
            headers=headers, value=value, answer=answer.model_dump(), region=stored.region,
            operator=who.sub), idempotency_key, digest)
        return appended.answer, appended.replayed


def build_amend_router(auth: Authenticator, amendments: ReportAmendments) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["reports"])
    Operator = Annotated[Principal, Depends(auth.require(Role.operator))]
    ReportId = Annotated[str, PathParam(pattern=r"^[0-9A-Za-z-]{1,64}$")]

    @router.patch("/reports/{report_id}", status_code=202, response_model=AmendAnswer,
                  responses={404: {"description": "no such report for this operator"},
                             409: {"description": "case_group_formed (amend the case at "
                                   "PATCH /api/v1/cases/{case_id}/details), or "
                                   "idempotency_conflict"},
                             410: {"description": "the case was purged (case_closed)"},
                             503: {"description": "progress_unavailable: try again"}})
    async def amend_report(
        report_id: ReportId, body: DetailsAmendment, who: Operator,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """Amend the child's description (clothing included), photos, height, weight, suspect
        or vehicle of a report before its case group is formed: the operator who filed it or
        an operator of its region. 202 once durable; notify sends the Update to every earlier
        recipient. 422 names the field (an unknown field, a value out of the report's limits,
        `nothing_amended` on `body`)."""
        try:
            answer, replayed = await amendments.amend(report_id, body, who, idempotency_key)
        except IntakeRefused as exc:
            headers = {"Retry-After": "5"} if exc.status == 503 else None
            raise ApiError(exc.status, exc.code, field=exc.field, headers=headers,
                           **exc.context) from exc
        except CasePurged as exc:
            raise ApiError(410, "case_closed", field="report_id") from exc
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(answer, status_code=202, headers=headers)

    return router
