"""Intake rules, free of I/O: identifiers an operator can read out over the phone, who may ask
for public release, and what makes two requests the same."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

from shared.auth import Principal
from shared.report import Report

_CASE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/O/0/1: read aloud without doubt
RELEASE_PERMISSION = "release"


class IntakeRefused(Exception):
    """A report or tip that is well-formed but may not be accepted."""

    def __init__(self, status: int, code: str, field: str | None = None,
                 **context: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field
        self.context = context


def new_report_id() -> str:
    return f"R{uuid.uuid4().hex}"


def new_tip_id() -> str:
    return f"T{uuid.uuid4().hex}"


def new_case_id(region_code: str, now: datetime) -> str:
    """`<region>-<yyyymmdd>-<6 chars>`, e.g. `140403-20261122-K7Q2MX`."""
    # 32 symbols divide 256, so `byte % 32` is unbiased; one urandom call, not six.
    suffix = "".join(_CASE_ALPHABET[b % 32] for b in secrets.token_bytes(6))
    return f"{region_code}-{now:%Y%m%d}-{suffix}"


def check_release(report: Report, operator: Principal) -> None:
    """Public release at intake needs an operator with release authority; otherwise the case
    leader approves it later in dispatch."""
    if report.release.public and RELEASE_PERMISSION not in operator.permissions:
        raise IntakeRefused(403, "release_forbidden", "release.public")


def body_hash(report: Report) -> str:
    """Same validated report, same hash: what an Idempotency-Key replay is compared on."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()
