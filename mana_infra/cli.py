"""`mana-infra`: the offline plan, record adoption, and the health check of both paths."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .errors import InputError, Problem
from .model import MODES
from .project import Project, find_project_dir

# Sub-commands with a parser of their own, imported only when used: the plan's start-up stays short.
DELEGATED = {
    "check": "health of both paths: DNS, the tunnel, the standby VPS, WireGuard",
    "lab": "the failover lab in network namespaces (Linux, root, a checkout of the repository): up, down, drill",
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["check"]:
            from .check.cli import cli as check

            return check(arguments[1:])
        if arguments[:1] == ["lab"]:
            return _lab(arguments[1:])
    except InputError as error:
        print(error, file=sys.stderr)
        return 2

    parser = argparse.ArgumentParser(prog="mana-infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    plan_parser = commands.add_parser("plan", help="evaluate the Pulumi program offline and show what it would build")
    plan_parser.add_argument("--stack", default="prod", help="stack whose Pulumi.<stack>.yaml is used (default prod)")
    _project_dir_argument(plan_parser)
    plan_parser.add_argument("--mode", choices=MODES, help="override the stack's mode")
    plan_parser.add_argument("--services", metavar="FILE", help="another inventory file instead of the stack's")
    plan_parser.add_argument("--json", action="store_true", help="machine-readable: stack, mode, resources, artifacts")
    plan_parser.add_argument("--diff", action="store_true", help="show what flipping the mode changes")
    plan_parser.add_argument(
        "--against", metavar="PLAN_JSON", help="show what changed since a saved `plan --json` (e.g. the base branch's)"
    )
    plan_parser.set_defaults(handler=_plan)

    adopt_parser = commands.add_parser(
        "adopt",
        help="adopt the zone's existing records on the first `pulumi up`",
        description="Check the zone's saved records against the plan: per inventory host adopt, create or "
        "conflict, what the first `pulumi up` and the run after it change, and the `pulumi config set` "
        "commands that fill adoptRecords. Exit 0: the first `pulumi up` is safe; 1: conflicts to resolve "
        "first; 2: bad input.",
    )
    adopt_parser.add_argument("--stack", default="prod", help="stack whose Pulumi.<stack>.yaml is used (default prod)")
    _project_dir_argument(adopt_parser)
    adopt_parser.add_argument("--services", metavar="FILE", help="another inventory file instead of the stack's")
    adopt_parser.add_argument(
        "--records",
        metavar="FILE",
        nargs="+",
        required=True,
        help="Cloudflare's answers to GET /zones/<zone id>/dns_records?page=N&per_page=M, every page",
    )
    adopt_parser.add_argument(
        "--zone-id",
        metavar="ID",
        help="the zone's id (default: the stack's cloudflareZoneId; the records no longer carry it)",
    )
    adopt_parser.set_defaults(handler=_adopt)

    for name, summary in DELEGATED.items():
        commands.add_parser(name, help=f"{summary} (`mana-infra {name} --help`)")

    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except InputError as error:
        print(error, file=sys.stderr)
        return 2


def _lab(arguments: list[str]) -> int:
    """The lab is a development tool of the repository, not of this package: it is imported from the
    project folder (the one around the working directory, or --project-dir)."""
    finder = argparse.ArgumentParser(add_help=False)
    _project_dir_argument(finder)
    project_dir = find_project_dir(finder.parse_known_args(arguments)[0].project_dir)
    if not (project_dir / "mana_lab" / "cli.py").is_file():
        raise InputError(
            [
                Problem(
                    str(project_dir),
                    "has no mana_lab/: the lab lives in the mana-infra repository, not in the installed package",
                    "run `mana-infra lab` in a checkout of the repository (or give --project-dir <checkout>)",
                )
            ]
        )
    sys.path.insert(0, str(project_dir))
    lab = importlib.import_module("mana_lab.cli")
    return int(lab.main(arguments))


def _project_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        type=Path,
        help="the project folder (default: the folder with Pulumi.yaml at or above the working directory)",
    )


def _plan(args: argparse.Namespace) -> int:
    from . import plan as offline  # imports Pulumi and the providers: only when planning

    project = Project.find(args.project_dir)
    # A flag's file is the operator's, relative to where they stand; the stack's is the project's.
    services = str(Path(args.services).resolve()) if args.services else None
    result = offline.plan(args.stack, mode=args.mode, services=services, project=project)
    if args.against:
        base = offline.PlanResult.from_json(_read_json(args.against))
        changes = offline.diff(base, result)
        if args.json:
            print(
                json.dumps(
                    {"stack": args.stack, "mode": result.mode, "against": args.against, "changes": changes}, indent=2
                )
            )
        else:
            _print_changes(f"changes against {args.against} (mode {result.mode})", changes)
        return 0
    if args.diff:
        other_mode = "failover" if result.mode == "tunnel" else "tunnel"
        flipped = offline.plan(args.stack, mode=other_mode, services=services, project=project)
        changes = offline.diff(result, flipped)
        if args.json:
            print(
                json.dumps({"stack": args.stack, "from": result.mode, "to": other_mode, "changes": changes}, indent=2)
            )
        else:
            _print_changes(f"flipping mode {result.mode} -> {other_mode} changes {len(changes)} fields", changes)
        return 0
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return 0
    _print_plan(result)
    return 0


def _print_plan(result: Any) -> None:
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"mana-infra plan: stack {result.stack}, mode {result.mode} (offline)", show_lines=False)
    for column in ("resource", "type", "key inputs"):
        table.add_column(column, overflow="fold")
    for resource in result.resources:
        provider, kind = resource.type.split(":")[0], resource.type.split(":")[-1].split("/")[-1]
        table.add_row(resource.name, f"{provider}:{kind}", _summary(resource.type, resource.inputs))
    console.print(table)
    outputs = Table(title="stack outputs")
    outputs.add_column("output")
    outputs.add_column("value", overflow="fold")
    for name, value in sorted(result.outputs.items()):
        if name != "hosts":
            outputs.add_row(name, str(value))
    console.print(outputs)
    if result.placeholders:
        console.print("[bold]Placeholders[/bold] (not set in the stack; `pulumi up` stops until they are):")
        for placeholder in result.placeholders:
            shown = "[secret]" if placeholder.secret else placeholder.value
            console.print(f"  {placeholder.key} = {shown}   ({placeholder.why})", markup=False)
    console.print(
        f"Artifacts: {', '.join(result.artifacts)} (see them with --json); --diff shows what the flip changes."
    )


def _summary(resource_type: str, inputs: dict[str, Any]) -> str:
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
    if kind == "RandomBytes":
        return f"{inputs.get('length')} random bytes (WireGuard private key)"
    if kind == "SshKey":
        return str(inputs.get("name"))
    if kind == "Zone":
        return f"{inputs.get('name')} ({inputs.get('mode')}, ttl {inputs.get('ttl')})"
    if kind == "ZoneRrset":
        values = ", ".join(str(record.get("value")) for record in inputs.get("records", []))
        return f"{inputs.get('name')} {inputs.get('type')} {values} (ttl {inputs.get('ttl')})"
    return ""


def _read_json(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            [Problem(path, f"cannot read the saved plan: {exc}", "save one with `mana-infra plan --json > plan.json`")]
        ) from None
    if not isinstance(document, dict) or not {"stack", "mode", "resources", "artifacts"} <= document.keys():
        raise InputError(
            [
                Problem(
                    path,
                    "is not the output of `mana-infra plan --json`",
                    "save one with `mana-infra plan --json > plan.json`",
                )
            ]
        )
    return document


def _print_changes(title: str, changes: list[dict[str, Any]]) -> None:
    console = Console(width=max(Console().width, 120))
    table = Table(title=title)
    for column in ("resource", "field", "before", "after"):
        table.add_column(column, overflow="fold")
    for change in changes:
        table.add_row(change["resource"], change["field"], _short(change["before"]), _short(change["after"]))
    console.print(table)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _adopt(args: argparse.Namespace) -> int:
    from .adopt import adopt  # imports the DNS component (Pulumi): only when adopting

    report = adopt(
        Project.find(args.project_dir), args.stack, args.records, services_file=args.services, zone_id=args.zone_id
    )
    print(report.text)
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
