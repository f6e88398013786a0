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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import cutover
from ..check.report import Report, Way
from ..deployed import CHANGED_BY_VARIABLE
from ..errors import ExitCode
from ..lock import SWITCH_WAIT, stack_lock
from ..model import Via
from ..monitor.alerts import PUBLIC_PATH_DOWN, Alert
from ..monitor.metrics import Sample, report_samples, watchdog_samples
from ..monitor.setup import Monitor
from ..outputs import Output
from .decide import WATCHDOG, Act, Action, Decision, Policy, Round, Situation, WatchState, acted, decide
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
    monitor: Monitor | None = None  # the metrics each round leaves, the alerts' destinations
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    @property
    def pause_path(self) -> Path:
        return self.state_path.with_suffix(".pause")

    @property
    def resume_path(self) -> Path:
        return self.state_path.with_suffix(".resume")


def load_state(path: Path) -> WatchState:
    """The saved state; an unreadable one (a crash mid-write before fsync) starts afresh, said."""
    if not path.is_file():
        return WatchState()
    try:
        return WatchState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return WatchState(latched=f"its state file {path} was unreadable: a person checks what it did")


def save_state(path: Path, state: WatchState) -> None:
    """Atomically and durably: a crash mid-write leaves the last state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(json.dumps(state.to_json(), indent=2) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def run_watch(watch: Watch) -> ExitCode:
    """Round after round until stopped (or `rounds` is reached). A round that fails — the stack's
    backend out of reach, an SSH session cut, bad outputs — is said and counted as nothing seen: the
    loop never dies of it, and the state stays as the last good round left it."""
    state = load_state(watch.state_path)
    if state.pending is not None:  # stopped while acting: what happened is not known, a person looks
        state.latched = f"it was stopped while it ran a {state.pending.what}: check the stack, then resume"
        state.pending = None
    if watch.monitor is not None:  # restarted mid-incident: what its last page raised fires on
        for alert in rearm_alerts(state, watch.stack):
            watch.monitor.alert(alert, quietly=True)
    done = 0
    while watch.rounds is None or done < watch.rounds:
        started = watch.clock()
        samples: list[Sample] | None = None
        try:
            state, line, samples = _round(watch, state)
        except Exception as exc:  # this round only: the next one tries again from the start
            words = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            line = {"round": state.round, "error": f"{type(exc).__name__}: {words}"}
        save_state(watch.state_path, state)
        watch.emit(json.dumps(line))  # after the save: what a line says survives a stop right after it
        if watch.monitor is not None:
            ended = watch.clock()
            if samples is None:
                watch.monitor.metrics.round_failed()
            else:
                watch.monitor.metrics.round_done(samples, ended, ended - started)
        done += 1
        if watch.rounds is None or done < watch.rounds:
            watch.sleep(max(0.0, watch.interval - (watch.clock() - started)))
    return ExitCode.OK


def _round(watch: Watch, state: WatchState) -> tuple[WatchState, dict[str, Any], list[Sample]]:
    now = watch.clock()
    if watch.resume_path.exists():  # a person's `mana-infra watch resume`: the latch and the budget reset
        state.latched, state.resumed_at = None, now
        watch.resume_path.unlink(missing_ok=True)
    outputs = watch.engine.outputs()  # every round: a person's switch, a replaced server, since the last
    # The two vantage points at once: a round takes as long as the slower, not the two together.
    with ThreadPoolExecutor(max_workers=1) as pool:
        vps_vote = pool.submit(watch.vps, outputs)
        report = watch.checker(outputs)
        votes = [local_vote(report), vps_vote.result()]
    paused = watch.pause_path.read_text(encoding="utf-8").strip() if watch.pause_path.exists() else None
    decision, state = decide(state, Round(votes, report, outputs, now, paused), watch.policy)
    situation, acted_detail = decision.situation, None
    if decision.act is not Act.NOTHING:
        _page(watch, state, decision, decision.situation)
        state.pending = Action(now, decision.act, decision.way, False, "started")
        save_state(watch.state_path, state)  # on record before it runs: a restart does not run it twice
        green, acted_detail = _act(watch, decision)
        state.pending = None
        if green is None:  # nothing ran (another writer, or the mode changed meanwhile): try next round
            situation = Situation.WATCHING
        else:
            situation, state = acted(state, decision, green, acted_detail, now)
    if situation != state.page and (situation.pages or situation is Situation.OK):
        # A new situation worth a page, or the all-clear after one; quiet rounds change nothing here,
        # so a blip between two of the same never pages twice.
        if situation.pages or state.page.pages:
            _page(watch, state, decision, situation, acted_detail)
        state.page = situation
    line = _round_line(state, votes, decision, situation, acted_detail, report, now)
    samples = report_samples(report, outputs.get(Output.MODE_SINCE)) + watchdog_samples(
        state, votes, situation, paused is not None
    )
    return state, line, samples


def _act(watch: Watch, decision: Decision) -> tuple[bool | None, str]:
    """The same cut-over (or fail-back) as `mana-infra cutover`, under the stack's lock; None: nothing
    ran, because the stack changed mode meanwhile (a person acted) or Pulumi's lock refused."""
    via: Via | None = "edge" if decision.way is Way.EDGE else "dns"
    switch = cutover.Switch("failover", via) if decision.act is Act.CUT_OVER else cutover.Switch("tunnel")
    lines: list[str] = []
    os.environ[CHANGED_BY_VARIABLE] = f"{WATCHDOG} on {socket.gethostname()}"  # what auto fail-back reads
    options = cutover.Options(within=watch.within, log=lines.append)
    with stack_lock(watch.project_dir, watch.stack, WATCHDOG, wait=SWITCH_WAIT):
        expected = "tunnel" if decision.act is Act.CUT_OVER else "failover"
        mode = watch.engine.outputs().get(Output.MODE)
        if mode != expected:  # decided outside the lock: a person switched meanwhile, theirs stands
            return None, f"the stack is in {mode} now, not {expected}: nothing done"
        verdict = cutover.run(watch.engine, watch.checker, switch, options)
    if verdict.refused_by_lock:
        return None, "Pulumi's lock on the stack refused the update (another one runs): nothing done"
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


