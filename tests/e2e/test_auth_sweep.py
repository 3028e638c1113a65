"""Every endpoint of every service against missing, forged, expired and wrong-role tokens
(issue 7). The routes and the roles each accepts are read from the apps themselves, so an
endpoint added later is swept too, and one left open by accident fails the public list.

Run twice (issue 20): with tokens minted by shared.tokens, and with tokens of the identity
provider's sample accounts (Keycloak, password grant), against services trusting it — every
rule must mean the same for both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
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
from tests.helpers import ProviderTokens, another_child, eventually, log_lines, report_body

pytestmark = pytest.mark.e2e

# What anyone may call without a token: health, the pages and their assets, public tips and
# the public alert feeds. Everything else must refuse a request without a valid token.
PUBLIC = {
    "alert": {"GET /healthz", "GET /readyz", "GET /intake", "GET /intake/unidentified",
              "GET /auth/config.js",
              "GET /api/v1/regions", "POST /api/v1/tips", "GET /photos/{name}"},
    "dispatch": {"GET /healthz", "GET /readyz", "GET /console", "GET /auth/config.js",
                 "GET /console/config.js"},
    # CAP without a token is the public message of a released alert; with one, restricted.
    "notify": {"GET /healthz", "GET /readyz", "GET /hub", "GET /hub/config.js",
               "GET /auth/config.js",
               "GET /api/v1/alerts/active.atom", "GET /api/v1/alerts/{alert_id}.xml",
               # Alerts anyone can verify (issue 17): the issuer's keys, the verification page
               # and API, the poster of a released alert.
               "GET /.well-known/jwks.json", "GET /verify", "GET /api/v1/verify/{code}",
               "GET /api/v1/alerts/{alert_id}/poster.pdf"},
}
FACTORIES = {"alert": alert_app, "dispatch": dispatch_app, "notify": notify_app}


TokenFor = Callable[..., str]


@pytest.fixture(scope="module", params=["minted", "provider"])
def tokens(request: pytest.FixtureRequest, settings_: Settings) -> tuple[str, TokenFor, str]:
    """(mode, token_for(role, region, hub_id=None), OIDC issuer the services trust or "")."""
    if request.param == "minted":
        def minted(role: Role | str, region: str, hub_id: str | None = None) -> str:
            # A mandated reporter's token names its organisation (issue 16).
            org = "测试医院" if role == Role.mandated_reporter else None
            return mint_token(settings_, role, region, hub_id=hub_id, org=org)

        return "minted", minted, ""
    keycloak = request.getfixturevalue("keycloak")  # started only for this half
    return "provider", ProviderTokens(keycloak), keycloak.issuer


@pytest.fixture(scope="module")
def settings_() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def stack(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
          tokens: tuple[str, TokenFor, str]) -> Iterator[dict[str, ServiceProcess]]:
    mode, _, issuer = tokens
    ports = {name: free_port() for name in FACTORIES}
    env = {"HOMEWARD_OIDC_ISSUER": issuer} if issuer else {}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / f"auth-{mode}", ports,
                           env)
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
    service: str, stack: dict[str, ServiceProcess], tokens: tuple[str, TokenFor, str],
) -> None:
    token_for = tokens[1]
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
                token = token_for(role, "140403", hub_id="hub-x")
                got = await http.request(method, url, **kwargs,
                                         headers={"Authorization": f"Bearer {token}"})
                if got.status_code != 403:
                    failures.append(f"{method} {path} as {role.value}: {got.status_code}")
    assert failures == []


async def test_cross_region_reads_see_nothing(
    stack: dict[str, ServiceProcess], tokens: tuple[str, TokenFor, str],
) -> None:
    """A commander of 南京 (3201) neither reads nor streams a 长治 (1404) case; another hub's
    desk does not read this hub's alerts."""
    token_for = tokens[1]
    alert, dispatch, notify = (stack[n].url for n in ("alert", "dispatch", "notify"))

    def as_(role: Role, region: str, hub_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(role.value, region, hub_id=hub_id)}"}

    async with httpx.AsyncClient(timeout=15) as http:
        hub = await http.post(f"{notify}/api/v1/subscribers", headers=as_(Role.admin, "000000"),
                              json={"kind": "hub", "name": "长治站", "region_code": "140403",
                                    "location": {"lat": 36.2, "lon": 113.1},
                                    "channel": {"type": "console"}})
        assert hub.status_code == 201, hub.text
        hub_id = hub.json()["subscriber_id"]
        nanjing = as_(Role.commander, "320100")
        changzhi = as_(Role.commander, "140400")

        async with http.stream("GET", f"{dispatch}/api/v1/stream", headers=nanjing) as foreign:
            assert foreign.status_code == 200
            posted = await http.post(f"{alert}/api/v1/reports", headers=as_(Role.operator,
                                     "140403"), json=report_body(reporter__phone="13512345678",
                                                                 child__name="跨区测试",
                                                                 **another_child()))
            assert posted.status_code == 202
            case_id = posted.json()["case_id"]
            report_id = posted.json()["report_id"]

            last: dict[str, str] = {}

            async def visible() -> bool:
                got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=changzhi)
                deliveries = await http.get(f"{notify}/api/v1/deliveries",
                                            params={"case_id": case_id}, headers=changzhi)
                last.update(case=f"{got.status_code} {got.text[:200]}",
                            deliveries=f"{deliveries.status_code} {deliveries.text[:300]}")
                return got.status_code == 200 and deliveries.status_code == 200 and bool(
                    deliveries.json()["deliveries"])

            try:
                await eventually(visible, timeout=90)
            except AssertionError as exc:
                logs = "\n".join(f"--- {name}\n{log_lines(proc.log_path, {case_id, report_id})}"
                                  for name, proc in stack.items())
                raise AssertionError(f"{exc}; the case as its own region's commander reads it: "
                                     f"{last}\n{logs}") from exc
            # The Nanjing stream carried nothing of this case while it opened.
            seen: list[str] = []

            async def read_some() -> None:
                async for line in foreign.aiter_lines():
                    seen.append(line)

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_some(), timeout=3)
            assert not any(case_id in line for line in seen)

        checks = {
            f"{dispatch}/api/v1/cases/{case_id}": 404,
            f"{notify}/api/v1/deliveries?case_id={case_id}": 404,
            f"{notify}/api/v1/cases/{case_id}/spread.svg": 404,
            f"{notify}/api/v1/hubs/{hub_id}": 404,
        }
        for url, status in checks.items():
            got = await http.get(url, headers=nanjing)
            assert got.status_code == status, (url, got.status_code)
        listed = (await http.get(f"{dispatch}/api/v1/cases", headers=nanjing)).json()
        assert all(c["case_id"] != case_id for c in listed)
        other_desk = as_(Role.hub, "140400", hub_id="another-hub")
        for path in (f"/api/v1/hubs/{hub_id}", f"/api/v1/hubs/{hub_id}/alerts",
                     f"/api/v1/hubs/{hub_id}/stream"):
            got = await http.get(f"{notify}{path}", headers=other_desk)
            assert got.status_code == 403, (path, got.status_code)
        operator_elsewhere = as_(Role.operator, "320100")
        got = await http.get(f"{alert}/api/v1/reports/{report_id}", headers=operator_elsewhere)
        assert got.status_code == 404
