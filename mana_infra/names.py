"""Names that tools outside the program look up — the engine's resources, the offline plan's rendered
files, a path on the VPS — defined once here; the program, the plan, the lab and the e2e use these.
Plain Python: the lab and the watch import it without pulumi."""

from __future__ import annotations

CADDY = "caddy"  # the prod stack's CaddyConfig component
MACMINI_CADDY = f"{CADDY}-macmini"  # the CaddyConfig that puts the Mac Mini's Caddyfile on the VPS (Plan C)
REHEARSAL = "rehearsal"  # the rehearsal stack's RehearsalSites component
STANDBY = "standby"  # the StandbyServer component


def server_resource(standby: str) -> str:
    """The hcloud Server inside a StandbyServer component."""
    return f"{standby}-server"


def certificate_config(kind: str) -> str:
    """The CaddyConfig that puts one certificate ("public", "origin") on the VPS."""
    return f"certificate-{kind}"


def apply_command(caddy_config: str) -> str:
    """The remote command a CaddyConfig named ``caddy_config`` runs (what a targeted `pulumi up` names)."""
    return f"{caddy_config}-apply"


def rehearsal_caddy(rehearsal: str) -> str:
    """The CaddyConfig inside a RehearsalSites component."""
    return f"{rehearsal}-caddy"


CADDY_COMMAND = apply_command(CADDY)  # "caddy-apply"
MACMINI_CADDY_COMMAND = apply_command(MACMINI_CADDY)  # "caddy-macmini-apply"
STANDBY_SERVER = server_resource(STANDBY)  # "standby-server": a new image replaces it
CERTIFICATE_COMMANDS = {kind: apply_command(certificate_config(kind)) for kind in ("public", "origin")}
REHEARSAL_COMMAND = apply_command(rehearsal_caddy(REHEARSAL))  # "rehearsal-caddy-apply"

# The offline plan's rendered files, by the names `mana-infra plan --artifact` takes.
CADDYFILE, CLOUD_INIT, WG_SERVER, WG_MACMINI = "Caddyfile", "cloud-init.yaml", "wg0-server.conf", "wg0-macmini.conf"
ARTIFACT_NAMES = (CADDYFILE, CLOUD_INIT, WG_SERVER, WG_MACMINI)

# Where WireGuard's config lives, on the VPS (cloud-init writes it) and on the Mac Mini.
WIREGUARD_CONFIG_PATH = "/etc/wireguard/wg0.conf"
