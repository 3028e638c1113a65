"""HTTP plumbing every service shares: JSON errors, bearer-token dependencies, the body limit
and browser security headers, the operational endpoints /healthz and /readyz, and the internal
app serving /metrics, /docs and /openapi.json on the ops port (issue 12)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import i18n, metrics
from shared.auth import InvalidToken, Principal, Role, verify_token_with_expiry
from shared.errors import HomewardError
from shared.oidc import consoles_config_js, from_provider, provider_keys
from shared.report import RULE_FIELDS
from shared.settings import Settings


class ApiError(HomewardError):
    """An error raised by an api module itself, answered like every other HomewardError:
    `{"error": {"code", "message", "field"?}}` with its 4xx status (shared/errors.py).

    The message is taken from shared.i18n by `code` in the caller's language (with `context`
    filled in); `message` is the fallback for codes without a translation."""

    def __init__(self, status: int, code: str, message: str = "", field: str | None = None,
                 headers: dict[str, str] | None = None, **context: Any) -> None:
        super().__init__(status, code, message, field, headers, **context)


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def field_path(loc: tuple[Any, ...] | list[Any], error_type: str = "",
               field: str | None = None) -> str:
    """`child.name` from pydantic's loc; model-level rules name their own field (`field` from
    the rule's context, else RULE_FIELDS), relative to the model that raised them."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    relative = field if field is not None else RULE_FIELDS.get(error_type)
    if relative:
        parts.append(relative)
    return ".".join(parts) or "body"


def request_language(request: Request) -> str:
    return i18n.language(request.headers.get("accept-language"))


