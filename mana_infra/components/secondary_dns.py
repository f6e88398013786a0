"""A complete copy of the zone at Hetzner, always in its failover form: when Cloudflare is gone, the
only step left is switching the domain's nameservers at the registrar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_hcloud as hcloud

from ..mirror import postponed, rrsets
from ..model import DnsRecord, absolute_name, fqdn, relative_name

# The label on the RRSets copied from Cloudflare: what the mirror holds besides the failover records.
COPIED = ("copied-from", "cloudflare")


def read_zone_rrsets(zone: str) -> list[tuple[str, str]]:
    """What the Hetzner zone holds now, as (relative name, type); nothing before the first run made it."""
    try:
        found = hcloud.get_zone_rrsets(zone=zone)
    except Exception as error:  # the invoke's error: a zone that does not exist yet is no error here
        if "not found" in str(error).lower():
            return []
        raise
    return [(rrset.name, rrset.type) for rrset in found.rrsets]


def read_mirrored_records(zone: str) -> list[DnsRecord]:
    """The records the Hetzner zone holds as copies of Cloudflare's, as they are now."""
    found = hcloud.get_zone_rrsets(zone=zone, with_selector=f"{COPIED[0]}={COPIED[1]}")
    return [
        DnsRecord(absolute_name(rrset.name, zone), rrset.type, record.value, rrset.ttl)
        for rrset in found.rrsets
        for record in rrset.records
    ]


class SecondaryDnsArgs(TypedDict):
    zone: str
    """The zone's name, the same as at Cloudflare."""
    ttl: int
    """TTL of the failover records (the zone's default too)."""
    origin_name: str
    """The VPS's permanent name."""
    origin_ipv4: pulumi.Input[str]
    """The VPS's primary IPv4."""
    origin_ipv6: pulumi.Input[str]
    """The VPS's IPv6 address."""
    inventory_hosts: Sequence[str]
    """Every inventory host: a CNAME to the origin name, or A/AAAA at the apex (no CNAME there in plain DNS)."""
    home: NotRequired[Sequence[DnsRecord]]
    """The home's name and addresses (Plan C); with ``direct``, the inventory points at it instead."""
    direct: NotRequired[bool]
    """The stack is cut over by a direct way: the inventory's CNAMEs (and the apex's addresses) are the
    home's; back on the tunnel they are the VPS's again, ready for the VPS's emergency."""
    extra: Sequence[DnsRecord]
    """The zone's other records, mirrored from Cloudflare (one RRSet per name and type)."""
    labels: Mapping[str, str]
    """Hetzner labels."""
    protect: bool
    """Guard the zone against deletion."""
    present: Sequence[tuple[str, str]]
    """The RRSets (relative name, type) the zone holds now: a CNAME that cannot stand beside one this run
    removes waits for the next run (mirror.postponed)."""


class SecondaryDns(pulumi.ComponentResource):
    """The Hetzner zone and its RRSets."""

    nameservers: pulumi.Output[list[str]]
    inventory_urns: list[pulumi.Output[str]]
    """The inventory hosts' RRSets (their CNAMEs, the apex's A/AAAA): what the emergency's direct way
    targets, one `--target` each (Pulumi's `--target-dependents` trips over the default providers)."""
    postponed: list[tuple[str, str]]
    """RRSets left for the next `pulumi up` (see SecondaryDnsArgs.present)."""

    def __init__(self, name: str, args: SecondaryDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:SecondaryDns", name, None, opts)
        zone_name, ttl = args["zone"], args["ttl"]
        zone = hcloud.Zone(
            f"{name}-zone",
            name=zone_name,
            mode="primary",
            ttl=ttl,
            labels=dict(args["labels"]),
            delete_protection=args["protect"],
            opts=pulumi.ResourceOptions(parent=self, protect=args["protect"]),
        )
        child = pulumi.ResourceOptions(parent=self)
        wanted: list[tuple[str, str, Sequence[pulumi.Input[str]], int, bool]] = []
        wanted.append((relative_name(args["origin_name"], zone_name), "A", [args["origin_ipv4"]], ttl, False))
        wanted.append((relative_name(args["origin_name"], zone_name), "AAAA", [args["origin_ipv6"]], ttl, False))
        home = list(args.get("home", []))
        wanted.extend((relative_name(r.name, zone_name), r.type, [r.content], ttl, False) for r in home)
        direct = bool(args.get("direct")) and bool(home)
        target = home[0].name if direct else args["origin_name"]
        if zone_name in args["inventory_hosts"]:
            # No CNAME at the apex in plain DNS: the target's addresses themselves.
            vps: list[tuple[str, pulumi.Input[str]]] = [("A", args["origin_ipv4"]), ("AAAA", args["origin_ipv6"])]
            apex = [(r.type, r.content) for r in home] if direct else vps
            wanted.extend(("@", kind, [value], ttl, False) for kind, value in apex)
        for host in args["inventory_hosts"]:
            if host != zone_name:
                wanted.append((relative_name(host, zone_name), "CNAME", [fqdn(target)], ttl, False))
        for record_name, kind, copied_values, record_ttl in rrsets(args["extra"]):
            wanted.append((relative_name(record_name, zone_name), kind, copied_values, record_ttl, True))

        later = postponed([(n, k) for n, k, *_ in wanted], args["present"])
        self.postponed = sorted(later)
        self.inventory_urns = []
        flipped = {relative_name(host, zone_name) for host in args["inventory_hosts"]}
        for record_name, kind, values, record_ttl, copied in wanted:
            if (record_name, kind) in later:
                continue
            rrset = hcloud.ZoneRrset(
                f"{name}-{'apex' if record_name == '@' else record_name}-{kind.lower()}",
                zone=zone.name,
                name=record_name,
                type=kind,
                records=[hcloud.ZoneRrsetRecordArgs(value=value) for value in values],
                ttl=record_ttl,
                labels={**args["labels"], **dict([COPIED] if copied else [])},
                opts=child,
            )
            if record_name in flipped and not copied:
                self.inventory_urns.append(rrset.urn)
        for record_name, kind in self.postponed:
            pulumi.log.warn(
                f"the Hetzner mirror's {kind} {record_name}.{zone_name} follows on the next `pulumi up`: the zone "
                "still holds a record at that name which this run removes, and a CNAME stands alone at its name",
                self,
            )

        self.nameservers = zone.authoritative_nameservers.apply(lambda servers: list(servers.assigneds or []))
        self.register_outputs({"nameservers": self.nameservers})
