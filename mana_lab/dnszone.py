"""Zone files and configuration for the lab's authoritative DNS server (knotd).

The caller hands over the records as the plan would create them at Cloudflare; the lab adds what
Cloudflare keeps implicit (SOA, NS) and answers as Cloudflare does: a proxied record with the edge's
addresses (TTL 300), whatever its target, so visitors reach the lab's stand-in for Cloudflare's edge,
which follows the target. A tiny ``cfargotunnel.com`` zone gives ``<tunnelId>`` the address of the
tunnel's end at the edge, as Cloudflare gives it one that only its edge can reach.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mana_infra.model import DnsRecord, absolute_name, tunnel_target


def render_zone(
    zone: str,
    records: Iterable[DnsRecord],
    serial: int,
    ns_ip: str,
    extra_lookup: Mapping[str, list[DnsRecord]] | None = None,
    proxy_addresses: Sequence[str] = (),
) -> str:
    """A zone file for ``zone``.

    A CNAME at the apex is illegal next to SOA/NS; Cloudflare "flattens" it (answers with the
    target's addresses). The lab does the same from the records it knows (``extra_lookup`` holds the
    other lab zones' records). With ``proxy_addresses`` (the edge's), a proxied record is answered
    with them instead, TTL 300, as Cloudflare's DNS answers every proxied name.
    """
    lines = [
        f"$ORIGIN {zone}.",
        "$TTL 300",
        f"@ 300 IN SOA ns.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 60",
        f"@ 300 IN NS ns.{zone}.",
    ]
    by_name: dict[str, list[DnsRecord]] = {}
    recs = list(records)
    for r in recs:
        by_name.setdefault(r.name, []).append(r)
    if extra_lookup:
        for name, rs in extra_lookup.items():
            by_name.setdefault(name, []).extend(rs)
    if not any(r.name == f"ns.{zone}" for r in recs):
        lines.append(f"ns.{zone}. 300 IN A {ns_ip}")
    proxied_names: set[str] = set()
    for r in recs:
        if r.name == zone and r.type in ("SOA", "NS"):
            continue  # the lab's own SOA/NS are authoritative here
        if r.proxied and proxy_addresses and r.type in ("A", "AAAA", "CNAME"):
            if r.name not in proxied_names:
                proxied_names.add(r.name)
                lines.extend(DnsRecord(r.name, address_type(a), a, PROXIED_TTL).zone_line() for a in proxy_addresses)
            continue
        if r.name == zone and r.type == "CNAME":
            for target in flatten(r.content.rstrip(".").lower(), by_name):
                lines.append(DnsRecord(zone, target.type, target.content, r.ttl).zone_line())
            continue
        lines.append(r.zone_line())
    return "\n".join(lines) + "\n"


PROXIED_TTL = 300  # what Cloudflare's DNS answers for a proxied record, whatever the record's TTL


def address_type(address: str) -> str:
    return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"


def flatten(name: str, by_name: Mapping[str, list[DnsRecord]], depth: int = 0) -> list[DnsRecord]:
    """The A/AAAA records ``name`` leads to (CNAME chains followed, eight deep at most)."""
    if depth > 8:
        return []
    out: list[DnsRecord] = []
    for r in by_name.get(name, []):
        if r.type in ("A", "AAAA"):
            out.append(r)
        elif r.type == "CNAME":
            out.extend(flatten(r.content.rstrip(".").lower(), by_name, depth + 1))
    return out


def rrset_records(rrsets: Iterable[Mapping[str, Any]], zone: str) -> list[DnsRecord]:
    """Hetzner RRSets as the plan's ``hcloud.ZoneRrset`` inputs hold them (name relative, "@" for the
    apex; type; records [{value}] in zone-file form; ttl) as records: one per value."""
    # An RRSet without a TTL takes the zone's; the lab's is 300.
    return [
        DnsRecord(absolute_name(rrset["name"], zone), rrset["type"], record["value"], int(rrset.get("ttl") or 300))
        for rrset in rrsets
        for record in rrset.get("records") or []
    ]


def tunnel_zone_records(tunnel_id: str, address: str) -> list[DnsRecord]:
    return [DnsRecord(tunnel_target(tunnel_id).lower(), address_type(address), address, 300)]


def render_knot_conf(
    workdir: Path, listen_ip: str, zones: Iterable[str], updates: Mapping[str, Sequence[str]] | None = None
) -> str:
    """knotd configuration: zone files are the source of truth, never written back, no journal.

    With ``zonefile-load: whole`` and no journal, ``knotc zone-reload`` simply re-reads the file.
    updates: zone -> addresses allowed to change it by RFC 2136 dynamic update (unsigned; the lab's
    ACME client writes its DNS-01 TXT records that way). Updates live in memory: a reload drops them.
    """
    updates = updates or {}
    acl_lines = "".join(
        f"  - id: update-{index}\n    address: [{', '.join(addresses)}]\n    action: update\n"
        for index, (_zone, addresses) in enumerate(sorted(updates.items()))
    )
    acl_ids = {zone: f"update-{index}" for index, zone in enumerate(sorted(updates))}
    zone_lines = "\n".join(f"  - domain: {z}" + (f"\n    acl: {acl_ids[z]}" if z in acl_ids else "") for z in zones)
    return f"""server:
    listen: {listen_ip}@53
    rundir: {workdir}
log:
  - target: stderr
    any: info
database:
    storage: {workdir}
control:
    listen: {workdir}/knot.sock
{"acl:" + chr(10) + acl_lines if acl_lines else ""}template:
  - id: default
    storage: {workdir}
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
{zone_lines}
"""
