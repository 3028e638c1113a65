"""Settings of children's personal data: the child-identity HMAC key (issue 19, issue 12), the
master keys wrapping each case's data key and the grace periods after which personal data is
purged (issue 13). No key has a default anywhere; a missing or weak one stops the service."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from shared.settings._base import (
    LOCAL_IDENTITY_FILE,
    LOCAL_PII_KEYS_FILE,
    MIN_SECRET_BYTES,
    PUBLIC_SECRETS,
)
from shared.settings.process import ProcessSettings

__all__ = ["PersonalDataSettings"]


class PersonalDataSettings(ProcessSettings):
    # --- child identity (issue 19, issue 12) -------------------------------------------------
    identity_secret: str = Field(
        default="", repr=False,
        description="HMAC key of the child-identity keys (shared/identity.py), at least 32 "
        "bytes; the same value in dispatch and notify. No default: set it, or "
        "HOMEWARD_IDENTITY_SECRET_FILE (development: `<data_dir>/identity-secret`, which "
        "`make up` writes)")
    identity_secret_file: Path | None = Field(
        default=None, description="file holding identity_secret (one line)")
    # --- end child identity --------------------------------------------------------------------

    # --- personal data life cycle (issue 13) ---------------------------------------------------
    pii_master_keys: str = Field(
        default="", repr=False,
        description="master keys wrapping the per-case data keys (shared/pii.py): "
        "`kid:base64url(32 bytes)[,kid:key...]`, the first wraps, all unwrap (rotation: put a "
        "new key first, run `python -m shared.casekeys --rewrap`, then drop the old one). "
        "No default: set it, or "
        "HOMEWARD_PII_MASTER_KEYS_FILE (development: `<data_dir>/pii-master-keys`, which "
        "`make up` writes)")
    pii_master_keys_file: Path | None = None
    purge_grace_s: float = Field(
        default=30 * 86400.0, ge=0, description="seconds after a case ends (found, false "
        "report, closed) until its personal data is purged from every store (tests shorten)")
    outbox_published_grace_s: float = Field(
        default=86400.0, ge=0, description="alert's outbox rows are deleted this long after "
        "they were published (the idempotency answer lives as long)")
    # --- end personal data life cycle ----------------------------------------------------------

    @model_validator(mode="after")
    def _require_an_identity_secret(self) -> Self:
        """The child-identity HMAC key (issue 19/12): like the JWT secret, no default anywhere;
        read from HOMEWARD_IDENTITY_SECRET or its _FILE (development: `<data_dir>/identity-secret`
        when present). At least 32 bytes; a secret ever committed is refused. Raises ValueError."""
        source = "HOMEWARD_IDENTITY_SECRET"
        if not self.identity_secret and (found := self._key_file(
                self.identity_secret_file, LOCAL_IDENTITY_FILE, source)) is not None:
            self.identity_secret, source = found
        if not self.identity_secret:
            raise ValueError("no child-identity key: set HOMEWARD_IDENTITY_SECRET (at least 32 "
                             "random bytes) or HOMEWARD_IDENTITY_SECRET_FILE; `make up` "
                             "generates a local one")
        if self.identity_secret in PUBLIC_SECRETS:
            raise ValueError(f"{source} is a secret published in the repository")
        if len(self.identity_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"{source} is shorter than {MIN_SECRET_BYTES} bytes")
        return self

    @model_validator(mode="after")
    def _require_pii_master_keys(self) -> Self:
        """The master keys of shared/pii.py (issue 13): no default anywhere, like the identity
        secret; parsed here so a malformed key stops the service. Raises ValueError."""
        if not self.pii_master_keys and (found := self._key_file(
                self.pii_master_keys_file, LOCAL_PII_KEYS_FILE,
                "HOMEWARD_PII_MASTER_KEYS")) is not None:
            self.pii_master_keys = found[0]
        if not self.pii_master_keys:
            raise ValueError("no PII master key: set HOMEWARD_PII_MASTER_KEYS "
                             "(kid:base64url of 32 random bytes) or its _FILE; `make up` "
                             "generates a local one")
        from shared.pii import MasterKeys

        MasterKeys.parse(self.pii_master_keys)
        return self
