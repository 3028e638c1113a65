"""HTTP entrypoints of the alert service (thin: parse, authorise, call a handler)."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.alert.adapters.limiter import LimiterUnavailable
from services.alert.adapters.photos import PHOTO_TYPES, PhotoStore
from services.alert.domain import client_key, trusted_networks
from services.alert.handlers import Intake, RateLimited
from services.alert.retention import PhotoAccess
from shared.auth import Principal, Role
from shared.casekeys import CasePurged
from shared.regions import RegionIndex
from shared.report import PlaceConflict, RegionCodeReplaced, Report, TipRequest
from shared.web import ApiError, Authenticator


class Progress(BaseModel):
    leader: dict[str, str] | None = Field(description="the case-group leader dispatch assigned")
    hubs_pushed: int = Field(description="transport hubs that received the alert")


class PlaceAnswer(BaseModel):
    """How intake placed the report (issue 11): the county it leads from and why."""

    region_code: str
    lat: float = Field(description="WGS-84 degrees")
    lon: float = Field(description="WGS-84 degrees")
    datum: str = "wgs84"
    derived: list[str] = Field(description="last_seen parts intake filled in or converted")
    conflict: PlaceConflict | None = None
    region_code_replaced: RegionCodeReplaced | None = None


class ReportAnswer(BaseModel):
    report_id: str
    case_id: str
    status: str = Field(description="accepted (durable, not yet on Kafka) or published")
    place: PlaceAnswer | None = None
    progress: Progress | None = None


class TipAnswer(BaseModel):
    tip_id: str


class RegionOption(BaseModel):
    code: str
    name: str
    level: str


class PhotoAnswer(BaseModel):
    url: str


UI = Path(__file__).with_name("ui")
MAX_PHOTO_BYTES = 5 * 1024 * 1024


def build_router(auth: Authenticator, intake: Intake, regions: RegionIndex, photos: PhotoStore,
                 public_url: str, access: PhotoAccess | None = None,
                 trusted_proxies: list[str] | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    trusted = trusted_networks(trusted_proxies or [])
    Operator = Annotated[Principal, Depends(auth.require(Role.operator))]
    # Photos are uploaded by operators and by mandated reporters (unidentified children).
    Uploader = Annotated[Principal, Depends(auth.require(Role.operator,
                                                         Role.mandated_reporter))]

    @router.get("/regions", response_model=list[RegionOption], tags=["regions"])
    async def list_regions(parent: str | None = None) -> list[RegionOption]:
        """Provinces, or the children of `parent` (public data: the region picker)."""
        if parent is None:
            found = regions.all("province")
        elif parent in regions:
            found = regions.children(parent)
        else:
            raise ApiError(404, "not_found", field="parent", what=f"region {parent}")
        return [RegionOption(code=r.code, name=r.name, level=r.level) for r in found]

    @router.post("/photos", status_code=201, response_model=PhotoAnswer, tags=["reports"])
    async def upload_photo(request: Request, operator: Uploader) -> PhotoAnswer:
        """Raw image body (image/jpeg, image/png or image/webp, at most 5 MiB)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in PHOTO_TYPES:
            raise ApiError(415, "unsupported_media_type", "send image/jpeg, image/png or "
                           "image/webp", field="Content-Type")
        data = await request.body()
        if not data:
            raise ApiError(422, "invalid", "empty photo", field="body")
        name = photos.save(content_type, data)
        if access is not None:
            await access.uploaded(name, operator.region)
        return PhotoAnswer(url=f"{public_url}/photos/{name}")

    @router.post("/reports", status_code=202, response_model=ReportAnswer, tags=["reports"])
    async def post_report(
        report: Report,
        operator: Operator,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """File a report. The answer comes after the report is on disk; Kafka may follow."""
        appended = await intake.file_report(report, operator, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if appended.replayed else None
        # Answered as-is: the handler built it from ReportAnswer's fields, no second validation.
        return JSONResponse(appended.answer, status_code=202, headers=headers)

    @router.get("/reports/{report_id}", response_model=ReportAnswer, tags=["reports"])
    async def get_report(report_id: str, operator: Operator) -> ReportAnswer:
        found = await intake.report_status(report_id, operator)
        if found is None:
            raise ApiError(404, "not_found", field="report_id", what=f"report {report_id}")
        return ReportAnswer(**found)

    @router.post("/tips", status_code=202, response_model=TipAnswer, tags=["tips"],
                 responses={410: {"description": "the case is closed (case_closed)"},
                            429: {"description": "rate_limited, or tip_cap_reached"},
                            503: {"description": "the limiter cannot count: refused"}})
    async def post_tip(tip: TipRequest, request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(HTTPBearer(auto_error=False))] = None,
                       ) -> TipAnswer:
        """A member of the public's sighting; no account needed. Limited per client (IPv4
        address or IPv6 /64; X-Forwarded-For read only from `trusted_proxies`), per client on
        the case, per case, and capped per case. Sent with a hub's token (the hub console), it
        is a hub sighting: `source: hub` with the token's hub_id (issue 16 §1: ranked first);
        a token that does not verify is 401, never taken as public."""
        # Every X-Forwarded-For line, in order (RFC 9110 §5.3: the same as one comma-joined
        # line): a proxy that adds a line of its own (HAProxy `option forwardfor`) leaves the
        # client's own line first, which must not be taken as the client.
        client = client_key(request.client.host if request.client else "",
                            ",".join(request.headers.getlist("x-forwarded-for")), trusted)
        hub_id = None
        if credentials is not None:
            await auth.prefetch_keys(credentials)
            who = auth.principal(credentials)
            hub_id = who.hub_id if who.role == Role.hub else None
        try:
            tip_id = await intake.file_tip(tip, client, hub_id)
        except RateLimited as exc:
            raise ApiError(429, "rate_limited", headers={"Retry-After": str(exc.retry_after)},
                           retry_after=exc.retry_after) from exc
        except CasePurged as exc:  # ended and purged (issue 13): nothing is taken for it
            raise ApiError(410, "case_closed", field="case_id") from exc
        except LimiterUnavailable as exc:
            # Fails closed: without Redis no tip is let through unlimited.
            raise ApiError(503, "unavailable", "the tip limiter is unavailable; try again",
                           headers={"Retry-After": "5"}) from exc
        return TipAnswer(tip_id=tip_id)

    return router


def build_pages(photos: PhotoStore, auth: Authenticator | None = None,
                access: PhotoAccess | None = None) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    async def viewer(request: Request) -> Principal | None:
        """The bearer's principal, or None (no token, or one that does not verify)."""
        header = request.headers.get("authorization", "")
        if auth is None or not header.lower().startswith("bearer "):
            return None
        credentials = HTTPAuthorizationCredentials(scheme="Bearer",
                                                   credentials=header[7:].strip())
        try:
            # the provider's keys fetched off the event loop first, as every other route does:
            # an unknown `kid` must not stall the service on a synchronous JWKS request
            await auth.prefetch_keys(credentials)
            return auth.principal(credentials)
        except ApiError:
            return None

    @pages.get("/intake")
    async def intake_form() -> FileResponse:
        return FileResponse(UI / "intake.html", media_type="text/html; charset=utf-8")

    @pages.get("/photos/{name}")
    async def photo(name: str, request: Request) -> FileResponse:
        """The photo: to a token of the case's region while its alert is restricted, to
        everyone while it is public, to nobody after the purge (404 alike, issue 13)."""
        path = photos.path(name)
        if path is not None and access is not None and not await access.visible(
                name, await viewer(request)):
            path = None
        if path is None:
            raise ApiError(404, "not_found", field="name", what=f"photo {name}")
        return FileResponse(path)

    return pages
