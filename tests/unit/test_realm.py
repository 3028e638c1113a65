"""The local realm file (deploy/keycloak/realm-homeward.json, issue 20) stays in step with the
code: its roles are shared.auth.Role, its mappers put the claims where shared.auth reads them,
its clients are the ones settings name, and its sample accounts are the README's."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.keycloak.realm import BROWSER_FLOW, COMMANDER_OTP_FLOW
from deploy.local.keycloak import (
    COMMANDER_OTP_ENV,
    REALM_FILE,
    SAMPLE_ACCOUNTS,
    commander_otp_wanted,
    keycloak_version,
)
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


FLOWS = {f["alias"]: f for f in REALM["authenticationFlows"]}
CONFIGS = {c["alias"]: c["config"] for c in REALM["authenticatorConfig"]}


def otp_branches(alias: str) -> list[tuple[list[tuple[str, dict[str, str]]], str]]:
    """Every CONDITIONAL sub-flow under `alias` that ends in the OTP form: its conditions
    (authenticator, config) and the OTP form's requirement."""
    found = []
    for step in sorted(FLOWS[alias]["authenticationExecutions"], key=lambda e: e["priority"]):
        if not step["authenticatorFlow"]:
            continue
        sub = sorted(FLOWS[step["flowAlias"]]["authenticationExecutions"],
                     key=lambda e: e["priority"])
        if step["requirement"] == "CONDITIONAL" and sub[-1]["authenticator"] == "auth-otp-form":
            conditions = [(e["authenticator"], CONFIGS.get(e.get("authenticatorConfig", ""), {}))
                          for e in sub[:-1]]
            assert all(a.startswith("conditional-") for a, _ in conditions), step["flowAlias"]
            found.append((conditions, sub[-1]["requirement"]))
        found += otp_branches(step["flowAlias"])
    return found


def test_the_commander_otp_flow_demands_a_code_of_commanders_and_of_those_who_have_one() -> None:
    """The second-factor switch (issue 20): the realm's browserFlow. Locally Keycloak's built-in
    flow (the browser tests sign commanders in with the password); COMMANDER_OTP_FLOW: after the
    password, a commander must give a one-time code (OTP Form REQUIRED: one without OTP is made to
    set it up), anyone else only if they set one up."""
    assert REALM["browserFlow"] == BROWSER_FLOW
    flow = FLOWS[COMMANDER_OTP_FLOW]
    assert flow["topLevel"] and not flow["builtIn"]
    commander = {"condUserRole": Role.commander.value, "negate": "false"}
    others = {"condUserRole": Role.commander.value, "negate": "true"}
    assert otp_branches(COMMANDER_OTP_FLOW) == [
        ([("conditional-user-role", commander)], "REQUIRED"),
        ([("conditional-user-role", others), ("conditional-user-configured", {})], "REQUIRED"),
    ]
    forms = next(f for f in FLOWS.values() if any(
        e.get("authenticator") == "auth-username-password-form"
        for e in f["authenticationExecutions"]))
    assert forms["alias"] in {e.get("flowAlias") for e in flow["authenticationExecutions"]}
    assert (REALM["otpPolicyType"], REALM["otpPolicyDigits"], REALM["otpPolicyPeriod"]) == (
        "totp", 6, 30)
    assert REALM["otpPolicyCodeReusable"] is False


def test_every_flow_and_config_the_flows_name_exists() -> None:
    for flow in FLOWS.values():
        for step in flow["authenticationExecutions"]:
            if step["authenticatorFlow"]:
                assert step["flowAlias"] in FLOWS and not FLOWS[step["flowAlias"]]["topLevel"]
            if "authenticatorConfig" in step:
                assert step["authenticatorConfig"] in CONFIGS
    roles = {r["name"] for r in REALM["roles"]["realm"]}
    assert {c["condUserRole"] for c in CONFIGS.values() if "condUserRole" in c} <= roles


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, False), ({COMMANDER_OTP_ENV: ""}, False), ({COMMANDER_OTP_ENV: "0"}, False),
    ({COMMANDER_OTP_ENV: "no"}, False), ({COMMANDER_OTP_ENV: "1"}, True),
    ({COMMANDER_OTP_ENV: "true"}, True), ({COMMANDER_OTP_ENV: " Yes "}, True),
    ({COMMANDER_OTP_ENV: "on"}, True),
])
def test_the_local_switch(environ: dict[str, str], wanted: bool) -> None:
    assert commander_otp_wanted(environ) is wanted


def test_compose_runs_keycloak_with_this_realm_and_the_services_trust_it() -> None:
    """docker-compose.yml: the pinned official image imports this very file at start; the
    issuer the services trust is the one Keycloak names (its --hostname), its keys are fetched
    inside the network."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))[
        "services"]
    keycloak = services["keycloak"]
    assert keycloak["image"] == f"quay.io/keycloak/keycloak:{keycloak_version()}"
    assert "--import-realm" in keycloak["command"]
    assert ("./deploy/keycloak/realm-homeward.json:/opt/keycloak/data/import/"
            "realm-homeward.json:ro") in keycloak["volumes"]
    options = dict(a.removeprefix("--").split("=", 1) for a in keycloak["command"] if "=" in a)
    for name in ("alert", "dispatch", "notify"):
        env = services[name]["environment"]
        assert env["HOMEWARD_OIDC_ISSUER"] == f"{options['hostname']}/realms/{REALM['realm']}"
        jwks = urllib.parse.urlsplit(env["HOMEWARD_OIDC_JWKS_URL"])
        assert (jwks.hostname, str(jwks.port)) == ("keycloak", options["http-port"])
        assert services[name]["depends_on"]["keycloak"] == {"condition": "service_healthy"}


def test_the_consoles_know_every_role_by_name_in_both_languages() -> None:
    """shared/ui/signin.js reads the role from the provider's `roles` by HW.ROLES and shows it
    in Chinese and English: the same roles as the realm and shared.auth.Role."""
    script = (ROOT / "shared" / "ui" / "signin.js").read_text(encoding="utf-8")
    listed = re.search(r"HW\.ROLES = \[([^\]]*)\]", script)
    assert listed is not None
    assert set(re.findall(r'"([a-z_]+)"', listed[1])) == {r.value for r in Role}
    for role in Role:
        assert len(re.findall(rf"\brole_{role.value}: \"[^\"]+\"", script)) == 2, role
