"""`mana-infra watch [run|pause|resume|status]`: the watchdog from the command line (run.py is the
loop). It runs where the README installs the watch: off-site, with the Pulumi CLI, the project's
checkout and the stack's login (it acts through Pulumi, as `mana-infra cutover` does), the SSH key the
Caddy command needs (the same key asks the VPS for its vote), and the webhook in its environment."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ExitCode
from ..outputs import Output
from .decide import Policy
from .votes import Vote, VoteKind, vps_vote

STATE_DIR = Path("/var/lib/mana-infra")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The watchdog's own flags (check's, for its rounds, are added beside them)."""
    parser.add_argument("action", nargs="?", default="run", choices=("run", "pause", "resume", "status"),
                        help="run the watchdog (default), or pause, resume or show the one that runs")  # fmt: skip
    parser.add_argument("--stack", help="the stack it watches and switches (default: the selected stack)")
    parser.add_argument(
        "--project-dir", metavar="DIR", type=Path, help="the project folder (default: the one around here)"
    )
    where = f"{STATE_DIR}/watch-<stack>.json"
    parser.add_argument(
        "--state", metavar="FILE", type=Path, help=f"its state: counters, latch, acts (default {where})"
    )
    rules = parser.add_argument_group("the rules (defaults: a tunnel outage is every host green within 60 s)")
    rules.add_argument("--interval", type=float, default=10.0, help="seconds between rounds (default 10)")
    rules.add_argument("--threshold", type=int, default=3, help="rounds in a row every vantage point sees it down (3)")
    rules.add_argument("--min-voters", type=int, default=2, help="vantage points that must vote (default 2)")
    rules.add_argument("--window", type=float, default=86400.0, help="the budget's window in seconds (a day)")
    rules.add_argument("--max-actions", type=int, default=1, help="automatic cut-overs per window (default 1)")
    rules.add_argument("--auto-failback", action="store_true", help="fail back by itself after --stable seconds")
    rules.add_argument("--stable", type=float, default=900.0, help="the tunnel's green window before that (900)")
    green = "time limit for every host green after acting (default: the way's budget + 60 s)"
    rules.add_argument("--within", type=float, metavar="SECONDS", help=green)
    out = parser.add_argument_group("output")
    out.add_argument("--rounds", type=int, metavar="N", help="stop after N rounds")
    out.add_argument("--json", action="store_true", help="one JSON line per round on stdout")
    out.add_argument("--webhook", metavar="URL", help="POST each page here (default: $MANA_WATCH_WEBHOOK)")
    from ..monitor.setup import add_flags

    add_flags(out)
    out.add_argument("--reason", default="", help="with pause: why (shown in its pages and status)")


def run(args: argparse.Namespace) -> int:
    from ..project import find_project_dir, selected_stack
    from . import run as loop

    project_dir = find_project_dir(args.project_dir)
    stack = args.stack or selected_stack(project_dir)
    state_path = args.state or STATE_DIR / f"watch-{stack}.json"
    if args.action == "pause":
        print(f"mana-infra watch: stack {stack} paused {loop.pause(state_path, args.reason)}")
        return ExitCode.OK
    if args.action == "resume":
        loop.resume(state_path)
        print(f"mana-infra watch: stack {stack} resumes acting at its next round (a latch lifts too)")
        return ExitCode.OK
    if args.action == "status":
        return _status(state_path, stack)
    from ..monitor.setup import sigterm_ends_the_loop

    watch = _watch(args, project_dir, stack, state_path)
    watch.monitor.start()
    with sigterm_ends_the_loop():
        try:
            return loop.run_watch(watch)
        finally:
            watch.monitor.close()  # alerts on their way get a moment before the process ends


def _watch(args: argparse.Namespace, project_dir: Path, stack: str, state_path: Path) -> Any:
    from ..cutover import AutomationEngine, check_with
    from ..monitor.setup import monitor_for
    from .run import Watch, page_alerts

    checker = check_with(args, stack)
    monitor = monitor_for(args, stack, "watchdog", args.interval)

    def page(payload: dict[str, Any]) -> None:
        command = f" -- the command: {payload['command']}" if payload.get("command") else ""
        print(f"PAGE {payload['situation']}: {payload['words']}{command}", file=sys.stderr, flush=True)
        for alert in page_alerts(payload):
            monitor.alert(alert)

    def vps(outputs: Mapping[str, Any]) -> Vote:
        endpoints, options = checker.inputs(outputs)
        if options.runner is None:
            return Vote("vps", VoteKind.ABSTAIN, None, None, f"no SSH to the VPS: {options.ssh_skipped}")
        macmini = str(outputs.get(Output.MACMINI_ADDRESS) or "10.0.0.2")
        return vps_vote(options.runner, endpoints.services, macmini, options.timeout)

    policy = Policy(
        args.threshold,
        args.min_voters,
        args.window,
        args.max_actions,
        args.auto_failback,
        args.stable,
        # Rounds in a row: a gap of three intervals (at least a minute: a round itself can take that
        # long when its probes time out) is no longer a row.
        max(60.0, 3 * args.interval),
    )
    return Watch(
        stack=stack,
        project_dir=project_dir,
        state_path=state_path,
        policy=policy,
        engine=AutomationEngine(stack, project_dir),
        checker=checker,
        vps=vps,
        pager=page,
        interval=args.interval,
        within=args.within,
        rounds=args.rounds,
        emit=(lambda line: print(line, flush=True)) if args.json else (lambda _line: None),
        monitor=monitor,
    )


def _status(state_path: Path, stack: str) -> int:
    from .run import load_state

    state = load_state(state_path)
    pause_path = state_path.with_suffix(".pause")
    paused = pause_path.read_text(encoding="utf-8").strip() if pause_path.exists() else None
    print(json.dumps({"stack": stack, "state": str(state_path), "paused": paused, **state.to_json()}, indent=2))
    return ExitCode.OK
