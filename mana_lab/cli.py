"""``mana-infra lab up|down|drill|status``: the lab from the command line.

``main(argv)`` takes the arguments after ``lab``. The lab always runs the offline plan of a stack
(``--stack``, default prod): its artifacts and DNS records, see inputs.py. ``up`` leaves the lab
running (its daemons are detached) until ``down``. ``drill --json`` prints the drill's report as JSON
on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .inputs import STATES

DEFAULT_WORKDIR = "/tmp/mana-infra-lab"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `mana-infra lab status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="mana-infra lab", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"lab state and logs (default {DEFAULT_WORKDIR})")
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        type=Path,
        help="the project whose offline plan the lab runs (default: the one around the working directory)",
    )
    stack_help = "the stack whose offline plan the lab runs (default prod)"
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build the lab from the stack's offline plan and leave it running")
    p_up.add_argument("--stack", default="prod", help=stack_help)
    p_up.add_argument(
        "--mode",
        default="tunnel",
        choices=tuple(STATES),
        help="the standby's state to start in: tunnel (default), failover (through the edge), failover-dns",
    )
    sub.add_parser("down", help="tear the lab down, including leftovers of crashed runs")
    sub.add_parser("status", help="namespaces and processes of the lab")
    p_drill = sub.add_parser("drill", help="run the failover drill in a fresh lab (torn down afterwards)")
    p_drill.add_argument("--stack", default="prod", help=stack_help)
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
    args = parser.parse_args(list(argv) if argv is not None else None)

    from .system import LabError, cleanup_leftovers

    try:
        if args.command == "up":
            from .inputs import inputs_from_plan
            from .lab import Lab
            from .topology import MIRROR_DNS_IP

            lab = Lab.from_inputs(args.workdir, inputs_from_plan(args.stack, project_dir=args.project_dir), args.mode)
            try:
                seconds = lab.up()
            except BaseException:
                lab.down()
                raise
            print(f"lab up in {seconds:.2f}s ({args.mode}, stack {args.stack}); CA bundle {lab.ca_bundle}")
            print(f"ssh:   ip netns exec mlab-client {shlex.join(lab.ssh_argv())}")
            argv = lab.check_argv(args.mode, mirror=lab.mirror_records is not None)
            print(f"check: ip netns exec mlab-client {shlex.join(a for a in argv if a != '--json')}")
            if lab.mirror_records is not None:
                print(f"mirror: the Hetzner zone on {MIRROR_DNS_IP} (the check above asks it too)")
            print(f"acme:  pebble at {lab.acme_directory} ({lab.acme_orders()} order so far)")
            print("down:  mana-infra lab down")
            return 0
        if args.command == "down":
            removed = cleanup_leftovers(Path(args.workdir) / "pids")
            # The work folder holds the lab's keys and certificates: nothing of it outlives the lab.
            if Path(args.workdir).is_dir():
                shutil.rmtree(args.workdir, ignore_errors=True)
                removed.append(f"the work folder {args.workdir}")
            print("removed: " + "; ".join(removed) if removed else "nothing to remove")
            return 0
        if args.command == "status":
            print(status_text())
            return 0
        if args.command == "e2e":
            return _e2e(args)
        if args.command == "drill":
            from .drill import run_drill
            from .inputs import inputs_from_plan

            _log(f"drill: evaluating the offline plan of {args.stack} (its three states)")
            report = run_drill(
                inputs_from_plan(args.stack, project_dir=args.project_dir),
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
            return 0 if report.ok else 1
    except LabError as exc:
        _log(f"lab: {exc}")
        return 2
    except KeyboardInterrupt:
        _log("lab: interrupted; cleaned up")
        return 130
    return 2


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
    report = run_e2e(Path(args.workdir) / "e2e", found, project_dir, _log)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2), flush=True)
    else:
        failed = [run.name for run in report.runs if not run.ok]
        verdict = "passed" if report.ok else "FAILED (" + ", ".join(failed or ["see above"]) + ")"
        print(f"e2e {verdict}: {len(report.runs)} runs in {report.seconds:.1f} s", flush=True)
    return 0 if report.ok else 1


def status_text() -> str:
    """The lab's namespaces, each with the processes running in it (pid and name)."""
    from .system import lab_namespaces, netns_pids

    namespaces = lab_namespaces()
    if not namespaces:
        return "no lab is running (`mana-infra lab up` starts one)"
    lines = []
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
