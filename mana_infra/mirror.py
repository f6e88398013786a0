"""The secondary zone at Hetzner: the Cloudflare zone's records, always in their failover form.

Pure functions: Cloudflare's records in, the mirror's records and a report of what cannot be mirrored
out. The extra records (mail, verifications, other hosts) are read from the Cloudflare zone at
`pulumi up` time rather than listed in config: the mirror must be complete on the day Cloudflare is
gone, and a list in config would go stale the first time someone adds a DKIM key in the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import DnsRecord, fqdn
from .records import tunnel_probe_host

# The rehearsal stack's records say so in their comment (components/rehearsal.py).
REHEARSAL_COMMENT_PREFIX = "managed by mana-infra (Pulumi): failover rehearsal"
# Record types Hetzner's DNS takes in an RRSet (SOA and apex NS are Hetzner's own).
HETZNER_TYPES = frozenset(
    {"A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SRV", "SVCB", "TLSA", "TXT"}
)
# What Cloudflare's "automatic" TTL (1) serves as, for a zone outside Cloudflare.
AUTOMATIC_TTL_SECONDS = 300


@dataclass(frozen=True)
class Unmirrored:
    """A Cloudflare record the mirror leaves out, and why: reported, never dropped silently."""

    name: str
    type: str
    content: str
    reason: str


def cloudflare_record(record: Mapping[str, Any]) -> DnsRecord:
    """A record as Cloudflare's API (and the provider's `get_dns_records`) lists it. CAA and SRV
    carry their fields in `data`: they become the zone-file form; Cloudflare's automatic TTL counts
    as what it serves, 300 s."""
    kind, content, data = str(record["type"]).upper(), str(record.get("content") or ""), record.get("data") or {}
    priority = int(record.get("priority") or 0)
    if kind == "CAA" and data.get("tag"):
        content = f'{int(data.get("flags") or 0)} {data["tag"]} "{data.get("value", "")}"'
    elif kind == "SRV" and data.get("target"):
        content = f"{priority} {int(data['weight'])} {int(data['port'])} {fqdn(str(data['target']))}"
    elif kind == "SRV":
        content = f"{priority} {content}"
    ttl = int(record.get("ttl") or 1)
    return DnsRecord(
        name=str(record["name"]).lower().rstrip("."),
        type=kind,
        content=content,
        ttl=AUTOMATIC_TTL_SECONDS if ttl == 1 else ttl,
        proxied=bool(record.get("proxied")),
        priority=priority if kind == "MX" else None,
    )


def mirror_extra_records(
    records: Sequence[Mapping[str, Any]],
    zone: str,
    inventory_hosts: Sequence[str],
    origin_name: str,
    home_name: str | None = None,
) -> tuple[list[DnsRecord], list[Unmirrored]]:
    """Every Cloudflare record that the failover records do not already cover, for the mirror.

    The inventory hosts, the origin name and the home's (Plan C) get their failover form elsewhere (a
    CNAME, or A/AAAA at the apex and at the two names); beside the apex's A/AAAA other types (MX, TXT, CAA)
    are fine, beside a CNAME nothing is.
    """
    addressed = {origin_name.lower()} | ({home_name.lower()} if home_name else set())
    managed = {host.lower() for host in inventory_hosts} | addressed
    # Names that become CNAMEs; the apex, the origin name and the home's get A/AAAA instead.
    cname_names = managed - {zone} - addressed
    mirrored: list[DnsRecord] = []
    left_out: list[Unmirrored] = []
    for raw, record in zip(records, map(cloudflare_record, records), strict=True):
        name, kind, content = record.name, record.type, record.content
        if str(raw.get("comment") or "").startswith(REHEARSAL_COMMENT_PREFIX):
            continue  # a rehearsal's test record comes and goes with its stack, never in an emergency
        if name == tunnel_probe_host(zone):
            continue  # the tunnel's probe means something only at Cloudflare's edge
        if name in managed and kind in ("A", "AAAA", "CNAME"):
            continue  # the failover records for this name replace it
        if name in cname_names:
            left_out.append(
                Unmirrored(name, kind, content, "stands beside a failover CNAME, which allows nothing else")
            )
            continue
        if name == zone and kind == "NS":
            continue  # Hetzner serves its own nameservers at the apex
        if record.proxied:
            left_out.append(
                Unmirrored(
                    name,
                    kind,
                    content,
                    "proxied at Cloudflare: DNS-only it would publish the origin's address; "
                    "add the host to services.yaml or decide by hand",
                )
            )
            continue
        if kind not in HETZNER_TYPES:
            left_out.append(Unmirrored(name, kind, content, f"Hetzner DNS does not take {kind} records"))
            continue
        mirrored.append(record)
    return sorted(mirrored, key=lambda r: (r.name, r.type, r.data())), left_out


def rrsets(records: Iterable[DnsRecord]) -> list[tuple[str, str, tuple[str, ...], int]]:
    """Records grouped as Hetzner keeps them: one RRSet per name and type, its values in zone-file
    form, its TTL the lowest of its records'. Sorted by name and type."""
    grouped: dict[tuple[str, str], list[DnsRecord]] = {}
    for record in records:
        grouped.setdefault((record.name, record.type), []).append(record)
    return [
        (name, kind, tuple(sorted(r.data() for r in group)), min(r.ttl for r in group))
        for (name, kind), group in sorted(grouped.items())
    ]


def postponed(wanted: Iterable[tuple[str, str]], present: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The RRSets (name, type) that cannot be created in this run: a CNAME where the zone still holds
    another type that this run removes, or another type where it still holds such a CNAME. Pulumi creates
    before it deletes, and a CNAME stands alone at its name (RFC 1034 3.6.2; the Hetzner stand-in keeps
    the rule): created now, the mirror would refuse it at every run. Left out, the removal goes through
    and the next run creates it."""
    wanted_set, present_set = set(wanted), set(present)
    leaving = present_set - wanted_set
    return {
        (name, kind)
        for name, kind in wanted_set - present_set
        if any(gone == name and (kind == "CNAME") != (other == "CNAME") for gone, other in leaving)
    }
