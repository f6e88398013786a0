"""The Mac Mini's side of Plan C (the direct ways), rendered from the stack: its Caddyfile (the VPS's
renderer, `home=True`), the launchd daemon that runs Homebrew's caddy at boot, and the sync that keeps
its Caddyfile and the public certificate fresh from the VPS through WireGuard (a launchd job every ten
minutes and at boot). Nothing on the Mac Mini changes at a cut-over: its Caddy serves in every mode.

Pure functions of their arguments; the stack exports what they render, the lab runs it."""

from __future__ import annotations

import plistlib
import shlex
from collections.abc import Sequence
from importlib import resources

from ..model import Service
from .caddyfile import HOME_CADDY_DIR, MAC_MINI_FILES_PORT, CaddySpec, render_caddyfile
from .services import HOMEBREW

CADDY_LABEL = "how.mana.caddy"
SYNC_LABEL = "how.mana.caddy-sync"
SYNC_SCRIPT = f"{HOME_CADDY_DIR}/macmini-sync.sh"
SYNC_INTERVAL = 600
CADDY_LOG = f"{HOMEBREW}/var/log/mana-caddy.log"
SYNC_LOG = "/var/log/mana-caddy-sync.log"
# Where the apps listen on the Mac Mini: its Caddy reaches them there.
LOOPBACK = "127.0.0.1"


def home_caddyfile(
    services: Sequence[Service], home_name: str, health_path: str, cloudflare_networks: Sequence[str]
) -> str:
    """The Mac Mini's Caddyfile: the same renderer as the VPS's, one file for every mode."""
    return render_caddyfile(
        CaddySpec(
            mode="tunnel",
            via="direct",
            services=services,
            macmini_address=LOOPBACK,
            origin_name=home_name,
            health_path=health_path,
            allowed_networks=(),
            cloudflare_networks=cloudflare_networks,
            home=True,
        )
    )


def caddy_argv(homebrew: str = HOMEBREW) -> list[str]:
    return [f"{homebrew}/bin/caddy", "run", "--config", f"{HOME_CADDY_DIR}/Caddyfile", "--adapter", "caddyfile"]


def _plist(document: dict[str, object]) -> str:
    return plistlib.dumps(document, sort_keys=False).decode()


def caddy_launchd_plist(homebrew: str = HOMEBREW) -> str:
    """/Library/LaunchDaemons/how.mana.caddy.plist: Homebrew's caddy at every boot, kept alive. Since
    macOS Mojave a process binds :443 on the wildcard address without more; Caddy's data (it asks ACME for
    nothing here) stays under Homebrew's var."""
    return _plist(
        {
            "Label": CADDY_LABEL,
            "ProgramArguments": caddy_argv(homebrew),
            "RunAtLoad": True,
            "KeepAlive": True,
            "EnvironmentVariables": {"HOME": f"{homebrew}/var/lib/mana-caddy", "XDG_DATA_HOME": f"{homebrew}/var/lib"},
            "StandardOutPath": CADDY_LOG.replace(HOMEBREW, homebrew, 1),
            "StandardErrorPath": CADDY_LOG.replace(HOMEBREW, homebrew, 1),
        }
    )


def sync_script(vps_wireguard_address: str, homebrew: str = HOMEBREW) -> str:
    """macmini-sync.sh with its settings: fetch, validate, swap, reload (scripts/macmini-sync.sh)."""
    body = resources.files("mana_infra").joinpath("scripts/macmini-sync.sh").read_text(encoding="utf-8")
    settings = {
        "SOURCE": f"http://{vps_wireguard_address}:{MAC_MINI_FILES_PORT}",
        "DIR": HOME_CADDY_DIR,
        "CADDY": f"{homebrew}/bin/caddy",
    }
    lines = [f"{key}={shlex.quote(value)}" for key, value in settings.items()]
    return "#!/bin/sh\n" + "\n".join(lines) + "\n" + body


def sync_launchd_plist() -> str:
    """/Library/LaunchDaemons/how.mana.caddy-sync.plist: the sync every ten minutes and at boot."""
    return _plist(
        {
            "Label": SYNC_LABEL,
            "ProgramArguments": ["/bin/sh", SYNC_SCRIPT],
            "RunAtLoad": True,
            "StartInterval": SYNC_INTERVAL,
            "EnvironmentVariables": {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
            "StandardOutPath": SYNC_LOG,
            "StandardErrorPath": SYNC_LOG,
        }
    )
