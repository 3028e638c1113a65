"""HTTP entrypoints of dispatch (thin: authorise, call the use case, answer)."""

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.dispatch import checks, links
from services.dispatch.adapters import STREAM, CaseRepository, decode
from services.dispatch.domain import Case, Member, Outcome, Refused
from services.dispatch.handlers import Dispatch
from services.dispatch.previews import NotifyPreviews, PreviewUnavailable
from services.dispatch.purge import Retention, retention
from services.dispatch.roster import Organ, Post
from shared.auth import Principal, Role
from shared.case_ids import CASE_REF
from shared.faults import is_transient
from shared.phones import PhoneError, normalise_phone
from shared.release import CONTENT_CHANGED, ReleasePreview, ReleaseRequest
from shared.settings import Settings
from shared.streams import StreamFanout, StreamLimits, sse_response
from shared.text import Line, Text
from shared.web import ApiError, Authenticator

UI = Path(__file__).with_name("ui")
CASE_ID = CASE_REF
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EscalateRequest(Body):
    level: Literal["city", "province"]
    reason: Text = Field(min_length=1, max_length=500)


class CompleteRequest(Body):
    note: Text = Field(default="", max_length=1000)


class FoundRequest(Body):
    outcome: Outcome
    found_at: AwareDatetime
    note: Text = Field(default="", max_length=1000)
    confirm: bool = Field(default=False, description="required (true) when the child's alert "
                          "is public; without it 409 confirm_required lists what is cancelled")
    child: str | None = Field(default=None, min_length=1, max_length=50,
                              description="the child found (name); must be this case's child")
    receiving_organisation: Line = Field(
        default="", max_length=100, description="placed_with_civil_affairs: the receiving "
        "civil-affairs organisation (required then; 422 receiving_organisation_required)")


class UnlinkRequest(Body):
    report_id: str = Field(min_length=1, max_length=80)
    reason: Text = Field(min_length=1, max_length=500)


class IncidentRequest(Body):
    case_ids: list[Annotated[str, Field(pattern=CASE_ID)]] = Field(
        min_length=1, max_length=50, description="the other children's cases")
    reason: Text = Field(min_length=1, max_length=500)


class ReopenRequest(Body):
    reason: Text = Field(min_length=1, max_length=500)


class CaseView(Case):
    """A case as served: internal fields (identity keys, reports held for unlinking) left out."""

    duplicate_keys: list[str] = Field(default_factory=list, exclude=True)
    held_reports: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)


class CloseRequest(Body):
    reason: Text = Field(min_length=1, max_length=500)


class MemberRequest(Body):
    duty: Literal["procuratorate"]
    name: Line = Field(min_length=1, max_length=50)
    title: Line = Field(min_length=1, max_length=50)
    organ_name: Line = Field(min_length=1, max_length=100)
    organ_code: str = Field(default="", pattern=r"^([0-9]{6})?$")
    phone: str = Field(default="", max_length=40, description="any form; stored in E.164")
    reason: Text = Field(min_length=1, max_length=500)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if not value:
            return value
        try:
            return normalise_phone(value)
        except PhoneError:
            raise PydanticCustomError("phone_format", "not a telephone number") from None


class AvailabilityRequest(Body):
    post: Post
    available: bool
    reason: Text = Field(min_length=1, max_length=500, description="why: the handover's record")


class AvailabilityAnswer(BaseModel):
    organ: Organ
    handed_over: list[str] = Field(description="open cases whose leader changed")


async def commanded(command: Awaitable[Case]) -> Case:
    """A command's answer: the case (its refusal, a HomewardError, answers for itself); 503 when
    Kafka or Redis could not make the change durable."""
    try:
        return await command
    except Refused:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        # The change could not be made durable (or not stored): look at the case, retry.
        raise ApiError(503, "unavailable", "Kafka or Redis is not reachable; the change "
                       "may not be recorded, check the case and retry",
                       headers={"Retry-After": "5"}) from exc


