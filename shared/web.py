"""HTTP plumbing every service shares: JSON errors, bearer-token dependencies, and the
operational endpoints /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import InvalidToken, Principal, Role, verify_token
from shared.settings import Settings


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "field"?}}` with a 4xx status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": field_path(e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        return JSONResponse(
            error_body("invalid", f"{first['field']}: {first['message']}", first["field"],
                       details=details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


_bearer = HTTPBearer(auto_error=False)


class Authenticator:
    """FastAPI dependencies that turn the bearer token into a Principal and check its role."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def principal(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None:
            raise ApiError(401, "unauthenticated", "bearer token required", "Authorization")
        try:
            return verify_token(self.settings, credentials.credentials)
        except InvalidToken as exc:
            raise ApiError(401, "unauthenticated", str(exc), "Authorization") from exc

    def require(self, *roles: Role) -> Callable[..., Principal]:
        def dependency(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            principal = self.principal(credentials)
            if roles and principal.role not in roles and principal.role != Role.admin:
                allowed = ", ".join(r.value for r in roles)
                raise ApiError(403, "forbidden", f"role {principal.role.value} may not do this "
                               f"(needs {allowed})")
            return principal

        return dependency


ReadinessCheck = Callable[[], Awaitable[bool]]


def redis_check(redis: Redis) -> ReadinessCheck:
    async def check() -> bool:
        try:
            return bool(await redis.ping())
        except Exception:
            return False

    return check


def ops_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    """/healthz: the process answers. /readyz: every dependency answers. /metrics: Prometheus."""
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready",
             "checks": {k: "ok" if v else "failing" for k, v in results.items()}},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
