"""``mana-infra lab up|status|check|fault|watch|sh|down|drill|e2e``: the lab from the command line.

``main(argv)`` takes the arguments after ``lab``. The lab always runs the offline plan of a stack
(``--stack``, default prod): its artifacts and DNS records, see inputs.py; a rehearsal stack runs its
prod stack's plan with the rehearsal in it. ``up`` leaves the lab running (its daemons are detached)
until ``down``, and saves what it runs (``lab.json`` in the work folder) for ``status`` and ``check``.
``up``, ``drill`` and ``e2e`` replace a running lab only with ``--replace``. ``drill --json`` prints the
drill's report as JSON on stdout; progress goes to stderr. ``up --engine`` brings up the e2e's world
instead, the stack deployed through the real engine, and keeps it (engine_lab.py): ``fault``, ``watch``
and ``sh`` act on that one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mana_infra.errors import ExitCode

from .inputs import STATES

DEFAULT_WORKDIR = "/tmp/mana-infra-lab"
CHECK_SECONDS = 300.0  # `lab check` without --watch: far more than a check of 27 hosts takes


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m`-style entry (the tests): parse, then run; `mana-infra lab` parses with its dispatcher."""
    lab = parser()
    args, passed_on = lab.parse_known_args(list(argv) if argv is not None else None)
    if passed_on and not getattr(args, "passes_on", False):
        lab.error(f"unrecognized arguments: {' '.join(passed_on)}")
    args.passed_on = passed_on
    return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `mana-infra lab status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


def parser(kind: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`mana-infra lab`'s parser (of ``kind``: the dispatcher's keeps its flags)."""
    parser = kind(prog="mana-infra lab", description=(__doc__ or "").splitlines()[0], allow_abbrev=False)
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"lab state and logs (default {DEFAULT_WORKDIR})")
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        type=Path,
        help="the project whose offline plan the lab runs (default: the one around the working directory)",
    )
    stack_help = "the stack whose offline plan the lab runs (default prod; a rehearsal stack: its prod stack's)"
    replace_help = "tear down a running lab first (without it, a running lab is refused, not replaced)"
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{up,status,check,fault,watch,sh,down,drill,e2e}"
    )
    p_up = sub.add_parser("up", help="build the lab from the stack's offline plan and leave it running")
    p_up.add_argument("--stack", default="prod", help=stack_help)
    p_up.add_argument(
        "--mode",
        default="tunnel",
        choices=tuple(STATES),
        help="the standby's state to start in: tunnel (default), failover (through the edge), failover-dns",
    )
    p_up.add_argument("--replace", action="store_true", help=replace_help)
    p_up.add_argument(
        "--engine",
        action="store_true",
        help="the real engine's world instead (`make engine` first): the stand-in clouds, the stack set up "
        "with the README's commands and deployed in tunnel mode by `pulumi up`; for fault, watch and sh",
    )
    sub.add_parser("status", help="what the running lab runs: stack, state, since when, processes per namespace")
    lab_check = sub.add_parser(
        "check",
        help="mana-infra check from the lab's client (its resolver, CA bundle, SSH key); check's own flags "
        "(--json, --no-ssh, --timeout, ...) pass through",
    )
    lab_check.set_defaults(passes_on=True)  # check's flags are check's to take or refuse
    p_fault = sub.add_parser(
        "fault", help="the real-engine lab's faults and their state; `fault NAME on|off` makes or mends one"
    )
    p_fault.add_argument("name", nargs="?", help="the fault (`lab fault` lists them)")
    p_fault.add_argument("to", nargs="?", choices=("on", "off"), help="make (on) or mend (off) it")
    p_watch = sub.add_parser(
        "watch",
        help="the watchdog (`mana-infra watch`) from the watch box's place in the real-engine lab; its own "
        "flags (--json, --interval, --rounds, ...) pass through",
    )
    p_watch.set_defaults(passes_on=True)
    p_sh = sub.add_parser(
        "sh",
        help="a command in the real-engine lab's operator seat (its project copy and stack login), e.g. "
        r"`lab sh mana-infra cutover --via dns --yes \$LAB_CHECK_FLAGS`",
    )
    p_sh.set_defaults(passes_on=True)
    sub.add_parser("down", help="tear the lab down, including leftovers of crashed runs, and its work folder")
    p_drill = sub.add_parser("drill", help="run the failover drill in a fresh lab (torn down afterwards)")
    p_drill.add_argument("--stack", default="prod", help=stack_help)
    p_drill.add_argument("--replace", action="store_true", help=replace_help)
    p_drill.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p_drill.add_argument("--deadline", type=float, default=20, help="seconds each phase may take (default 20)")
    p_drill.add_argument(
        "--no-nudge",
        action="store_true",
        help="after the WAN change, wait for the PersistentKeepalive (up to 25 s) instead of a "
        "packet from the Mac Mini at once",
    )
    p_e2e = sub.add_parser(
        "e2e",
        help="the operator's runs through the real Pulumi engine against the stand-in clouds, the lab as "
        "their machines (`make engine` first)",
    )
    p_e2e.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p_e2e.add_argument("--replace", action="store_true", help=replace_help)
    p_e2e.add_argument(
        "--keep",
        action="store_true",
        help="keep the world running afterwards (in tunnel mode, as the last run leaves it) for fault, watch "
        "and sh, until `lab down`",
    )
    return parser


def _refusal(args: argparse.Namespace) -> str | None:
    """Why this command does not start (before anything does), or None."""
    if args.command == "up" and args.engine and (args.mode != "tunnel" or args.stack != "prod"):
        return (
            "`up --engine` deploys stack prod in tunnel mode, as the README sets it up; cut over in it with "
            "`mana-infra lab sh 'mana-infra cutover --stack prod --via edge --yes $LAB_CHECK_FLAGS'`"
        )
    if args.command in ("up", "drill", "e2e"):
        return _refuse_running_lab(Path(args.workdir), args.command, args.replace)
    return None


def _down(workdir: Path) -> int:
    from . import engine_lab
    from .system import cleanup_leftovers

    stopped = engine_lab.stop_recorded(workdir)
    removed = ["the real-engine lab's keeper (its world)"] if stopped else []
    removed += cleanup_leftovers(workdir / "pids")
    # The work folder holds the lab's keys and certificates: nothing of it outlives the lab.
    if workdir.is_dir():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(f"the work folder {workdir}")
    print("removed: " + "; ".join(removed) if removed else "nothing to remove")
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    from . import engine_lab
    from .system import LabError

    try:
        refusal = _refusal(args)
        if refusal:
            _log(f"lab: {refusal}")
            return ExitCode.BAD_INPUT
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            return _down(Path(args.workdir))
        if args.command == "status":
            print(status_text(Path(args.workdir)))
            return ExitCode.OK
        if args.command == "check":
            return _check(Path(args.workdir), args.passed_on)
        if args.command == "fault":
            return engine_lab.fault(Path(args.workdir), args.name, args.to)
        if args.command == "watch":
            return engine_lab.watch(Path(args.workdir), args.passed_on)
        if args.command == "sh":
            if not args.passed_on:
                raise LabError("`lab sh` wants a command: `mana-infra lab sh pulumi stack output`")
            return engine_lab.run_in_seat(Path(args.workdir), ["sh", "-c", " ".join(args.passed_on)])
        if args.command == "e2e":
            return _e2e(args)
        if args.command == "drill":
            from .drill import run_drill
            from .inputs import inputs_from_plan

            stack, rehearsal = lab_stacks(args.stack, args.project_dir)
            _log(f"drill: evaluating the offline plan of {stack} (its three states)")
            report = run_drill(
                inputs_from_plan(stack, rehearsal_stack=rehearsal, project_dir=args.project_dir),
                args.workdir,
                deadline=args.deadline,
                nudge_after_wan_change=not args.no_nudge,
                log=_log,
            )
            if args.json:
                print(json.dumps(report.to_dict(), indent=2), flush=True)
            else:
                failed = [p.name for p in report.phases if not p.ok] + [f.name for f in report.faults if not f.ok]
                verdict = "passed" if report.ok else "FAILED (" + ", ".join(failed or ["see above"]) + ")"
                print(f"drill {verdict} in {report.seconds:.1f} s", flush=True)
            return ExitCode.OK if report.ok else ExitCode.NOT_OK
    except LabError as exc:
        _log(f"lab: {exc}")
        return ExitCode.BAD_INPUT
    except KeyboardInterrupt:
        _log("lab: interrupted; cleaned up")
        return ExitCode.INTERRUPTED
    return ExitCode.BAD_INPUT


STATE_FILE = "lab.json"  # in the work folder: what `lab up` started, for status and check


def lab_stacks(stack: str, project_dir: Path | None) -> tuple[str, str | None]:
    """The standby stack whose plan the lab runs, and the rehearsal stack beside it: a rehearsal stack
    (role rehearsal) has no VPS of its own, so the lab runs its prodStack with it as the rehearsal."""
    from mana_infra.project import Project, find_project_dir

    project = Project.at(find_project_dir(project_dir))
    if stack not in project.stacks():
        return stack, "failover"  # the plan names the missing stack file, with its fix
    config = project.stack_config(stack)
    if config.get("role") != "rehearsal":
        return stack, "failover"
    prod = (config.get("prodStack") or "prod").split("/")[-1]
    _log(f"lab: stack {stack} rehearses {prod}: the lab runs {prod}'s offline plan with {stack}'s rehearsal")
    return prod, stack


def _refuse_running_lab(workdir: Path, command: str, replace: bool) -> str | None:
    """A running lab is replaced only on request: its namespaces are shared by every lab on the machine."""
    from .system import lab_namespaces

    running = lab_namespaces()
    if not running:
        return None
    what = _describe_state(workdir) or f"{len(running)} namespaces ({', '.join(running[:3])}...)"
    if replace:
        _log(f"lab: replacing the running lab: {what}")
        from . import engine_lab

        engine_lab.stop_recorded(workdir)  # a real-engine lab's keeper takes its world down itself
        return None
    fresh = "builds a fresh lab" if command != "up" else "would replace it"
    return (
        f"a lab is running: {what}. `{command}` {fresh}: `mana-infra lab down` first, or `mana-infra lab "
        f"{command} --replace`"
    )


