"""The rehearsal: test hostnames served by the prod VPS through WireGuard, production names untouched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import pulumi
import pulumi_cloudflare as cloudflare

from ..mirror import REHEARSAL_COMMENT_PREFIX
from ..names import rehearsal_caddy
from ..render.caddyfile import render_rehearsal_site
from .caddy import CaddyConfig

SITE_FILE = "sites.d/mana-infra-rehearsal.caddy"
COMMENT = f"{REHEARSAL_COMMENT_PREFIX}, `pulumi destroy -s failover` removes it"


class RehearsalSitesArgs(TypedDict):
    zone_id: str
    """The Cloudflare zone's id."""
    sites: Sequence[tuple[str, int]]
    """Test hostnames, each with the Mac Mini port it reaches."""
    origin_name: pulumi.Input[str]
    """The prod VPS's permanent name: every test hostname is a CNAME to it."""
    origin_ipv4: pulumi.Input[str]
    """The prod VPS's address, for SSH."""
    macmini_address: pulumi.Input[str]
    """The Mac Mini's WireGuard address, as prod configured it."""
    server_id: pulumi.Input[str]
    """The prod VPS's server id: a replaced server (a new id at the same address) gets the site file again."""
    ttl: int
    """TTL of the test records."""
    ssh_user: str
    """SSH user on the prod VPS."""
    ssh_private_key: pulumi.Input[str]
    """SSH private key (secret)."""


class RehearsalSites(pulumi.ComponentResource):
    """DNS-only CNAMEs to the prod origin and a Caddy site file on the prod VPS."""

    site_file: pulumi.Output[str]

    def __init__(self, name: str, args: RehearsalSitesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:RehearsalSites", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for host, _ in args["sites"]:
            cloudflare.DnsRecord(
                f"{name}-{host}",
                zone_id=args["zone_id"],
                name=host,
                type="CNAME",
                content=args["origin_name"],
                proxied=False,
                ttl=args["ttl"],
                comment=COMMENT,
                opts=child,
            )
        sites = list(args["sites"])
        self.site_file = pulumi.Output.from_input(args["macmini_address"]).apply(
            lambda address: render_rehearsal_site(sites, address)
        )
        CaddyConfig(
            rehearsal_caddy(name),
            {
                "host": args["origin_ipv4"],
                "user": args["ssh_user"],
                "private_key": args["ssh_private_key"],
                "content": self.site_file,
                "target": SITE_FILE,
                "remove_on_delete": True,
                "triggers": [args["server_id"]],
            },
            child,
        )
        self.register_outputs({"site_file": self.site_file})
