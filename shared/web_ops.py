"""The operational endpoints of every service: /healthz and /readyz on the API port (with the
readiness checks of its dependencies), and the internal app of the ops port serving /metrics,
/docs, /openapi.json and /asyncapi.json, never published (issue 12, issue 15)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import metrics

__all__ = ["API_DOCS_OFF", "ReadinessCheck", "ops_app", "ops_router", "redis_check"]


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
