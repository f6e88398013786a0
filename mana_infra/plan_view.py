"""The offline plan as the operator reads it: resources, outputs, placeholders, and changes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from .model import SECRET
from .outputs import Output
from .records import adoption_left_text
from .terminal import console_for


def print_plan(result: Any) -> None:
    console = console_for()
    table = Table(title=f"mana-infra plan: stack {result.stack}, mode {result.mode} (offline)")
    table.add_column("resource", overflow="fold", max_width=30)
    table.add_column("type", overflow="fold", max_width=26)
    table.add_column("key inputs", overflow="fold")
    for row in plan_rows(result.resources):
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    # Pulumi's own summary form; offline there is no state, so everything is to create.
    console.print(f"Resources: + {len(result.resources)} to create (from an empty stack)", markup=False)
    outputs = Table(title="stack outputs")
    outputs.add_column("output")
    outputs.add_column("value", overflow="fold")
    for name, value in sorted(result.outputs.items()):
        # As text, not markup: "[secret]" is a value here, not a style.
        outputs.add_row(Text(name), Text(output_cell(name, value)))
    console.print(outputs)
    for warning in result.outputs.get(Output.CONFIG_WARNINGS) or []:
        console.print(f"warning: {warning}", markup=False)
    left = result.outputs.get(Output.ADOPT_RECORDS_LEFT)
    if left:
        console.print(f"warning: {adoption_left_text(left, result.stack, deployed=False)}", markup=False)
    budget = result.outputs.get(Output.CUTOVER_BUDGET)
    if isinstance(budget, dict):
        console.print(budget_text(budget, result.mode), markup=False)
    if result.placeholders:
        console.print("Placeholders (not set in the stack; `pulumi up` stops until they are):", markup=False)
        for placeholder in result.placeholders:
            shown = SECRET if placeholder.secret else placeholder.value
            console.print(f"  {placeholder.key} = {shown}   ({placeholder.why})", markup=False)
    console.print(
        f"Artifacts: {', '.join(result.artifacts)} (one with --artifact NAME, all with --json); "
        "--diff shows what the flip changes.",
        markup=False,
    )


# Records that differ only by their name (the inventory's, in Cloudflare and in the mirror): one row.
GROUPED_KINDS = {"DnsRecord": "name", "ZoneRrset": "name"}


def plan_rows(resources: Sequence[Any]) -> list[tuple[str, str, str]]:
    """The plan's table rows: resource, type, key inputs. Records alike but for their name are one row
    (how many, what they share, their names), in the place of the first."""
    rows: list[tuple[str, str, str]] = []
    groups: dict[tuple[str, str], list[Any]] = {}
    for resource in resources:
        kind = resource.type.split(":")[-1].split("/")[-1]
        if kind in GROUPED_KINDS:
            alike = {key: value for key, value in resource.inputs.items() if key != GROUPED_KINDS[kind]}
            groups.setdefault((resource.type, json.dumps(alike, sort_keys=True)), []).append(resource)
    placed: set[tuple[str, str]] = set()
    for resource in resources:
        provider, kind = resource.type.split(":")[0], resource.type.split(":")[-1].split("/")[-1]
        key = next((k for k, members in groups.items() if resource in members and len(members) > 1), None)
        if key is None:
            rows.append((resource.name, f"{provider}:{kind}", summary(resource.type, resource.inputs)))
            continue
        if key in placed:
            continue
        placed.add(key)
        members = groups[key]
        shared = summary(resource.type, {**resource.inputs, "name": "*"})
        names = ", ".join(str(member.inputs.get("name")) for member in members)
        rows.append((f"{len(members)} records: {members[0].name} …", f"{provider}:{kind}", f"{shared}: {names}"))
    return rows


def budget_text(budget: Mapping[str, Any], mode: str) -> str:
    """The real-world time of a switch from the records of this plan, in plain words."""
    move = "Cut-over" if mode == "tunnel" else "Fail-back"
    edge, dns = budget.get("edge", {}), budget.get("dns", {})
    return (
        f"{move} from these records, in the real world: through Cloudflare's edge within {edge.get('seconds')} s "
        f"({edge.get('why')}); DNS-only up to {dns.get('seconds')} s ({dns.get('why')}); certificates: "
        f"{budget.get('certificates')}."
    )


def output_cell(name: str, value: Any) -> str:
    """An output in the plan's table: a rendered file (many lines) by its size and where to read it."""
    if name == Output.HOSTS and isinstance(value, list) and value and all(isinstance(host, dict) for host in value):
        ways = {(host.get("target"), host.get("proxied"), host.get("ttl")) for host in value}
        if len(ways) == 1:  # one way for all: said once, then each host with its port
            [(target, proxied, ttl)] = ways
            each = ", ".join(f"{host.get('host')}:{host.get('port')}" for host in value)
            return f"{len(value)} hosts -> {target} ({'proxied' if proxied else 'DNS-only'}, ttl {ttl}): {each}"
    text = output_text(name, value)
    lines = text.count("\n") + 1
    if isinstance(value, str) and lines > 4:
        return f"({lines} lines: `mana-infra plan --json` has it; once deployed, `pulumi stack output {name}`)"
    return text


def output_text(name: str, value: Any) -> str:
    """An output as one cell: secrets as [secret], the hosts as one line each, other structures as JSON."""
    if name == Output.HOSTS and isinstance(value, list):
        return "\n".join(
            f"{host.get('host')} -> {host.get('target')} ({'proxied' if host.get('proxied') else 'DNS-only'}, "
            f"ttl {host.get('ttl')}), port {host.get('port')}"
            for host in value
            if isinstance(host, dict)
        )
    if isinstance(value, str):
        return value
    return json.dumps(value)


