"""The project's nouns, in one place: modes and roles, a service of the inventory, the WireGuard
network, DNS names, and a DNS record with its one zone-file form.

The program, the renderers, the components, the mirror, `mana-infra check` and the lab all speak
these; nothing here imports Pulumi.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["tunnel", "failover"]
MODES: tuple[Mode, ...] = ("tunnel", "failover")

Via = Literal["edge", "dns", "direct", "direct-dns"]
"""The ways to fail over. To the VPS: through Cloudflare's edge (records stay proxied, pointing at the
VPS's origin name; the tunnel alone is down), or DNS-only (records point at the VPS directly;
Cloudflare's proxy is down too, or the account). Straight to the home (Plan C, when the VPS cannot
serve): through the edge (`direct`: proxied, so an IPv6-only home serves IPv4 visitors too) or
DNS-only (`direct-dns`)."""
VIAS: tuple[Via, ...] = ("edge", "dns", "direct", "direct-dns")
VIA_WORDS: dict[str, str] = {
    "edge": "through the edge",
    "dns": "DNS-only",
    "direct": "straight to the home through the edge",
    "direct-dns": "straight to the home, DNS-only",
}


def via_proxied(via: str) -> bool:
    """Whether the records stay proxied that way (Cloudflare's edge in front of the origin)."""
    return via in ("edge", "direct")


def via_home(via: str) -> bool:
    """Whether that way sends visitors to the home's own address instead of the VPS."""
    return via in ("direct", "direct-dns")


def mode_problem(value: str) -> str | None:
    """Why ``value`` is not a mode (the stack's config, or its outputs), or None: the one rule."""
    return None if value in MODES else f"{value!r} is not a mode: the allowed values are {' and '.join(MODES)}"


Role = Literal["standby", "rehearsal"]
ROLES: tuple[Role, ...] = ("standby", "rehearsal")

# Provider credentials: set in the stack config as secrets, or in the environment.
PROVIDER_TOKENS = {
    "hcloud:token": ("HCLOUD_TOKEN", "a Hetzner Cloud API token (read & write)"),
    "cloudflare:apiToken": (
        "CLOUDFLARE_API_TOKEN",
        "a Cloudflare API token for the zone with DNS:Edit, SSL and Certificates:Edit and Zone Settings:Read",
    ),
}

TUNNEL_DOMAIN = "cfargotunnel.com"
CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"
# A Cloudflare Tunnel's id.
TUNNEL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# How the engine and every printout show a secret's value.
SECRET = "[secret]"

# The VPS's answer to whoever is outside the networks it serves in this mode: the standby's own 403,
# naming the address it refused, so that check can tell a refusal from the app and name what to allow.
STANDBY_REFUSAL = "mana-infra standby: {host} is {served} (refused for {address})"
_REFUSED_FOR = re.compile(r"^mana-infra standby: \S+ is .* \(refused for (\S+)\)$")


def refused_address(status: int | None, body: str) -> str | None:
    """The address the VPS refused, when this answer is its refusal (STANDBY_REFUSAL); else None."""
    found = _REFUSED_FOR.match(body.strip()) if status == 403 else None
    return found[1] if found else None


# Cloudflare's published edge ranges (cloudflare.com/ips): (IPv4, IPv6). A proxied record resolves to
# these, never to its CNAME target; the provider's get_ip_ranges answers them.
CLOUDFLARE_IP_RANGES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
     "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
     "162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22"),
    ("2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32", "2a06:98c0::/29",
     "2c0f:f248::/32"),
)  # fmt: skip
# Cloudflare's "automatic" TTL, the only one a proxied record takes.
AUTOMATIC_TTL = 1


def tunnel_target(tunnel_id: str) -> str:
    """The name a Cloudflare Tunnel answers on: what tunnel-mode records point at."""
    return f"{tunnel_id}.{TUNNEL_DOMAIN}"


@dataclass(frozen=True)
class Service:
    """One public hostname served from the Mac Mini."""

    host: str
    port: int
    name: str
    health: str = "/"
    line: int = field(default=0, compare=False)
    """Its line in the inventory file (0: not from a file), for messages that blame it."""


@dataclass(frozen=True)
class WireGuardNetwork:
    """The tunnel's addressing: one subnet, the VPS and the Mac Mini inside it."""

    subnet: ipaddress.IPv4Network
    server_address: ipaddress.IPv4Address
    macmini_address: ipaddress.IPv4Address
    listen_port: int = 51820


