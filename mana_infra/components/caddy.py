"""Puts the rendered Caddyfile on the VPS over SSH, through the script shipped in this package."""

from __future__ import annotations

import hashlib
import shlex
from importlib import resources
from typing import TypedDict

import pulumi
from pulumi_command import remote

from ..render.caddyfile import Mode


def apply_script() -> str:
    """The script the remote command runs (and the lab runs, byte for byte)."""
    return resources.files("mana_infra").joinpath("scripts/apply-caddyfile.sh").read_text(encoding="utf-8")


def script_command(target: str = "Caddyfile", action: str = "install") -> str:
    """The SSH command text: the script, after the settings it reads for any file but the Caddyfile."""
    if target == "Caddyfile" and action == "install":
        return apply_script()
    return f"CADDY_TARGET={shlex.quote(target)}\nCADDY_ACTION={action}\n" + apply_script()


class CaddyConfigArgs(TypedDict):
    host: pulumi.Input[str]
    """Address to SSH to: the VPS's primary IPv4."""
    user: str
    """SSH user."""
    private_key: pulumi.Input[str]
    """SSH private key (secret)."""
    caddyfile: str
    """The Caddyfile to serve."""
    mode: Mode
    """The stack's mode, a trigger of its own so every flip re-runs the command."""
    server_id: pulumi.Input[str]
    """The server's id: a new server (same IP) gets the Caddyfile again."""


class CaddyConfig(pulumi.ComponentResource):
    """Validate-swap-reload of the Caddyfile; a Caddyfile Caddy rejects is never swapped in."""

    caddyfile_sha256: str
    stdout: pulumi.Output[str]

    def __init__(self, name: str, args: CaddyConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:CaddyConfig", name, None, opts)
        self.caddyfile_sha256 = hashlib.sha256(args["caddyfile"].encode()).hexdigest()
        command = remote.Command(
            f"{name}-apply",
            connection=remote.ConnectionArgs(
                host=args["host"],
                user=args["user"],
                private_key=args["private_key"],
                # A new server takes a minute or two to boot and start sshd: keep dialling.
                dial_error_limit=60,
            ),
            create=apply_script(),
            stdin=args["caddyfile"],
            # A trigger change replaces the command: the new one's create runs before the old one's
            # delete, which is why the command has no delete step that could undo the new Caddyfile.
            triggers=[self.caddyfile_sha256, args["mode"], args["server_id"]],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.stdout = command.stdout
        self.register_outputs({"caddyfile_sha256": self.caddyfile_sha256, "stdout": self.stdout})
