"""The standby VPS at Hetzner: SSH key, primary IPs that outlive the server, firewall, server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_hcloud as hcloud

ANYWHERE = ["0.0.0.0/0", "::/0"]


class StandbyServerArgs(TypedDict):
    resource_prefix: str
    """Prefix of the names at Hetzner, e.g. `mana-prod`: names are unique per Hetzner project."""
    server_type: str
    """Hetzner server type, e.g. cx23. Changes in place (with a reboot)."""
    location: str
    """Hetzner location, e.g. fsn1. The primary IPs live there too."""
    image: str
    """OS image, e.g. ubuntu-24.04. A change replaces the server."""
    ssh_public_key: str
    """OpenSSH public key installed for root."""
    ssh_allowed_cidrs: Sequence[str]
    """The only networks that reach 22/tcp."""
    wireguard_port: int
    """UDP port open to the world for the Mac Mini's WireGuard."""
    user_data: pulumi.Input[str]
    """cloud-init user data (secret: it holds the WireGuard private key). A change replaces the server."""
    labels: Mapping[str, str]
    """Hetzner labels on every resource."""
    protect: bool
    """Guard the server and primary IPs against deletion, in Pulumi and at Hetzner."""


class StandbyServer(pulumi.ComponentResource):
    """The VPS that waits in tunnel mode and serves every host in failover mode."""

    ipv4_address: pulumi.Output[str]
    ipv6_address: pulumi.Output[str]
    server_id: pulumi.Output[str]

    def __init__(self, name: str, args: StandbyServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:StandbyServer", name, None, opts)
        prefix, labels, protect = args["resource_prefix"], dict(args["labels"]), args["protect"]
        child = pulumi.ResourceOptions(parent=self)
        guarded = pulumi.ResourceOptions(parent=self, protect=protect)

        ssh_key = hcloud.SshKey(
            f"{name}-ssh-key", name=f"{prefix}-operator", public_key=args["ssh_public_key"], labels=labels, opts=child
        )

        # Primary IPs of their own, not the server's: they survive a server replacement, so DNS and the
        # Mac Mini's WireGuard endpoint never move.
        ipv4, ipv6 = (
            hcloud.PrimaryIp(
                f"{name}-{family}",
                name=f"{prefix}-{family}",
                type=family,
                assignee_type="server",
                location=args["location"],
                auto_delete=False,
                delete_protection=protect,
                labels=labels,
                opts=guarded,
            )
            for family in ("ipv4", "ipv6")
        )

        firewall = hcloud.Firewall(
            f"{name}-firewall",
            name=f"{prefix}-standby",
            labels=labels,
            rules=[
                hcloud.FirewallRuleArgs(
                    direction="in",
                    protocol="tcp",
                    port="22",
                    source_ips=list(args["ssh_allowed_cidrs"]),
                    description="SSH from the operator's networks only",
                ),
                hcloud.FirewallRuleArgs(
                    direction="in",
                    protocol="udp",
                    port=str(args["wireguard_port"]),
                    source_ips=ANYWHERE,
                    description="WireGuard from the Mac Mini (home address changes)",
                ),
                hcloud.FirewallRuleArgs(
                    direction="in",
                    protocol="tcp",
                    port="80",
                    source_ips=ANYWHERE,
                    description="HTTP: ACME challenges and redirects",
                ),
                hcloud.FirewallRuleArgs(
                    direction="in", protocol="tcp", port="443", source_ips=ANYWHERE, description="HTTPS"
                ),
                hcloud.FirewallRuleArgs(
                    direction="in", protocol="icmp", source_ips=ANYWHERE, description="ping and path MTU discovery"
                ),
            ],
            opts=child,
        )

        server = hcloud.Server(
            f"{name}-server",
            name=f"{prefix}-standby",
            server_type=args["server_type"],
            location=args["location"],
            image=args["image"],
            ssh_keys=[ssh_key.id],
            user_data=args["user_data"],
            public_nets=[
                hcloud.ServerPublicNetArgs(
                    ipv4_enabled=True, ipv4=ipv4.id.apply(int), ipv6_enabled=True, ipv6=ipv6.id.apply(int)
                )
            ],
            firewall_ids=[firewall.id.apply(int)],
            labels=labels,
            delete_protection=protect,
            rebuild_protection=protect,
            # A primary IP is held by one server at a time: the old server must let go of it first.
            opts=pulumi.ResourceOptions.merge(guarded, pulumi.ResourceOptions(delete_before_replace=True)),
        )

        self.ipv4_address = ipv4.ip_address
        # The IPv6 primary IP is a /64 network; the server's own address in it is what DNS needs.
        self.ipv6_address = server.ipv6_address
        self.server_id = server.id
        self.register_outputs(
            {
                "ipv4_address": self.ipv4_address,
                "ipv6_address": self.ipv6_address,
                "server_id": self.server_id,
            }
        )
