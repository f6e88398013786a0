"""The files that run mana-infra's pieces as services outside the VPS, rendered from the stack:

- the Mac Mini's launchd daemon that brings WireGuard up at boot (nothing else does on macOS:
  `wg-quick up` lasts until the next reboot);
- the watch (`mana-infra check --watch`) as a systemd service for a small Linux machine off-site, and as
  a launchd agent for a Mac that is not the Mac Mini. The watch must not run on the Mac Mini (its own line
  is one of the things it watches) nor on the standby alone, and it must run from inside
  checkAllowedCidrs, or the VPS refuses it and every round says "not checked from here".

Pure functions of their arguments; the stack exports what they render.
"""

from __future__ import annotations

import plistlib
import shlex

from ..names import WIREGUARD_CONFIG_PATH

WIREGUARD_LABEL = "how.mana.wireguard"
WATCH_LABEL = "how.mana.watch"
# Homebrew's prefix on Apple silicon; wg-quick needs Homebrew's bash (macOS ships bash 3).
HOMEBREW = "/opt/homebrew"
WATCH_OUTPUTS = "/etc/mana-infra/outputs.json"
WATCH_ENVIRONMENT = "/etc/mana-infra/watch.env"
# Prometheus metrics on loopback: an agent on the watch box scrapes them (or a person widens the address
# to a VPN's); nothing the watch knows is served to the world by default.
WATCH_METRICS, WATCHDOG_METRICS = "127.0.0.1:9817", "127.0.0.1:9818"


def _plist(document: dict[str, object]) -> str:
    return plistlib.dumps(document, sort_keys=False).decode()


def macmini_wireguard_plist(config_path: str = WIREGUARD_CONFIG_PATH, homebrew: str = HOMEBREW) -> str:
    """/Library/LaunchDaemons/how.mana.wireguard.plist: `wg-quick up` at every boot, as root."""
    return _plist(
        {
            "Label": WIREGUARD_LABEL,
            "ProgramArguments": [f"{homebrew}/bin/bash", f"{homebrew}/bin/wg-quick", "up", config_path],
            "RunAtLoad": True,
            "EnvironmentVariables": {"PATH": f"{homebrew}/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
            "StandardOutPath": "/var/log/mana-wireguard.log",
            "StandardErrorPath": "/var/log/mana-wireguard.log",
        }
    )


def watch_command(stack: str, interval: int) -> list[str]:
    """The watch's command line, but for where the stack's outputs are: a copied file (`--outputs`), so
    the machine needs no Pulumi CLI and no access to the state. No SSH: the watch has no key to the VPS
    (nor should it), and the standby path through the VPS proves WireGuard anyway. Alert destinations
    come from MANA_WATCH_ALERTS in the environment, never from the command line (`ps` shows that)."""
    return ["mana-infra", "check", "--stack", stack, "--watch", str(interval), "--no-ssh",
            "--metrics-listen", WATCH_METRICS]  # fmt: skip


def watch_systemd_unit(stack: str, interval: int = 60) -> str:
    """/etc/systemd/system/mana-watch.service: the watch, restarted if it ever stops. The alerts' URLs
    (often secrets) come from the environment file, never from the unit."""
    command = shlex.join([*watch_command(stack, interval), "--outputs", WATCH_OUTPUTS])
    return (
        "[Unit]\n"
        f"Description=mana-infra watch of both paths (stack {stack})\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        f"EnvironmentFile={WATCH_ENVIRONMENT}\n"
        f"ExecStart=/usr/local/bin/{command}\n"
        "Restart=always\n"
        "RestartSec=30\n"
        "DynamicUser=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


WATCHDOG_CHECKOUT = "/opt/mana-infra"  # the project's checkout on the watch box (`make setup` there)
WATCHDOG_KEY = "/etc/mana-infra/id_ed25519"  # the key sshAllowedCidrs lets in: the Caddy command needs it
WATCHDOG_KNOWN_HOSTS = "/etc/mana-infra/known_hosts"  # the VPS's host key, recorded once at set-up


def watchdog_command(stack: str) -> list[str]:
    """The watchdog's command line: it acts through Pulumi from the checkout, and asks the VPS for its
    vote over the SSH the Caddy command needs anyway. Its state under systemd's StateDirectory."""
    return [
        f"{WATCHDOG_CHECKOUT}/venv/bin/mana-infra", "watch", "--stack", stack,
        "--state", f"/var/lib/mana-infra/watch-{stack}.json", "--ssh-key", WATCHDOG_KEY,
        "--ssh-option", f"UserKnownHostsFile={WATCHDOG_KNOWN_HOSTS}", "--ssh-option", "StrictHostKeyChecking=yes",
        "--metrics-listen", WATCHDOG_METRICS,
    ]  # fmt: skip


def watchdog_systemd_unit(stack: str) -> str:
    """/etc/systemd/system/mana-watchdog.service: the watchdog (`mana-infra watch`), restarted if it
    ever stops; its state survives that. The tokens and the alert destinations come from the environment file."""
    return (
        "[Unit]\n"
        f"Description=mana-infra watchdog (stack {stack}): cuts over by itself only when that helps\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        f"EnvironmentFile={WATCH_ENVIRONMENT}\n"
        f"WorkingDirectory={WATCHDOG_CHECKOUT}\n"
        f"ExecStart={shlex.join(watchdog_command(stack))}\n"
        "StateDirectory=mana-infra\n"
        "Restart=always\n"
        "RestartSec=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def watch_launchd_agent(stack: str, interval: int = 60, homebrew: str = HOMEBREW) -> str:
    """~/Library/LaunchAgents/how.mana.watch.plist, for a Mac that is not the Mac Mini."""
    command = shlex.join(watch_command(stack, interval))
    return _plist(
        {
            "Label": WATCH_LABEL,
            # A shell, so that the outputs' path and the alert destinations from the environment file expand.
            "ProgramArguments": [
                "/bin/sh",
                "-c",
                f'set -a && . "$HOME/.config/mana-infra/watch.env" && exec {command} '
                '--outputs "$HOME/.config/mana-infra/outputs.json"',
            ],
            "RunAtLoad": True,
            "KeepAlive": True,
            "EnvironmentVariables": {"PATH": f"{homebrew}/bin:/usr/local/bin:/usr/bin:/bin"},
            "StandardErrorPath": "/tmp/mana-watch.log",
        }
    )