IN_FAILOVER = "ManaInFailover"  # after its cut-over went green: served through the VPS, fail back later


def page_alerts(payload: Mapping[str, Any]) -> list[Alert]:
    """A page as the alerts of its incident. Until the cut-over is green: ManaPublicPathDown (critical),
    each page changing it. Green: that one resolved, ManaInFailover (a warning: visitors are served,
    the tunnel is a person's to bring back) until the stack is back in tunnel mode."""
    situation, stack = payload["situation"], payload["stack"]
    details = (f"done: {payload['acted']}",) if payload.get("acted") else ()
    summary, command = f"{situation}: {payload['words']}", payload.get("command")

    def alert(name: str, firing: bool, severity: str = "critical") -> Alert:
        return Alert(name, stack, "watchdog", firing, time.time(), summary, details, command, dict(payload), severity)

    if situation == "resolved":
        return [alert(PUBLIC_PATH_DOWN, False), alert(IN_FAILOVER, False, "warning")]
    if situation in (Situation.GREEN.value, Situation.TUNNEL_BACK.value):
        return [alert(PUBLIC_PATH_DOWN, False), alert(IN_FAILOVER, True, "warning")]
    return [alert(PUBLIC_PATH_DOWN, True)]


def rearm_alerts(state: WatchState, stack: str) -> list[Alert]:
    """At a restart mid-incident: the alert its last page raised, again (the process forgot it; only
    Alertmanager is told, quietly, so that it neither lapses nor is a person paged twice)."""
    if not state.page.pages:
        return []
    words = "(the watchdog restarted during the incident)"
    return [a for a in page_alerts({"situation": state.page.value, "stack": stack, "words": words}) if a.firing]


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
        "command": decision.command,
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
