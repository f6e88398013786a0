"""The command text Pulumi's remote Command runs on the VPS over SSH: the shipped apply script,
after the settings it reads for any file but the Caddyfile. The lab runs the same text."""

from __future__ import annotations

import shlex
from importlib import resources

CADDYFILE = "Caddyfile"
# Where the standby's Caddy configuration lives (Ubuntu's caddy package).
CADDY_DIR = "/etc/caddy"


def apply_script() -> str:
    """mana_infra/scripts/apply-caddyfile.sh, byte for byte."""
    return resources.files("mana_infra").joinpath("scripts/apply-caddyfile.sh").read_text(encoding="utf-8")


def caddy_command(target: str = CADDYFILE, action: str = "install") -> str:
    """The SSH command that installs (or removes) ``target``, a file relative to /etc/caddy."""
    if target == CADDYFILE and action == "install":
        return apply_script()
    return f"CADDY_TARGET={shlex.quote(target)}\nCADDY_ACTION={action}\n" + apply_script()
