"""Settings of who may call the services: the bearer-token key (HS256 secret, or a public key
for RS256/EdDSA) with no usable default anywhere (issue 12), and sign-in through an OpenID
Connect identity provider (issue 20)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from shared.settings._base import LOCAL_SECRET_FILE, MIN_SECRET_BYTES, PUBLIC_SECRETS
from shared.settings.process import ProcessSettings

__all__ = ["AccessSettings"]

log = logging.getLogger(__name__)


class AccessSettings(ProcessSettings):
    # Bearer tokens. HS256 with a shared secret for the local stack; RS256/EdDSA with a public
    # key in production. There is no default secret: see _require_a_usable_key.
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 key, at least 32 bytes (outside development)")
    jwt_secret_file: Path | None = Field(
        default=None, description="file holding the HS256 key (Docker/Kubernetes secrets; "
        "`make up` writes <data_dir>/jwt-secret)")
    jwt_public_key: str | None = None
    jwt_issuer: str = "homeward"
    jwt_audience: str = Field(default="homeward", description="the `aud` every token must carry")
    jwt_max_ttl_s: int = Field(
        default=12 * 3600, gt=0, description="longest accepted token lifetime (exp - iat), s")

    # --- sign-in through an identity provider (issue 20) ------------------------------------
    oidc_issuer: str = Field(
        default="", description="OpenID Connect issuer whose tokens the services accept, "
        "verified against its JWKS (e.g. http://127.0.0.1:8180/realms/homeward); empty: only "
        "the jwt_* key above. The consoles sign people in here")
    oidc_jwks_url: str = Field(
        default="", description="the issuer's JWKS as the services reach it; empty: the "
        "jwks_uri of the issuer's discovery document (compose: the provider's inside name)")
    oidc_algorithms: list[str] = Field(
        default=["RS256", "ES256", "PS256"], description="signature algorithms accepted from "
        "the provider (never HS256: its keys are public)")
    oidc_jwks_cache_s: float = Field(
        default=300.0, gt=0, description="how long the fetched JWKS is trusted before it is "
        "fetched again; an unknown key id fetches it at once (key rotation), at most every "
        "oidc_jwks_cooldown_s")
    oidc_jwks_cooldown_s: float = Field(default=30.0, ge=0)
    oidc_max_ttl_s: int = Field(
        default=900, gt=0, description="longest accepted lifetime (exp - iat) of a provider's "
        "access token, s: a person disabled at the provider acts at most this long (the local "
        "realm issues 300 s tokens, renewed by the consoles)")
    oidc_clients: dict[str, str] = Field(
        default={"intake": "homeward-intake", "console": "homeward-console",
                 "hub": "homeward-hub"},
        description="console -> the provider's public client id (authorization code + PKCE)")
    csp_connect_src: list[str] = Field(
        default_factory=list, description="more origins the consoles may call (CSP "
        "connect-src); the OIDC issuer's origin is added by itself")
    # --- end of identity provider -------------------------------------------------------------

    @model_validator(mode="after")
    def _require_a_usable_key(self) -> Self:
        """No usable default key anywhere (issue 12): HS256 needs HOMEWARD_JWT_SECRET or
        HOMEWARD_JWT_SECRET_FILE of at least 32 bytes (development: the file `make up` wrote
        into the data dir is used when neither is set, and a shorter key only warns);
        RS256/EdDSA need HOMEWARD_JWT_PUBLIC_KEY. A secret ever committed is refused always.
        Raises ValueError (the service does not start)."""
        if self.jwt_algorithm != "HS256":
            if not self.jwt_public_key:
                raise ValueError(f"HOMEWARD_JWT_PUBLIC_KEY is required for {self.jwt_algorithm}")
            return self
        source = "HOMEWARD_JWT_SECRET"
        if self.jwt_secret is None and (found := self._key_file(
                self.jwt_secret_file, LOCAL_SECRET_FILE, source)) is not None:
            self.jwt_secret, source = SecretStr(found[0]), found[1]
        if self.jwt_secret is None:
            raise ValueError(
                "no JWT key: set HOMEWARD_JWT_SECRET (at least 32 random bytes), "
                "HOMEWARD_JWT_SECRET_FILE, or HOMEWARD_JWT_ALGORITHM=RS256/EdDSA with "
                "HOMEWARD_JWT_PUBLIC_KEY; `make up` generates a local one")
        secret = self.jwt_secret.get_secret_value()
        if secret in PUBLIC_SECRETS:
            raise ValueError(f"{source} is a secret published in the repository; generate one "
                             "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            if self.environment != "development":
                raise ValueError(f"{source} is shorter than {MIN_SECRET_BYTES} bytes")
            log.warning("%s is shorter than %d bytes (accepted in development only)", source,
                        MIN_SECRET_BYTES)
        return self
