"""HTTP entrypoints of notify (thin: parse, authorise, call a handler)."""


import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.notify import audience, domain, formats, ledger_rules
from services.notify.adapters import HubFeed
from services.notify.audience import SubscriberRequest
from services.notify.handlers import Conflict, Forbidden, NotFound, Notify
from services.notify.outbound import UnsafeUrl
from services.notify.preview import cancel_preview, release_preview
from services.notify.subscribers import LocationOutsideRegion
from shared.auth import Principal, Role
from shared.events import Outcome
from shared.release import NOTIFY_PREVIEW_PATH, ReleasePreview
from shared.settings import Settings
from shared.streams import StreamFanout, StreamLimits, sse_response
from shared.web import ApiError, Authenticator

UI = Path(__file__).with_name("ui")
CaseId = Annotated[str, PathParam(pattern=domain.CASE_ID)]
HubId = Annotated[str, PathParam(pattern=audience.HUB_ID)]


class SubscriberCreated(BaseModel):
    subscriber_id: str
    secret: str  # the webhook signing secret, shown once


class SecretRotated(BaseModel):
    secret: str  # the new signing secret, shown once; the old one signs too for the overlap


class SubscriberInService(BaseModel):
    subscriber_id: str
    active: bool  # false: out of service, selected for nothing, its retries dropped


class ChannelChange(BaseModel):
    channel: audience.Channel = Field(discriminator="type")


class SubscriberChannel(BaseModel):
    subscriber_id: str
    active: bool
    channel_type: str  # webhook, apprise or console; the URL is never shown again


class HubInfo(BaseModel):
    hub_id: str
    name: str
    location: audience.Location
    region_code: str | None = None
    active: bool = True  # false: taken out of service by an admin (or its endpoint said 410)


class HubAlerts(BaseModel):
    hub_id: str
    alerts: list[dict[str, Any]]


class Acknowledged(BaseModel):
    delivery_id: str
    state: str
    acked_at: str


class Delivery(BaseModel):
    delivery_id: str
    subscriber_id: str
    name: str = ""
    kind: str
    channel: str
    alert_id: str
    version: int
    scope: str
    state: str  # shared.events.DeliveryStatus (not ack_overdue: that is `overdue`)
    attempts: int
    http_status: int | None = None
    error: str = ""
    overdue: bool = False
    acked_at: str | None = None
    at: str = ""
    # While `retrying`: since its first failure, and when the next try is due (ISO 8601 /
    # epoch seconds); a hub's push of an active alert retries until it lands (issue 18 §4).
    since: str | None = None
    next_at: str | None = None


class CaseDeliveries(BaseModel):
    case_id: str
    deliveries: list[Delivery]
    counts: dict[str, int]


CAP = "application/cap+xml"
ATOM = "application/atom+xml"
SVG = "image/svg+xml"


