"""Who can hear of an alert, free of I/O: subscriber kinds and channels, a registered
subscriber (its signing secrets and their rotation), and the case group's members as
recipients of the restricted bulletin (issue 12: a member's number never shapes the gateway's
URL)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, HttpUrl, field_validator

from services.notify.domain import AlertState
from shared.phones import PhoneError, normalise_phone
from shared.text import Line

__all__ = ["GEO_MAX_LAT", "HUB_ID", "PUBLIC_KINDS", "AppriseChannel", "Channel", "ConsoleChannel",
           "Location", "PreviousSecret", "Subscriber", "SubscriberKind", "SubscriberRequest",
           "WebhookChannel", "group_member", "group_members"]

HUB_ID = r"^[A-Za-z0-9_.-]{1,40}$"


class SubscriberKind(StrEnum):
    hub = "hub"
    media = "media"
    volunteer = "volunteer"
    member = "member"  # of the case group: known from dispatch's events, never registered


PUBLIC_KINDS = (SubscriberKind.media, SubscriberKind.volunteer)


GEO_MAX_LAT = 85.05112878  # the latitudes a Redis geo index can hold


class Location(BaseModel):
    lat: float = Field(ge=-GEO_MAX_LAT, le=GEO_MAX_LAT)
    lon: float = Field(ge=-180, le=180)


class WebhookChannel(BaseModel):
    type: Literal["webhook"]
    url: HttpUrl


class AppriseChannel(BaseModel):
    """A chat/SMS/email target in Apprise URL form (dingtalk://, wecom://, feishu://, mailto://…)."""

    type: Literal["apprise"]
    url: str = Field(min_length=3, max_length=2000, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")


class ConsoleChannel(BaseModel):
    """A hub that reads its pushes on the hub console only (`GET /hub`)."""

    type: Literal["console"]


Channel = WebhookChannel | AppriseChannel | ConsoleChannel


class SubscriberRequest(BaseModel):
    kind: SubscriberKind
    name: Line = Field(min_length=1, max_length=100)
    location: Location
    region_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    channel: Channel = Field(discriminator="type")
    drills: bool = Field(default=False, description="also receive exercise (drill) alerts")
    hub_id: str | None = Field(default=None, pattern=HUB_ID,
                               description="for hubs: the id in the hub staff's tokens")


    @field_validator("kind")
    @classmethod
    def _not_a_member(cls, kind: SubscriberKind) -> SubscriberKind:
        if kind == SubscriberKind.member:
            raise ValueError("case-group members come from dispatch; register hub, media or "
                             "volunteer")
        return kind


class PreviousSecret(BaseModel):
    """A signing secret replaced by rotate-secret, still signing until `until`."""

    secret: str
    until: datetime


class Subscriber(SubscriberRequest):
    subscriber_id: str
    secret: str
    active: bool = True
    previous_secrets: list[PreviousSecret] = Field(default_factory=list)
    # Changes written to it (services.notify.registry): of two copies, the higher is newer.
    revision: int = Field(default=0, ge=0)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, then every replaced one still inside its overlap window."""
        return [self.secret, *(p.secret for p in self.previous_secrets if p.until > now)]

    def rotated(self, new_secret: str, now: datetime, overlap: timedelta) -> Subscriber:
        """This subscriber signing with `new_secret`; the current one keeps signing for
        `overlap` (expired ones are dropped)."""
        keep = [p for p in self.previous_secrets if p.until > now]
        if overlap > timedelta(0):
            keep.append(PreviousSecret(secret=self.secret, until=now + overlap))
        return self.model_copy(update={"secret": new_secret, "previous_secrets": keep})

    @field_validator("kind")
    @classmethod
    def _not_a_member(cls, kind: SubscriberKind) -> SubscriberKind:
        return kind  # a stored subscriber may be a case-group member


def group_member(alert: AlertState, person: dict[str, Any], url_template: str) -> Subscriber:
    """A case-group member as a recipient of the restricted bulletin over Apprise: `{phone}` in
    the gateway's URL becomes the member's number in E.164, validated (`phonenumbers`) and
    URL-encoded, so a number can never add a path, query or host to the URL (issue 12).
    PhoneError when the number is not one."""
    phone = normalise_phone(str(person["phone"]))
    return Subscriber(
        kind=SubscriberKind.member, name=f"{person.get('name', '')}{person.get('title', '')}",
        location=Location(lat=alert.lat, lon=alert.lon), region_code=alert.region_code,
        channel=AppriseChannel(type="apprise",
                               url=url_template.replace("{phone}", quote(phone, safe=""))),
        subscriber_id="M" + hashlib.sha256(f"{alert.case_id}|{phone}".encode()).hexdigest()[:16],
        secret="", active=True)


def group_members(alert: AlertState, people: list[dict[str, Any]],
                  url_template: str) -> list[Subscriber]:
    """`group_member` of everyone with a phone; a number that is not one is left out (never
    substituted into the gateway's URL)."""
    out = []
    for person in people:
        if person and person.get("phone"):
            try:
                out.append(group_member(alert, person, url_template))
            except PhoneError:
                continue
    return out
