"""The standby VPS's Caddyfile, the Mac Mini's own (Plan C), and the rehearsal's site file.

Warm in both modes: every inventory host has its site on the VPS at all times, serving a certificate
installed before any incident (no ACME at cut-over), so a cut-over changes who may reach the sites,
not what the VPS can serve. While the tunnel serves the hosts, only the operator's networks reach
them here (the daily pre-flight); through Cloudflare's edge, Cloudflare's networks and the operator's,
with the Origin CA certificate the edge trusts; DNS-only, everyone, with the publicly trusted one.

The Mac Mini's Caddyfile (Plan C, the direct ways) comes from the same renderer and is one file for every
mode: when it is needed, the VPS that keeps it fresh may be gone, so nothing may have to change on the
Mac Mini at a cut-over. It serves every host to its app on the Mac Mini itself, to everyone, with the
public certificate (Cloudflare's Full (strict) accepts a publicly trusted certificate as it does the
Origin CA's, and DNS-only visitors need it), and believes Cloudflare's visitor headers from Cloudflare's
ranges alone. The VPS serves it and the public certificate to the Mac Mini through WireGuard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import STANDBY_REFUSAL, Mode, Service, Via
from .remote import CADDY_DIR
from .services import HOMEBREW

# The certificates on the VPS, relative to /etc/caddy: each one PEM file with the chain and its key.
PUBLIC_CERTIFICATE = "certs/public.pem"
"""Publicly trusted (ACME, DNS-01), for the zone and *.zone: DNS-only visitors, the origin name, checks."""
ORIGIN_CERTIFICATE = "certs/origin.pem"
"""Cloudflare Origin CA, for the zone and *.zone: what Cloudflare's edge verifies in Full (strict)."""
# The Mac Mini's Caddyfile on the VPS, relative to /etc/caddy: what the Mac Mini fetches with the public
# certificate, from this port, answered for its WireGuard address alone (the Hetzner firewall keeps the port
# closed to the internet; no bind to the WireGuard address, which would stop Caddy whenever wg0 is down).
MAC_MINI_CADDYFILE = "macmini/Caddyfile"
MAC_MINI_FILES_PORT = 8317
# The Mac Mini's Caddy reads its files here (Homebrew's etc).
HOME_CADDY_DIR = f"{HOMEBREW}/etc/mana-infra"
HOME_CERTIFICATE = "public.pem"


@dataclass(frozen=True)
class CaddySpec:
    """Everything the Caddyfile depends on."""

    mode: Mode
    via: Via
    services: Sequence[Service]
    macmini_address: str
    origin_name: str
    health_path: str
    allowed_networks: Sequence[str]
    """Who reaches the inventory hosts here in this mode; empty: everyone."""
    cloudflare_networks: Sequence[str] = ()
    """Cloudflare's published ranges when its edge connects here (through the edge): only from these is
    the visitor's address in Cloudflare's headers believed; empty: from nobody."""
    mac_mini_files: str | None = None
    """The Mac Mini's WireGuard address when it fetches its Caddyfile and the public certificate here
    (Plan C configured); None: not served."""
    home: bool = False
    """The Mac Mini's own Caddyfile (Plan C): every mode alike; ``origin_name`` is the home's name and
    ``macmini_address`` the loopback its apps listen on."""


# How Caddy reaches the Mac Mini through WireGuard. When the tunnel is down, an idle pooled connection
# would take a request into a hang of minutes (TCP retransmits); idle connections are dropped after 10 s
# and a new one must connect within 3 s, so such requests fail fast with 502. 100 s for the response
# headers is what the apps live with behind Cloudflare's proxy today. Defined in both modes: the
# rehearsal's site file (sites.d) uses it while prod stays in tunnel mode.
def mac_mini_transport(cloudflare_networks: Sequence[str]) -> str:
    """The reverse proxy's settings; through the edge, X-Forwarded-For as Cloudflare sent it is kept
    (Caddy adds Cloudflare's address), from anyone else Caddy writes it anew from the peer."""
    trusted = f"\ttrusted_proxies {' '.join(cloudflare_networks)}\n" if cloudflare_networks else ""
    return (
        "(mac_mini) {\n"
        f"{trusted}"
        "\ttransport http {\n\t\tdial_timeout 3s\n\t\tkeepalive 10s\n\t\tresponse_header_timeout 100s\n\t}\n"
        "}"
    )


