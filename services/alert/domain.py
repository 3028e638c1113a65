"""Intake rules, free of I/O: identifiers an operator can read out over the phone, who may ask
for public release, and what makes two requests the same."""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from typing import Any

from shared import errors
from shared.auth import Principal
from shared.report import Report

RELEASE_PERMISSION = "release"


class IntakeRefused(errors.Refused):
    """A report or tip that is well-formed but may not be accepted: IntakeRefused(status, code,
    field, **context) (shared/errors.py maps it to HTTP)."""

    def __init__(self, status: int, code: str, field: str | None = None,
                 **context: Any) -> None:
        super().__init__(status, code, "", field, **context)


def new_report_id() -> str:
    return f"R{uuid.uuid4().hex}"


def new_tip_id() -> str:
    return f"T{uuid.uuid4().hex}"


def check_release(report: Report, operator: Principal) -> None:
    """Public release at intake needs an operator with release authority; otherwise the case
    leader approves it later in dispatch."""
    if report.release.public and RELEASE_PERMISSION not in operator.permissions:
        raise IntakeRefused(403, "release_forbidden", "release.public")


def body_hash(report: Report) -> str:
    """Same validated report, same hash: what an Idempotency-Key replay is compared on."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


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
