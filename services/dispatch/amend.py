"""The commander amends the child's details (issue 18 §5): `PATCH /api/v1/cases/{case_id}/details`
→ `homeward.case.details_amended.v1` on the case log (the new values sealed with the case key,
their names in the clear for the timeline), which notify turns into an Update to every earlier
recipient of the alert. Operators who took the report amend through alert before the case group
is formed; after that, the case is the place."""

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam

from services.dispatch.domain import Case, Change, Refused, case_event
from services.dispatch.handlers import Dispatch
from shared import events as ev
from shared.amendment import DetailsAmendment
from shared.auth import Principal, Role
from shared.case_ids import CASE_REF
from shared.web import ApiError, Authenticator

log = logging.getLogger(__name__)


def plan_amend(case: Case, amended: dict[str, Any], reason: str, actor: str, now: datetime,
               event_id: str) -> list[Change]:
    """The amendment as an event of the case; 422 `nothing_amended` (field body) without a
    field, 409 `case_ended` once the case is found, a false report or closed."""
    if not amended:
        raise Refused(422, "nothing_amended", "name at least one field to amend: "
                      + ", ".join(ev.AMENDABLE_DETAILS), "body")
    if not case.is_open:
        raise Refused(409, "case_ended", f"case {case.case_id} has ended ({case.status})",
                      "status")
    return [case_event(case.case_id, case.region_code, ev.CASE_DETAILS_AMENDED, event_id, now,
                       actor, reason, amended=amended, fields=sorted(amended))]


async def record_report_amendment(dispatch: Dispatch, amended: ev.ReportAmended,
                                  event_id: str) -> None:
    """alert's `homeward.report.amended.v1` (the operators amended the report before the case
    group was formed, or while its case.opened was on its way) recorded on the case as its
    `details_amended` — the operator as actor, so the timeline shows who amended what and the
    case log carries the amended values. Once per amendment (`event_id`, its id: a redelivery
    adds nothing); nothing for a case unknown here, a report linked to another child's case
    (not even when the link is known only here: alert refuses the amendment once it knows, and
    before that the operator could otherwise change another region's case below its leader's
    level) or a case ended (the amendment then stays the report's own)."""
    case_event_id = f"{event_id}:case"

    def plan(case: Case, now: datetime, _eid: str) -> list[Change]:
        if case.case_id != amended.case_id:
            # the report was linked to another child's case (the command found it through the
            # link): that case is amended by its own commander at its leader's level, never
            # by the operators of a report that joined it (notify adds what the amendment
            # adds to the joined alert, as the report's own details were added, replacing
            # nothing: services.notify.planner.Planner.amend)
            log.info("report amendment %s of %s not recorded: linked to case %s", event_id,
                     amended.case_id, case.case_id)
            return []
        if any(entry.event_id == case_event_id for entry in case.timeline):
            return []
        return plan_amend(case, amended.amended, amended.reason, amended.actor, now,
                          case_event_id)

    try:
        await dispatch.caselog.command(amended.case_id, plan)
    except Refused as exc:
        log.info("report amendment %s not recorded on case %s: %s", event_id,
                 amended.case_id, exc.code)


def build_amend_router(auth: Authenticator, dispatch: Dispatch) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["cases"])
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    CaseId = Annotated[str, PathParam(pattern=CASE_REF)]

    @router.patch("/cases/{case_id}/details")
    async def amend_details(case_id: CaseId, body: DetailsAmendment,
                            who: Commander) -> dict[str, Any]:
        """Amend the child's description, photos, height, weight, suspect or vehicle: the case
        leader's organ level or above (403 below_leader_level, as for found and close; 404
        outside the caller's region). Answers the case's id, the fields amended and the
        timeline entry's event id."""
        case = await dispatch.cases.get(case_id)
        if case is None or not who.can_see(case.region_code):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        amended = body.amended()
        updated = await dispatch.commands.amend_details(case_id, lambda c, now, eid: plan_amend(
            c, amended, body.reason, who.sub, now, eid), who.region)
        entry = updated.timeline[-1] if updated.timeline else None
        return {"case_id": updated.case_id, "amended": sorted(amended),
                "event_id": entry.event_id if entry else None}

    return router
