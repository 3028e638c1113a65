"""Bearer JWTs: who is calling, in which role, over which region."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum

import jwt
from pydantic import BaseModel, Field, ValidationError

from shared.regions import within
from shared.settings import Settings


class Role(StrEnum):
    operator = "operator"
    commander = "commander"
    hub = "hub"
    media = "media"
    volunteer = "volunteer"
    admin = "admin"


class Principal(BaseModel):
    sub: str
    role: Role
    region: str = Field(pattern=r"^\d{6}$")
    hub_id: str | None = None
    permissions: list[str] = Field(default_factory=list)

    def can_see(self, region_code: str) -> bool:
        return self.role == Role.admin or within(self.region, region_code)


class InvalidToken(Exception):
    pass


def mint_token(
    settings: Settings,
    role: Role | str,
    region: str,
    hub_id: str | None = None,
    sub: str | None = None,
    permissions: list[str] | None = None,
    ttl_s: int = 12 * 3600,
    private_key: str | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "sub": sub or f"{Role(role).value}-{uuid.uuid4().hex[:8]}",
        "role": Role(role).value,
        "region": region,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + ttl_s,
        "permissions": permissions or [],
    }
    if hub_id:
        claims["hub_id"] = hub_id
    key = private_key if settings.jwt_algorithm != "HS256" else settings.jwt_secret
    if key is None:
        raise ValueError("a private key is needed to mint tokens for " + settings.jwt_algorithm)
    return jwt.encode(claims, key, algorithm=settings.jwt_algorithm)


def verify_token(settings: Settings, token: str) -> Principal:
    return verify_token_with_expiry(settings, token)[0]


def verify_token_with_expiry(settings: Settings, token: str) -> tuple[Principal, float]:
    key = settings.jwt_secret if settings.jwt_algorithm == "HS256" else settings.jwt_public_key
    if not key:
        raise InvalidToken("no verification key configured")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iss"]},
        )
        return Principal.model_validate(claims), float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except (jwt.InvalidTokenError, ValidationError) as exc:
        raise InvalidToken("token invalid") from exc
