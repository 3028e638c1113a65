"""Trusting an OpenID Connect provider (issue 20): the provider's signing keys, fetched from
its JWKS with PyJWT's PyJWKClient and cached, and the claims of its access tokens.

Keys: the JWKS URL is `settings.oidc_jwks_url`, else the `jwks_uri` of the issuer's discovery
document (OpenID Connect Discovery 1.0 §4, `<issuer>/.well-known/openid-configuration`). The
key set is trusted for `oidc_jwks_cache_s`; a token naming a key id not in it fetches the set
again at once (the provider rotated its keys), at most every `oidc_jwks_cooldown_s`, so forged
key ids cannot make us hammer the provider. Fetches block: async callers run `prefetch` in a
thread first (Authenticator does).

Claims: Keycloak puts the realm roles of the person into `roles` (a list, the mapper in
deploy/keycloak/realm-homeward.json); a token must name exactly one of shared.auth.Role there
(or carry `role` itself). `region`, `hub_id` and `permissions` are user attributes mapped
under the names minted tokens use, so every authorisation rule reads them unchanged."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import jwt

from shared.settings import Settings

DISCOVERY_PATH = "/.well-known/openid-configuration"
FETCH_TIMEOUT_S = 5.0


class ProviderUnavailable(Exception):
    """The provider's discovery document or key set could not be fetched."""


class ProviderKeys:
    """The signing keys of `settings.oidc_issuer`; thread-safe, one per (issuer, JWKS URL)."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.oidc_issuer
        self._jwks_url = settings.oidc_jwks_url
        self._lifespan = settings.oidc_jwks_cache_s
        self._cooldown = settings.oidc_jwks_cooldown_s
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:
                document = json.load(resp)
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"discovery {url}: {exc}") from exc
        if document.get("issuer") != self.issuer or not document.get("jwks_uri"):
            raise ProviderUnavailable(f"discovery {url} names another issuer or no jwks_uri")
        return str(document["jwks_uri"])

    def client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                self._client = jwt.PyJWKClient(
                    self._jwks_url or self._discover(), cache_jwk_set=True,
                    lifespan=self._lifespan, cooldown_duration=self._cooldown,
                    timeout=FETCH_TIMEOUT_S)
            return self._client

    def signing_key(self, token: str) -> Any:
        """The key the token's header names. Raises ProviderUnavailable, or
        jwt.PyJWKClientError for a key id the provider does not have."""
        try:
            return self.client().get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderUnavailable(str(exc)) from exc

    def prefetch(self, token: str) -> None:
        """Fill the cache for this token's key (blocking; run in a thread). Errors are left
        for the verification that follows."""
        try:
            self.signing_key(token)
        except (ProviderUnavailable, jwt.PyJWTError):
            pass


_keys: dict[tuple[str, str], ProviderKeys] = {}
_keys_lock = threading.Lock()


def provider_keys(settings: Settings) -> ProviderKeys:
    """The process's key cache for the configured provider (shared by every caller)."""
    with _keys_lock:
        key = (settings.oidc_issuer, settings.oidc_jwks_url)
        if key not in _keys:
            _keys[key] = ProviderKeys(settings)
        return _keys[key]


def from_provider(settings: Settings, token: str) -> bool:
    """True when an OIDC issuer is configured and the (not yet verified) token names it: it
    must then be verified with the provider's keys, never with the shared secret."""
    if not settings.oidc_issuer:
        return False
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return bool(claims.get("iss") == settings.oidc_issuer)


def homeward_claims(claims: dict[str, Any], roles: set[str]) -> dict[str, Any]:
    """The claims Principal reads, from a provider token: `role` from `roles` (exactly one
    Homeward role among the person's realm roles, else ValueError), always: a `role` claim
    the token carries itself is replaced (a mapper or an unmanaged user attribute could put
    one there; realm roles are granted by the provider's admins only)."""
    mine = sorted(set(claims.get("roles") or []) & roles)
    if len(mine) != 1:
        raise ValueError(f"the token must name exactly one Homeward role, names {mine}")
    return {**claims, "role": mine[0]}


def consoles_config_js(settings: Settings) -> str:
    """/auth/config.js, what the consoles need to sign people in (shared/ui/signin.js):
    `window.HW_AUTH = {"issuer": "<OIDC issuer or empty>", "clients": {console: client id}}`;
    an empty issuer leaves the consoles on pasted tokens (development without a provider)."""
    config = {"issuer": settings.oidc_issuer, "clients": settings.oidc_clients}
    return f"window.HW_AUTH = {json.dumps(config)};\n"
