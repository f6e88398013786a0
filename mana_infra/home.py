"""The home's own addresses for Plan C (the direct way): which addresses a visitor can reach, and the
words for those that cannot, each with how to find the right one. Pure rules: config and check ask."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Carrier-grade NAT's shared space (RFC 6598): a line with such an address has no public IPv4 of its own.
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")

FIND_IPV4 = (
    "the router's public IPv4 (FRITZ!Box: Internet -> Online-Monitor; or `curl -4 https://ifconfig.co` on the Mac Mini)"
)
FIND_IPV6 = (
    "the Mac Mini's stable IPv6 address: on the Mac Mini, `ifconfig en0 inet6 | grep 'autoconf secured' | head -1` "
    "shows its line (lines with `temporary` rotate daily)"
)
DS_LITE = (
    "the line has no public IPv4 of its own (carrier-grade NAT or DS-Lite, common on German cable lines): "
    "set homeAddress6 alone, and fail over with --via direct (through the edge, IPv4 visitors are served too)"
)
IPV6_ONLY_DNS = (
    "DNS-only, a home with only IPv6 leaves out every visitor whose own network has no IPv6 (they get no "
    "address to connect to)"
)


@dataclass(frozen=True)
class Parsed:
    """A home address as configured: the address, or why it cannot be one (and how to find the right one)."""

    address: str | None
    problem: str | None = None
    fix_hint: str = ""


def parse_home_ipv4(raw: str) -> Parsed:
    try:
        address = ipaddress.IPv4Address(raw.strip())
    except ValueError:
        return Parsed(None, f"{raw!r} is not an IPv4 address", FIND_IPV4)
    if address in SHARED_SPACE:
        return Parsed(None, f"{address} is in carrier-grade NAT's shared space (100.64.0.0/10): {DS_LITE}", "")
    unreachable = _unreachable_v4(address)
    if unreachable:
        return Parsed(None, f"{address} is {unreachable}: no visitor can reach it", FIND_IPV4)
    return Parsed(str(address))


def _unreachable_v4(address: ipaddress.IPv4Address) -> str | None:
    # Documentation ranges stay allowed: the offline plan and the lab use them.
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (169.254.0.0/16: the Mac Mini found no router)"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a host's address"
    private = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    if any(address in ipaddress.ip_network(net) for net in private):
        return "a private address (RFC 1918): the home network's own, behind the router"
    return None


def parse_home_ipv6(raw: str) -> Parsed:
    """An address, or the line `ifconfig en0 inet6` prints for it (so that a temporary one is told)."""
    if len(raw.strip().splitlines()) > 1:
        return Parsed(None, f"{raw.strip()!r} is several lines: give one address, or one line of ifconfig", FIND_IPV6)
    words = raw.split()
    text = words[1] if len(words) > 1 and words[0] == "inet6" else raw.strip()
    try:
        address = ipaddress.IPv6Address(text.split("%")[0])
    except ValueError:
        return Parsed(None, f"{raw!r} is not an IPv6 address", FIND_IPV6)
    if "temporary" in words:
        return Parsed(
            None,
            f"{address} is a temporary address: macOS makes a new one every day and stops taking "
            "connections on it within a week",
            FIND_IPV6,
        )
    unreachable = _unreachable_v6(address)
    if unreachable:
        return Parsed(None, f"{address} is {unreachable}: no visitor can reach it", FIND_IPV6)
    return Parsed(str(address))


def _unreachable_v6(address: ipaddress.IPv6Address) -> str | None:
    if address.is_link_local:
        return "a link-local address (fe80::/10: valid on the home network only)"
    if address in ipaddress.ip_network("fc00::/7"):
        return "a unique local address (fc00::/7: the home network's own, not routed on the internet)"
    if address.ipv4_mapped is not None:
        return "an IPv4 address in IPv6 form"
    if address.is_loopback or address.is_multicast or address.is_unspecified:
        return "not a host's address"
    return None