def build_router(auth: Authenticator, cases: CaseRepository, dispatch: Dispatch,
                 fanout: StreamFanout, limits: StreamLimits,
                 previews: NotifyPreviews | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["cases"])
    commands = dispatch.commands
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    Admin = Annotated[Principal, Depends(auth.require(Role.admin))]
    CaseId = Annotated[str, PathParam(pattern=CASE_ID)]

    async def visible_case(case_id: str, who: Principal) -> Case:
        case = await cases.get(case_id)
        # Outside the caller's region the case does not exist for them (no leak of existence).
        if case is None or not who.can_see(case.region_code):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        return case

    async def act(case_id: str, who: Principal,
                  command: Callable[[str], Awaitable[Case]]) -> Case:
        case = await visible_case(case_id, who)
        return await commanded(command(case.case_id))

    @router.get("/cases", response_model=list[CaseView])
    async def list_cases(
        who: Commander,
        status: Annotated[Literal["opened", "active", "found", "false_report", "closed"] | None,
                          Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
    ) -> list[Case]:
        found = []
        for case in await cases.many(await cases.list_ids(2000)):
            if who.can_see(case.region_code) and (status is None or case.status == status):
                found.append(case)
                if len(found) >= limit:
                    break
        return found

    @router.get("/cases/{case_id}", response_model=CaseView)
    async def get_case(case_id: CaseId, who: Commander) -> Case:
        """The case: commanders of its region, and those of a county with an open local check
        (核查) on it while the check is open (issue 16 §2)."""
        case = await cases.get(case_id)
        if case is None or not checks.may_read(case, who):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        return case

    async def preview_of(case_id: str, request: Request,
                         outcome: str | None = None) -> ReleasePreview:
        if previews is None:
            raise ApiError(503, "unavailable", "release previews are not configured")
        try:
            return await previews.get(case_id, request.headers.get("authorization", ""),
                                      outcome)
        except PreviewUnavailable as exc:
            raise ApiError(exc.status, "preview_unavailable", str(exc), what=str(exc),
                           headers={"Retry-After": "5"} if exc.status == 503 else None) from exc

    @router.get("/cases/{case_id}/release-preview", response_model=ReleasePreview)
    async def release_preview(case_id: CaseId, who: Commander,
                              request: Request) -> ReleasePreview:
        """What the public will receive if released now (notify's rendering): `text`,
        `cap_url`, `poster_url`, `audience` by kind, and the `content_hash` to release with
        (issue 17 §4)."""
        await visible_case(case_id, who)
        return await preview_of(case_id, request)

    @router.get("/cases/{case_id}/found-preview", response_model=ReleasePreview)
    async def found_preview(case_id: CaseId, who: Commander, request: Request,
                            outcome: Annotated[Outcome, Query()]) -> ReleasePreview:
        """The same preview for the Cancel (issue 17 §4): what every recipient so far will
        receive if the search ends now with `outcome`, and how many of each kind they are."""
        await visible_case(case_id, who)
        return await preview_of(case_id, request, outcome)

    @router.post("/cases/{case_id}/release", response_model=CaseView)
    async def release(case_id: CaseId, body: ReleaseRequest, who: Commander,
                      request: Request) -> Case:
        """The leader (or a commander above) approves public release of the previewed content;
        notify then tells media and volunteers. 403 `below_leader_level` below the case
        leader's organ level (issue 19 §4); 409 `content_changed` (field content_hash) when the
        content is no longer what the preview showed (issue 17 §4)."""
        case = await visible_case(case_id, who)
        links.require_authority(case, who.region, "release")
        current = await preview_of(case_id, request)
        if current.content_hash != body.content_hash:
            raise ApiError(409, CONTENT_CHANGED, "the content changed since the preview; "
                           "preview again", "content_hash")
        return await act(case_id, who,
                         lambda cid: commands.release(cid, who.sub, who.region))

    @router.post("/cases/{case_id}/escalate", response_model=CaseView)
    async def escalate(case_id: CaseId, body: EscalateRequest, who: Commander) -> Case:
        return await act(case_id, who,
                         lambda cid: commands.escalate(cid, body.level, body.reason, who.sub))

    @router.post("/cases/{case_id}/members", response_model=CaseView)
    async def add_member(case_id: CaseId, body: MemberRequest, who: Commander) -> Case:
        """Add a member the case's rules allow others to send (in 博尔塔拉, especially serious
        cases: the procuratorate, 002 §三㈠); 409 where the rules do not."""
        member = Member(duty=body.duty, name=body.name, title=body.title, phone=body.phone,
                        organ_code=body.organ_code or case_id[:6], organ_name=body.organ_name)
        return await act(case_id, who,
                         lambda cid: commands.add_member(cid, member, body.reason, who.sub))

    @router.post("/cases/{case_id}/tasks/{task_id}/complete", response_model=CaseView)
    async def complete_task(case_id: CaseId,
                            task_id: Annotated[str, PathParam(pattern=r"^[a-z_]{1,40}$")],
                            who: Commander, body: CompleteRequest | None = None) -> Case:
        note = body.note if body else ""
        return await act(case_id, who,
                         lambda cid: commands.complete_task(cid, task_id, note, who.sub))

    @router.post("/cases/{case_id}/found", response_model=CaseView)
    async def found(case_id: CaseId, body: FoundRequest, who: Commander) -> Case:
        """The case's child is found (or the report was false): every alert of the child is
        cancelled, and only this child's. The leader's organ level or above (else 403
        below_leader_level); a public alert needs `confirm: true` (else 409
        confirm_required, naming what will be cancelled)."""
        return await act(case_id, who, lambda cid: commands.found(
            cid, body.outcome, body.found_at, body.note, who.sub, who.region, body.confirm,
            body.child, body.receiving_organisation))

    @router.post("/cases/{case_id}/close", response_model=CaseView)
    async def close(case_id: CaseId, body: CloseRequest, who: Commander) -> Case:
        """Refused with 409 while the case is neither found nor solved (案件不破，专案组不撤);
        403 below the case leader's organ level."""
        return await act(case_id, who,
                         lambda cid: commands.close(cid, body.reason, who.sub, who.region))

    @router.post("/cases/{case_id}/reopen", response_model=CaseView)
    async def reopen(case_id: CaseId, body: ReopenRequest, who: Commander) -> Case:
        """A wrong found undone by the leader's organ level or above: the search goes on and
        everyone who got the cancellation gets the alert again (409 unless found)."""
        return await act(case_id, who,
                         lambda cid: commands.reopen(cid, body.reason, who.sub, who.region))

    @router.post("/cases/{case_id}/incident", response_model=CaseView)
    async def incident(case_id: CaseId, body: IncidentRequest, who: Commander) -> Case:
        """Tie the cases of several children of one incident (siblings, a group) under this
        case: each child keeps its own alert, found state and Cancel; a found for one never
        cancels another. The leader's organ level or above of this case; every case must be
        visible to the caller (404 otherwise)."""
        for other in body.case_ids:
            await visible_case(other, who)
        return await act(case_id, who, lambda cid: dispatch.links.incident(
            cid, body.case_ids, body.reason, who.sub, who.region))

    @router.post("/cases/{case_id}/unlink", response_model=CaseView)
    async def unlink(case_id: CaseId, body: UnlinkRequest, who: Commander) -> Case:
        """Undo the link of a report (not the same child after all): the report gets its own
        case group and its child its own alert. 404 not_linked when the report is not linked
        to this case."""
        return await act(case_id, who, lambda cid: dispatch.links.unlink(
            cid, body.report_id, body.reason, who.sub, who.region))

    @router.get("/stream", response_class=EventSourceResponse,
                responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(
        who: Commander,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        """Case events inside the caller's region, live. Each event's id is its position in
        the stream: reconnecting with Last-Event-ID resumes right after it, without gaps.
        Ends when the token expires; 429/503 with Retry-After over the stream caps."""
        after = last_event_id if last_event_id and STREAM_ID.match(last_event_id) else None

        def render(stream_id: str, fields: dict[str, str]) -> ServerSentEvent | None:
            if not who.can_see(fields.get("region_code", "")) \
                    and not checks.streamed_to(fields, who.region):
                return None
            return ServerSentEvent(id=stream_id, event=fields.get("type", "message"),
                                   data=json.dumps(decode(fields), ensure_ascii=False))

        return sse_response(fanout, limits, who, STREAM, after, render)

    organs = APIRouter(prefix="/organs", tags=["roster"])

    def visible_organ(code: str, who: Principal) -> Organ:
        organ = dispatch.roster.organ(code)
        if organ is None or not who.can_see(code):
            raise ApiError(404, "not_found", f"no organ {code}", "code", what=f"organ {code}")
        return organ

    Code = Annotated[str, PathParam(pattern=r"^[0-9]{6}$")]

    @organs.get("/{code}", response_model=Organ)
    async def get_organ(code: Code, who: Commander) -> Organ:
        return visible_organ(code, who)

    @organs.put("/{code}/availability", response_model=AvailabilityAnswer)
    async def set_availability(code: Code, body: AvailabilityRequest,
                               who: Admin) -> AvailabilityAnswer:
        """Mark the head or the deputy (un)available; open cases they lead are handed over,
        each handover an event with who and why."""
        organ = visible_organ(code, who)
        handed = await dispatch.availability.set_availability(
            organ, body.post, body.available, body.reason, who.sub)
        return AvailabilityAnswer(organ=dispatch.roster.organ(code) or organ, handed_over=handed)

    router.include_router(organs)
    return router


def build_retention_router(auth: Authenticator, cases: CaseRepository,
                           grace_s: float) -> APIRouter:
    """GET /api/v1/cases/{case_id}/retention (issue 13 §4)."""
    router = APIRouter(prefix="/api/v1", tags=["cases"])
    Admin = Annotated[Principal, Depends(auth.require(Role.admin))]

    @router.get("/cases/{case_id}/retention", response_model=Retention)
    async def case_retention(case_id: Annotated[str, PathParam(pattern=CASE_ID)],
                             who: Admin) -> Retention:
        """What of the case is held where and until when (admin of the case's region; another
        region's case does not exist for the caller). `until` null: kept, non-personal."""
        case = await cases.get(case_id)
        if case is None or not who.can_see(case.region_code):
            raise ApiError(404, "not_found", f"no case {case_id}", "case_id",
                           what=f"case {case_id}")
        return retention(case, grace_s)

    return router


def build_pages(settings: Settings) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/console")
    async def console() -> FileResponse:
        return FileResponse(UI / "console.html", media_type="text/html; charset=utf-8")

    @pages.get("/console/config.js")
    async def console_config() -> Response:
        config = {"notify_url": settings.notify_url.rstrip("/"),
                  "tiers": [list(t) for t in settings.radius_tiers_km],
                  "max_km": settings.radius_max_km,
                  "display_timezone": settings.display_timezone}
        body = f"window.HW_CONFIG = {json.dumps(config)};\n"
        return Response(body, media_type="application/javascript; charset=utf-8")

    return pages