# The headers that carry a visitor's address to the apps (behind cloudflared they get Cloudflare's):
# Caddy 2.6 passes them through as the client sent them, so a visitor could name any address. Set here
# from the connection's peer, unless the peer is Cloudflare's edge, whose Cf-Connecting-IP is the visitor.
def visitor_snippet(cloudflare_networks: Sequence[str]) -> str:
    if not cloudflare_networks:
        return (
            "(visitor) {\n"
            "\trequest_header Cf-Connecting-IP {remote_host}\n"
            "\trequest_header X-Real-IP {remote_host}\n"
            "\trequest_header -True-Client-IP\n"
            "}"
        )
    ranges = " ".join(cloudflare_networks)
    return (
        "(visitor) {\n"
        f"\t@from_cloudflare remote_ip {ranges}\n"
        "\trequest_header @from_cloudflare X-Real-IP {http.request.header.Cf-Connecting-IP}\n"
        f"\t@not_from_cloudflare not remote_ip {ranges}\n"
        "\trequest_header @not_from_cloudflare Cf-Connecting-IP {remote_host}\n"
        "\trequest_header @not_from_cloudflare X-Real-IP {remote_host}\n"
        # Cloudflare sets True-Client-IP for Enterprise zones only; elsewhere it is whatever was sent.
        "\trequest_header -True-Client-IP\n"
        "}"
    )


def _certificate_snippet(name: str, full: str) -> str:
    return f"({name}) {{\n\ttls {full} {full}\n}}"


def _served(spec: CaddySpec) -> tuple[str, str]:
    """The certificate snippet the inventory hosts serve, and whom the others are told to use."""
    if spec.home:
        return "public_certificate", ""
    if spec.mode == "tunnel":
        return "public_certificate", "served through Cloudflare"
    if spec.via == "edge":
        return "origin_certificate", "served through Cloudflare's proxy"
    return "public_certificate", ""


def mac_mini_site(host: str, macmini_address: str, port: int, certificate: str, restricted: bool) -> str:
    """A site that proxies a hostname to the Mac Mini port behind it (through WireGuard, or on the Mac
    Mini itself)."""
    lines = [f"{host} {{", f"\timport {certificate}"]
    if restricted:
        lines.append("\timport elsewhere_refused")
    lines.append("\timport visitor")
    lines += [f"\treverse_proxy {macmini_address}:{port} {{", "\t\timport mac_mini", "\t}", "}"]
    return "\n".join(lines)


def _state(spec: CaddySpec) -> str:
    if spec.home:
        return "home"
    return f"mode={spec.mode}" if spec.mode == "tunnel" else f"mode=failover via={spec.via}"


def _summary(spec: CaddySpec) -> str:
    if spec.home:
        return (
            "The Mac Mini's own Caddy, the same in every mode (Plan C): every inventory host to its app here, to "
            "everyone, with the public certificate; visitors come when the records point at the home's name."
        )
    if spec.mode == "tunnel":
        return (
            "Inventory hosts resolve to the Cloudflare Tunnel; every one is served here all the same, warm, "
            "to the operator's networks only (the daily pre-flight)."
        )
    if spec.via == "edge":
        return (
            "Inventory hosts stay proxied and point here: Cloudflare's edge connects with the Origin CA "
            "certificate it trusts (SSL Full (strict)); only its networks and the operator's get through."
        )
    return "Inventory hosts point here, DNS-only: every visitor is served, with the public certificate."