def _read_state(workdir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((workdir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _describe_state(workdir: Path) -> str | None:
    state = _read_state(workdir)
    if not state:
        return None
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.get("started", 0)))
    rehearsal = f", rehearsal stack {state['rehearsal']}" if state.get("rehearsal") else ""
    return f"stack {state.get('stack')}, state {state.get('mode')}{rehearsal}, up since {since} ({workdir})"


def _up_engine(args: argparse.Namespace) -> int:
    """`lab up --engine`: the keeper brings the world up and deploys the stack; this follows it."""
    from mana_infra.project import find_project_dir

    from . import engine_lab

    started = time.monotonic()
    workdir = Path(args.workdir)
    state = engine_lab.start(workdir, find_project_dir(args.project_dir), _log)
    state.update(stack="prod", mode="tunnel (real engine)", started=time.time())
    (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    print(f"lab up in {time.monotonic() - started:.1f}s (stack prod deployed by the real engine, tunnel mode)")
    print("faults: mana-infra lab fault            (the list; `lab fault tunnel on`, `... off`)")
    print("watch:  mana-infra lab watch --json     (the watchdog from the watch box's place)")
    print("seat:   mana-infra lab sh 'pulumi stack output'   ($LAB_CHECK_FLAGS point check and cutover at the lab)")
    print("check:  mana-infra lab check")
    print("down:   mana-infra lab down")
    return ExitCode.OK


def _up(args: argparse.Namespace) -> int:
    if args.engine:
        return _up_engine(args)
    from .inputs import inputs_from_plan
    from .lab import Lab
    from .topology import MIRROR_DNS_IP

    started = time.monotonic()
    stack, rehearsal = lab_stacks(args.stack, args.project_dir)
    _log(f"lab: evaluating the offline plan of {stack}")
    inputs = inputs_from_plan(stack, rehearsal_stack=rehearsal, project_dir=args.project_dir)
    planned = time.monotonic() - started
    lab = Lab.from_inputs(args.workdir, inputs, args.mode, progress=_log)
    try:
        lab.up()
    except BaseException:
        lab.down()
        raise
    check = [a for a in lab.check_argv(args.mode, mirror=lab.mirror_records is not None) if a != "--json"]
    state = {
        "stack": stack,
        "rehearsal": (inputs.get("rehearsal") or {}).get("stack"),
        "mode": args.mode,
        "started": time.time(),
        "check": check,
        "ssh": lab.ssh_argv(),
    }
    (Path(args.workdir) / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    # The whole wait the operator had, the plan's evaluation included (it is a third of it).
    seconds = time.monotonic() - started
    print(f"lab up in {seconds:.2f}s ({args.mode}, stack {stack}; the offline plan {planned:.1f}s of it)")
    print(f"CA bundle {lab.ca_bundle}")
    print(f"ssh:   ip netns exec mlab-client {shlex.join(lab.ssh_argv())}")
    print("check: mana-infra lab check   (the check command from the lab's client; `lab status` shows it whole)")
    if lab.mirror_records is not None:
        print(f"mirror: the Hetzner zone on {MIRROR_DNS_IP} (lab check asks it too)")
    print(f"acme:  pebble at {lab.acme_directory} ({lab.acme_orders()} order so far)")
    print("down:  mana-infra lab down")
    return ExitCode.OK


def _check(workdir: Path, extra: Sequence[str]) -> int:
    """The saved check command in the lab's client namespace, its output and exit code as they are."""
    from .system import lab_namespaces, netns_exec_argv
    from .topology import ns_name

    state = _read_state(workdir)
    if not state or ns_name("client") not in lab_namespaces():
        _log(f"lab: no lab started by `mana-infra lab up` is running ({workdir}): start one with `mana-infra lab up`")
        return ExitCode.BAD_INPUT
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    # A single check ends within a minute or two; the watch (--watch) runs until it is stopped.
    watching = any(a == "--watch" or a.startswith("--watch=") for a in extra)
    limit = None if watching else CHECK_SECONDS
    if state.get("kind") == "engine":
        from . import engine_lab

        return engine_lab.run_in_seat(workdir, [*state["check"], *extra], limit)
    try:
        argv = netns_exec_argv(ns_name("client"), [*state["check"], *extra])
        return subprocess.run(argv, env=env, check=False, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        _log(f"lab: `mana-infra check` did not finish within {limit:g} s: stopped")
        return ExitCode.BAD_INPUT


def _e2e(args: argparse.Namespace) -> int:
    from mana_infra.project import find_project_dir

    from . import engine
    from .e2e import run_e2e
    from .system import LabError

    project_dir = find_project_dir(args.project_dir)
    found = engine.find(project_dir)
    if isinstance(found, str):
        raise LabError(f"the end-to-end runs {found}")
    _log(f"e2e: Pulumi {found.version}, plugins " + ", ".join(f"{n} {v}" for n, v in sorted(found.plugins.items())))
    if args.keep:  # the keeper runs them and keeps the world: `lab fault`, `watch`, `sh` on it afterwards
        from . import engine_lab

        workdir = Path(args.workdir)
        state = engine_lab.start(workdir, project_dir, _log, run_e2e=True)
        state.update(stack="prod", mode="tunnel (real engine, after the e2e)", started=time.time())
        (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        report = engine_lab.kept_report(workdir)
    else:
        report = run_e2e(Path(args.workdir) / "e2e", found, project_dir, _log).to_dict()
    if args.json:
        print(json.dumps(report, indent=2), flush=True)
    else:
        failed = [run["name"] for run in report["runs"] if not run["ok"]]
        verdict = "passed" if report["ok"] else "FAILED (" + ", ".join(failed or ["see above"]) + ")"
        print(f"e2e {verdict}: {len(report['runs'])} runs in {report['seconds']:.1f} s", flush=True)
    return ExitCode.OK if report["ok"] else ExitCode.NOT_OK


def status_text(workdir: Path = Path(DEFAULT_WORKDIR)) -> str:
    """What the running lab runs (from `lab up`'s state file: stack, state, since when, its check
    command), then its namespaces, each with the processes running in it (pid and name)."""
    from .system import lab_namespaces, netns_pids

    namespaces = lab_namespaces()
    if not namespaces:
        return "no lab is running (`mana-infra lab up` starts one)"
    state = _read_state(workdir)
    lines = []
    if state:
        lines += [f"lab: {_describe_state(workdir)}", f"check: ip netns exec mlab-client {shlex.join(state['check'])}"]
        lines.append("       (the same: mana-infra lab check)")
    else:
        lines.append(f"lab: running, not started by `mana-infra lab up` with --workdir {workdir} (a drill, a test?)")
    for ns in namespaces:
        processes = [f"{pid} {_process_name(pid)}" for pid in netns_pids(ns)]
        lines.append(f"{ns}: " + (", ".join(processes) if processes else "no processes"))
    return "\n".join(lines)


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(gone)"


if __name__ == "__main__":
    sys.exit(main())
