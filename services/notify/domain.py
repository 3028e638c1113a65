"""Who hears about a missing child, when, and what they receive — rules free of I/O."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, HttpUrl, field_validator

from shared.display import DEFAULT_ZONE, age_on, local_date, people_time
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    DELIVERY_ERROR_CLASSES,
    CaseEvent,
    CaseFound,
    CaseOpened,
    DeliveryReceipt,
)
from shared.identity import LinkEvidence
from shared.phones import PhoneError, display_phone, normalise_phone
from shared.text import Line
from shared.verification import display_code, short_code, verify_url

ALERT_ISSUED = "homeward.alert.issued.v1"
ALERT_CANCELLED = "homeward.alert.cancelled.v1"

CASE_ID = r"^\d{6}-\d{8}-[A-Z0-9]{6}$"
ALERT_ID = r"^A-\d{6}-\d{8}-[A-Z0-9]{6}$"
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
    region_code: str | None = Field(default=None, pattern=r"^\d{6}$")
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


# --- radius tiers ------------------------------------------------------------------------------


def radius_km(elapsed: timedelta, tiers: list[tuple[float, float]], max_km: float,
              unit_s: float = 3600.0) -> float:
    """The radius of the national platform: 100 km within 1 h, 200 within 2 h, 300 within 3 h,
    then 500 (tiers are (hours, km) pairs in ascending order; `unit_s` seconds per hour)."""
    hours = max(elapsed.total_seconds(), 0) / unit_s
    for limit_h, km in tiers:
        if hours <= limit_h:
            return km
    return max_km


def next_boundary(seen_at: datetime, now: datetime, tiers: list[tuple[float, float]],
                  unit_s: float = 3600.0) -> datetime | None:
    """When the radius next grows (just after the next tier's limit), or None at the last tier."""
    for limit_h, _ in tiers:
        boundary = seen_at + timedelta(seconds=limit_h * unit_s + 0.001)
        if boundary > now:
            return boundary
    return None


# --- ids ---------------------------------------------------------------------------------------


def alert_id_of(case_id: str) -> str:
    return f"A-{case_id}"


def delivery_id(alert_id: str, version: int, subscriber_id: str) -> str:
    """Stable per (alert version, recipient): the webhook-id of every retry of that delivery."""
    digest = hashlib.sha256(f"{alert_id}|{version}|{subscriber_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


# --- alert state -------------------------------------------------------------------------------


class MergedReport(BaseModel):
    """A second report of the child of this alert (shared/identity.py): its details reached
    everyone as an Update instead of a second Alert. Kept as accepted, so that an unlink by the
    commander gives that report an alert of its own."""

    report_id: str
    case_id: str
    accepted: dict[str, Any]
    evidence: LinkEvidence


class VersionInfo(BaseModel):
    version: int
    msg_type: Literal["Alert", "Update", "Cancel"]
    sent: datetime
    radius_km: float
    note: str = ""


class AlertState(BaseModel):
    """One alert per case; each change (widening, release, cancellation) is a new version."""

    alert_id: str
    case_id: str
    region_code: str
    exercise: bool
    released: bool
    cancelled: bool = False
    outcome: str = ""
    seen_at: datetime
    lat: float
    lon: float
    radius_km: float
    version: int = 1
    issued_at: datetime
    versions: list[VersionInfo]
    # The accepted report (restricted content); dropped at cancellation.
    report: dict[str, Any] | None = None
    leader: dict[str, Any] | None = None
    # Internal, never rendered: the report kept through a cancellation so that a reopen can
    # issue the alert again; other reports of the same child merged into this alert.
    held_report: dict[str, Any] | None = None
    merged: list[MergedReport] = Field(default_factory=list)

    @property
    def short_code(self) -> str:
        """What people type on /verify (shared.verification.short_code of the alert id)."""
        return short_code(self.alert_id)

    @property
    def public_listed(self) -> bool:
        return self.released and not self.exercise and not self.cancelled

    @property
    def status(self) -> str:
        return "Exercise" if self.exercise else "Actual"

    def bump(self, msg_type: Literal["Alert", "Update", "Cancel"], at: datetime,
             note: str = "") -> None:
        self.version += 1
        self.versions.append(VersionInfo(version=self.version, msg_type=msg_type, sent=at,
                                         radius_km=self.radius_km, note=note))


class CaseNotes(BaseModel):
    """What dispatch said about a case, kept even when it arrives before the report."""

    released: bool = False
    found: bool = False
    outcome: str = ""
    leader: dict[str, Any] | None = None
    members: list[dict[str, Any]] = Field(default_factory=list)


def fold_notes(notes: CaseNotes, event_type: str, data: dict[str, Any]) -> CaseNotes:
    """What one of dispatch's events adds to the notes of its case (as the handlers do live)."""
    if event_type == CASE_OPENED:
        opened = CaseOpened.model_validate(data)
        if opened.leader is not None:
            notes.leader = opened.leader.model_dump(mode="json")
    elif event_type == CASE_MEMBER_ADDED:
        details = CaseEvent.model_validate(data).details
        member = details.get("member", details)
        if isinstance(member, dict) and member.get("phone") and all(
                m.get("phone") != member["phone"] for m in notes.members):
            notes.members.append(member)
    elif event_type == CASE_RELEASE_APPROVED:
        notes.released = True
    elif event_type == CASE_FOUND and not notes.found:
        notes.found, notes.outcome = True, CaseFound.model_validate(data).outcome
    elif event_type == CASE_REOPENED:
        notes.found, notes.outcome = False, ""
    return notes


def merge_report(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The alert's restricted content after a second report of the same child: the first
    report's place and time stay (the radius keeps growing from the first sighting); what the
    second adds — description, photos, suspect, vehicle, notes — is added."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in first.items()}
    child, other = out.setdefault("child", {}), second.get("child") or {}
    for key in ("description",):
        if other.get(key) and other[key] not in str(child.get(key, "")):
            child[key] = "；".join(x for x in (child.get(key), other[key]) if x)
    child["photo_urls"] = list(dict.fromkeys([*child.get("photo_urls", []),
                                              *other.get("photo_urls", [])]))
    for key in ("height_cm", "weight_kg", "id_number"):
        if child.get(key) is None and other.get(key) is not None:
            child[key] = other[key]
    circ, more = out.setdefault("circumstances", {}), second.get("circumstances") or {}
    for key in ("suspect", "vehicle", "companions", "notes"):
        if more.get(key) and more[key] not in str(circ.get(key, "")):
            circ[key] = "；".join(x for x in (circ.get(key), more[key]) if x)
    return out


def amend_report(report: dict[str, Any], amended: dict[str, Any],
                 paths: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The alert's restricted content after the commander's amendment (issue 18 §5,
    homeward.case.details_amended.v1): each amended field (a key of `paths`, e.g.
    shared.events.AMENDABLE_DETAILS) replaces the report's value at its path; others are
    ignored. Returns a new dict; equal to `report` when nothing changed."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in report.items()}
    for name, value in amended.items():
        if name in paths:
            part, key = paths[name]
            out.setdefault(part, {})[key] = value
    return out


# --- content -----------------------------------------------------------------------------------


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def child_age(child: dict[str, Any], last_seen: dict[str, Any], zone: str) -> int | None:
    """The age as given, else completed years on the last-seen day (in the deployment's zone)
    from birth_date."""
    if child.get("age") is not None:
        return int(child["age"])
    try:
        born = date.fromisoformat(str(child.get("birth_date")))
        seen = datetime.fromisoformat(str(last_seen.get("at")))
    except ValueError:
        return None
    return age_on(born, local_date(seen, zone) if seen.tzinfo else seen.date())


def summary_text(child: dict[str, Any], last_seen: dict[str, Any], radius: float, contact: str,
                 link: str, limit: int, extra: str = "", zone: str = DEFAULT_ZONE,
                 code: str = "", verify_base: str = "") -> str:
    """The push text people read (hub staff, SMS/chat, CAP description), at most `limit`
    characters, always ending with the alert's short code, its verification link (issue 17
    §2: anyone handed a forwarded copy can check it) and the bulletin link. The last-seen time
    is shown in `zone` ("2026-11-30 20:00（北京时间）", shared.display) whatever offset it was
    sent with; the age is derived from birth_date when none was given."""
    tail = f" 详见：{link}"
    if code:
        check = f"，真伪核验：{verify_url(verify_base, code)}" if verify_base else ""
        tail = f" 核验码：{display_code(code)}{check}{tail}"
    sex = {"male": "男", "female": "女"}.get(str(child.get("sex")), "")
    years = child_age(child, last_seen, zone)
    age = f"{years}岁" if years is not None else ""
    at = people_time(str(last_seen["at"]), zone) if last_seen.get("at") else ""
    head = (f"【儿童失踪协查】{child.get('name', '')}，{sex}{age}，"
            f"{child.get('height_cm') or '?'}cm。{child.get('description', '')}"
            f"最后出现：{'，'.join(p for p in (last_seen.get('address', ''), at) if p)}。"
            f"{extra}范围{radius:g}公里。如有线索请联系{contact}。")
    return _trim(head, limit - len(tail)) + tail


def _child_public(child: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "sex", "birth_date", "age", "height_cm", "weight_kg", "description",
            "photo_urls")
    return {k: child[k] for k in keep if k in child}


def push_body(alert: AlertState, scope: Literal["restricted", "public"], link: str,
              contact: str, limit: int, now: datetime,
              zone: str = DEFAULT_ZONE, verify_base: str = "") -> dict[str, Any]:
    """The push for one recipient class. Public: no reporter, no family phone, no ID number,
    no home address, no suspect/vehicle; the official contact instead. `text` shows times in
    `zone` (Settings.display_timezone); `issued_at` and `last_seen.at` keep ISO 8601."""
    report = alert.report or {}
    child = dict(report.get("child") or {})
    seen = dict(report.get("last_seen") or {})
    circ = dict(report.get("circumstances") or {})
    body: dict[str, Any] = {
        "type": ALERT_ISSUED,
        "alert_id": alert.alert_id,
        "case_id": alert.case_id,
        "version": alert.version,
        # Alert for the first version and for the re-issue after a reopen; Update otherwise.
        "msg_type": alert.versions[-1].msg_type if alert.versions else "Alert",
        "scope": scope,
        "status": alert.status,
        "radius_km": alert.radius_km,
        "issued_at": now.isoformat(),
        "link": link,
        "short_code": alert.short_code,
        "verify_url": verify_url(verify_base, alert.short_code) if verify_base else "",
    }
    if scope == "restricted":
        leader = alert.leader or {}
        contact_text = contact
        if leader.get("phone"):
            contact_text = (f"{leader.get('name', '')}{leader.get('title', '')} "
                            f"{display_phone(str(leader['phone']))}")
        extra = ""
        if circ.get("suspect"):
            extra += f"嫌疑人：{circ['suspect']}。"
        if circ.get("vehicle"):
            extra += f"车辆：{circ['vehicle']}。"
        body.update({
            "child": child,
            "last_seen": seen,
            "circumstances": circ,
            "leader": leader or None,
            "contact": contact_text,
            "text": summary_text(child, seen, alert.radius_km, contact_text, link, limit, extra,
                                 zone, alert.short_code, verify_base),
        })
    else:
        public_child = _child_public(child)
        public_seen = {k: seen[k] for k in ("at", "address", "region_code", "lat", "lon")
                       if k in seen}
        body.update({
            "child": public_child,
            "last_seen": public_seen,
            "circumstances": {"kind": circ.get("kind", "missing")},
            "contact": contact,
            "text": summary_text(public_child, public_seen, alert.radius_km, contact, link,
                                 limit, zone=zone, code=alert.short_code,
                                 verify_base=verify_base),
        })
    return body


def cancel_body(alert: AlertState, now: datetime) -> dict[str, Any]:
    """A cancellation: ids and outcome only, no personal data."""
    return {
        "type": ALERT_CANCELLED,
        "alert_id": alert.alert_id,
        "case_id": alert.case_id,
        "version": alert.version,
        "msg_type": "Cancel",
        "status": alert.status,
        "reason": alert.outcome,
        "references": [v.version for v in alert.versions if v.msg_type != "Cancel"],
        "short_code": alert.short_code,
        "issued_at": now.isoformat(),
        "text": "该协查已解除（已找到）。" if alert.outcome != "false_report"
        else "该协查已撤销（虚假报告）。",
    }


# --- delivery ---------------------------------------------------------------------------------

# What a ledger record says of the delivery, set when it is created and never changed.
LEDGER_META = ("subscriber_id", "kind", "channel", "alert_id", "case_id", "version", "scope",
               "name", "body_key")


def fold_receipt(record: dict[str, str], receipt: DeliveryReceipt,
                 event_id: str = "") -> dict[str, str]:
    """The ledger record of a delivery after one of its receipts on homeward.deliveries.v1 (the
    same fields the live path writes, so the deliveries API answers the same)."""
    out = dict(record)
    if not out:
        body_scope = "restricted" if receipt.scope == "group" else receipt.scope
        out.update({"subscriber_id": receipt.subscriber_id, "kind": receipt.kind,
                    "channel": receipt.channel, "alert_id": receipt.alert_id,
                    "case_id": receipt.case_id, "version": str(receipt.version),
                    "scope": receipt.scope, "name": receipt.name,
                    "body_key": f"{receipt.alert_id}:{receipt.version}:{body_scope}"})
    at = receipt.at.isoformat()
    if receipt.status == "acknowledged":
        out.update(state="acknowledged", acked_at=at, at=at)
    elif receipt.status == "ack_overdue":
        tail = event_id.rpartition(":overdue:")[2]
        reminders = int(tail) if tail.isdigit() else int(out.get("reminders", "0") or 0) + 1
        out.update(state="sent", overdue="1", reminders=str(reminders), at=at)
    elif out.get("state") != "acknowledged":
        out.update(state=receipt.status, attempts=str(receipt.attempts),
                   http_status=str(receipt.http_status or ""),
                   error="" if receipt.status == "sent" else receipt.error, at=at)
        if receipt.since is not None:
            out["since"] = receipt.since.isoformat()
    return out



# Why a delivery was dropped before a try (services.notify.delivery): notify's own words.
BODY_GONE, CANCELLED, DISABLED = "push body expired", "alert cancelled", "subscriber disabled"
NOT_REACHED, SUPERSEDED = "alert never reached", "superseded by a later version"
DROPPED_REASONS = (BODY_GONE, CANCELLED, DISABLED, NOT_REACHED, SUPERSEDED)


def error_class(text: str) -> str:
    """What a commander is shown of a delivery's error: a class of DELIVERY_ERROR_CLASSES (or
    a reason notify gave itself). Receipts written before errors were classes (issue 12) held
    the socket's text; it is reduced here, never shown."""
    if not text or text in DELIVERY_ERROR_CLASSES or text in DROPPED_REASONS:
        return text
    if len(text) == 8 and text.startswith("HTTP ") and text[5:].isdigit():
        return f"http_{text[5]}xx"
    if text.startswith("refused"):
        return "refused_by_policy"
    if text.startswith("apprise"):
        return "target_refused"
    return "timeout" if "Timeout" in text else "connect_failed"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


# Ranges `is_global` does not refuse on every Python we run on, refused by name: shared
# address space (RFC 6598, e.g. cloud metadata at 100.100.100.200), IPv6 site-local (RFC 3879),
# and the translation prefixes whose embedded IPv4 address is checked instead.
_REFUSED = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fec0::/10"))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address
                  ) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and would reach: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible (::a.b.c.d), 6to4 (2002::/16, RFC 3056), Teredo (2001::/32, RFC 4380:
    server and client) and NAT64 (64:ff9b::/96 RFC 6052, 64:ff9b:1::/48 RFC 8215)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    packed = int(ip)
    if any(ip in net for net in _NAT64) or (packed >> 32 == 0 and packed > 0xFFFF):
        out.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return out


def is_public_address(address: str) -> bool:
    """True only for a globally routable address (`ipaddress.is_global`) outside 100.64.0.0/10
    and fec0::/10, and, for an IPv6 form that carries an IPv4 address (see `embedded_ipv4`),
    when that address is public too. Private, loopback, link-local, multicast, reserved and
    unspecified addresses are not public (issue 12, "SSRF and outbound")."""
    ip = ipaddress.ip_address(address)
    if ip.is_multicast or not ip.is_global or any(ip in net for net in _REFUSED
                                                  if net.version == ip.version):
        return False
    return all(is_public_address(str(inner)) for inner in embedded_ipv4(ip))


def address_allowed(address: str, allow_networks: list[str]) -> bool:
    """Public (above), or inside one of the operator's `allow_networks` CIDRs (the address
    itself or the IPv4 address it carries)."""
    if is_public_address(address):
        return True
    ip = ipaddress.ip_address(address)
    candidates = [ip, *embedded_ipv4(ip)]
    return any(c in net for net in map(ipaddress.ip_network, allow_networks)
               for c in candidates if c.version == net.version)
