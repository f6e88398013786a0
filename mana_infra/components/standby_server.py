"""The standby VPS at Hetzner: SSH key, primary IPs that outlive the server, firewall, server.

What must survive is protected (the primary IPs: DNS and the Mac Mini's WireGuard endpoint point at
them); the server is not: changing its image, keys or user data replaces it, keeping the IPs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_hcloud as hcloud

from ..names import server_resource

ANYWHERE = ["0.0.0.0/0", "::/0"]


def ssh_fingerprint(public_key: str) -> str:
    """Hetzner's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[index : index + 2] for index in range(0, len(digest), 2))


class StandbyServerArgs(TypedDict):
    resource_prefix: str
    """Prefix of the names at Hetzner, e.g. `mana-prod`: names are unique per Hetzner project."""
    server_type: str
    """Hetzner server type, e.g. cx23. Changes in place (with a reboot)."""
    location: str
    """Hetzner location, e.g. nbg1. The primary IPs live there too."""
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
    """Guard the primary IPs against deletion, in Pulumi and at Hetzner (the server stays replaceable)."""


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

        ssh_key_id = self._ssh_key(name, prefix, args["ssh_public_key"], labels, child)

        # Primary IPs of their own, not the server's: they survive a server replacement, so DNS and the
        # Mac Mini's WireGuard endpoint never move.
        ipv4, ipv6 = (
            hcloud.PrimaryIp(
                f"{name}-{family}",
                name=f"{prefix}-{family}",
                type=family,
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
            rules=firewall_rules(args["ssh_allowed_cidrs"], args["wireguard_port"]),
            opts=child,
        )

        server = hcloud.Server(
            server_resource(name),
            name=f"{prefix}-standby",
            server_type=args["server_type"],
            location=args["location"],
            image=args["image"],
            ssh_keys=[ssh_key_id],
            user_data=args["user_data"],
            public_nets=[
                hcloud.ServerPublicNetArgs(
                    ipv4_enabled=True, ipv4=ipv4.id.apply(int), ipv6_enabled=True, ipv6=ipv6.id.apply(int)
                )
            ],
            firewall_ids=[firewall.id.apply(int)],
            labels=labels,
            # A primary IP is held by one server at a time: the old server must let go of it first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
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

    @staticmethod
    def _ssh_key(
        name: str, prefix: str, public_key: str, labels: dict[str, str], opts: pulumi.ResourceOptions
    ) -> pulumi.Input[str]:
        """The key the server is created with. Hetzner takes a key once per project (by fingerprint),
        so one the operator uploaded already is used as it is; otherwise the program uploads it, under a
        name that changes with the key, so a new key is created before the old one is deleted."""
        fingerprint = ssh_fingerprint(public_key)
        ours = {key: labels[key] for key in ("project", "stack") if key in labels}
        for key in hcloud.get_ssh_keys().ssh_keys:
            if key.fingerprint == fingerprint and any((key.labels or {}).get(k) != v for k, v in ours.items()):
                return str(key.id)
        suffix = fingerprint.replace(":", "")[:8]
        return hcloud.SshKey(
            f"{name}-ssh-key", name=f"{prefix}-operator-{suffix}", public_key=public_key, labels=labels, opts=opts
        ).id


def firewall_rules(ssh_allowed_cidrs: Sequence[str], wireguard_port: int) -> list[hcloud.FirewallRuleArgs]:
    """What the VPS lets in: SSH from the operator's networks, WireGuard, HTTP(S) and ICMP from anywhere."""
    return [
        hcloud.FirewallRuleArgs(
            direction="in",
            protocol="tcp",
            port="22",
            source_ips=list(ssh_allowed_cidrs),
            description="SSH from the operator's networks only",
        ),
        hcloud.FirewallRuleArgs(
            direction="in",
            protocol="udp",
            port=str(wireguard_port),
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
        hcloud.FirewallRuleArgs(direction="in", protocol="tcp", port="443", source_ips=ANYWHERE, description="HTTPS"),
        hcloud.FirewallRuleArgs(
            direction="in", protocol="icmp", source_ips=ANYWHERE, description="ping and path MTU discovery"
        ),
    ]
