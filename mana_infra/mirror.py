"""The secondary zone at Hetzner: the Cloudflare zone's records, always in their failover form.

Pure functions: Cloudflare's records in, Hetzner RRSets and a report of what cannot be mirrored out.
The extra records (mail, verifications, other hosts) are read from the Cloudflare zone at `pulumi up`
time rather than listed in config: the mirror must be complete on the day Cloudflare is gone, and a
list in config would go stale the first time someone adds a DKIM key in the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Record types Hetzner's DNS takes in an RRSet (SOA and apex NS are Hetzner's own).
HETZNER_TYPES = frozenset(
    {"A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SRV", "SVCB", "TLSA", "TXT"}
)
# What Cloudflare's "automatic" TTL (1) serves as, for a zone outside Cloudflare.
AUTOMATIC_TTL_SECONDS = 300
TXT_CHUNK = 255


@dataclass(frozen=True)
class RRSet:
    """One Hetzner RRSet: every record of one name and type."""

    name: str  # relative to the zone, "@" for the apex
    type: str
    values: tuple[str, ...]
    ttl: int


@dataclass(frozen=True)
class Unmirrored:
    """A Cloudflare record the mirror leaves out, and why: reported, never dropped silently."""

    name: str
    type: str
    content: str
    reason: str


def relative_name(fqdn: str, zone: str) -> str:
    name = fqdn.lower().rstrip(".")
    return "@" if name == zone else name.removesuffix("." + zone)


def absolute(name: str) -> str:
    return name.rstrip(".") + "."


def txt_value(content: str) -> str:
    """TXT data as zone-file strings: already quoted stays as it is, else quoted in 255-byte pieces."""
    text = content.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text
    pieces = [text[start : start + TXT_CHUNK] for start in range(0, len(text), TXT_CHUNK)] or [""]
    return " ".join('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"' for piece in pieces)


def record_value(record: Mapping[str, Any]) -> str:
    """A Cloudflare record's data in zone-file form, as Hetzner takes it."""
    kind, content, data = record["type"], str(record.get("content") or ""), record.get("data") or {}
    if kind in ("CNAME", "NS", "PTR"):
        return absolute(content)
    if kind == "MX":
        return f"{int(record.get('priority') or 0)} {absolute(content)}"
    if kind == "TXT":
        return txt_value(content)
    if kind == "CAA" and data.get("tag"):
        return f'{int(data.get("flags") or 0)} {data["tag"]} "{data.get("value", "")}"'
    if kind == "SRV" and data.get("target"):
        return f"{int(data.get('priority') or 0)} {int(data['weight'])} {int(data['port'])} {absolute(data['target'])}"
    if kind == "SRV":
        weight, port, target = content.split()
        return f"{int(record.get('priority') or 0)} {weight} {port} {absolute(target)}"
    return content


def mirror_extra_records(
    records: Sequence[Mapping[str, Any]], zone: str, inventory_hosts: Sequence[str], origin_name: str
) -> tuple[list[RRSet], list[Unmirrored]]:
    """Every Cloudflare record that the failover records do not already cover, as Hetzner RRSets.

    The inventory hosts and the origin name get their failover form elsewhere (a CNAME, or A/AAAA at
    the apex); beside the apex's A/AAAA other types (MX, TXT, CAA) are fine, beside a CNAME nothing is.
    """
    managed = {host.lower() for host in inventory_hosts} | {origin_name.lower()}
    # Names that become CNAMEs; the apex and the origin name get A/AAAA instead.
    cname_names = managed - {zone, origin_name.lower()}
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    left_out: list[Unmirrored] = []
    for record in records:
        name, kind = str(record["name"]).lower().rstrip("."), str(record["type"]).upper()
        content = str(record.get("content") or "")
        if name in managed and kind in ("A", "AAAA", "CNAME"):
            continue  # the failover records for this name replace it
        if name in cname_names:
            left_out.append(
                Unmirrored(name, kind, content, "stands beside a failover CNAME, which allows nothing else")
            )
            continue
        if name == zone and kind == "NS":
            continue  # Hetzner serves its own nameservers at the apex
        if record.get("proxied"):
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
        grouped.setdefault((name, kind), []).append(record)
    rrsets = [
        RRSet(
            relative_name(name, zone),
            kind,
            tuple(sorted(record_value(record) for record in group)),
            min(_ttl(record) for record in group),
        )
        for (name, kind), group in sorted(grouped.items())
    ]
    return rrsets, left_out


def _ttl(record: Mapping[str, Any]) -> int:
    ttl = int(record.get("ttl") or 1)
    return AUTOMATIC_TTL_SECONDS if ttl == 1 else ttl