def build_router(auth: Authenticator, notify: Notify, settings: Settings,
                 fanout: StreamFanout, limits: StreamLimits) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    Admin = Annotated[Principal, Depends(auth.require(Role.admin))]
    Hub = Annotated[Principal, Depends(auth.require(Role.hub, Role.commander))]
    HubOnly = Annotated[Principal, Depends(auth.require(Role.hub))]
    Commander = Annotated[Principal, Depends(auth.require(Role.commander))]
    optional_bearer = HTTPBearer(auto_error=False)

    def maybe_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(optional_bearer)],
    ) -> Principal | None:
        return auth.principal(credentials) if credentials is not None else None

    Maybe = Annotated[Principal | None, Depends(maybe_principal)]

    async def own_hub(principal: Principal, hub_id: str) -> audience.Subscriber:
        if principal.role == Role.hub and principal.hub_id != hub_id:
            raise ApiError(403, "forbidden", "not your hub", role=principal.role.value,
                           needs="hub " + hub_id)
        sub = await notify.subscribers.get(hub_id)
        if sub is None or sub.kind != audience.SubscriberKind.hub:
            raise ApiError(404, "not_found", f"hub {hub_id} not found")
        # Scoped with no exception (admins too, issue 12): a hub without a region (registered
        # before every hub had one) is seen by national scope only.
        if principal.role != Role.hub and not principal.can_see(sub.region_code or ""):
            raise ApiError(404, "not_found", f"hub {hub_id} not found")
        return sub

    @router.post("/subscribers", status_code=201, response_model=SubscriberCreated,
                 tags=["subscribers"])
    async def post_subscriber(request: SubscriberRequest, admin: Admin) -> SubscriberCreated:
        """An admin registers within its own region only. A hub_id already registered: 409
        (its secret is never returned again and its channel never repointed)."""
        try:
            subscriber = await notify.register(request, within_region=admin.region)
        except UnsafeUrl as exc:
            raise ApiError(422, "unsafe_url", str(exc), "channel.url") from exc
        except Forbidden as exc:
            raise ApiError(403, "outside_region", "outside your region", "region_code",
                           region=admin.region) from exc
        except Conflict as exc:
            raise ApiError(409, "subscriber_exists", "hub already registered",
                           "hub_id") from exc
        except LocationOutsideRegion as exc:
            raise ApiError(422, "location_outside_region", str(exc), "location") from exc
        except ValueError as exc:
            raise ApiError(422, "no_region", str(exc), "region_code") from exc
        return SubscriberCreated(subscriber_id=subscriber.subscriber_id, secret=subscriber.secret)

    @router.post("/subscribers/{subscriber_id}/rotate-secret", response_model=SecretRotated,
                 tags=["subscribers"])
    async def rotate_secret(subscriber_id: Annotated[str, PathParam(pattern=audience.HUB_ID)],
                            admin: Admin) -> SecretRotated:
        """A new signing secret, shown once. For `notify_secret_overlap_s` every push carries
        a `v1,` signature per live secret in `webhook-signature`. 404 outside the admin's
        region."""
        try:
            secret = await notify.rotate_secret(subscriber_id, admin.region)
        except NotFound as exc:
            raise ApiError(404, "not_found", f"subscriber {subscriber_id} not found") from exc
        return SecretRotated(secret=secret)

    async def in_service(subscriber_id: str, active: bool, admin: Principal,
                         ) -> SubscriberInService:
        try:
            sub = await notify.registry.set_active(subscriber_id, active, admin.region,
                                                   actor=admin.sub)
        except NotFound as exc:
            raise ApiError(404, "not_found", f"subscriber {subscriber_id} not found") from exc
        return SubscriberInService(subscriber_id=sub.subscriber_id, active=sub.active)

    @router.post("/subscribers/{subscriber_id}/disable", response_model=SubscriberInService,
                 tags=["subscribers"])
    async def disable_subscriber(
            subscriber_id: Annotated[str, PathParam(pattern=audience.HUB_ID)],
            admin: Admin) -> SubscriberInService:
        """Take a subscriber out of service (a station closed, a channel retired): no alert
        selects it, and its deliveries still retrying are dropped when next due. Idempotent.
        404 outside the admin's region."""
        return await in_service(subscriber_id, False, admin)

    @router.post("/subscribers/{subscriber_id}/enable", response_model=SubscriberInService,
                 tags=["subscribers"])
    async def enable_subscriber(
            subscriber_id: Annotated[str, PathParam(pattern=audience.HUB_ID)],
            admin: Admin) -> SubscriberInService:
        """Put a subscriber back in service (also one a 410 disabled): selected again for
        what is planned from now on. Idempotent. 404 outside the admin's region."""
        return await in_service(subscriber_id, True, admin)

    @router.put("/subscribers/{subscriber_id}/channel", response_model=SubscriberChannel,
                tags=["subscribers"])
    async def put_channel(subscriber_id: Annotated[str, PathParam(pattern=audience.HUB_ID)],
                          change: ChannelChange, admin: Admin) -> SubscriberChannel:
        """Repoint a subscriber's channel (a station's receiver moved, a chat group replaced).
        The URL is checked as at registration (422 `unsafe_url`) and never shown again; the
        deliveries still retrying are tried again at once at the new address. Being in or out
        of service does not change: one a 410 took out is put back with `/enable`. 404
        outside the admin's region."""
        try:
            sub = await notify.registry.set_channel(subscriber_id, change.channel, admin.region,
                                                    actor=admin.sub)
        except UnsafeUrl as exc:
            raise ApiError(422, "unsafe_url", str(exc), "channel.url") from exc
        except NotFound as exc:
            raise ApiError(404, "not_found", f"subscriber {subscriber_id} not found") from exc
        return SubscriberChannel(subscriber_id=sub.subscriber_id, active=sub.active,
                                 channel_type=sub.channel.type)

    @router.get("/hubs/{hub_id}", response_model=HubInfo, tags=["hub console"])
    async def get_hub(hub_id: HubId, principal: Hub) -> HubInfo:
        sub = await own_hub(principal, hub_id)
        return HubInfo(hub_id=sub.subscriber_id, name=sub.name, location=sub.location,
                       region_code=sub.region_code, active=sub.active)

    @router.get("/hubs/{hub_id}/alerts", response_model=HubAlerts, tags=["hub console"])
    async def get_hub_alerts(hub_id: HubId, principal: Hub) -> HubAlerts:
        await own_hub(principal, hub_id)
        return HubAlerts(hub_id=hub_id, alerts=await notify.feed.current(hub_id))

    @router.get("/hubs/{hub_id}/stream", tags=["hub console"], response_class=Response,
                responses={200: {"content": {"text/event-stream": {}}}})
    async def hub_stream(
        hub_id: HubId, principal: Hub,
        last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]+-[0-9]+$")] = None,
    ) -> EventSourceResponse:
        """The hub's pushes, live (Last-Event-ID resumes). Ends when the token expires;
        429/503 with Retry-After over the stream caps."""
        await own_hub(principal, hub_id)

        def render(eid: str, fields: dict[str, str]) -> ServerSentEvent:
            # The stored body is the JSON the push carried: sent on as it is.
            return ServerSentEvent(data=fields["body"], id=eid, event="alert")

        return sse_response(fanout, limits, principal, HubFeed.key(hub_id), last_event_id,
                            render)

    @router.post("/deliveries/{delivery_id}/ack", response_model=Acknowledged,
                 tags=["deliveries"])
    async def ack(delivery_id: Annotated[str, PathParam(pattern=r"^msg_[0-9a-f]{32}$")],
                  principal: HubOnly) -> Acknowledged:
        if principal.role == Role.admin:  # an admin acknowledges only inside its region
            record = await notify.ledger.get(delivery_id)
            alert = await notify.alerts.get(record.get("alert_id", "")) if record else None
            if alert is None or not principal.can_see(alert.region_code):
                raise ApiError(404, "not_found", "delivery not found")
        try:
            at = await notify.acknowledge(delivery_id, principal.hub_id,
                                          admin=principal.role == Role.admin)
        except NotFound as exc:
            raise ApiError(404, "not_found", "delivery not found") from exc
        except Forbidden as exc:
            raise ApiError(403, "forbidden", "not your hub's delivery",
                           role=principal.role.value, needs="the delivery's hub") from exc
        return Acknowledged(delivery_id=delivery_id, state="acknowledged", acked_at=at)

    @router.get("/deliveries", response_model=CaseDeliveries, tags=["deliveries"])
    async def list_deliveries(
        case_id: Annotated[str, Query(pattern=domain.CASE_ID)], principal: Commander,
    ) -> CaseDeliveries:
        alert = await notify.alerts.get(domain.alert_id_of(case_id))
        if alert is None or not principal.can_see(alert.region_code):
            raise ApiError(404, "not_found", f"case {case_id} not found")
        rows = [Delivery(**{**r, "error": ledger_rules.error_class(r["error"])})
                for r in await notify.deliveries(case_id)]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        return CaseDeliveries(case_id=case_id, deliveries=rows, counts=counts)

    @router.get("/cases/{case_id}/spread.svg", tags=["deliveries"], response_class=Response,
                responses={200: {"content": {SVG: {}}}})
    async def spread(case_id: CaseId, principal: Commander) -> Response:
        try:
            alert, hubs = await notify.spread(case_id)
        except NotFound as exc:
            raise ApiError(404, "not_found", f"case {case_id} not found") from exc
        if not principal.can_see(alert.region_code):
            raise ApiError(404, "not_found", f"case {case_id} not found")
        tiers = [km for _, km in settings.radius_tiers_km] + [settings.radius_max_km]
        svg = formats.spread_svg(case_id, alert.lat, alert.lon, alert.radius_km, tiers, hubs)
        return Response(svg, media_type=SVG, headers={"cache-control": "no-store"})

    @router.get(NOTIFY_PREVIEW_PATH.removeprefix("/api/v1"), response_model=ReleasePreview,
                tags=["release"])
    async def public_preview(
        case_id: CaseId, principal: Commander,
        action: Annotated[Literal["release", "cancel"], Query()] = "release",
        outcome: Annotated[Outcome, Query(description="for action=cancel")] = "found_safe",
    ) -> ReleasePreview:
        """What the public would receive if the case were released now (or, `action=cancel`,
        what every recipient would receive if the search ended now with `outcome`), with its
        content_hash (shared.release); dispatch shows it and checks it at release. 404 before
        notify has the alert; 409 `case_ended` once found."""
        alert = await notify.alerts.get(domain.alert_id_of(case_id))
        if alert is None or not principal.can_see(alert.region_code):
            raise ApiError(404, "not_found", f"case {case_id} not found", what=case_id)
        if alert.cancelled:
            raise ApiError(409, "case_ended", "the search has ended; nothing to release")
        if action == "cancel":
            return await cancel_preview(notify, alert, outcome)
        return await release_preview(notify, alert)

    @router.get("/alerts/active.atom", tags=["feeds"], response_class=Response,
                responses={200: {"content": {ATOM: {}}}})
    async def active_atom() -> Response:
        alerts = await notify.alerts.public()
        ended = await notify.alerts.public_ended(
            notify.clock().timestamp() - settings.notify_feed_cancel_keep_s)
        xml = formats.atom_feed(alerts, settings.notify_url.rstrip("/"),
                                settings.notify_official_contact,
                                settings.notify_push_max_chars,
                                zone=settings.display_timezone,
                                verify_base=notify.verify_base(), ended=ended)
        return Response(xml, media_type=ATOM, headers={"cache-control": "max-age=30"})

    @router.get("/alerts/{alert_id}.xml", tags=["feeds"], response_class=Response,
                responses={200: {"content": {CAP: {}}}})
    async def alert_cap(
        alert_id: Annotated[str, PathParam(pattern=domain.ALERT_ID)], principal: Maybe,
        version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        scope: Annotated[Literal["public"] | None, Query(
            description="a commander or hub: the public message (release preview)")] = None,
    ) -> Response:
        """CAP 1.2 of one alert version (the latest by default), signed by the issuer (an
        enveloped XML-DSig verifiable with the JWKS key it names). Without a token: the public
        message of a released, real alert; a commander or hub gets the restricted one."""
        alert = await notify.alerts.get(alert_id)
        restricted = principal is not None and principal.role in {
            Role.commander, Role.hub, Role.admin} and principal.can_see(
                alert.region_code if alert else "000000")
        if alert is None or (not restricted and (alert.exercise or not alert.released)):
            raise ApiError(404, "not_found", f"alert {alert_id} not found")
        wanted = version or alert.version
        if wanted > alert.version:
            raise ApiError(404, "not_found", f"alert {alert_id} has no version {wanted}")
        public = not restricted or scope == "public"
        # Version N as it was pushed (its content then), when that version reached its scope.
        pushed = None if alert.cancelled else await notify.ledger.get_body(
            f"{alert_id}:{wanted}:{'public' if public else 'restricted'}")
        xml = formats.cap_xml(alert, wanted, "Public" if public else "Restricted",
                              settings.notify_sender, notify.link(alert_id),
                              settings.notify_official_contact, settings.notify_push_max_chars,
                              settings.display_timezone, notify.verify_base(), pushed)
        if notify.keyring is not None:  # the issuer's enveloped XML-DSig (issue 17 §1)
            xml = notify.keyring.sign_cap(xml)
        return Response(xml, media_type=CAP, headers={"cache-control": "max-age=30"})

    return router


def build_ui_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["hub console"])

    @router.get("/hub", response_class=FileResponse, include_in_schema=False)
    async def hub_page() -> FileResponse:
        return FileResponse(UI / "hub.html", media_type="text/html; charset=utf-8")

    @router.get("/hub/config.js", include_in_schema=False)
    async def hub_config() -> Response:
        config = {"alert_url": settings.alert_url.rstrip("/"),
                  "display_timezone": settings.display_timezone}
        return Response(f"window.HW_CONFIG = {json.dumps(config)};",
                        media_type="application/javascript")

    return router

