"""Cloudflare DNS: the VPS's permanent origin name, and one CNAME per inventory host that flips with the mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_cloudflare as cloudflare

from ..records import RecordSpec

COMMENT = "managed by mana-infra (Pulumi): Cloudflare Tunnel fallback"
# While adopting a record that exists today, its current comment and TTL would fail the import's
# "inputs must match" check; they are set by the next `pulumi up`, once adoptRecords is removed.
ADOPTION_IGNORED_FIELDS = ["comment", "ttl"]


def zone_id(zone: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The Cloudflare zone's id, looked up by its name."""
    result = cloudflare.get_zone_output(
        filter={"name": zone, "match": "all"}, opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    return result.id


class FailoverDnsArgs(TypedDict):
    zone: str
    """The Cloudflare zone's name, looked up for its id."""
    origin_name: str
    """The VPS's permanent name."""
    origin_ipv4: pulumi.Input[str]
    """The VPS's primary IPv4."""
    origin_ipv6: pulumi.Input[str]
    """The VPS's IPv6 address."""
    origin_ttl: int
    """TTL of the origin records."""
    inventory: Sequence[RecordSpec]
    """One CNAME per inventory host, in the stack's mode."""
    adopt: Mapping[str, str]
    """Hosts whose existing record is adopted in this run: host -> `<zoneId>/<recordId>`."""


class FailoverDns(pulumi.ComponentResource):
    """The records that decide which path serves each host."""

    zone_id: pulumi.Output[str]

    def __init__(self, name: str, args: FailoverDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:FailoverDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.zone_id = zone_id(args["zone"], self)

        # DNS-only in both modes: Let's Encrypt, WireGuard and SSH must reach the VPS itself.
        for record_type, address in (("A", args["origin_ipv4"]), ("AAAA", args["origin_ipv6"])):
            cloudflare.DnsRecord(
                f"{name}-origin-{record_type.lower()}",
                zone_id=self.zone_id,
                name=args["origin_name"],
                type=record_type,
                content=address,
                proxied=False,
                ttl=args["origin_ttl"],
                comment=COMMENT,
                opts=child,
            )

        for spec in args["inventory"]:
            import_id = args["adopt"].get(spec.name)
            options = (
                child
                if import_id is None
                else pulumi.ResourceOptions(parent=self, import_=import_id, ignore_changes=ADOPTION_IGNORED_FIELDS)
            )
            cloudflare.DnsRecord(
                f"{name}-{spec.name}",
                zone_id=self.zone_id,
                name=spec.name,
                type=spec.type,
                content=spec.content,
                proxied=spec.proxied,
                ttl=spec.ttl,
                comment=COMMENT,
                opts=options,
            )

        self.register_outputs({"zone_id": self.zone_id})
