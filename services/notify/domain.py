"""Who hears about a missing child, and what they receive — rules free of I/O."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl

from shared.report import ReportAccepted

ALERT_ISSUED = "homeward.alert.issued.v1"


class SubscriberKind(StrEnum):
    hub = "hub"
    media = "media"
    volunteer = "volunteer"


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class WebhookChannel(BaseModel):
    type: Literal["webhook"]
    url: HttpUrl


class SubscriberRequest(BaseModel):
    kind: SubscriberKind
    name: str = Field(min_length=1, max_length=100)
    location: Location
    region_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    channel: WebhookChannel


class Subscriber(SubscriberRequest):
    subscriber_id: str
    secret: str
    active: bool = True


def radius_km(elapsed: timedelta, tiers: list[tuple[float, float]], max_km: float) -> float:
    """The radius of the national platform: 100 km within 1 h, 200 within 2 h, 300 within 3 h,
    then 500 (tiers are (hours, km) pairs in ascending order)."""
    hours = max(elapsed.total_seconds(), 0) / 3600
    for limit_h, km in tiers:
        if hours <= limit_h:
            return km
    return max_km


def alert_id_of(case_id: str) -> str:
    return f"A-{case_id}"


def delivery_id(alert_id: str, version: int, subscriber_id: str) -> str:
    """Stable per (alert version, recipient): the webhook-id of every retry of that delivery."""
    digest = hashlib.sha256(f"{alert_id}|{version}|{subscriber_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def restricted_alert(
    accepted: ReportAccepted, version: int, radius: float, issued_at: datetime
) -> dict[str, Any]:
    """The bulletin for hubs and the case group: may carry suspect and vehicle details."""
    report = accepted.report
    return {
        "type": ALERT_ISSUED,
        "alert_id": alert_id_of(accepted.case_id),
        "case_id": accepted.case_id,
        "version": version,
        "scope": "restricted",
        "status": "Exercise" if report.exercise else "Actual",
        "child": report.child.model_dump(mode="json"),
        "last_seen": report.last_seen.model_dump(mode="json"),
        "circumstances": report.circumstances.model_dump(mode="json"),
        "radius_km": radius,
        "contact": "110",
        "issued_at": issued_at.isoformat(),
    }


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified addresses."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)
