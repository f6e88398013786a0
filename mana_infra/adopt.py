"""Adopting the records that exist already, so the first `pulumi up` neither fails on "record already
exists" nor takes a host offline.

Input: the zone's records as Cloudflare's API lists them (`GET /zones/<zone id>/dns_records`), every
page of the answer saved to a file. The answers no longer name the zone on each record (no
`zone_id`), so the zone id comes from `--zone-id`, else the stack's `cloudflareZoneId`, else an older
answer's own `zone_id`. The set of pages must be complete: a host whose record is on a missing page
would look like one to create, and that create is the "record already exists" failure.

Output: per inventory host `adopt`, `create` or `conflict`, what the first `pulumi up` and the run
after it change (content, proxied, TTL, comment: the first run imports with ADOPTION_IGNORED_FIELDS
ignored, the run after sets them), a conflict at the origin name (the program's A/AAAA records), and
the `pulumi config set` commands that fill `adoptRecords`. Report.exit_code: 0 when the first
`pulumi up` is safe, 1 when conflicts need a decision first; bad input raises InputError (exit 2).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .components.dns import ADOPTION_IGNORED_FIELDS, COMMENT
from .config import PLAIN_KEYS, record_settings
from .errors import ExitCode, InputError, Problem
from .files import read_text
from .inventory import load_inventory
from .model import (
    AUTOMATIC_TTL,
    CLOUDFLARE_API,
    TUNNEL_DOMAIN,
    TUNNEL_UUID,
    DnsRecord,
    Service,
    in_zone,
)
from .project import Project, StackConfig
from .records import tunnel_probe_host
from .terminal import count

WIDTH = 80
INDENT = " " * 10  # under "conflict  "
_ID = re.compile(r"^[0-9a-f]{32}$")
# The record types Cloudflare's DNS API lists (developers.cloudflare.com, DNS record types); a zone's
# own `type` (full, partial, secondary) is none of them.
DNS_TYPES = frozenset(
    {"A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS", "OPENPGPKEY",
     "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI"}
)  # fmt: skip
ZONE_TYPES = frozenset({"full", "partial", "secondary", "internal"})
_TUNNEL_TARGET = re.compile(rf"^([0-9a-f-]{{36}})\.{re.escape(TUNNEL_DOMAIN)}$")
# Cloudflare's error codes for a token that is missing, malformed or without access, and for a zone id
# that names no zone.
_TOKEN_ERRORS = frozenset({6003, 6111, 9106, 9109, 10000, 10001})
_ROUTE_ERRORS = frozenset({7000, 7003})
_FIELDS = ("content", "proxied", "ttl", "comment")
_FIELD_NAMES = {"content": "content", "proxied": "proxied", "ttl": "TTL", "comment": "comment"}
_ADDRESS_TYPES = ("A", "AAAA")


def curl(url: str, output: str | None = None) -> str:
    """The command that saves an API answer as it is (no -f: an error answer is saved and shown too)."""
    command = f'curl -sS -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" "{url}"'
    return f"{command} > {output}" if output else command


def records_url(zone_id: str | None, per_page: int, page: int | None = None) -> str:
    query = f"page={page}&per_page={per_page}" if page is not None else f"per_page={per_page}"
    return f"{CLOUDFLARE_API}/zones/{zone_id or '<zone id>'}/dns_records?{query}"


def zone_lookup(zone: str) -> str:
    return curl(f"{CLOUDFLARE_API}/zones?name={zone}")


# ------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Page:
    """One saved answer: a page of the zone's record list."""

    file: str
    records: tuple[dict[str, Any], ...]
    page: int
    per_page: int
    total_count: int
    total_pages: int


