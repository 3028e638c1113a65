"""JSON errors of every service's HTTP API: `{"error": {"code", "message", "field"?}}` with a
4xx naming the field (shared/errors.py's hierarchy, request validation and routing errors alike),
the message in the caller's language (shared.i18n), and the same error body described in the
OpenAPI document of every operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import i18n
from shared.errors import HomewardError
from shared.report import RULE_FIELDS

__all__ = ["ERROR_STATUSES", "ApiError", "ErrorDetail", "ErrorInfo", "ErrorResponse",
           "document_errors", "error_body", "field_path", "install_error_handlers",
           "request_language"]


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
