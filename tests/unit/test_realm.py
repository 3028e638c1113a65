"""The local realm file (deploy/keycloak/realm-homeward.json, issue 20) stays in step with the
code: its roles are shared.auth.Role, its mappers put the claims where shared.auth reads them,
its clients are the ones settings name, and its sample accounts are the README's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deploy.local.keycloak import REALM_FILE, SAMPLE_ACCOUNTS, keycloak_version
from shared.auth import Principal, Role
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REALM: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
CLIENTS = {c["clientId"]: c for c in REALM["clients"]}
PEOPLE = [u for u in REALM["users"] if "serviceAccountClientId" not in u]


def mapper_claims(client: dict[str, Any]) -> dict[str, str]:
    """mapper type/attribute -> claim name, for the client's protocol mappers."""
    out = {}
    for m in client.get("protocolMappers", []):
        config = m["config"]
        if m["protocolMapper"] == "oidc-usermodel-attribute-mapper":
            out["attribute:" + config["user.attribute"]] = config["claim.name"]
        elif m["protocolMapper"] == "oidc-usermodel-realm-role-mapper":
            out["realm roles"] = config["claim.name"]
        elif m["protocolMapper"] == "oidc-audience-mapper":
            out["audience"] = config["included.custom.audience"]
    return out


def test_the_realm_roles_are_the_roles_of_the_code() -> None:
    assert {r["name"] for r in REALM["roles"]["realm"]} == {r.value for r in Role}


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_every_client_puts_the_claims_where_the_services_read_them(client_id: str) -> None:
    claims = mapper_claims(CLIENTS[client_id])
    principal_fields = set(Principal.model_fields)
    assert claims == {"realm roles": "roles", "attribute:region": "region",
                      "attribute:hub": "hub_id", "attribute:permissions": "permissions",
                      "attribute:org": "org", "audience": Settings().jwt_audience}, client_id
    assert {"region", "hub_id", "permissions", "org"} <= principal_fields


def test_console_clients_are_public_with_pkce_and_named_in_settings() -> None:
    for console, client_id in Settings().oidc_clients.items():
        client = CLIENTS[client_id]
        assert client["publicClient"] and client["standardFlowEnabled"], client_id
        assert not client["directAccessGrantsEnabled"] and not client["implicitFlowEnabled"]
        assert client["attributes"]["pkce.code.challenge.method"] == "S256"
        # Local realm: back to any loopback port (the tests take free ports), nowhere else.
        assert set(client["redirectUris"]) == {"http://127.0.0.1:*", "http://localhost:*"}, \
            console


def test_machine_and_development_clients() -> None:
    callcentre = CLIENTS["homeward-callcentre"]
    assert not callcentre["publicClient"] and callcentre["serviceAccountsEnabled"]
    assert not callcentre["standardFlowEnabled"] and not callcentre["directAccessGrantsEnabled"]
    dev = CLIENTS["homeward-dev"]
    assert dev["directAccessGrantsEnabled"] and not dev["standardFlowEnabled"]
    others = [c for c, v in CLIENTS.items() if v.get("directAccessGrantsEnabled")]
    assert others == ["homeward-dev"], "only the development client has the password grant"


def test_short_access_token_lifetime_under_the_services_cap() -> None:
    assert 60 <= REALM["accessTokenLifespan"] <= 300
    assert REALM["accessTokenLifespan"] <= Settings().oidc_max_ttl_s < Settings().jwt_max_ttl_s


@pytest.mark.parametrize("user", PEOPLE, ids=lambda u: u["username"])
def test_sample_accounts_are_named_by_role_and_region(user: dict[str, Any]) -> None:
    """`<role>-<region>`: the tests' ProviderTokens and the README rely on it; a hub account
    has a hub; every account is a valid Principal once its role is read from `roles`."""
    (role,) = user["realmRoles"]
    region = user["attributes"]["region"][0]
    assert user["username"] == f"{role}-{region}"
    assert (role == "hub") == ("hub" in user["attributes"])
    assert (role == "mandated_reporter") == ("org" in user["attributes"])
    Principal(sub=user["username"], role=role, region=region,
              hub_id=user["attributes"].get("hub", [None])[0],
              org=user["attributes"].get("org", [None])[0],
              permissions=user["attributes"].get("permissions", []))


def test_the_readme_names_the_sample_accounts_and_the_pinned_version() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in (*SAMPLE_ACCOUNTS, "homeward-dev"):
        assert name in readme
    assert keycloak_version() in readme
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"keycloak:" + re.escape(keycloak_version()), compose)