def read_page(file: str, zone: str) -> Page:
    """One file: UTF-8, JSON, Cloudflare's envelope with success true and a list of DNS records."""
    save = f"save Cloudflare's answer as it is: {curl(records_url(None, 5000), Path(file).name)}"

    def refused(message: str) -> InputError:
        return InputError([Problem(file, message, save)])

    text = read_text(file, "the records", save)
    if not text.strip():
        raise refused("is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (an HTML page: the request did not reach the API)" if text.lstrip().startswith("<") else ""
        raise refused(f"is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}") from None
    if isinstance(document, list):
        raise refused(
            "is a bare list, not Cloudflare's whole answer: without its result_info adopt cannot tell whether "
            "pages are missing"
        )
    if not isinstance(document, dict) or "success" not in document:
        raise refused("is not a Cloudflare API answer (an object with success and result)")
    if document["success"] is not True:
        raise InputError([_error_answer(file, document.get("errors"), zone)])
    result = document.get("result")
    if not isinstance(result, list):
        raise refused(f"is not a DNS record list: its result is {json.dumps(result)[:40]}, not a list")
    zones = [r for r in result if isinstance(r, dict) and ("name_servers" in r or r.get("type") in ZONE_TYPES)]
    if zones:
        zone_id = str(zones[0].get("id") or "")
        raise InputError(
            [
                Problem(
                    file,
                    f"is Cloudflare's answer about zones (GET /zones), not a zone's DNS records: it holds the zone "
                    f"{zones[0].get('name')} (id {zone_id or 'unknown'}), and no record",
                    f"save the records of that zone: {curl(records_url(zone_id or None, 5000), Path(file).name)}",
                )
            ]
        )
    for index, record in enumerate(result):
        if reason := _record_problem(record):
            raise refused(f"is not a Cloudflare DNS record list: result[{index}] {reason}")
    info = document.get("result_info")
    info = info if isinstance(info, dict) else {}
    page, per_page, total_count = _number(info, "page", 1), _number(info, "per_page", 1), _number(info, "total_count")
    if page is None or per_page is None or total_count is None:
        raise refused(
            "has no result_info with page, per_page and total_count: save Cloudflare's whole answer, not only "
            "its result"
        )
    if info.get("count", len(result)) != len(result):
        raise refused(
            f"is cut short: result_info.count is {info['count']}, but the result holds {count(len(result), 'record')}"
        )
    total_pages = _number(info, "total_pages")
    if total_pages is None:  # older answers: computed as Cloudflare does
        total_pages = math.ceil(total_count / per_page)
    return Page(file, tuple(result), page, per_page, total_count, max(total_pages, 1))


def _number(info: Mapping[str, Any], key: str, least: int = 0) -> int | None:
    value = info.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= least else None


def _error_answer(file: str, errors: Any, zone: str) -> Problem:
    """Cloudflare's own errors, codes and messages, with what to do about the usual ones."""
    described: list[str] = []
    codes: set[int] = set()
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        code = error.get("code")
        if isinstance(code, int):
            codes.add(code)
        text = f"{code} {error.get('message', '')}".strip()
        chain = error.get("error_chain")
        if isinstance(chain, list) and chain:
            inner = "; ".join(
                f"{link.get('code')} {link.get('message', '')}" for link in chain if isinstance(link, dict)
            )
            text += f" ({inner})"
            codes.update(link["code"] for link in chain if isinstance(link, dict) and isinstance(link.get("code"), int))
        described.append(text)
    message = "Cloudflare answered with an error, not with records: " + ("; ".join(described) or "no error given")
    if codes & _TOKEN_ERRORS:
        fix = (
            'check the token: this must answer "status": "active"\n'
            f"      {curl(CLOUDFLARE_API + '/user/tokens/verify')}\n"
            f"      and the token needs Zone:DNS:Read (or Edit) on {zone}; then save the records again"
        )
    elif codes & _ROUTE_ERRORS:
        fix = f"the zone id in the URL is not one of this token's zones: the id of {zone} is result[0].id of"
        fix += f"\n      {zone_lookup(zone)}"
    else:
        fix = "fix what Cloudflare names, then save the records again"
    return Problem(file, message, fix)


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "is not an object"
    for key in ("id", "name", "type", "content"):
        if not isinstance(record.get(key), str) or not record[key]:
            return f"has no {key}"
    if not _ID.match(record["id"]):
        return f"has the id {record['id']!r}, not 32 hex digits"
    if record["type"] not in DNS_TYPES:
        return f"has the type {record['type']!r}, which is no DNS record type"
    return None


def _name(record: Mapping[str, Any]) -> str:
    return str(record.get("name", "")).lower().rstrip(".")


def _content(record: Mapping[str, Any]) -> str:
    content = str(record.get("content") or "")
    return content.lower().rstrip(".") if record.get("type") in ("CNAME", "NS", "MX", "PTR") else content


# ------------------------------------------------------------------------------ the set of pages


def check_pages(pages: Sequence[Page], zone_id: str | None, rerun: str) -> list[Problem]:
    """The files must be every page of one listing, each once."""
    files = ", ".join(page.file for page in pages)
    problems: list[Problem] = []
    per_pages = sorted({page.per_page for page in pages})
    per_page = pages[0].per_page
    totals = sorted({page.total_count for page in pages})
    total_pages = max(page.total_pages for page in pages)

    def save_all() -> str:
        lines = [
            curl(records_url(zone_id, per_page, number), f"records-{number}.json")
            for number in range(1, total_pages + 1)
        ]
        names = " ".join(f"records-{number}.json" for number in range(1, total_pages + 1))
        return (
            "save every page again, at one moment:\n"
            + "\n".join(f"      {line}" for line in lines)
            + (f"\n      {rerun} --records {names}")
        )

    if len(per_pages) > 1:
        listed = ", ".join(f"{page.per_page} ({page.file})" for page in pages)
        problems.append(Problem(files, f"the pages come from different listings: per_page {listed}", save_all()))
        return problems
    if len(totals) > 1:
        listed = ", ".join(f"{page.total_count} ({page.file})" for page in pages)
        problems.append(Problem(files, f"the zone changed between the pages: total_count {listed}", save_all()))
        return problems
    by_number: dict[int, list[Page]] = {}
    for page in pages:
        by_number.setdefault(page.page, []).append(page)
    for number, same in sorted(by_number.items()):
        if len(same) > 1:
            problems.append(
                Problem(
                    files,
                    f"page {number} is given {len(same)} times ({', '.join(page.file for page in same)})",
                    "pass each page once",
                )
            )
        if number > total_pages:
            problems.append(
                Problem(same[0].file, f"is page {number}, but the listing has {count(total_pages, 'page')}", save_all())
            )
    missing = [number for number in range(1, total_pages + 1) if number not in by_number]
    if missing:
        held = sum(len(page.records) for page in pages)
        numbers = ", ".join(str(number) for number in missing)
        noun = "page" if len(missing) == 1 else "pages"
        verb = "is" if len(missing) == 1 else "are"
        commands = [curl(records_url(zone_id, per_page, number), f"records-{number}.json") for number in missing]
        given = " ".join(page.file for page in pages)
        names = " ".join(f"records-{number}.json" for number in missing)
        problems.append(
            Problem(
                files,
                f"{noun} {numbers} of {total_pages} {verb} missing (only {held} of the {pages[0].total_count} "
                "records are here): a host whose record is there would look like one to create, and the first "
                "`pulumi up` would fail on it",
                f"save the missing {noun}:\n"
                + "\n".join(f"      {command}" for command in commands)
                + f"\n      then run adopt with every page: {rerun} --records {given} {names}",
            )
        )
    if problems:
        return problems
    ids = [record["id"] for page in pages for record in page.records]
    if len(ids) != pages[0].total_count or len(set(ids)) != len(ids):
        problems.append(
            Problem(
                files,
                f"the pages hold {count(len(set(ids)), 'record')}, but total_count is {pages[0].total_count}: "
                "the zone changed while they were saved",
                save_all(),
            )
        )
    return problems


def check_zone(pages: Sequence[Page], zone: str) -> list[Problem]:
    """Every name inside the stack's zone: another zone's answer would make every host a `create`."""
    problems = []
    for page in pages:
        outside = sorted({_name(record) for record in page.records if not in_zone(_name(record), zone)})
        if not outside:
            continue
        shown = ", ".join(outside[:3]) + (", ..." if len(outside) > 3 else "")
        strays = [record for record in page.records if not in_zone(_name(record), zone)]
        if len(strays) == len(page.records):
            message = f"holds another zone's records: none of its {count(len(strays), 'record')} is in {zone} ({shown})"
        else:
            message = (
                f"{len(strays)} of its {len(page.records)} records are outside {zone} ({shown}): "
                "answers of different zones are mixed"
            )
        problems.append(
            Problem(
                page.file,
                message,
                f"save the records of {zone}: its zone id is result[0].id of\n      {zone_lookup(zone)}",
            )
        )
    return problems


def resolve_zone_id(
    option: str | None, config: StackConfig, pages: Sequence[Page], zone: str
) -> tuple[str | None, str, list[Problem]]:
    """--zone-id, else the stack's cloudflareZoneId, else the zone_id older answers carry on each record."""
    stack = config.stack
    carried: dict[str, str] = {}
    for page in pages:
        for record in page.records:
            if isinstance(record.get("zone_id"), str):
                carried.setdefault(record["zone_id"].lower(), page.file)
    find = f"the id of {zone} is result[0].id of\n      {zone_lookup(zone)}"
    problems: list[Problem] = []
    chosen, source = None, ""
    if option:
        chosen, source = option.strip().lower(), "--zone-id"
        if not _ID.match(chosen):
            problems.append(Problem("--zone-id", f"{option!r} is not a Cloudflare zone id (32 hex digits)", find))
    elif configured := config.get("cloudflareZoneId"):
        chosen, source = configured.strip().lower(), "cloudflareZoneId"
        if not _ID.match(chosen):
            problems.append(
                Problem(
                    f"{config.file.name}: mana-infra:cloudflareZoneId",
                    f"{configured!r} is not a Cloudflare zone id (32 hex digits)",
                    f"pulumi config set --stack {stack} cloudflareZoneId <id>; {find}",
                )
            )
    if len(carried) > 1:
        listed = ", ".join(f"{zone_id} ({file})" for zone_id, file in carried.items())
        problems.append(Problem("--records", f"the records name different zones: zone_id {listed}", find))
    elif carried and chosen and chosen not in carried:
        [(their_id, file)] = carried.items()
        problems.append(
            Problem(
                file,
                f"its records name the zone {their_id}, not {chosen} ({source}): another zone's records, "
                "or the wrong id",
                find,
            )
        )
    elif carried and not chosen:
        chosen, source = next(iter(carried)), "the records' zone_id"
    if not chosen:
        problems.append(
            Problem(
                "zone id",
                f"unknown: neither --zone-id nor the stack's cloudflareZoneId ({config.file.name}) gives it, and "
                "Cloudflare's answers no longer carry zone_id on their records",
                f"give --zone-id <id>, or keep it in the stack: pulumi config set --stack {stack} "
                f"cloudflareZoneId <id>\n      {find}",
            )
        )
    return chosen, source, problems


# ----------------------------------------------------------------------------------- classifying


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Verdict:
    """What the first `pulumi up` does about one name: adopt, create, or a conflict to decide first."""

    host: str
    kind: Literal["adopt", "create", "conflict"]
    what: str = ""
    todo: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    import_id: str | None = None
    first: tuple[Change, ...] = ()
    then: tuple[Change, ...] = ()
    label: str = ""


def adoption_lines(stack: str, adopted: Sequence[tuple[str, str]]) -> list[str]:
    """One `pulumi config set-all` that fills adoptRecords for every host, as lines to paste: each ends
    in a backslash but the last, so the shell reads them as the one command."""
    parts = [f"pulumi config set-all --stack {stack} --path"] + [
        f"  --plaintext 'adoptRecords[\"{host}\"]={import_id}'" for host, import_id in adopted
    ]
    return [f"  {part} \\" for part in parts[:-1]] + [f"  {parts[-1]}"]


def config_command(stack: str, host: str, import_id: str) -> str:
    return f"pulumi config set --stack {stack} --path 'adoptRecords[\"{host}\"]' {import_id}"


def _shown(field: str, value: Any) -> str:
    if field == "proxied":
        return "proxied" if value else "DNS-only"
    if field == "ttl":
        return "auto" if value == AUTOMATIC_TTL else str(value)
    if field == "comment":
        return json.dumps(value) if value else "none"
    return str(value)


def changes(record: Mapping[str, Any], wanted: DnsRecord) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """What the first `pulumi up` (importing, ADOPTION_IGNORED_FIELDS ignored) and the run after it
    (adoptRecords removed) change on an existing record."""
    now: dict[str, Any] = {
        "content": _content(record),
        "proxied": bool(record.get("proxied")),
        "ttl": record.get("ttl") if isinstance(record.get("ttl"), int) else AUTOMATIC_TTL,
        "comment": record.get("comment") or None,
    }
    target: dict[str, Any] = {
        "content": wanted.content,
        "proxied": wanted.proxied,
        "ttl": wanted.ttl,
        "comment": COMMENT,
    }
    ignored = set(ADOPTION_IGNORED_FIELDS)
    state = dict(now)
    first: list[Change] = []
    for field in _FIELDS:
        if field not in ignored and now[field] != target[field]:
            first.append(Change(_FIELD_NAMES[field], _shown(field, now[field]), _shown(field, target[field])))
            state[field] = target[field]
    if state["proxied"] and not now["proxied"] and state["ttl"] != AUTOMATIC_TTL:
        # Cloudflare gives every proxied record the automatic TTL, whatever the request says.
        first.append(Change("TTL", _shown("ttl", now["ttl"]), "auto (as every proxied record)"))
        state["ttl"] = AUTOMATIC_TTL
    then = [
        Change(_FIELD_NAMES[field], _shown(field, state[field]), _shown(field, target[field]))
        for field in _FIELDS
        if field in ignored and state[field] != target[field]
    ]
    return tuple(first), tuple(then)


def _describe(records: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{record.get('type')} {_content(record)}" + (" (proxied)" if record.get("proxied") else "")
        for record in records
    )


@dataclass(frozen=True)
class Target:
    """What the first `pulumi up` of a stack wants at each inventory host, and where to say it."""

    zone: str
    zone_id: str
    wanted: Mapping[str, DnsRecord]  # host -> the record the plan writes
    label: str  # "the tunnel", or the origin name: where the records point
    stack: str
    services_file: str = "services.yaml"


def classify(services: Sequence[Service], records: Sequence[Mapping[str, Any]], target: Target) -> list[Verdict]:
    """One verdict per inventory host, in the inventory's order."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_name.setdefault(_name(record), []).append(record)
    return [_verdict(service.host, by_name.get(service.host, []), target) for service in services]


def _verdict(host: str, existing: Sequence[Mapping[str, Any]], target: Target) -> Verdict:
    want = target.wanted[host]
    cnames = [record for record in existing if record.get("type") == "CNAME"]
    # At the apex Cloudflare flattens the CNAME, so MX, TXT and the like may stand beside it; an
    # address record may not, and below the apex nothing may (RFC 1034).
    others = [
        record
        for record in existing
        if record.get("type") != "CNAME" and (host != target.zone or record.get("type") in _ADDRESS_TYPES)
    ]
    if others:
        them = "it" if len(others) == 1 else "them"
        return Verdict(
            host,
            "conflict",
            what=f"has {_describe(others)}: Cloudflare allows no CNAME beside {them} (error 81053), so "
            "the first `pulumi up` fails on this host",
            todo=(
                f"to serve it through {target.label}: delete {them} in the dashboard right before the "
                "first `pulumi up` (the host has no address until the CNAME is created); to serve it "
                f"elsewhere: remove it from {target.services_file}",
            ),
        )
    if not cnames:
        return Verdict(
            host,
            "create",
            what=f"no record yet: the first `pulumi up` creates the CNAME -> {want.content} "
            f"({_shown('proxied', want.proxied)}, TTL {_shown('ttl', want.ttl)})",
        )
    record = cnames[0]
    import_id = f"{target.zone_id}/{record['id']}"
    first, then = changes(record, want)
    if _content(record) == want.content:
        return Verdict(host, "adopt", import_id=import_id, first=first, then=then)
    return _moved(host, record, want, target, import_id)


def _moved(host: str, record: Mapping[str, Any], want: DnsRecord, target: Target, import_id: str) -> Verdict:
    """A CNAME that points elsewhere: the first `pulumi up` would move it, and visitors see that."""
    content = _content(record)
    first, then = changes(record, want)
    how = f"{_shown('proxied', record.get('proxied'))}, TTL {_shown('ttl', record.get('ttl'))}"
    what = (
        f"CNAME to {content} ({how}), not to {target.label}: the first `pulumi up` moves it there, "
        "and visitors see the change"
    )
    if other_tunnel := _TUNNEL_TARGET.match(content):
        what += f"; {other_tunnel.group(1)} is another tunnel: is tunnelId right? (`cloudflared tunnel list`)"
    return Verdict(
        host,
        "conflict",
        what=what,
        todo=(
            f"if {target.label} serves {host} and the move is wanted, make it at a moment you choose "
            f"(point the record at {want.content}, {_shown('proxied', want.proxied)}), save the records "
            "again and run adopt again; or accept the move with the first `pulumi up`:",
        ),
        commands=(config_command(target.stack, host, import_id),),
        import_id=import_id,
        first=first,
        then=then,
    )


def origin_verdict(
    records: Sequence[Mapping[str, Any]], origin_name: str, zone: str, stack: str, taken: set[str]
) -> Verdict:
    """The program creates A and AAAA at the origin name: what stands there already is in the way."""
    here = [record for record in records if _name(record) == origin_name]
    cnames = [record for record in here if record.get("type") == "CNAME"]
    addresses = [record for record in here if record.get("type") in _ADDRESS_TYPES]
    label = f"{origin_name} (originName, the VPS's own name)"
    if not cnames and not addresses:
        return Verdict(origin_name, "create", what="free: the first `pulumi up` creates A and AAAA", label=label)
    free = next(
        (name for name in (f"standby.{zone}", f"vps2.{zone}", f"origin.{zone}") if name not in taken),
        f"<a free name>.{zone}",
    )
    move = f"pulumi config set --stack {stack} originName {free}"
    if cnames:
        what = (
            f"has a CNAME to {_content(cnames[0])}: the program creates A and AAAA {origin_name} for the VPS, "
            "and Cloudflare allows none beside a CNAME (error 81054): the first `pulumi up` fails"
        )
        todo = (
            "if nothing uses the CNAME, delete it in the dashboard before the first `pulumi up`; "
            "or give the VPS a name of its own:"
        )
    else:
        them = "it" if len(addresses) == 1 else "them"
        what = (
            f"has {_describe(addresses)}: the program creates A and AAAA {origin_name} for the new VPS; "
            "Cloudflare refuses an identical record (error 81058) and keeps a different one beside the old, "
            f"so {origin_name} would answer with both addresses"
        )
        todo = (
            f"if nothing uses {them} any more, delete {them} in the dashboard before the first `pulumi up`; "
            "or give the VPS a name of its own:"
        )
    return Verdict(origin_name, "conflict", what=what, todo=(todo,), commands=(move,), label=label)


def probe_verdict(records: Sequence[Mapping[str, Any]], zone: str) -> Verdict:
    """The program keeps its tunnel probe at tunnel-probe.<zone>: any record there is in its way."""
    name = tunnel_probe_host(zone)
    here = [record for record in records if _name(record) == name]
    label = f"{name} (the tunnel probe: a CNAME to the tunnel that no flip moves)"
    if not here:
        return Verdict(name, "create", what="free", label=label)
    what = (
        f"has {_describe(here)}: the program creates its tunnel probe there (proxied, to the tunnel; check and "
        "failback ask it while the records point at the VPS), and Cloudflare takes no record beside a CNAME "
        "nor an identical one: the first `pulumi up` fails"
    )
    todo = "the name is the program's: delete the record in the dashboard before the first `pulumi up`"
    return Verdict(name, "conflict", what=what, todo=(todo,), label=label)


# ---------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    text: str
    exit_code: ExitCode
    verdicts: tuple[Verdict, ...]
    origin: Verdict
    probe: Verdict


def adopt(
    project: Project,
    stack: str,
    records_files: Sequence[str],
    *,
    services_file: str | None = None,
    zone_id: str | None = None,
) -> Report:
    """Read the saved answers, check them, and report what the first `pulumi up` does to each host."""
    config, zone = _standby_stack(project, stack)
    # The stack's own inventory (Pulumi.yaml's default when the stack names none), or --services.
    inventory = Path(services_file) if services_file else project.path(str(config.get("services")))
    services = load_inventory(inventory, zone)
    pages = _read_pages(records_files, zone)
    resolved, source, problems = resolve_zone_id(zone_id, config, pages, zone)
    usable = resolved if not problems else None
    rerun = f"mana-infra adopt --stack {stack}"
    rerun += f" --zone-id {usable}" if usable and zone_id else ""
    problems += check_zone(pages, zone)
    problems += check_pages(pages, usable, rerun)
    if problems or not resolved:
        raise InputError(problems)
    records = [record for page in pages for record in page.records]
    # The stack's values with Pulumi.yaml's defaults, read by the program's own parser.
    settings = record_settings({key: config.get(key) for key in PLAIN_KEYS}, stack, zone, services)
    tunnel_id = _tunnel_id(config, services, records)
    wanted = {record.name: record for record in settings.records(services, tunnel_id)}
    origin_name = settings.origin_name
    target_label = "the tunnel" if settings.mode == "tunnel" else origin_name
    verdicts = classify(services, records, Target(zone, resolved, wanted, target_label, stack, inventory.name))
    taken = {_name(record) for record in records} | {service.host for service in services}
    origin = origin_verdict(records, origin_name, zone, stack, taken)
    probe = probe_verdict(records, zone)
    others = [record for record in records if not _the_programs(record, services, origin_name, zone)]
    header = _header(stack, zone, settings.mode, resolved, source, pages, others)
    text = render(header, verdicts, origin, probe, stack, len(services))
    conflicts = [verdict for verdict in [*verdicts, origin, probe] if verdict.kind == "conflict"]
    return Report(text, ExitCode.NOT_OK if conflicts else ExitCode.OK, tuple(verdicts), origin, probe)


def _standby_stack(project: Project, stack: str) -> tuple[StackConfig, str]:
    """The stack's config and zone: a standby stack's (a rehearsal has nothing to adopt)."""
    config = project.stack_config(stack)
    zone = (config.get("zone") or "").lower().rstrip(".")
    if not zone:
        fix = f"pulumi config set --stack {stack} zone mana.how"
        raise InputError([Problem(config.file.name, "mana-infra:zone is not set", fix)])
    if config.get("role") == "rehearsal":
        raise InputError(
            [
                Problem(
                    config.file.name,
                    f"stack {stack} is a rehearsal stack: its records are new test hostnames, nothing to adopt",
                    "run adopt for the standby stack: mana-infra adopt --stack prod --records ...",
                )
            ]
        )
    return config, zone


def _read_pages(records_files: Sequence[str], zone: str) -> list[Page]:
    """Every saved page; every file's problems at once."""
    problems: list[Problem] = []
    pages: list[Page] = []
    for file in records_files:
        try:
            pages.append(read_page(file, zone))
        except InputError as error:
            problems.extend(error.problems)
    if problems:
        raise InputError(problems)
    return pages


def _the_programs(record: Mapping[str, Any], services: Sequence[Service], origin_name: str, zone: str) -> bool:
    """Whether the record is one the first `pulumi up` adopts, or one that stands in its way."""
    name, kind = _name(record), record.get("type")
    if name == tunnel_probe_host(zone):
        return True
    if name == origin_name:
        return kind in (*_ADDRESS_TYPES, "CNAME")
    if name == zone:
        return kind in (*_ADDRESS_TYPES, "CNAME") and any(service.host == zone for service in services)
    return any(service.host == name for service in services)


def _tunnel_id(config: StackConfig, services: Sequence[Service], records: Sequence[Mapping[str, Any]]) -> str:
    """The stack's tunnel: without its id, adopt cannot tell a tunnel CNAME from another (the records'
    own tunnel is named in the fix)."""
    where = config.file.name
    tunnel_id = (config.get("tunnelId") or "").strip().lower()
    if tunnel_id and TUNNEL_UUID.match(tunnel_id):
        return tunnel_id
    hosts = {service.host for service in services}
    seen: dict[str, int] = {}
    for record in records:
        found = _TUNNEL_TARGET.match(_content(record))
        if record.get("type") == "CNAME" and _name(record) in hosts and found:
            seen[found.group(1)] = seen.get(found.group(1), 0) + 1
    hint = "".join(
        f"\n      the zone's CNAMEs point at the tunnel {tunnel} ({count(number, 'host')})"
        for tunnel, number in sorted(seen.items(), key=lambda item: -item[1])
    )
    message = (
        f"{tunnel_id!r} is not a tunnel UUID"
        if tunnel_id
        else "is not set: adopt compares each CNAME with the tunnel the plan points it at"
    )
    raise InputError(
        [
            Problem(
                f"{where}: mana-infra:tunnelId",
                message,
                f"pulumi config set --stack {config.stack} tunnelId <uuid from `cloudflared tunnel list`>{hint}",
            )
        ]
    )


def _wrap(text: str, indent: str = INDENT, first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _change_lines(title: str, changed: Sequence[Change], nothing: str) -> list[str]:
    if not changed:
        return [f"{INDENT}{title}: {nothing}"]
    lines = [f"{INDENT}{title}:"]
    for change in changed:
        line = f"{INDENT}  {change.field:<8} {change.before} -> {change.after}"
        if len(line) <= WIDTH:
            lines.append(line)
        else:
            lines += [f"{INDENT}  {change.field:<8} {change.before}", f"{INDENT}    -> {change.after}"]
    return lines


def _header(
    stack: str,
    zone: str,
    mode: str,
    zone_id: str,
    source: str,
    pages: Sequence[Page],
    others: Sequence[Mapping[str, Any]],
) -> list[str]:
    total = sum(len(page.records) for page in pages)
    files = ", ".join(Path(page.file).name for page in sorted(pages, key=lambda page: page.page))
    kinds = ", ".join(sorted({str(record.get("type")) for record in others}))
    lines = [f"Adoption report for stack {stack}: zone {zone}, {mode} mode"]
    lines += _wrap(f"zone id {zone_id} (from {source})", "  ")
    lines += _wrap(f"read {count(total, 'record')} in {count(len(pages), 'page')}: {files}", "    ", "  ")
    if others:
        lines += _wrap(
            f"{count(len(others), 'other record')} ({kinds}) are not the program's and stay as they are",
            "    ",
            "  ",
        )
    return lines


def render(
    header: list[str], verdicts: Sequence[Verdict], origin: Verdict, probe: Verdict, stack: str, hosts: int
) -> str:
    lines = [*header]
    conflicts = [verdict for verdict in [origin, probe, *verdicts] if verdict.kind == "conflict"]
    for verdict in conflicts:
        lines.append("")
        lines.append(f"conflict  {verdict.label or verdict.host}")
        lines += _wrap(verdict.what)
        if verdict.first or verdict.then:
            lines += _change_lines("first `pulumi up`", verdict.first, "no change")
            lines += _change_lines("the run after", verdict.then, "no change")
        for todo in verdict.todo:
            lines += _wrap(f"what to do: {todo}")
        lines += [f"{INDENT}  {command}" for command in verdict.commands]
    creates = [verdict for verdict in verdicts if verdict.kind == "create"]
    for what, group in _grouped(creates, lambda verdict: verdict.what):
        lines.append("")
        lines += _hosts_line("create", group)
        lines += _wrap(what)
    adopts = [verdict for verdict in verdicts if verdict.kind == "adopt"]
    for (first, then), group in _grouped(adopts, lambda verdict: (verdict.first, verdict.then)):
        lines.append("")
        lines += _hosts_line("adopt", group)
        lines += _change_lines("first `pulumi up`", first, "imports the record unchanged")
        lines += _change_lines("the run after", then, "no change")

    lines.append("")
    if adopts:
        lines.append(f"Before the first `pulumi up`, run this ({count(len(adopts), 'host')} to adopt):")
        lines += adoption_lines(stack, [(verdict.host, str(verdict.import_id)) for verdict in adopts])
        lines += [
            f"Then `pulumi up --stack {stack}`; the run after:",
            f"  pulumi config rm --stack {stack} adoptRecords && pulumi up --stack {stack}",
        ]
    else:
        lines.append("Nothing to adopt.")
    lines.append("")
    tally = [f"{len(adopts)} to adopt", f"{len(creates)} to create"]
    host_conflicts = len(conflicts) - (origin.kind == "conflict") - (probe.kind == "conflict")
    tally.append(count(host_conflicts, "conflict"))
    origin_state = "conflict" if origin.kind == "conflict" else "free"
    probe_state = f"; the tunnel probe {probe.host}: conflict" if probe.kind == "conflict" else ""
    lines += _wrap(
        f"{count(hosts, 'host')}: {', '.join(tally)}; the origin name {origin.host}: {origin_state}{probe_state}.",
        "",
        "",
    )
    if conflicts:
        which = "the conflict" if len(conflicts) == 1 else f"the {len(conflicts)} conflicts"
        lines += _wrap(
            f"Resolve {which} before the first `pulumi up`, save the records "
            "again and run adopt again: it exits 0 when the first `pulumi up` is safe.",
            "",
            "",
        )
    else:
        lines.append("Safe: the first `pulumi up` neither fails on an existing record nor moves a host.")
    return "\n".join(lines)


def _grouped(verdicts: Sequence[Verdict], key: Any) -> list[tuple[Any, list[Verdict]]]:
    groups: dict[Any, list[Verdict]] = {}
    for verdict in verdicts:
        groups.setdefault(key(verdict), []).append(verdict)
    return list(groups.items())


def _hosts_line(kind: str, group: Sequence[Verdict]) -> list[str]:
    names = ", ".join(verdict.host for verdict in group)
    text = names if len(group) == 1 else f"{count(len(group), 'host')}: {names}"
    return _wrap(text, INDENT, f"{kind:<10}")
