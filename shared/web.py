"""HTTP plumbing every service shares: the bearer-token dependencies (Authenticator) and the
consoles' common files and sign-in configuration.

Re-exported from their modules, so a service's app imports its HTTP plumbing from here: the JSON
errors (shared.web_errors), the body limit, security headers and CORS (shared.web_hardening),
and the operational endpoints and ops app (shared.web_ops)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from shared.auth import InvalidToken, Principal, Role, verify_token_with_expiry
from shared.oidc import consoles_config_js, from_provider, provider_keys
from shared.settings import Settings
from shared.web_errors import ApiError, install_error_handlers
from shared.web_hardening import BodySizeLimit, allow_consoles, content_security_policy, harden
from shared.web_ops import API_DOCS_OFF, ReadinessCheck, ops_app, ops_router, redis_check

__all__ = ["API_DOCS_OFF", "SHARED_UI", "ApiError", "Authenticator", "BodySizeLimit",
           "ReadinessCheck", "allow_consoles", "content_security_policy", "harden",
           "install_error_handlers", "mount_shared_ui", "ops_app", "ops_router", "redis_check"]


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
