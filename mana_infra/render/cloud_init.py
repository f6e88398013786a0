"""cloud-init user data for the standby VPS.

Bootstrap only: Hetzner replaces the server when user data changes, so everything that changes with
the mode or the inventory (the Caddyfile) is pushed later by the Caddy remote command instead.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..names import WIREGUARD_CONFIG_PATH
from .remote import CADDY_DIR

# Ubuntu's own caddy package (universe), not the Caddy project's apt repository that the seed adds:
# no third-party signing key to pin in user data, upgrades come through the same unattended-upgrades
# path as everything else, and it is the same Caddy 2.6 line the lab tests with Debian's package.
# The Caddyfile uses nothing newer than Caddy 2.6.
PACKAGES = ("wireguard", "caddy", "unattended-upgrades")
VPS_CADDY_LINE = "2.6."  # Ubuntu 24.04's caddy: 2.6.2

SSHD_HARDENING = """\
# mana-infra: keys only, no passwords, root by key alone (Pulumi's remote command logs in as root).
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
"""

# No automatic reboots: a reboot in failover mode would take every host offline for a minute.
AUTO_UPGRADES = """\
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
"""


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the files inside stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def render_cloud_init(wireguard_server_config: str) -> str:
    document: dict[str, Any] = {
        "package_update": True,
        "package_upgrade": True,
        "packages": list(PACKAGES),
        "ssh_pwauth": False,
        "write_files": [
            {
                "path": WIREGUARD_CONFIG_PATH,
                "owner": "root:root",
                "permissions": "0600",
                "content": wireguard_server_config,
            },
            {
                "path": "/etc/ssh/sshd_config.d/60-mana-infra.conf",
                "owner": "root:root",
                "permissions": "0644",
                "content": SSHD_HARDENING,
            },
            {
                "path": "/etc/apt/apt.conf.d/20auto-upgrades",
                "owner": "root:root",
                "permissions": "0644",
                "content": AUTO_UPGRADES,
            },
        ],
        "runcmd": [
            ["mkdir", "-p", f"{CADDY_DIR}/sites.d", f"{CADDY_DIR}/global.d"],
            ["systemctl", "enable", "--now", "wg-quick@wg0"],
            ["systemctl", "restart", "ssh"],
        ],
    }
    body = yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=1000)
    return "#cloud-config\n# mana-infra standby VPS, bootstrap only: a change here replaces the server.\n" + body
