"""Cloudflare DNS: the VPS's permanent origin name, and one CNAME per inventory host that flips with the mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_cloudflare as cloudflare

from ..model import DnsRecord

COMMENT = "managed by mana-infra (Pulumi): Cloudflare Tunnel fallback"
# While adopting a record that exists today, its current comment and TTL would fail the import's
# "inputs must match" check; they are set by the next `pulumi up`, once adoptRecords is removed.
ADOPTION_IGNORED_FIELDS = ["comment", "ttl"]


# Every input as the state holds it: with Cloudflare unreachable, a Cloudflare resource's diff is empty, so
# no `pulumi up` calls its API (a record's flip to the failover form waits until Cloudflare is back).
CLOUDFLARE_UNREACHABLE_IGNORED = ["*"]


def cloudflare_options(opts: pulumi.ResourceOptions, reachable: bool) -> pulumi.ResourceOptions:
    """``opts`` for a Cloudflare resource: unchanged while Cloudflare answers, every change ignored when not."""
    if reachable:
        return opts
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=CLOUDFLARE_UNREACHABLE_IGNORED))


def lookup_zone_id(zone: str) -> str:
    """The Cloudflare zone's id, looked up by its name (a plain value: the mirror's read needs it)."""
    return cloudflare.get_zone(filter={"name": zone, "match": "all"}).id


def read_zone_records(zone_id: str) -> list[dict[str, Any]]:
    """Every record of the Cloudflare zone, as plain data for the mirror."""
    result = cloudflare.get_dns_records(zone_id=zone_id, max_items=5000)
    return [
        {
            "name": record.name,
            "type": record.type,
            "content": record.content,
            "proxied": record.proxied,
            "ttl": record.ttl,
            "priority": record.priority,
            "comment": record.comment,
            "data": dict(record.data) if record.data else {},
        }
        for record in result.results
    ]


class FailoverDnsArgs(TypedDict):
    zone_id: str
    """The Cloudflare zone's id."""
    origin_name: str
    """The VPS's permanent name."""
    origin_ipv4: pulumi.Input[str]
    """The VPS's primary IPv4."""
    origin_ipv6: pulumi.Input[str]
    """The VPS's IPv6 address."""
    origin_ttl: int
    """TTL of the origin records."""
    inventory: Sequence[DnsRecord]
    """One CNAME per inventory host, in the stack's mode."""
    adopt: Mapping[str, str]
    """Hosts whose existing record is adopted in this run: host -> `<zoneId>/<recordId>`."""
    tunnel_probe: DnsRecord
    """The record that stays on the tunnel in every mode (records.tunnel_probe_record)."""
    home: NotRequired[Sequence[DnsRecord]]
    """The home's name with its addresses (Plan C), DNS-only in every mode: what the direct ways point at."""
    cloudflare_reachable: bool
    """False: every record keeps what the state holds, with no call to Cloudflare (the emergency)."""
    after: NotRequired[Sequence[pulumi.Resource]]
    """What the inventory records wait for: on a cut-over, the VPS serving every host."""


class FailoverDns(pulumi.ComponentResource):
    """The records that decide which path serves each host."""

    def __init__(self, name: str, args: FailoverDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:FailoverDns", name, None, opts)
        reachable = args["cloudflare_reachable"]
        child = cloudflare_options(pulumi.ResourceOptions(parent=self), reachable)

        # DNS-only in both modes: checks, WireGuard and SSH reach the VPS itself, and so does Cloudflare's
        # edge when a proxied record points at this name.
        for record_type, address in (("A", args["origin_ipv4"]), ("AAAA", args["origin_ipv6"])):
            cloudflare.DnsRecord(
                f"{name}-origin-{record_type.lower()}",
                zone_id=args["zone_id"],
                name=args["origin_name"],
                type=record_type,
                content=address,
                proxied=False,
                ttl=args["origin_ttl"],
                comment=COMMENT,
                opts=child,
            )

        for spec in args.get("home", []):
            _record(f"{name}-home-{spec.type.lower()}", args["zone_id"], spec, f"{COMMENT}: the home (Plan C)", child)

        # Cloudflare takes 100 characters of comment (Free plan).
        _record("tunnel-probe", args["zone_id"], args["tunnel_probe"], f"{COMMENT}: the tunnel's probe", child)

        after = list(args.get("after", []))
        for spec in args["inventory"]:
            import_id = args["adopt"].get(spec.name)
            options = pulumi.ResourceOptions(
                parent=self,
                depends_on=after,
                import_=import_id,
                ignore_changes=ADOPTION_IGNORED_FIELDS if import_id else None,
            )
            options = cloudflare_options(options, reachable)
            _record(f"{name}-{spec.name}", args["zone_id"], spec, COMMENT, options)

        self.register_outputs({})


def _record(name: str, zone_id: str, spec: DnsRecord, comment: str, opts: pulumi.ResourceOptions) -> None:
    cloudflare.DnsRecord(
        name,
        zone_id=zone_id,
        name=spec.name,
        type=spec.type,
        content=spec.content,
        proxied=spec.proxied,
        ttl=spec.ttl,
        comment=comment,
        opts=opts,
    )
