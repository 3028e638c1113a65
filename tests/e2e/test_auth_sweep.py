"""Every endpoint of every service against missing, forged, expired and wrong-role tokens
(issue 7). The routes and the roles each accepts are read from the apps themselves, so an
endpoint added later is swept too, and one left open by accident fails the public list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from services.alert.app import create_app as alert_app
from services.dispatch.app import create_app as dispatch_app
from services.notify.app import create_app as notify_app
from shared.auth import Role, mint_token
from shared.settings import Settings

pytestmark = pytest.mark.e2e

# What anyone may call without a token: health, the pages and their assets, public tips and
# the public alert feeds. Everything else must refuse a request without a valid token.
PUBLIC = {
    "alert": {"GET /healthz", "GET /readyz", "GET /metrics", "GET /intake",
              "GET /api/v1/regions", "POST /api/v1/tips", "GET /photos/{name}"},
    "dispatch": {"GET /healthz", "GET /readyz", "GET /metrics", "GET /console",
                 "GET /console/config.js"},
    # CAP without a token is the public message of a released alert; with one, restricted.
    "notify": {"GET /healthz", "GET /readyz", "GET /metrics", "GET /hub", "GET /hub/config.js",
               "GET /api/v1/alerts/active.atom", "GET /api/v1/alerts/{alert_id}.xml"},
}
FACTORIES = {"alert": alert_app, "dispatch": dispatch_app, "notify": notify_app}


@pytest.fixture(scope="module")
def stack(kafka: KafkaServer, redis_server: RedisServer,
          data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in FACTORIES}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "auth", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def roles_of(route: APIRoute) -> tuple[Role, ...] | None:
    """The roles the route's `Authenticator.require` accepts; None when it has none."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        roles = getattr(dependant.call, "roles", None)
        if roles is not None:
            return tuple(roles)
        pending.extend(dependant.dependencies)
    return None


def api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute, also inside included routers (FastAPI keeps them as _IncludedRouter)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes,
                                  prefix + route.include_context.prefix)


def operations(app: FastAPI) -> list[tuple[str, str, tuple[Role, ...] | None]]:
    out = []
    for path, route in api_routes(app.routes):
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, roles_of(route)))
    assert len(out) > 3, "the sweep must find the service's endpoints"
    return out


def concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")  # /cases/{case_id} -> /cases/xcase_id


def forged(settings: Settings) -> str:
    claims = {"sub": "mallory", "role": "admin", "region": "000000",
              "exp": int(time.time()) + 600}
    return jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS256")


@pytest.mark.parametrize("service", sorted(FACTORIES))
async def test_every_endpoint_refuses_bad_tokens(
    service: str, stack: dict[str, ServiceProcess],
) -> None:
    settings = Settings()
    app = FACTORIES[service](settings)
    ops = operations(app)
    open_ops = {f"{m} {p}" for m, p, roles in ops if roles is None}
    assert open_ops <= PUBLIC[service], f"open by accident: {open_ops - PUBLIC[service]}"

    expired = mint_token(settings, Role.admin, "000000", ttl_s=-60)
    unsigned = jwt.encode({"sub": "x", "role": "admin", "region": "000000",
                           "exp": int(time.time()) + 600}, None, algorithm="none")
    bad_tokens = {"missing": None, "forged": forged(settings), "expired": expired,
                  "alg none": unsigned, "garbage": "not.a.token"}
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=stack[service].url, timeout=10) as http:
        for method, path, roles in ops:
            if roles is None:
                continue
            url = concrete(path)
            kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT"} else {}
            for what, token in bad_tokens.items():
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                got = await http.request(method, url, headers=headers, **kwargs)
                if got.status_code != 401:
                    failures.append(f"{method} {path} with {what} token: {got.status_code}")
                elif got.json()["error"]["field"] != "Authorization":
                    failures.append(f"{method} {path} with {what} token: error names no field")
            if not roles:
                continue  # any signed-in role may call it
            for role in Role:
                if role in roles or role is Role.admin:
                    continue
                token = mint_token(settings, role, "140403", hub_id="hub-x")
                got = await http.request(method, url, **kwargs,
                                         headers={"Authorization": f"Bearer {token}"})
                if got.status_code != 403:
                    failures.append(f"{method} {path} as {role.value}: {got.status_code}")
    assert failures == []
