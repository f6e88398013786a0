"""`mana-infra`: the offline plan, record adoption, the health check of both paths, the cut-over and the
fail-back, and the lab. One table (`COMMANDS`) holds every subcommand: its parser and what runs it."""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import shlex
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .deployed import CHANGED_BY_VARIABLE
from .errors import ExitCode, InputError, Problem
from .files import read_json
from .lock import SWITCH_WAIT, stack_lock
from .model import MODES, VIAS
from .plan_view import print_comparison, print_plan
from .project import Project, find_project_dir, selected_stack


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that keeps the flags it was given (argparse has no public list of them), so a
    flag a command does not take is refused with the nearest one it does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: list[str] = []
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flags.extend(action.option_strings)
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument

        def recorded(*names: Any, **options: Any) -> argparse.Action:
            action = add(*names, **options)
            self.flags.extend(action.option_strings)
            return action

        group.add_argument = recorded  # type: ignore[method-assign]
        return group

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", Parser)
        self.subcommands = super().add_subparsers(**kwargs)
        return self.subcommands

    @property
    def every_flag(self) -> list[str]:
        """Its flags and every subcommand's (`lab up --stak`: did you mean --stack?)."""
        children = getattr(self, "subcommands", None)
        nested = [flag for child in (children.choices.values() if children else ()) for flag in child.every_flag]
        return [*self.flags, *nested]


@dataclass(frozen=True)
class Command:
    """One `mana-infra` subcommand: its summary, its own parser (built when used, so that `plan` does not
    import the check, nor `check` Pulumi) and what runs it."""

    summary: str
    parser: Callable[[str, Sequence[str]], argparse.ArgumentParser]  # (name, the arguments after it)
    run: Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Every subcommand the same way: the table's parser, then its run; bad input exits 2 with every problem."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="mana-infra",
        description=__doc__,
        epilog="commands:\n" + "\n".join(f"  {name:<9} {c.summary}" for name, c in COMMANDS.items()) + "\n\n"
        "`mana-infra COMMAND --help` shows a command's own flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"mana-infra {_version()}")
    top.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    top.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    chosen = top.parse_args(arguments)
    command = COMMANDS[chosen.command]
    try:
        parser = command.parser(chosen.command, chosen.arguments)
        args, extra = parser.parse_known_args(chosen.arguments)
        if extra and not getattr(args, "passes_on", False):  # `lab check` passes check's flags on to it
            raise InputError(_unknown_flags(parser, extra, chosen.command))
        args.passed_on = extra
        # Which table entry ran, and the arguments as typed (a refusal's fix repeats them).
        args.subcommand, args.given = chosen.command, list(chosen.arguments)
        return int(command.run(args))
    except InputError as error:
        print(error, file=sys.stderr)
        return ExitCode.BAD_INPUT


