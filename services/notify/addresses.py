"""Which addresses an outbound request may reach (issue 12, "SSRF and outbound"), free of
I/O: public ones only — `ipaddress.is_global`, after unwrapping the IPv6 forms that carry an
IPv4 address — or those inside the operator's allowed networks. services.notify.outbound
applies it at registration and at every connect."""

from __future__ import annotations

import ipaddress

__all__ = ["address_allowed", "embedded_ipv4", "is_public_address"]

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
