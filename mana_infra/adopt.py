"""Adopting the tunnel's existing CNAMEs, so the first `pulumi up` neither fails on "record already
exists" nor takes a host offline.

Input: the zone's records as Cloudflare's API lists them (`GET /zones/<zone id>/dns_records`, saved to
a file). Output: a report per inventory host and the `pulumi config set` commands that fill
`adoptRecords`; the program then registers those records with Pulumi's `import` option.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, Problem
from .inventory import load_inventory
from .model import Service, tunnel_target
from .project import Project


@dataclass(frozen=True)
class Adoption:
    host: str
    verdict: str  # "adopt", "create" or "conflict"
    detail: str
    import_id: str | None = None


def classify(
    services: Sequence[Service], records: Sequence[dict[str, Any]], zone: str, tunnel_id: str | None
) -> list[Adoption]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_name.setdefault(str(record.get("name", "")).lower().rstrip("."), []).append(record)
    expected_target = tunnel_target(tunnel_id) if tunnel_id else None
    adoptions = []
    for service in services:
        existing = by_name.get(service.host, [])
        cnames = [record for record in existing if record.get("type") == "CNAME"]
        # At the apex Cloudflare flattens the CNAME, so MX, TXT and the like may stand beside it; an
        # address record may not, and below the apex nothing may (RFC 1034).
        others = [
            record
            for record in existing
            if record.get("type") != "CNAME" and (service.host != zone or record.get("type") in ("A", "AAAA"))
        ]
        if others:
            kinds = ", ".join(sorted({str(record.get("type")) for record in others}))
            adoptions.append(
                Adoption(
                    service.host,
                    "conflict",
                    f"has {kinds} record(s): Cloudflare allows no CNAME beside them (error 81053); "
                    "delete them in the dashboard once the tunnel CNAME is planned, or remove the host",
                )
            )
        elif cnames:
            record = cnames[0]
            content = str(record.get("content", "")).lower().rstrip(".")
            if expected_target and content != expected_target:
                adoptions.append(
                    Adoption(
                        service.host,
                        "conflict",
                        f"CNAME points at {content}, not at the tunnel {expected_target}: "
                        "check tunnelId before adopting",
                    )
                )
                continue
            import_id = f"{record['zone_id']}/{record['id']}"
            adoptions.append(Adoption(service.host, "adopt", f"CNAME -> {content}", import_id))
        else:
            adoptions.append(Adoption(service.host, "create", "no record yet: `pulumi up` creates it"))
    return adoptions


def _load_records(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            [
                Problem(
                    str(path),
                    f"cannot read the records: {exc}",
                    "save the API answer of GET /zones/<zone id>/dns_records?per_page=5000 to this file",
                )
            ]
        ) from None
    records = document.get("result") if isinstance(document, dict) else document
    if not isinstance(records, list) or not all(
        isinstance(record, dict) and "zone_id" in record and "id" in record for record in records
    ):
        raise InputError(
            [
                Problem(
                    str(path),
                    "is not a Cloudflare DNS record list (objects with id, zone_id, name, type, content)",
                    "save the API answer of GET /zones/<zone id>/dns_records?per_page=5000 to this file",
                )
            ]
        )
    return records


def adoption_report(project: Project, stack: str, records_file: str, services_file: str | None) -> str:
    config = project.stack_config(stack)
    zone = config.get("zone")
    if not zone:
        raise InputError([Problem(config.file.name, "mana-infra:zone is not set", "pulumi config set zone mana.how")])
    inventory = Path(services_file) if services_file else project.path(config.get("services") or "")
    services = load_inventory(inventory, zone)
    adoptions = classify(services, _load_records(Path(records_file)), zone, config.get("tunnelId"))

    lines = [f"Adoption report for stack {stack} (zone {zone}):"]
    lines += [f"  {a.verdict:8} {a.host}: {a.detail}" for a in adoptions]
    adopt = [a for a in adoptions if a.verdict == "adopt"]
    if adopt:
        lines += [
            "",
            "Run these, then `pulumi up` (it imports the records, changing nothing at Cloudflare but",
            "their comment and TTL later), then `pulumi config rm adoptRecords` and `pulumi up` once more:",
        ]
        lines += [
            f"  pulumi config set --stack {stack} --path 'adoptRecords[\"{a.host}\"]' {a.import_id}" for a in adopt
        ]
    conflicts = [a for a in adoptions if a.verdict == "conflict"]
    if conflicts:
        lines += ["", f"{len(conflicts)} host(s) need a decision before the first `pulumi up` (see 'conflict' above)."]
    return "\n".join(lines)
