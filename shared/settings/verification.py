"""Settings of alerts anyone can verify (issue 17): the public verification page, the issuer's
signing keys and their rotation, and the rate limit of lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.settings._base import SettingsGroup

__all__ = ["VerificationSettings"]


class VerificationSettings(SettingsGroup):
    verify_base_url: str = Field(
        default="", description="public base URL of the verification page printed in every "
        "public text and poster QR code (/verify?code=...); empty: notify_url")
    signing_dir: Path | None = Field(
        default=None, description="directory of the issuer's signing keys, <kid>.key.pem "
        "(ECDSA P-256, PKCS#8) and <kid>.cert.pem; default <data_dir>/signing in development")
    signing_keys: dict[str, Literal["published", "active", "retired"]] = Field(
        default_factory=dict, description="kid -> rotation state; exactly one active. Empty in "
        "development: a key is generated into signing_dir; elsewhere notify refuses to start")
    verify_limit_per_client: int = Field(default=30, ge=1, description="lookups per window")
    verify_window_s: int = Field(default=60, ge=1)
