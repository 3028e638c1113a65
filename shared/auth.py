"""Bearer JWTs: who is calling, in which role, over which region.

A token is accepted only when signed with the configured key, issued by `jwt_issuer` for
`jwt_audience`, and carrying `iat` and `exp` no further apart than `jwt_max_ttl_s` (issue 12).
Every role, admin included, acts only within its region (national = 000000)."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum

import jwt
from pydantic import BaseModel, Field, ValidationError, model_validator

from shared.oidc import ProviderUnavailable, from_provider, homeward_claims, provider_keys
from shared.regions import within
from shared.settings import Settings


class Role(StrEnum):
    operator = "operator"
    commander = "commander"
    hub = "hub"
    media = "media"
    volunteer = "volunteer"
    admin = "admin"
    # Hospital, school, shelter, transport-hub staff under the mandatory reporting duty (强制报告,
    # 002 §二㈠3.): files unidentified-child records (issue 16); the token names the organisation.
    mandated_reporter = "mandated_reporter"


class Principal(BaseModel):
    sub: str
    role: Role
    region: str = Field(pattern=r"^[0-9]{6}$")
    hub_id: str | None = None
    permissions: list[str] = Field(default_factory=list)
    exp: float = Field(default=float("inf"), description="token expiry, Unix seconds")
    org: str | None = Field(default=None, max_length=100,
                            description="the caller's organisation (claim `org`); required "
                            "for mandated_reporter, whose records name it")

    @model_validator(mode="after")
    def _organisation(self) -> Principal:
        if self.role is Role.mandated_reporter and not (self.org or "").strip():
            raise ValueError("a mandated_reporter token must name its organisation (org)")
        return self

    def can_see(self, region_code: str) -> bool:
        """Inside the caller's region; an admin is scoped like everyone else (issue 12)."""
        return within(self.region, region_code)

    def seconds_left(self) -> float:
        return self.exp - time.time()


class InvalidToken(Exception):
    pass


CLOCK_SKEW_S = 5  # tolerated difference between the issuer's clock and ours, s


def mint_token(
    settings: Settings,
    role: Role | str,
    region: str,
    hub_id: str | None = None,
    sub: str | None = None,
    permissions: list[str] | None = None,
    ttl_s: int | None = None,
    private_key: str | None = None,
    org: str | None = None,
) -> str:
    """A signed token; `ttl_s` defaults to (and may not exceed) settings.jwt_max_ttl_s.
    A negative ttl_s gives an already expired token (tests)."""
    ttl = settings.jwt_max_ttl_s if ttl_s is None else ttl_s
    if ttl > settings.jwt_max_ttl_s:
        raise ValueError(f"ttl_s {ttl} exceeds jwt_max_ttl_s {settings.jwt_max_ttl_s}")
    now = int(time.time())
    claims = {
        "sub": sub or f"{Role(role).value}-{uuid.uuid4().hex[:8]}",
        "role": Role(role).value,
        "region": region,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now + min(ttl, 0) * 2,  # an expired test token still has iat < exp
        "exp": now + ttl,
        "permissions": permissions or [],
    }
    if hub_id:
        claims["hub_id"] = hub_id
    if org:
        claims["org"] = org
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    key = private_key if settings.jwt_algorithm != "HS256" else secret
    if key is None:
        raise ValueError("a private key is needed to mint tokens for " + settings.jwt_algorithm)
    return jwt.encode(claims, key, algorithm=settings.jwt_algorithm)


def verify_token(settings: Settings, token: str) -> Principal:
    return verify_token_with_expiry(settings, token)[0]


def verify_token_with_expiry(settings: Settings, token: str) -> tuple[Principal, float]:
    """The principal and the expiry (Unix s). Raises InvalidToken: bad signature, wrong
    issuer or audience, missing exp/iat/sub/iss/aud, expired, or living longer than
    jwt_max_ttl_s (a provider's token: oidc_max_ttl_s).

    A token naming `settings.oidc_issuer` is verified with that provider's keys (its JWKS,
    shared.oidc; asymmetric algorithms only) and must carry `aud` = jwt_audience; every other
    token with the jwt_* key (minted by shared.tokens: tests and machine clients)."""
    if from_provider(settings, token):
        issuer = settings.oidc_issuer
        algorithms = list(settings.oidc_algorithms)
        max_ttl = settings.oidc_max_ttl_s
        try:
            key = provider_keys(settings).signing_key(token)
        except ProviderUnavailable as exc:
            raise InvalidToken("identity provider unavailable") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("token signed with a key the provider does not have") from exc
    else:
        issuer = settings.jwt_issuer
        algorithms = [settings.jwt_algorithm]
        max_ttl = settings.jwt_max_ttl_s
        if settings.jwt_algorithm == "HS256":
            key = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        else:
            key = settings.jwt_public_key
    if not key:
        raise InvalidToken("no verification key configured")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=issuer,
            audience=settings.jwt_audience,
            leeway=CLOCK_SKEW_S,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > max_ttl:
            raise InvalidToken("token lifetime over the maximum")
        if issuer == settings.oidc_issuer and settings.oidc_issuer:
            claims = homeward_claims(claims, {r.value for r in Role})
        return Principal.model_validate(claims), float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except (jwt.InvalidTokenError, ValidationError, TypeError, ValueError) as exc:
        raise InvalidToken("token invalid") from exc