def _plan_parser(name: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    parser = Parser(prog=f"mana-infra {name}", description=COMMANDS[name].summary, allow_abbrev=False)
    parser.add_argument(
        "--stack", help="stack whose Pulumi.<stack>.yaml is used (default: the stack `pulumi stack select` chose)"
    )
    _project_dir_argument(parser)
    parser.add_argument("--mode", choices=MODES, help="override the stack's mode")
    parser.add_argument("--via", choices=VIAS, help="override the stack's failoverVia (the way a cut-over takes)")
    parser.add_argument("--artifact", metavar="NAME", help="print one rendered file (e.g. Caddyfile), nothing else")
    parser.add_argument("--services", metavar="FILE", help="another inventory file instead of the stack's")
    parser.add_argument("--json", action="store_true", help="machine-readable: stack, mode, resources, artifacts")
    parser.add_argument("--diff", action="store_true", help="show what flipping the mode changes")
    parser.add_argument(
        "--against", metavar="PLAN_JSON", help="show what changed since a saved `plan --json` (e.g. the base branch's)"
    )
    return parser


def _adopt_parser(name: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    parser = Parser(
        prog=f"mana-infra {name}",
        allow_abbrev=False,
        description="Check the zone's saved records against the plan: per inventory host adopt, create or "
        "conflict, what the first `pulumi up` and the run after it change, and the `pulumi config set` "
        "commands that fill adoptRecords. Exit 0: the first `pulumi up` is safe; 1: conflicts to resolve "
        "first; 2: bad input.",
    )
    parser.add_argument(
        "--stack", help="stack whose Pulumi.<stack>.yaml is used (default: the stack `pulumi stack select` chose)"
    )
    _project_dir_argument(parser)
    parser.add_argument("--services", metavar="FILE", help="another inventory file instead of the stack's")
    parser.add_argument(
        "--records",
        metavar="FILE",
        nargs="+",
        required=True,
        help="Cloudflare's answers to GET /zones/<zone id>/dns_records?page=N&per_page=M, every page",
    )
    parser.add_argument(
        "--zone-id",
        metavar="ID",
        help="the zone's id (default: the stack's cloudflareZoneId; the records no longer carry it)",
    )
    return parser


def _check_parser(_name: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    from .check import cli as check

    return check.parser(Parser)


def _check(args: argparse.Namespace) -> int:
    from .check import cli as check

    return check.main(check.with_environment(args))


SWITCH_DESCRIPTIONS = {
    "cutover": "Cut over to the standby VPS: the pre-flight (check proves the standby), `pulumi up` with mode "
    "failover (and --via), then every host green through the VPS, each stage timed.",
    "failback": "Fail back to the Cloudflare Tunnel: the pre-flight (check proves the tunnel serves, by its "
    "probe name), `pulumi up` with mode tunnel, then every host green through the tunnel, each stage timed.",
}


def _switch_parser(command: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    """cutover's or failback's flags, and check's that they pass on to their checks."""
    from .check import cli as check

    parser = Parser(prog=f"mana-infra {command}", description=SWITCH_DESCRIPTIONS[command], allow_abbrev=False)
    parser.add_argument("--stack", help="the stack to switch (default: the selected stack)")
    _project_dir_argument(parser)
    if command == "cutover":
        parser.add_argument(
            "--via",
            choices=VIAS,
            default="edge",
            help="to the VPS through Cloudflare's edge (default) or DNS-only; direct, direct-dns: the same straight "
            "to the home (Plan C)",
        )
    risk = "the standby is not proven" if command == "cutover" else "the tunnel is not shown to serve"
    parser.add_argument("--force", action="store_true", help=f"{command} even when {risk} (the pre-flight fails)")
    parser.add_argument("--preview", action="store_true", help="show what would change; change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask before `pulumi up`")
    parser.add_argument("--within", type=float, metavar="SECONDS",
                        help="time limit for every host to be green (default: the way's budget + 60 s)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the verdict as JSON on stdout (progress on stderr)")
    check.add_arguments(parser, for_switch=True)
    return parser


def _unknown_flags(parser: argparse.ArgumentParser, arguments: Sequence[str], command: str) -> list[Problem]:
    """Every flag the command does not take, with the nearest it does: a typo is never passed on."""
    import difflib

    from .check import cli as check

    known = sorted(set(parser.every_flag)) if isinstance(parser, Parser) else []
    checks = check.parser(Parser)
    checks_own = checks.flags if isinstance(checks, Parser) else []
    problems = []
    after_flag = False
    for token in arguments:
        flag = token.split("=", 1)[0]
        if not flag.startswith("-") or flag.lstrip("-").replace(".", "", 1).isdigit():
            if not after_flag:  # a value after an unknown flag is that flag's, said with it
                problems.append(Problem(token, f"is not an argument of mana-infra {command}",
                                        f"`mana-infra {command} --help` lists what it takes"))  # fmt: skip
            after_flag = False
            continue
        after_flag = "=" not in token
        near = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
        if command == "failback" and flag == "--via":
            fix = "leave it out: failback returns to the tunnel, whichever way the cut-over took"
        elif flag in checks_own and command != "check":
            fix = f"it is `mana-infra check`'s: mana-infra check {flag} ... (the stack's outputs come from --stack)"
        elif near:
            fix = f"did you mean {near[0]}?"
        else:
            fix = f"`mana-infra {command} --help` lists every flag"
        problems.append(Problem(flag, f"is not a flag of mana-infra {command}", fix))
    return problems


def _switch(args: argparse.Namespace) -> int:
    """cutover/failback: the pre-flight, the config, `pulumi up`, every host green; check's flags go to its checks."""
    from . import cutover

    command = args.subcommand
    asking = not args.preview and not args.yes
    if asking and not sys.stdin.isatty():
        again = " ".join(["mana-infra", command, *map(shlex.quote, args.given)])
        raise InputError(
            [
                Problem(
                    "--yes",
                    "is needed without a terminal to ask",
                    f"{again} --yes (or {again} --preview to see what it would change)",
                )
            ]
        )
    project_dir = find_project_dir(args.project_dir)
    stack = args.stack or selected_stack(project_dir)
    print(f"mana-infra {command}: stack {stack}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if asking:
        answer = input(f"{command} stack {stack} now? `pulumi up` changes DNS and the VPS [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed", file=sys.stderr)
            return ExitCode.NOT_OK
    switch = cutover.Switch("failover", args.via) if command == "cutover" else cutover.Switch("tunnel")
    engine = cutover.AutomationEngine(stack, project_dir)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    options = cutover.Options(preview=args.preview, force=args.force, within=args.within, log=log)
    # The stack records who changed its mode (deployed.py); one writer at a time (lock.py).
    os.environ[CHANGED_BY_VARIABLE] = f"mana-infra {command} by {getpass.getuser()}@{socket.gethostname()}"

    # A watchdog's cut-over in progress takes as long as ours would: wait for it, saying so, then
    # pre-flight afresh (the stack may be where this one wanted it already).
    def waiting(holder: str) -> None:
        print(f"stack {stack} is being changed by {holder}: waiting for it (up to 5 minutes)", file=sys.stderr)

    with stack_lock(project_dir, stack, f"mana-infra {command}", wait=SWITCH_WAIT, on_wait=waiting):
        verdict = cutover.run(engine, cutover.check_with(args, stack), switch, options)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        cutover.print_verdict(verdict)
    return verdict.exit_code


def _deploy_parser(name: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    parser = Parser(prog=f"mana-infra {name}", description=(COMMANDS[name].summary), allow_abbrev=False)
    parser.add_argument("--stack", help="the stack to deploy (default: the selected stack)")
    _project_dir_argument(parser)
    parser.add_argument(
        "--policy-pack", action="append", default=[], metavar="DIR", help="run the update with this policy pack"
    )
    return parser


def _deploy(args: argparse.Namespace) -> int:
    """The unattended `pulumi up`: in the deployed mode, whatever this checkout's config says (deploy.py)."""
    from .cutover import AutomationEngine
    from .deploy import UNATTENDED, run_deploy

    project_dir = find_project_dir(args.project_dir)
    stack = args.stack or selected_stack(project_dir)
    print(f"mana-infra deploy: stack {stack}", flush=True)
    engine = AutomationEngine(stack, project_dir, policy_packs=args.policy_pack)
    os.environ[CHANGED_BY_VARIABLE] = UNATTENDED
    with stack_lock(project_dir, stack, "mana-infra deploy"):
        verdict = run_deploy(engine, lambda line: print(line, flush=True))
    changes = ", ".join(f"{n} {op}" for op, n in sorted(verdict.counts.items()) if op not in ("same", "read") and n)
    print(f"deploy {'done' if verdict.ok else 'FAILED'}: {changes or 'no changes'}")
    return verdict.exit_code


def _watch_parser(name: str, _arguments: Sequence[str]) -> argparse.ArgumentParser:
    from .check import cli as check
    from .watchdog import command

    parser = Parser(prog=f"mana-infra {name}", description=(COMMANDS[name].summary), allow_abbrev=False)
    command.add_arguments(parser)
    check.add_arguments(parser, for_switch=True)  # how its rounds probe: resolver, CA file, SSH key, ...
    return parser


def _watch(args: argparse.Namespace) -> int:
    from .watchdog import command

    return command.run(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mana-infra")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _lab_module(arguments: Sequence[str] = ()) -> Any:
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
    return importlib.import_module("mana_lab.cli")


def _lab_parser(_name: str, arguments: Sequence[str]) -> argparse.ArgumentParser:
    return _lab_module(arguments).parser(Parser)  # type: ignore[no-any-return]


def _lab(args: argparse.Namespace) -> int:
    return int(_lab_module(["--project-dir", str(args.project_dir)] if args.project_dir else []).run(args))


def _project_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        type=Path,
        help="the project folder (default: the folder with Pulumi.yaml at or above the working directory)",
    )


def _plan(args: argparse.Namespace) -> int:
    from . import plan as offline  # imports Pulumi and the providers: only when planning

    if args.against and args.diff:
        raise InputError(
            [
                Problem(
                    "--diff",
                    "cannot be combined with --against: --against compares with a saved plan, --diff with the "
                    "other mode, and one table cannot show both",
                    f"one at a time: `mana-infra plan --against {args.against}`, then `mana-infra plan --diff`",
                )
            ]
        )
    saved = _read_saved_plan(args.against) if args.against else None
    project = Project.find(args.project_dir)
    args.stack = args.stack or selected_stack(project.dir)
    # A flag's file is the operator's, relative to where they stand; the stack's is the project's.
    services = str(Path(args.services).resolve()) if args.services else None
    if args.mode and project.stack_config(args.stack).get("role") == "rehearsal":
        raise InputError(
            [
                Problem(
                    "--mode",
                    f"does not apply to stack {args.stack}: a rehearsal is always failover (its test hostnames "
                    "through the prod VPS), whatever prod's mode",
                    f"mana-infra plan --stack {args.stack}, without --mode",
                )
            ]
        )
    overrides = {"failoverVia": args.via} if args.via else {}
    result = offline.plan(args.stack, mode=args.mode, services=services, project=project, overrides=overrides)
    if args.artifact:
        if args.artifact not in result.artifacts:
            names = ", ".join(result.artifacts)
            raise InputError(
                [Problem("--artifact", f"{args.artifact!r} is not a file of this plan", f"one of: {names}")]
            )
        print(result.artifacts[args.artifact], end="")
        return ExitCode.OK
    if saved is not None:
        problems = [
            Problem(
                args.against,
                f"is a plan of {what} {saved[what]}, this one of {what} {mine}: a comparison would show every "
                "resource as changed",
                fix,
            )
            for what, mine, fix in (
                ("stack", args.stack, f"compare like with like: --stack {saved['stack']}"),
                ("mode", result.mode, f"--mode {saved['mode']} (what the flip changes: --diff)"),
            )
            if saved[what] != mine
        ]
        if problems:
            raise InputError(problems)
        comparison = offline.compare(offline.PlanResult.from_json(saved), result, args.against, "this plan")
        if args.json:
            print(
                json.dumps({"stack": args.stack, "mode": result.mode, "against": args.against, **comparison}, indent=2)
            )
        else:
            print_comparison(f"Changes against {args.against} (stack {args.stack}, mode {result.mode})", comparison)
        return ExitCode.OK
    if args.diff:
        other_mode = "failover" if result.mode == "tunnel" else "tunnel"
        flipped = offline.plan(args.stack, mode=other_mode, services=services, project=project, overrides=overrides)
        comparison = offline.compare(result, flipped, f"mode {result.mode}", f"mode {other_mode}")
        if args.json:
            print(json.dumps({"stack": args.stack, "from": result.mode, "to": other_mode, **comparison}, indent=2))
        else:
            print_comparison(f"Flipping stack {args.stack} from mode {result.mode} to {other_mode}", comparison)
        return ExitCode.OK
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return ExitCode.OK
    print_plan(result)
    return ExitCode.OK


def _read_saved_plan(path: str) -> dict[str, Any]:
    fix = "save one with `mana-infra plan --json > plan.json`"
    document = read_json(path, "the saved plan", fix)
    if not isinstance(document, dict) or not {"stack", "mode", "resources", "artifacts"} <= document.keys():
        raise InputError([Problem(path, "is not the output of `mana-infra plan --json`", fix)])
    return document


def _adopt(args: argparse.Namespace) -> int:
    from .adopt import adopt  # imports the DNS component (Pulumi): only when adopting

    project = Project.find(args.project_dir)
    stack = args.stack or selected_stack(project.dir)
    report = adopt(project, stack, args.records, services_file=args.services, zone_id=args.zone_id)
    print(report.text)
    return report.exit_code


SWITCH_SUMMARY = {
    "cutover": "cut over to the standby VPS (--via edge|dns): pre-flight, pulumi up, every host green, timed",
    "failback": "fail back to the Cloudflare Tunnel: pulumi up, every host green through the tunnel, timed",
}

# Every subcommand, in the order `mana-infra --help` lists them.
COMMANDS: dict[str, Command] = {
    "plan": Command("evaluate the Pulumi program offline and show what it would build", _plan_parser, _plan),
    "adopt": Command("adopt the zone's existing records on the first `pulumi up`", _adopt_parser, _adopt),
    "check": Command("health of both paths: DNS, the tunnel, the standby VPS, WireGuard", _check_parser, _check),
    "cutover": Command(SWITCH_SUMMARY["cutover"], _switch_parser, _switch),
    "failback": Command(SWITCH_SUMMARY["failback"], _switch_parser, _switch),
    "deploy": Command(
        "the unattended pulumi up (the weekly run): never changes the deployed mode, says when it keeps it",
        _deploy_parser,
        _deploy,
    ),
    "watch": Command(
        "the watchdog: probes from here and the VPS, cuts over by itself only when that helps; pause, resume",
        _watch_parser,
        _watch,
    ),
    "lab": Command(
        "the failover lab in network namespaces (Linux, root, a checkout): up, down, status, drill, e2e",
        _lab_parser,
        _lab,
    ),
}


if __name__ == "__main__":
    raise SystemExit(main())
