"""`mana-infra watch`: the watchdog's loop. Each round: check from this machine, the VPS's vote over
SSH, the rules (decide.py), and when they say so the same cut-over (or fail-back) as `mana-infra
cutover` — Pulumi's Automation API, the stack's lock, every host green within the budget. One page per
change of the situation; the state in a file, so a restart loses no count. `pause`, `resume` and
`status` act on that file's neighbours (the running loop reads them each round)."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import cutover
from ..check.report import Report, Way
from ..deployed import CHANGED_BY_VARIABLE
from ..errors import ExitCode
from ..lock import stack_lock
from ..model import Via
from .decide import Act, Decision, Policy, Situation, WatchState, acted, decide
from .votes import Vote, local_vote

Pager = Callable[[dict[str, Any]], None]
VoteSource = Callable[[Mapping[str, Any]], Vote]


@dataclass
class Watch:
    """What one watchdog runs with; the engine, the checks, the VPS's vote and the pager are seams."""

    stack: str
    project_dir: Path
    state_path: Path
    policy: Policy
    engine: cutover.Engine
    checker: cutover.Checker
    vps: VoteSource
    pager: Pager
    interval: float = 10.0
    within: float | None = None  # the time limit for green after acting (None: the way's budget + 60 s)
    rounds: int | None = None  # stop after this many rounds (tests, the lab)
    emit: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    @property
    def pause_path(self) -> Path:
        return self.state_path.with_suffix(".pause")

    @property
    def resume_path(self) -> Path:
        return self.state_path.with_suffix(".resume")


def load_state(path: Path) -> WatchState:
    if not path.is_file():
        return WatchState()
    return WatchState.from_json(json.loads(path.read_text(encoding="utf-8")))


def save_state(path: Path, state: WatchState) -> None:
    """Atomically: a crash mid-write leaves the last state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def run_watch(watch: Watch) -> ExitCode:
    """Round after round until stopped (or `rounds` is reached)."""
    state = load_state(watch.state_path)
    outputs: Mapping[str, Any] = watch.engine.outputs()
    done = 0
    while watch.rounds is None or done < watch.rounds:
        started = watch.clock()
        state, outputs = _round(watch, state, outputs)
        save_state(watch.state_path, state)
        done += 1
        if watch.rounds is None or done < watch.rounds:
            watch.sleep(max(0.0, watch.interval - (watch.clock() - started)))
    return ExitCode.OK


def _round(watch: Watch, state: WatchState, outputs: Mapping[str, Any]) -> tuple[WatchState, Mapping[str, Any]]:
    now = watch.clock()
    if watch.resume_path.exists():  # a person's `mana-infra watch resume`: the latch lifts
        state.latched = None
        watch.resume_path.unlink(missing_ok=True)
    report = watch.checker(outputs)
    votes = [local_vote(report), watch.vps(outputs)]
    paused = watch.pause_path.read_text(encoding="utf-8").strip() if watch.pause_path.exists() else None
    decision, state = decide(state, votes, report, outputs, watch.policy, now, paused)
    situation, acted_detail = decision.situation, None
    if decision.act is not Act.NOTHING:
        _page(watch, state, decision, decision.situation)
        green, acted_detail = _act(watch, decision)
        situation, state = acted(state, decision, green, acted_detail, now)
        outputs = watch.engine.outputs()
    if situation != state.page:
        # A new situation worth a page, or the all-clear after one.
        if situation.pages or (situation is Situation.OK and state.page.pages):
            _page(watch, state, decision, situation, acted_detail)
        state.page = situation
    watch.emit(json.dumps(_round_line(state, votes, decision, situation, acted_detail, report, now)))
    return state, outputs


def _act(watch: Watch, decision: Decision) -> tuple[bool, str]:
    """The same cut-over (or fail-back) as `mana-infra cutover`, under the stack's lock."""
    via: Via | None = "edge" if decision.way is Way.EDGE else "dns"
    switch = cutover.Switch("failover", via) if decision.act is Act.CUT_OVER else cutover.Switch("tunnel")
    lines: list[str] = []
    os.environ[CHANGED_BY_VARIABLE] = f"mana-infra watch (automatic) on {socket.gethostname()}"
    options = cutover.Options(within=watch.within, log=lines.append)
    with stack_lock(watch.project_dir, watch.stack, "mana-infra watch (automatic)"):
        verdict = cutover.run(watch.engine, watch.checker, switch, options)
    last = verdict.stages[-1] if verdict.stages else None
    detail = f"{verdict.green_hosts} of {verdict.hosts} hosts green" + (f"; {last.name}: {last.detail}" if last else "")
    return verdict.green, detail


def _page(watch: Watch, state: WatchState, decision: Decision, situation: Situation, detail: str | None = None) -> None:
    resolved = situation is Situation.OK and state.page.pages
    watch.pager(
        {
            "event": "watchdog",
            "stack": watch.stack,
            "situation": "resolved" if resolved else situation.value,
            "words": "resolved: the public path answers again" if resolved else decision.words,
            "way": decision.way.value if isinstance(decision.way, Way) else None,
            "command": decision.command,
            "acted": detail,
            "round": state.round,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )


def _round_line(
    state: WatchState,
    votes: list[Vote],
    decision: Decision,
    situation: Situation,
    detail: str | None,
    report: Report,
    now: float,
) -> dict[str, Any]:
    """One line per round (`--json`): what the lab's tests and a person's `jq` read."""
    return {
        "round": state.round,
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "mode": report.mode,
        "votes": {vote.vantage: vote.kind.value for vote in votes},
        "why": {vote.vantage: vote.reason for vote in votes},
        "decision": decision.act.value,
        "situation": situation.value,
        "acted": detail,
        "down_rounds": state.down_rounds,
        "latched": state.latched,
        "words": decision.words,
    }


def pause(state_path: Path, reason: str) -> str:
    """`mana-infra watch pause`: the loop keeps probing and paging, and acts no more."""
    since = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"by {getpass.getuser()}@{socket.gethostname()} since {since}" + (f": {reason}" if reason else "")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.with_suffix(".pause").write_text(text + "\n", encoding="utf-8")
    return text


def resume(state_path: Path) -> None:
    """`mana-infra watch resume`: acting again; a latch lifts at the next round."""
    state_path.with_suffix(".pause").unlink(missing_ok=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.with_suffix(".resume").write_text("resume\n", encoding="utf-8")
