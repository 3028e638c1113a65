"""The identity provider for real (issue 20): Keycloak with the realm of
deploy/keycloak/realm-homeward.json, and the alert service trusting it. Every sample account's
token carries the role, region and hub of the realm file; a call-centre system gets a token by
client credentials; tokens of another issuer, for another audience or expired are refused; a
disabled account gets no new token. (The authorisation sweep, tests/e2e/test_auth_sweep.py,
runs every rule with provider tokens.)"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from deploy.local.keycloak import REALM_FILE, KeycloakServer
from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, service_env
from shared.auth import CLOCK_SKEW_S, InvalidToken, Role, verify_token_with_expiry
from shared.settings import Settings
from tests.helpers import report_body

pytestmark = pytest.mark.e2e

REALM: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
PEOPLE = [u for u in REALM["users"] if "serviceAccountClientId" not in u]
DEV_MAPPERS = next(c for c in REALM["clients"] if c["clientId"] == "homeward-dev")[
    "protocolMappers"]


@pytest.fixture(scope="module")
def alert(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
          keycloak: KeycloakServer) -> Iterator[ServiceProcess]:
    """The alert service alone, trusting the provider."""
    port = free_port()
    ports = {"alert": port, "dispatch": free_port(), "notify": free_port()}
    env = {**service_env(kafka.bootstrap, redis_server.url, data_dir / "oidc", ports),
           "HOMEWARD_PORT": str(port), "HOMEWARD_OIDC_ISSUER": keycloak.issuer}
    (data_dir / "oidc").mkdir(parents=True, exist_ok=True)
    proc = ServiceProcess("alert", port, env, data_dir / "oidc" / "alert.log").start()
    proc.wait_ready()
    yield proc
    proc.stop()


def token_answer(keycloak: KeycloakServer, form: dict[str, str],
                 realm: str = "homeward") -> dict[str, Any]:
    """The token endpoint's answer; raises urllib.error.HTTPError when it refuses."""
    url = f"{keycloak.url}/realms/{realm}/protocol/openid-connect/token"
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.load(resp))


def status_with(alert: ServiceProcess, token: str) -> int:
    """What the alert service answers a report read with this token: 404 means the token was
    accepted (there is no such report), 401 that it was refused."""
    got = httpx.get(f"{alert.url}/api/v1/reports/00000000-0000-0000-0000-000000000000",
                    headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return got.status_code


@pytest.mark.parametrize("user", PEOPLE, ids=lambda u: u["username"])
def test_each_sample_account_acts_in_its_role_and_region(
    keycloak: KeycloakServer, user: dict[str, Any],
) -> None:
    settings = Settings(oidc_issuer=keycloak.issuer)
    token = keycloak.password_token(user["username"])["access_token"]
    who, _ = verify_token_with_expiry(settings, token)
    attrs = user["attributes"]
    assert (who.role.value, who.region, who.hub_id, who.permissions) == (
        user["realmRoles"][0], attrs["region"][0], attrs.get("hub", [None])[0],
        attrs.get("permissions", []))


def test_a_call_centre_system_files_with_client_credentials(
    keycloak: KeycloakServer, alert: ServiceProcess,
) -> None:
    answer = token_answer(keycloak, {"grant_type": "client_credentials",
                                     "client_id": "homeward-callcentre",
                                     "client_secret": "homeward-callcentre-local-only"})
    headers = {"Authorization": f"Bearer {answer['access_token']}",
               "Idempotency-Key": f"callcentre-{time.time_ns()}"}
    posted = httpx.post(f"{alert.url}/api/v1/reports", json=report_body(), headers=headers,
                        timeout=15)
    assert posted.status_code == 202, posted.text


def admin_client(keycloak: KeycloakServer, client_id: str, drop: str = "",
                 attributes: dict[str, str] | None = None) -> None:
    """A development client made for one test (password grant), with Homeward's mappers
    but the `drop` kind."""
    mappers = [m for m in DEV_MAPPERS if m["protocolMapper"] != drop]
    keycloak.admin("POST", "/homeward/clients", {
        "clientId": client_id, "publicClient": True, "directAccessGrantsEnabled": True,
        "standardFlowEnabled": False, "protocolMappers": copy.deepcopy(mappers),
        "attributes": attributes or {}})


def test_tokens_of_another_issuer_audience_or_expired_are_refused(
    keycloak: KeycloakServer, alert: ServiceProcess,
) -> None:
    good = keycloak.password_token("operator-140403")["access_token"]
    assert status_with(alert, good) == 404, "a good provider token is accepted"

    elsewhere = copy.deepcopy(REALM) | {"realm": "elsewhere"}  # same accounts, its own keys
    keycloak.import_realm(elsewhere)
    other_issuer = keycloak.password_token("operator-140403", realm="elsewhere")["access_token"]
    admin_client(keycloak, "no-audience", drop="oidc-audience-mapper")
    no_audience = keycloak.password_token("operator-140403", client_id="no-audience")
    admin_client(keycloak, "short-lived", attributes={"access.token.lifespan": "1"})
    short = keycloak.password_token("operator-140403", client_id="short-lived")
    assert short["expires_in"] <= 1
    time.sleep(short["expires_in"] + CLOCK_SKEW_S + 1)

    refused = {"another issuer": other_issuer, "wrong audience": no_audience["access_token"],
               "expired": short["access_token"]}
    settings = Settings(oidc_issuer=keycloak.issuer)
    for what, token in refused.items():
        assert status_with(alert, token) == 401, what
        with pytest.raises(InvalidToken):
            verify_token_with_expiry(settings, token)
    claims = jwt.decode(no_audience["access_token"], options={"verify_signature": False})
    assert "homeward" not in (claims.get("aud") or []), "the check must be about the audience"


def test_a_disabled_account_gets_no_new_token(
    keycloak: KeycloakServer, alert: ServiceProcess,
) -> None:
    username = f"leaver-{time.time_ns()}"
    user = keycloak.admin("GET", "/homeward/users/" + keycloak.add_person(
        username, Role.operator.value, "140403"))

    answer = keycloak.password_token(username)
    assert status_with(alert, answer["access_token"]) == 404
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= REALM["accessTokenLifespan"]

    keycloak.admin("PUT", f"/homeward/users/{user['id']}", {**user, "enabled": False})
    with pytest.raises(urllib.error.HTTPError) as refused:
        keycloak.password_token(username)
    assert refused.value.code in (400, 401)
    with pytest.raises(urllib.error.HTTPError) as no_refresh:
        token_answer(keycloak, {"grant_type": "refresh_token", "client_id": "homeward-dev",
                                "refresh_token": answer["refresh_token"]})
    assert no_refresh.value.code in (400, 401)
