"""What every service does to keep browsers and request bodies in bounds (issue 12): the body
limit checked before anything parses a body, the security headers (CSP, no framing, nosniff,
no referrer) on every response, and CORS for the consoles the sibling services serve."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import i18n
from shared.settings import Settings
from shared.web_errors import error_body

__all__ = ["BodySizeLimit", "SecurityHeaders", "allow_consoles", "content_security_policy",
           "harden"]


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
