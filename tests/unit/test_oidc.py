"""Tokens of an OpenID Connect provider (issue 20), verified against its JWKS, without
Keycloak: a local HTTP server publishes a discovery document and a key set of RSA keys made
here, so every way a token can be wrong is checked in milliseconds (tests/e2e/test_oidc.py does
the same against the real provider)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deploy.local.stack import free_port
from shared.auth import InvalidToken, Role, verify_token_with_expiry
from shared.oidc import provider_keys
from shared.settings import Settings
from shared.web import mount_shared_ui
from shared.web_hardening import content_security_policy


class Provider:
    """A discovery document and a JWKS on 127.0.0.1; `publish` changes the key set."""

    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/realms/test-{uuid.uuid4().hex[:6]}"
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/.well-known/openid-configuration"):
                    body: dict[str, Any] = {"issuer": provider.issuer,
                                            "jwks_uri": provider.issuer + "/certs"}
                elif self.path.endswith("/certs"):
                    provider.fetches += 1
                    body = {"keys": [provider.jwk(kid) for kid in provider.published]}
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_key(self, publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)
        return kid

    def jwk(self, kid: str) -> dict[str, Any]:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**key, "kid": kid, "use": "sig", "alg": "RS256"}

    def token(self, kid: str, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": "homeward", "sub": str(uuid.uuid4()),
                  "iat": now, "exp": now + 300, "roles": ["operator", "offline_access"],
                  "region": "140403", "name": "接警员 潞州"}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.server.shutdown()


def oidc_settings(issuer: str) -> Settings:
    return Settings(oidc_issuer=issuer, oidc_jwks_cooldown_s=0)


def test_a_provider_token_gives_role_region_hub_and_permissions(provider: Provider) -> None:
    kid = provider.new_key()
    settings = oidc_settings(provider.issuer)
    token = provider.token(kid, roles=["hub", "default-roles-homeward"], region="140400",
                           hub_id="hub-140400", permissions=["release"])
    who, expires = verify_token_with_expiry(settings, token)
    assert (who.role, who.region, who.hub_id, who.permissions) == (
        Role.hub, "140400", "hub-140400", ["release"])
    assert expires == jwt.decode(token, options={"verify_signature": False})["exp"]


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "wrong audience": ({"aud": "another-service"}, "invalid"),
    "no audience": ({"aud": None}, "invalid"),
    "expired": ({"exp": int(time.time()) - 60, "iat": int(time.time()) - 360}, "expired"),
    "another issuer": ({"iss": "http://127.0.0.1:1/realms/elsewhere"}, "invalid"),
    "no Homeward role": ({"roles": ["offline_access"]}, "invalid"),
    "two Homeward roles": ({"roles": ["operator", "admin"]}, "invalid"),
    "unknown role only": ({"roles": ["superuser"]}, "invalid"),
    "no region": ({"region": None}, "invalid"),
    "region not a code": ({"region": "Shanxi"}, "invalid"),
    "no subject": ({"sub": None}, "invalid"),
    "lives too long": ({"exp": int(time.time()) + 13 * 3600}, "maximum|invalid"),
    "longer than a provider token may": ({"exp": int(time.time()) + 20 * 60}, "maximum"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_provider_tokens_are_refused(provider: Provider, case: str) -> None:
    kid = provider.new_key()
    overrides, reason = CASES[case]
    with pytest.raises(InvalidToken, match=reason):
        verify_token_with_expiry(oidc_settings(provider.issuer),
                                 provider.token(kid, **overrides))


def test_a_token_signed_with_an_unpublished_key_is_refused(provider: Provider) -> None:
    provider.new_key()
    rogue = provider.new_key(publish=False)
    with pytest.raises(InvalidToken, match="key the provider does not have"):
        verify_token_with_expiry(oidc_settings(provider.issuer), provider.token(rogue))


def test_the_shared_secret_cannot_sign_for_the_provider(provider: Provider) -> None:
    """An HS256 token naming the provider is checked against the provider's keys only."""
    provider.new_key()
    settings = oidc_settings(provider.issuer)
    assert settings.jwt_secret is not None
    claims = {"iss": provider.issuer, "aud": "homeward", "sub": "mallory", "role": "admin",
              "region": "000000", "iat": int(time.time()), "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    with pytest.raises(InvalidToken):
        verify_token_with_expiry(settings, forged)


@pytest.mark.parametrize("overrides", [
    {"role": "admin", "region": "000000"},  # a role claim beside the realm roles
    {"role": "admin", "roles": ["volunteer"]},
    {"role": "admin", "roles": None},  # no realm role at all
])
def test_a_provider_token_has_the_role_its_realm_roles_give_and_no_other(
        provider: Provider, overrides: dict[str, Any]) -> None:
    """Only the provider's realm roles (granted by its admins) give a Homeward role: a `role`
    claim a mapper or a user attribute put in the token is not read."""
    kid = provider.new_key()
    settings = oidc_settings(provider.issuer)
    roles = overrides.get("roles", ["operator"])
    if roles is None:
        with pytest.raises(InvalidToken):
            verify_token_with_expiry(settings, provider.token(kid, **overrides))
        return
    principal, _ = verify_token_with_expiry(settings, provider.token(kid, **overrides))
    assert principal.role.value == roles[0] != "admin"


def test_key_rotation_is_followed_and_the_key_set_cached(provider: Provider) -> None:
    old = provider.new_key()
    settings = oidc_settings(provider.issuer)
    for _ in range(3):
        verify_token_with_expiry(settings, provider.token(old))
    assert provider.fetches == 1, "one fetch serves every token while the key set is fresh"
    new = provider.new_key()  # the provider rotates: a new key id appears in its JWKS
    provider.published.remove(old)
    assert verify_token_with_expiry(settings, provider.token(new))[0].role is Role.operator
    assert provider.fetches == 2


def test_an_unreachable_provider_refuses_its_tokens() -> None:
    down = Provider()
    kid = down.new_key()
    down.server.shutdown()
    down.server.server_close()
    with pytest.raises(InvalidToken, match="unavailable"):
        verify_token_with_expiry(oidc_settings(down.issuer), down.token(kid))
    provider_keys(oidc_settings(down.issuer))  # the cache entry stays usable once it is back


def test_minted_tokens_still_work_beside_the_provider(provider: Provider) -> None:
    from shared.auth import mint_token

    settings = oidc_settings(provider.issuer)
    token = mint_token(settings, Role.commander, "140400")
    assert verify_token_with_expiry(settings, token)[0].role is Role.commander
    assert provider.fetches == 0, "a minted token never asks the provider"


def test_consoles_are_told_the_provider_and_may_call_it(provider: Provider) -> None:
    settings = oidc_settings(provider.issuer)
    csp = content_security_policy(settings)
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert f"http://127.0.0.1:{provider.port}" in connect.split()
    assert "script-src 'self'" in csp
    app = FastAPI()
    mount_shared_ui(app, settings)
    with TestClient(app) as client:
        got = client.get("/auth/config.js")
        assert got.status_code == 200
        config = json.loads(got.text.removeprefix("window.HW_AUTH = ").rstrip(";\n"))
        assert config == {"issuer": provider.issuer, "clients": settings.oidc_clients}
        assert client.get("/static/shared/signin.js").status_code == 200
        vendored = client.get("/static/shared/vendor/oidc-client-ts/oidc-client-ts.min.js")
        assert vendored.status_code == 200 and "UserManager" in vendored.text