def _head(spec: CaddySpec) -> list[str]:
    """The comment, the global options and the snippets every site imports."""
    managed = (
        "mana-infra's Mac Mini sync (macminiSyncScript) from the VPS: edits on the Mac Mini"
        if spec.home
        else "mana-infra (Pulumi) through apply-caddyfile.sh: edits on the server"
    )
    # Host-local global options live beside the file, so they survive every reload of a new one (the VPS).
    # HTTP/3 is not offered: Caddy would announce it (Alt-Svc) on UDP 443, which the firewall keeps
    # closed, and browsers would try, wait and fall back.
    local = "" if spec.home else f"\timport {CADDY_DIR}/global.d/*.caddy\n"
    head = [
        f"# Managed by {managed} are overwritten.\n"
        f"# {_state(spec)}. {_summary(spec)}\n"
        "# No site asks ACME for anything: the certificates are installed before they are needed.",
        f"{{\n\tservers {{\n\t\tprotocols h1 h2\n\t}}\n{local}}}",
        mac_mini_transport(spec.cloudflare_networks),
        visitor_snippet(spec.cloudflare_networks),
    ]
    if spec.home:
        return [*head, _certificate_snippet("public_certificate", f"{HOME_CADDY_DIR}/{HOME_CERTIFICATE}")]
    return [
        *head,
        _certificate_snippet("public_certificate", f"{CADDY_DIR}/{PUBLIC_CERTIFICATE}"),
        _certificate_snippet("origin_certificate", f"{CADDY_DIR}/{ORIGIN_CERTIFICATE}"),
    ]


def mac_mini_files_site(macmini_address: str) -> str:
    """The Mac Mini's Caddyfile and the public certificate, for the Mac Mini alone, through WireGuard."""
    return (
        "# The Mac Mini fetches its Caddyfile and the public certificate here, through WireGuard (Plan C).\n"
        f"http://:{MAC_MINI_FILES_PORT} {{\n"
        "\t@mac_mini_files {\n"
        f"\t\tremote_ip {macmini_address}/32\n"
        f"\t\tpath /{MAC_MINI_CADDYFILE} /{PUBLIC_CERTIFICATE}\n"
        "\t}\n"
        f"\thandle @mac_mini_files {{\n\t\troot * {CADDY_DIR}\n\t\tfile_server\n\t}}\n"
        '\thandle {\n\t\trespond "not here" 404\n\t}\n'
        "}"
    )


def render_caddyfile(spec: CaddySpec) -> str:
    certificate, elsewhere = _served(spec)
    restricted = bool(spec.allowed_networks)
    blocks = _head(spec)
    if restricted:
        refusal = STANDBY_REFUSAL.format(host="{host}", served=elsewhere, address="{remote_host}")
        blocks.append(
            "(elsewhere_refused) {\n"
            f"\t@elsewhere not remote_ip {' '.join(spec.allowed_networks)}\n"
            f'\trespond @elsewhere "{refusal}" 403\n'
            "}"
        )
    blocks.append(
        f"{spec.origin_name} {{\n"
        "\timport public_certificate\n"
        f"\thandle {spec.health_path} {{\n"
        f'\t\trespond "ok {_state(spec)}" 200\n'
        "\t}\n"
        "\thandle {\n"
        f'\t\trespond "mana-infra {"home" if spec.home else "standby"}" 404\n'
        "\t}\n"
        "}"
    )
    blocks.extend(
        mac_mini_site(service.host, spec.macmini_address, service.port, certificate, restricted)
        for service in spec.services
    )
    if spec.mac_mini_files:
        blocks.append(mac_mini_files_site(spec.mac_mini_files))
    if not spec.home:
        blocks.append(f"# Rehearsal and other extra sites.\nimport {CADDY_DIR}/sites.d/*.caddy")
    return "\n\n".join(blocks) + "\n"


def render_rehearsal_site(sites: Sequence[tuple[str, int]], macmini_address: str) -> str:
    """sites.d/ file of the rehearsal stack: its test hostnames, each to a Mac Mini port, with the public
    certificate a DNS-only cut-over serves (the rehearsal proves that path, certificate included)."""
    header = (
        "# Managed by mana-infra's rehearsal stack (Pulumi): `pulumi destroy -s failover` removes it.\n"
        "# Test hostnames served through WireGuard while production stays on the tunnel."
    )
    sites_text = (mac_mini_site(host, macmini_address, port, "public_certificate", False) for host, port in sites)
    return "\n\n".join([header, *sites_text]) + "\n"