@dataclass(frozen=True)
class Home:
    """The home's own public addresses (Plan C): what the direct way sends visitors to, at a name of its
    own (homeName, by default home.<zone>), as the VPS has its origin name. Either address may be absent
    (a DS-Lite line has no public IPv4), never both."""

    name: str
    ipv4: str | None
    ipv6: str | None

    def records(self, ttl: int) -> tuple[DnsRecord, ...]:
        """DNS-only in every mode, as the VPS's origin name: Cloudflare's edge and resolvers look the
        home up here when an inventory record points at it."""
        pairs = (("A", self.ipv4), ("AAAA", self.ipv6))
        return tuple(DnsRecord(self.name, kind, address, ttl) for kind, address in pairs if address)

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a in (self.ipv4, self.ipv6) if a)


# ------------------------------------------------------------------------------------------ names

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def hostname_problem(host: str) -> str | None:
    """Why ``host`` is not a valid DNS hostname, or None when it is."""
    if len(host) > 253:
        return f"hostname {host!r} is longer than 253 characters"
    if not host.isascii():
        try:
            ascii_form = host.encode("idna").decode()
        except UnicodeError:
            return f"hostname {host!r} is not ASCII and has no valid xn-- (IDNA) form"
        return (
            f"hostname {host!r} is not ASCII: DNS, Caddy and Cloudflare take an internationalised name in its "
            f"xn-- (IDNA) form, {ascii_form}"
        )
    for label in host.split("."):
        if not _LABEL.match(label):
            return (
                f"hostname {host!r} has an invalid label {label!r}: labels are 1-63 letters, digits "
                "and hyphens, and neither start nor end with a hyphen"
            )
    return None


def in_zone(host: str, zone: str) -> bool:
    return host == zone or host.endswith("." + zone)


def relative_name(fqdn: str, zone: str) -> str:
    """A name as a zone file inside ``zone`` writes it: "@" for the apex."""
    name = fqdn.lower().rstrip(".")
    return "@" if name == zone else name.removesuffix("." + zone)


def absolute_name(relative: str, zone: str) -> str:
    """The fully qualified name (no trailing dot) of a name relative to ``zone`` ("@" is the apex)."""
    name = relative.lower().rstrip(".")
    if name in ("@", "", zone) or name.endswith("." + zone):
        return zone if name in ("@", "") else name
    return f"{name}.{zone}"


def fqdn(name: str) -> str:
    """With the trailing dot of zone-file data."""
    return name.rstrip(".") + "."


# ------------------------------------------------------------------------------------ DNS records

TXT_CHUNK = 255


def txt_data(text: str) -> str:
    """TXT content as zone-file strings: already quoted stays as it is, else quoted in 255-byte pieces."""
    text = text.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text
    pieces = [text[start : start + TXT_CHUNK] for start in range(0, len(text), TXT_CHUNK)] or [""]
    return " ".join('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"' for piece in pieces)


@dataclass(frozen=True)
class DnsRecord:
    """One DNS record, wherever it lives (Cloudflare, the Hetzner mirror, the lab's zone files).

    ``name`` is fully qualified without the trailing dot. ``content`` is what Cloudflare's API holds:
    a CNAME's target without the dot, a TXT record's text, an MX record's host (with ``priority``
    beside it); other types, and values already in zone-file form (``priority`` None), as they are.
    """

    name: str
    type: str
    content: str
    ttl: int
    proxied: bool = False
    priority: int | None = None

    def data(self) -> str:
        """The record's data as a zone file (and Hetzner's RRSet values) write it."""
        if self.type in ("CNAME", "NS", "PTR"):
            return fqdn(self.content)
        if self.type == "MX" and self.priority is not None:
            return f"{self.priority} {fqdn(self.content)}"
        if self.type == "TXT":
            return txt_data(self.content)
        if self.type == "SRV":
            *numbers, target = self.content.split()
            return " ".join([*numbers, fqdn(target)])
        return self.content

    def zone_line(self) -> str:
        return f"{fqdn(self.name)} {self.ttl} IN {self.type} {self.data()}"


def pem_file(parts: Sequence[str]) -> str:
    """One PEM file the standby installs: the certificate chain, then the key (Caddy reads both from it)."""
    return "".join(part.strip() + "\n" for part in parts)