class ErrorDetail(BaseModel):
    field: str
    code: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx answer: `{"error": {"code", "message", "field"?}}`."""

    error: ErrorInfo


ERROR_STATUSES = {
    "400": "bad request", "401": "missing, forged or expired bearer token",
    "403": "the caller's role may not do this", "404": "not found (or outside the caller's region)",
    "409": "conflict with the current state", "413": "body too large",
    "415": "unsupported media type", "422": "invalid input; `field` names it",
    "429": "rate limited; see Retry-After",
}


def document_errors(app: FastAPI) -> None:
    """Describe our JSON error body in the OpenAPI document (instead of FastAPI's default 422
    schema) for every operation, so clients and schema checks know what a 4xx looks like."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                             description=app.description)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorDetail, ErrorInfo, ErrorResponse):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                for status, text in ERROR_STATUSES.items():
                    responses[status] = {"description": text,
                                         "content": {"application/json": {"schema": ref}}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(HomewardError)
    async def on_error(request: Request, exc: HomewardError) -> JSONResponse:
        """The whole hierarchy of shared/errors.py, mapped to HTTP here and nowhere else."""
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        text = i18n.message(exc.code, request_language(request), exc.message, **exc.context)
        return JSONResponse(
            error_body(exc.code, text, exc.field), status_code=exc.status, headers=headers,
            media_type="application/json; charset=utf-8",
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = request_language(request)
        details = []
        for e in exc.errors():
            kind = str(e.get("type", ""))
            context = dict(e.get("ctx") or {})
            context.pop("error", None)
            named = context.pop("field", None)
            details.append({
                "field": field_path(e.get("loc", ()), kind, named),
                "code": kind,
                "message": i18n.message(kind, lang, str(e.get("msg", "")), **context),
            })
        first = details[0] if details else {"field": "body", "message": "invalid"}
        return JSONResponse(
            error_body("invalid", f"{first['field']}: {first['message']}", first["field"],
                       details=details),
            status_code=422, media_type="application/json; charset=utf-8",
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413 `body_too_large` before anything
    parses them or checks a token (pure ASGI, outside routing): a declared Content-Length over
    the limit is refused without reading a byte; a streamed body is counted as it arrives and
    refused as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limit: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.paths = paths or {}  # path prefix -> its own limit (e.g. photo uploads)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.paths.items():
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await self._refuse(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        lang = i18n.language(dict(scope.get("headers") or []).get(b"accept-language",
                                                                   b"").decode())
        response = JSONResponse(
            error_body("body_too_large", i18n.message("body_too_large", lang, limit=limit),
                       "body"),
            status_code=413, headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _origin(url: str) -> str:
    parts = url.split("/")
    return "/".join(parts[:3]) if len(parts) >= 3 and parts[0].endswith(":") else ""


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles only from this origin (no inline script, no eval), never framed;
    the consoles call the sibling services and show photos from the alert service or https."""
    siblings = sorted({o for o in map(_origin, (settings.alert_url, settings.dispatch_url,
                                                settings.notify_url)) if o})
    # The identity provider (issue 20): discovery, keys and the code exchange are fetched.
    callable_ = sorted({*siblings, *filter(None, map(_origin, [settings.oidc_issuer,
                                                               *settings.csp_connect_src]))})
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src " + " ".join(["'self'", "data:", "blob:", "https:", *siblings]),
        "connect-src " + " ".join(["'self'", *callable_]),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """Add CSP, frame protection, nosniff and a referrer policy to every HTTP response (the
    consoles are pages of these services; API answers carry them too at no cost)."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def harden(app: FastAPI, settings: Settings, body_limits: dict[str, int] | None = None) -> None:
    """Every service: the body limit (settings.max_body_bytes; `body_limits` maps a path prefix
    to its own) and the browser security headers. Call before allow_consoles, so CORS
    headers are added to the 413 answers too."""
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, paths=body_limits)
    app.add_middleware(SecurityHeaders, csp=content_security_policy(settings))


API_DOCS_OFF: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None}
"""FastAPI(**API_DOCS_OFF): the API port serves no /docs or /openapi.json; ops_app does."""


def ops_app(api: FastAPI) -> FastAPI:
    """The internal app of the ops port (settings.ops_host:ops_port, never published):
    /metrics (Prometheus), /openapi.json and /docs of `api`, /asyncapi.json (the Kafka
    contract, `api.state.asyncapi()`: shared.asyncapi.document), /healthz."""
    app = FastAPI(title=api.title + " (internal)", **API_DOCS_OFF)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        """Every worker's series summed when several share the service (shared.metrics)."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return JSONResponse(api.openapi())

    @app.get("/asyncapi.json")
    async def asyncapi() -> JSONResponse:
        describe = getattr(api.state, "asyncapi", None)
        if describe is None:
            raise StarletteHTTPException(404, "no AsyncAPI document")
        return JSONResponse(describe())

    @app.get("/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=api.title)

    return app


_bearer = HTTPBearer(auto_error=False)


class Authenticator:
    """FastAPI dependencies that turn the bearer token into a Principal and check its role."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A call centre sends the same token all shift: verify its signature once, keep the
        # expiry check on every request.
        self._verified: dict[str, tuple[Principal, float]] = {}

    def principal(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None:
            raise ApiError(401, "unauthenticated", field="Authorization", reason="missing")
        token = credentials.credentials
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        try:
            principal, expires = verify_token_with_expiry(self.settings, token)
        except InvalidToken as exc:
            raise ApiError(401, "unauthenticated", field="Authorization", reason=str(exc)) from exc
        if len(self._verified) >= 4096:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    async def prefetch_keys(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        """A provider token not verified before: fetch the provider's keys in a thread when
        the cache lacks them (shared.oidc), so the check that follows never blocks the loop."""
        token = credentials.credentials if credentials is not None else ""
        if token and token not in self._verified and from_provider(self.settings, token):
            await asyncio.to_thread(provider_keys(self.settings).prefetch, token)

    def require(self, *roles: Role) -> Callable[..., Awaitable[Principal]]:
        async def dependency(  # async: a sync dependency would cost a thread hop per request
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            await self.prefetch_keys(credentials)
            principal = self.principal(credentials)
            if roles and principal.role not in roles and principal.role != Role.admin:
                allowed = ", ".join(r.value for r in roles)
                raise ApiError(403, "forbidden", role=principal.role.value, needs=allowed)
            return principal

        dependency.roles = roles  # type: ignore[attr-defined]  # read by the auth sweep test
        return dependency


SHARED_UI = Path(__file__).with_name("ui")


def mount_shared_ui(app: FastAPI, settings: Settings | None = None) -> None:
    """The consoles' common script and style sheet, served by every service (no CDN), and
    /auth/config.js: where the consoles sign people in (shared.oidc.consoles_config_js)."""
    app.mount("/static/shared", StaticFiles(directory=SHARED_UI), name="shared-static")
    if settings is not None:
        body = consoles_config_js(settings)

        @app.get("/auth/config.js", include_in_schema=False)
        async def sign_in_config() -> Response:
            return Response(body, media_type="application/javascript; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})


def allow_consoles(app: FastAPI, *origins: str) -> None:
    """Let the consoles served by the other services call this one from the browser (bearer
    tokens, no cookies), and nobody else."""
    app.add_middleware(
        CORSMiddleware, allow_origins=[o.rstrip("/") for o in origins], allow_credentials=False,
        allow_methods=["GET", "POST", "PUT"],
        allow_headers=["Authorization", "Content-Type", "Accept-Language", "Idempotency-Key",
                       "Last-Event-ID"],
        max_age=600,
    )


ReadinessCheck = Callable[[], Awaitable[bool]]


def redis_check(redis: Redis) -> ReadinessCheck:
    async def check() -> bool:
        try:
            return bool(await redis.ping())
        except Exception:
            return False

    return check


def ops_router(
    checks: dict[str, ReadinessCheck],
    informational: dict[str, ReadinessCheck] | None = None,
    details: Callable[[], Awaitable[dict[str, object]]] | None = None,
) -> APIRouter:
    """/healthz: the process answers. /readyz: 200 when every check in `checks` passes (the
    `informational` ones are reported but do not fail readiness). /metrics is on the internal
    port (ops_app)."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "a dependency is failing"}})
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        extra = {name: await check() for name, check in (informational or {}).items()}
        ready = all(results.values())
        body: dict[str, object] = {
            "status": "ready" if ready else "not_ready",
            "checks": {k: "ok" if v else "failing" for k, v in {**results, **extra}.items()},
        }
        if details is not None:
            body.update(await details())
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
