"""The standby VPS's Caddyfile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..inventory import Service

Mode = Literal["tunnel", "failover"]
MODES: tuple[Mode, ...] = ("tunnel", "failover")


@dataclass(frozen=True)
class CaddySpec:
    """Everything the Caddyfile depends on."""

    mode: Mode
    services: Sequence[Service]
    macmini_address: str
    origin_name: str
    health_path: str
    acme_email: str | None = None
    caddy_dir: str = "/etc/caddy"


# How Caddy reaches the Mac Mini through WireGuard. When the tunnel is down, an idle pooled connection
# would take a request into a hang of minutes (TCP retransmits); idle connections are dropped after 10 s
# and a new one must connect within 3 s, so such requests fail fast with 502. 100 s for the response
# headers is what the apps live with behind Cloudflare's proxy today.
MAC_MINI_TRANSPORT = """\
(mac_mini) {
	transport http {
		dial_timeout 3s
		keepalive 10s
		response_header_timeout 100s
	}
}"""


def render_caddyfile(spec: CaddySpec) -> str:
    global_options = []
    if spec.acme_email:
        global_options.append(f"\temail {spec.acme_email}")
    # Host-local global options (the lab's internal CA, for one) live beside the file, so they
    # survive every reload of a newly rendered Caddyfile.
    global_options.append(f"\timport {spec.caddy_dir}/global.d/*.caddy")

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
    ]
    if spec.mode == "failover":
        blocks.append(MAC_MINI_TRANSPORT)
        blocks.extend(
            f"{service.host} {{\n"
            f"\treverse_proxy {spec.macmini_address}:{service.port} {{\n"
            "\t\timport mac_mini\n"
            "\t}\n"
            "}"
            for service in spec.services
        )
    blocks.append(f"# Rehearsal and other extra sites.\nimport {spec.caddy_dir}/sites.d/*.caddy")
    return "\n\n".join(blocks) + "\n"
