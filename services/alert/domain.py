"""Intake rules, free of I/O: identifiers an operator can read out over the phone, who may ask
for public release, and what makes two requests the same."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import uuid
from datetime import datetime
from typing import Protocol

from shared.auth import Principal
from shared.report import Report, ResolvedReport

_CASE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/O/0/1: read aloud without doubt
RELEASE_PERMISSION = "release"


class IntakeRefused(Exception):
    """A report or tip that is well-formed but may not be accepted."""

    def __init__(self, status: int, code: str, field: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field


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


class RegionLike(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def lat(self) -> float: ...

    @property
    def lon(self) -> float: ...


class RegionLookup(Protocol):
    """What intake needs of the region data (shared.regions.RegionIndex provides it)."""

    def get(self, code: str) -> RegionLike | None: ...

    def nearest(self, lat: float, lon: float) -> RegionLike | None: ...

    def resolve_address(self, text: str) -> RegionLike | None: ...


def resolve_place(
    report: Report, regions: RegionLookup | None
) -> tuple[ResolvedReport, list[str]]:
    """Complete the last-seen place: a region code from the coordinates or the address,
    coordinates from the region's centroid. Refuse what cannot be placed in a county."""
    seen = report.last_seen
    code, lat, lon = seen.region_code, seen.lat, seen.lon
    derived: list[str] = []
    if regions is not None:
        if code is not None and regions.get(code) is None:
            raise IntakeRefused(422, "unknown_region", "last_seen.region_code")
        if code is None and lat is not None and lon is not None:
            found = regions.nearest(lat, lon)
            code = found.code if found else None
            derived.append("region_code")
        if code is None and seen.address:
            found = regions.resolve_address(seen.address)
            code = found.code if found else None
            derived.append("region_code")
        if code is not None and (lat is None or lon is None):
            region = regions.get(code)
            if region is not None:
                lat, lon = region.lat, region.lon
                derived.append("lat_lon")
    if code is None or lat is None or lon is None:
        raise IntakeRefused(422, "place_unresolved", "last_seen")
    data = report.model_dump()
    data["last_seen"].update(region_code=code, lat=lat, lon=lon)
    return ResolvedReport.model_validate(data), derived


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(cidrs: list[str]) -> list[Network]:
    """The `trusted_proxies` setting parsed (a bad CIDR stops the service at start)."""
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """Who a public request comes from, for rate limits (issue 12: tips).

    The peer is the client, unless it is one of the `trusted` proxies: then X-Forwarded-For is
    read from the right, skipping trusted proxies, and the first other address is the client
    (a client can prepend anything, so only what our proxies appended counts). An IPv6 client
    is its /64 (one subscriber's LAN: rotating addresses in it is one client); an IPv4-mapped
    address is its IPv4 address. Returns e.g. "203.0.113.7" or "2001:db8:1:2::/64"; an
    unparsable peer is "unknown"."""
    address = _address(peer)
    if address is not None and forwarded_for and any(address in n for n in trusted):
        for hop in reversed(forwarded_for.split(",")):
            hop_address = _address(hop)
            if hop_address is None:
                break  # garbage from before our proxies: the last good hop is the client
            address = hop_address
            if not any(hop_address in n for n in trusted):
                break
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
