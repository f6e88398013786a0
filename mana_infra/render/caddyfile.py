"""The standby VPS's Caddyfile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Mode, Service
from .remote import CADDY_DIR


@dataclass(frozen=True)
class CaddySpec:
    """Everything the Caddyfile depends on."""

    mode: Mode
    services: Sequence[Service]
    macmini_address: str
    origin_name: str
    health_path: str
    acme_email: str | None = None


# How Caddy reaches the Mac Mini through WireGuard. When the tunnel is down, an idle pooled connection
# would take a request into a hang of minutes (TCP retransmits); idle connections are dropped after 10 s
# and a new one must connect within 3 s, so such requests fail fast with 502. 100 s for the response
# headers is what the apps live with behind Cloudflare's proxy today. Defined in both modes: the
# rehearsal's site file (sites.d) uses it while prod stays in tunnel mode.
MAC_MINI_TRANSPORT = """\
(mac_mini) {
	transport http {
		dial_timeout 3s
		keepalive 10s
		response_header_timeout 100s
	}
}"""


def mac_mini_site(host: str, macmini_address: str, port: int) -> str:
    """A site that proxies a hostname to the Mac Mini port behind it, through WireGuard."""
    return f"{host} {{\n\treverse_proxy {macmini_address}:{port} {{\n\t\timport mac_mini\n\t}}\n}}"


def render_caddyfile(spec: CaddySpec) -> str:
    global_options = []
    if spec.acme_email:
        global_options.append(f"\temail {spec.acme_email}")
    # Host-local global options (the lab's internal CA, for one) live beside the file, so they
    # survive every reload of a newly rendered Caddyfile.
    global_options.append(f"\timport {CADDY_DIR}/global.d/*.caddy")

    blocks = [
        "# Managed by mana-infra (Pulumi) through apply-caddyfile.sh: edits on the server are overwritten.\n"
        f"# Mode: {spec.mode}. "
        + (
            "Every inventory host is served here, through WireGuard to the Mac Mini."
            if spec.mode == "failover"
            else "Inventory hosts resolve to the Cloudflare Tunnel, so none is served here "
            "(their certificate challenges would fail and be retried)."
        ),
        "{\n" + "\n".join(global_options) + "\n}",
        f"{spec.origin_name} {{\n"
        f"\thandle {spec.health_path} {{\n"
        f'\t\trespond "ok mode={spec.mode}" 200\n'
        "\t}\n"
        "\thandle {\n"
        '\t\trespond "mana-infra standby" 404\n'
        "\t}\n"
        "}",
        MAC_MINI_TRANSPORT,
    ]
    if spec.mode == "failover":
        blocks.extend(mac_mini_site(service.host, spec.macmini_address, service.port) for service in spec.services)
    blocks.append(f"# Rehearsal and other extra sites.\nimport {CADDY_DIR}/sites.d/*.caddy")
    return "\n\n".join(blocks) + "\n"


def render_rehearsal_site(sites: Sequence[tuple[str, int]], macmini_address: str) -> str:
    """sites.d/ file of the rehearsal stack: its test hostnames, each to a Mac Mini port."""
    header = (
        "# Managed by mana-infra's rehearsal stack (Pulumi): `pulumi destroy -s failover` removes it.\n"
        "# Test hostnames served through WireGuard while production stays on the tunnel."
    )
    return "\n\n".join([header, *(mac_mini_site(host, macmini_address, port) for host, port in sites)]) + "\n"
