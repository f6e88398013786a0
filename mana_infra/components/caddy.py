"""Puts a Caddy configuration file on the VPS over SSH, through the script shipped in this package."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi_command import remote

from ..names import apply_command
from ..render.remote import CADDYFILE, caddy_command


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CaddyConfigArgs(TypedDict):
    host: pulumi.Input[str]
    """Address to SSH to: the VPS's primary IPv4."""
    user: str
    """SSH user."""
    private_key: pulumi.Input[str]
    """SSH private key (secret)."""
    content: pulumi.Input[str]
    """The file's text."""
    target: NotRequired[str]
    """The file, relative to /etc/caddy: the Caddyfile (default), a certificate in certs/, or a site file
    in sites.d/."""
    triggers: NotRequired[Sequence[pulumi.Input[Any]]]
    """Changes that re-run the command as a new one, such as the mode or the server's id."""
    remove_on_delete: NotRequired[bool]
    """Remove the file when the command is deleted (a site file, with its stack). Never for the Caddyfile
    or what it refers to: a replaced command's delete runs after the new one's create."""
    after: NotRequired[Sequence[pulumi.Resource]]
    """What must be done before the file goes live (the certificates before the Caddyfile; on the way
    back to the tunnel, the DNS records before the VPS stops serving the public)."""


class CaddyConfig(pulumi.ComponentResource):
    """Validate-swap-reload of a Caddy file; a configuration Caddy rejects is never put live."""

    content_sha256: pulumi.Output[str]
    stdout: pulumi.Output[str]
    command_urn: pulumi.Output[str]

    def __init__(self, name: str, args: CaddyConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:CaddyConfig", name, None, opts)
        target = args.get("target", CADDYFILE)
        self.content_sha256 = pulumi.Output.from_input(args["content"]).apply(sha256)
        connection = remote.ConnectionArgs(
            host=args["host"],
            user=args["user"],
            private_key=args["private_key"],
            # A new server takes a minute or two to boot and start sshd: keep dialling.
            dial_error_limit=60,
        )
        after = list(args.get("after", []))
        if not args.get("remove_on_delete", False):
            # A trigger change replaces the command: the new one's create runs before the old one's
            # delete, which is why this command has no delete step that could undo it. The Caddyfile's
            # own text is a trigger: a new file is a new command; any other file's new text is an update
            # (the create runs again with it).
            triggers = [self.content_sha256] if target == CADDYFILE else []
            command = remote.Command(
                apply_command(name),
                connection=connection,
                # Ubuntu's sshd accepts no environment but LANG and LC_*: don't send the last output along.
                add_previous_output_in_env=False,
                create=caddy_command(target),
                stdin=args["content"],
                triggers=[*triggers, *args.get("triggers", [])],
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )
        else:
            # A site file is removed with its stack. A changed file is an update (the create runs again,
            # no delete); a replacement removes the old file before the new one goes in.
            command = remote.Command(
                apply_command(name),
                connection=connection,
                add_previous_output_in_env=False,
                create=caddy_command(target),
                delete=caddy_command(target, "remove"),
                stdin=args["content"],
                triggers=list(args.get("triggers", [])),
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True, depends_on=after),
            )
        self.stdout = command.stdout
        self.command_urn = command.urn
        self.register_outputs({"content_sha256": self.content_sha256, "stdout": self.stdout})
