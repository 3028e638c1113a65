"""What every settings group shares: the environment prefix (HOMEWARD_), and the keys no
environment may use (issue 12)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LOCAL_IDENTITY_FILE", "LOCAL_PII_KEYS_FILE", "LOCAL_SECRET_FILE", "MIN_SECRET_BYTES",
           "PUBLIC_SECRETS", "SettingsGroup"]

# Secrets that were ever committed to this repository: anyone can read them, so no environment
# accepts them (issue 12).
PUBLIC_SECRETS = frozenset({"homeward-local-development-secret-change-me",
                            "homeward-local-identity-secret-change-me"})
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key of at least the hash size (256 bits)
LOCAL_SECRET_FILE = "jwt-secret"  # in data_dir; `make up` writes it, shared.tokens reads it
LOCAL_IDENTITY_FILE = "identity-secret"  # in data_dir; `make up` writes it
LOCAL_PII_KEYS_FILE = "pii-master-keys"  # in data_dir; `make up` writes it (issue 13)


class SettingsGroup(BaseSettings):
    """The base of every group: each field `name` is read from HOMEWARD_<NAME> (any case)."""

    model_config = SettingsConfigDict(env_prefix="HOMEWARD_", extra="ignore")
