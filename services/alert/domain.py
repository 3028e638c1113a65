"""Intake rules, free of I/O: identifiers an operator can read out over the phone."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from shared.report import Report

_CASE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/O/0/1: read aloud without doubt


def new_report_id() -> str:
    return f"R{uuid.uuid4().hex}"


def new_case_id(report: Report, now: datetime) -> str:
    """`<region>-<yyyymmdd>-<6 chars>`, e.g. `140403-20261122-K7Q2MX`."""
    suffix = "".join(secrets.choice(_CASE_ALPHABET) for _ in range(6))
    return f"{report.last_seen.region_code}-{now:%Y%m%d}-{suffix}"
