"""Public entrypoints of alerts anyone can verify (issue 17), no login: the issuer's keys
(JWKS), the verification API and page, and the poster. Thin: parse, limit, call the pure
renderers (services.notify.verify, services.notify.poster)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response

from services.notify import content, domain, formats, poster, verify
from services.notify.api import UI
from services.notify.handlers import Notify
from services.notify.limits import LimiterUnavailable, WindowLimiter
from services.notify.photos import PhotoSource
from shared.i18n import language
from shared.settings import Settings
from shared.verification import JWKS_PATH, VERIFY_PAGE, parse_code, verify_url
from shared.web import ApiError

PDF = "application/pdf"
POSTER_CACHE = 64  # posters kept in memory per process (about 30 KB each without a photo)
AlertId = Annotated[str, PathParam(pattern=domain.ALERT_ID)]


def build_public_router(notify: Notify, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["verification"])
    limiter = WindowLimiter(notify.alerts.redis, "notify:verify", settings.verify_limit_per_client,
                            settings.verify_window_s)
    base = settings.notify_url.rstrip("/")
    photos = PhotoSource(settings.alert_url)
    printed: OrderedDict[tuple[str, int], bytes] = OrderedDict()  # (alert, version) -> PDF
    issuer = formats.ISSUER

    async def limited(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        try:
            retry_after = await limiter.hit(client)
        except LimiterUnavailable as exc:
            raise ApiError(503, "unavailable", "verification is unavailable; try again") from exc
        if retry_after:
            raise ApiError(429, "rate_limited_verify", headers={"Retry-After": str(retry_after)},
                           retry_after=retry_after)

    @router.get(JWKS_PATH, response_model=dict[str, Any])
    async def jwks() -> JSONResponse:
        """The issuer's public keys (RFC 7517): published (about to sign), active, retired
        (still verifying what they signed). Each has `kid`, `alg` ES256 and `x5c`."""
        if notify.keyring is None:
            raise ApiError(404, "not_found", "this deployment does not sign", what="JWKS")
        return JSONResponse(notify.keyring.jwks(), headers={"cache-control": "max-age=300"})

    @router.get("/api/v1/verify/{code}", response_model=dict[str, Any])
    async def verify_code(
        code: Annotated[str, PathParam(max_length=40)], request: Request,
    ) -> JSONResponse:
        """`{status: active|ended|unknown, code, message, ...}` (services.notify.verify.answer);
        422 `verify_malformed` on `code` if it cannot be a short code; rate limited per client."""
        await limited(request)
        canonical = parse_code(code)
        if canonical is None:
            raise ApiError(422, "verify_malformed", field="code")
        alert = await notify.alerts.by_code(canonical)
        body = verify.answer(
            alert, canonical, language(request.headers.get("accept-language")), base_url=base,
            contact=settings.notify_official_contact, limit=settings.notify_push_max_chars,
            zone=settings.display_timezone, verify_base=notify.verify_base(), issuer=issuer)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    @router.get(VERIFY_PAGE, response_class=FileResponse, include_in_schema=False)
    async def verify_page() -> FileResponse:
        return FileResponse(UI / "verify.html", media_type="text/html; charset=utf-8")

    @router.get("/api/v1/alerts/{alert_id}/poster.pdf", response_class=Response,
                responses={200: {"content": {PDF: {}}}, 410: {"content": {PDF: {}}}})
    async def alert_poster(alert_id: AlertId, request: Request) -> Response:
        """A4 poster of a released, real alert; once found (or withdrawn) 410 with the
        "stop sharing" notice instead. 404 for alerts not released to the public."""
        await limited(request)
        alert = await notify.alerts.get(alert_id)
        if alert is None or alert.exercise or not (alert.released or alert.cancelled):
            raise ApiError(404, "not_found", f"alert {alert_id} not found", what=alert_id)
        headers = {"cache-control": "no-store",
                   "content-disposition": f'inline; filename="{alert_id}.pdf"'}
        if alert.cancelled:
            try:
                pdf = await asyncio.to_thread(
                    poster.ended_notice, alert.short_code, alert.outcome == "false_report",
                    issuer, alert.versions[-1].sent, settings.display_timezone)
            except poster.FontMissing:  # the notice matters more than its typeface
                raise ApiError(410, "case_ended", "已找到，请停止转发") from None
            return Response(pdf, status_code=410, media_type=PDF, headers=headers)
        sent = alert.versions[-1].sent
        key = (alert_id, alert.version)
        if key in printed:  # a crowd downloads the same poster: render each version once
            printed.move_to_end(key)
            return Response(printed[key], media_type=PDF, headers=headers)
        body = content.push_body(alert, "public", notify.link(alert_id),
                                settings.notify_official_contact,
                                settings.notify_push_max_chars, sent,
                                settings.display_timezone, notify.verify_base())
        photo = await photos.first([str(u) for u in body["child"].get("photo_urls") or []])
        try:
            pdf = await asyncio.to_thread(
                poster.alert_poster, body, verify_url(notify.verify_base(), alert.short_code),
                issuer, sent, settings.display_timezone, photo=photo)
        except poster.FontMissing as exc:
            raise ApiError(503, "unavailable", f"posters cannot be printed here: {exc}") from exc
        printed[key] = pdf
        while len(printed) > POSTER_CACHE:
            printed.popitem(last=False)
        return Response(pdf, media_type=PDF, headers=headers)

    return router