def summary(resource_type: str, inputs: Mapping[str, Any]) -> str:
    kind = resource_type.split(":")[-1]
    if kind == "DnsRecord":
        proxied = "proxied" if inputs.get("proxied") else "DNS-only"
        return (
            f"{inputs.get('name')} {inputs.get('type')} -> {inputs.get('content')} ({proxied}, ttl {inputs.get('ttl')})"
        )
    if kind == "Server":
        where = f"{inputs.get('serverType')} {inputs.get('image')} in {inputs.get('location')}"
        return f"{where}, user_data {inputs.get('userData')}"
    if kind == "PrimaryIp":
        return f"{inputs.get('type')} in {inputs.get('location')}, auto_delete {inputs.get('autoDelete')}"
    if kind == "Firewall":
        return "; ".join(
            f"{rule.get('protocol')}/{rule.get('port', '*')} from {', '.join(rule.get('sourceIps', []))}"
            for rule in inputs.get("rules", [])
        )
    if kind == "Command":
        return f"apply-caddyfile.sh over SSH, triggers {inputs.get('triggers')}"
    if kind == "RandomPassword":
        return f"{inputs.get('length')} random characters (a WireGuard private key's seed, secret)"
    if kind == "SshKey":
        return str(inputs.get("name"))
    if kind == "Zone":
        return f"{inputs.get('name')} ({inputs.get('mode')}, ttl {inputs.get('ttl')})"
    if kind == "ZoneRrset":
        values = ", ".join(str(record.get("value")) for record in inputs.get("records", []))
        return f"{inputs.get('name')} {inputs.get('type')} {values} (ttl {inputs.get('ttl')})"
    if kind == "OriginCaCertificate":
        return f"{', '.join(inputs.get('hostnames', []))}, {inputs.get('requestedValidity')} days (Origin CA)"
    if kind == "Certificate":
        names = [inputs.get("commonName"), *inputs.get("subjectAlternativeNames", [])]
        return f"{', '.join(str(n) for n in names)} by DNS-01, renewed with a third of its lifetime left"
    return ""


def summary_line(counts: Mapping[str, int]) -> str:
    """Pulumi's own summary form, on one line."""
    return (
        f"Resources: + {counts['create']} to create, ~ {counts['update']} to update, - {counts['delete']} to delete, "
        f"{counts['same']} unchanged"
    )


def change_rows(comparison: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows: one per field change, the same change in several resources (the inventory's
    records above all) as one row naming how many; a rendered file's field points at its diff; a created
    or deleted resource with its key inputs."""
    from .plan import FILE_FIELDS

    groups: dict[tuple[str, str, str], list[str]] = {}
    for change in comparison["changes"]:
        if change["field"] == "(resource)":
            continue
        file = FILE_FIELDS.get((change["resource"], change["field"]))
        if file:
            cells = (change["field"], f"({file}: its diff below)", "")
        else:
            cells = (change["field"], short(change["before"]), short(change["after"]))
        groups.setdefault(cells, []).append(change["resource"])
    rows = []
    for (field, before, after), resources in groups.items():
        who = resources[0] if len(resources) == 1 else f"{len(resources)} resources: {resources[0]} … {resources[-1]}"
        rows.append((who, field, before, after))
    for resource in comparison["created"]:
        rows.append((resource["resource"], "(created)", "", summary(resource["type"], resource["inputs"]) or "created"))
    for resource in comparison["deleted"]:
        rows.append((resource["resource"], "(deleted)", summary(resource["type"], resource["inputs"]) or "exists", ""))
    return rows


def print_comparison(title: str, comparison: Mapping[str, Any]) -> None:
    """A comparison (plan.compare) as the operator and the pull-request comment read it: the summary,
    the changes grouped, each rendered file's unified diff, the outputs that differ."""
    console = console_for()
    console.print(f"{title}. {summary_line(comparison['summary'])}", markup=False)
    rows = change_rows(comparison)
    if not rows and not comparison["outputs"]:
        console.print("No changes.", markup=False)
        return
    if rows:
        table = Table()
        for column in ("resource", "field", "before", "after"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
    for diff_text in comparison["files"].values():
        print(diff_text, end="", flush=True)  # as the file has it: tabs and long lines untouched
    if comparison["outputs"]:
        outputs = Table(title="outputs that differ")
        for column in ("output", "before", "after"):
            outputs.add_column(column, overflow="fold")
        for change in comparison["outputs"]:
            before, after = output_change(change["output"], change["before"], change["after"])
            outputs.add_row(Text(change["output"]), Text(before), Text(after))
        console.print(outputs)


def output_change(name: str, before: Any, after: Any) -> tuple[str, str]:
    """Two values of one output, short: for lists of the same length, how many entries differ and the first."""
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after) and before:
        differing = [index for index, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
        first = differing[0]
        old, new = before[first], after[first]
        each = f"{len(differing)} of {len(before)} entries differ, e.g. [{first}]"
        if isinstance(old, dict) and isinstance(new, dict):  # only the keys that differ, after its name
            keys = [key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
            each += f" {old.get('host') or ''}".rstrip()
            old = ", ".join(f"{key} {old.get(key)}" for key in keys)
            new = ", ".join(f"{key} {new.get(key)}" for key in keys)
        return f"{each}: {short(old)}", short(new)
    return short(output_text(name, before) if before is not None else "(absent)"), short(
        output_text(name, after) if after is not None else "(absent)"
    )


def short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
