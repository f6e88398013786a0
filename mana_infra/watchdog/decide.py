"""What the watchdog does with one round's votes: the rules, pure, on a state that survives restarts.

It cuts over only when every voting vantage point has seen the public path down for `rounds` rounds in a
row, at least `min_voters` of them voting; when the verdict names a way that a machine may take (through
the edge or DNS-only — never the emergency path, whose registrar switch needs a person, nor a direct way
to the home, which puts the home's own address in front of every visitor); when the
standby is ready as the watch box sees it and as the VPS sees it; and when its budget allows (at most
`max_actions` automatic cut-overs per `window`, then it latches and pages). A cut-over that is not green
within its budget latches it too: no ping-pong. Paused, it probes and pages but never acts. Fail-back is
a person's unless `auto_failback`: then only after the tunnel's probe has answered without a break for
`stable` seconds. Each change of the situation is one page; a round that changes nothing pages nothing.
(Cloudflare Load Balancing and Route 53 decide the same way: a quorum of vantage points, consecutive
failures, and no flapping: see ../shared/notes/watchdog-facts.md.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..check.decision import adoption_blocker, cutover_command, stack_flag, switch_blockers
from ..check.report import Json, Report, TunnelState, Way
from ..outputs import Output
from .votes import Vote, VoteKind


@dataclass(frozen=True)
class Policy:
    rounds: int = 3  # rounds in a row that every voter sees the public path down
    min_voters: int = 2  # vantage points that must vote (not abstain)
    window: float = 86400.0  # the budget's window, in seconds
    max_actions: int = 1  # automatic cut-overs within the window; then it latches
    auto_failback: bool = False
    stable: float = 900.0  # the tunnel answering without a break before an automatic fail-back
    stale: float = 60.0  # a down round older than this does not count towards the next (not in a row)


# What the stack's modeChangedBy says after the watchdog's own cut-over (deployed.py): the only failover
# it may undo by itself.
WATCHDOG = "mana-infra watch (automatic)"


class Act(StrEnum):
    NOTHING = "nothing"
    CUT_OVER = "cut-over"
    FAIL_BACK = "fail-back"


class Situation(StrEnum):
    """What the pages are about: one page when it changes."""

    OK = "ok"  # the public path answers (tunnel mode), nothing to do
    WATCHING = "watching"  # some vantage points see it down, not yet every one for enough rounds
    TOO_FEW = "too-few-votes"  # the path looks down, but fewer vantage points vote than the rule needs
    NO_WAY = "no-way"  # down, and no cut-over helps (the Mac Mini or its line, the VPS)
    EMERGENCY = "emergency"  # down, and only the emergency path fits: a person's
    HOME = "home-fits"  # down, and only the home's direct way fits (Plan C): a person's
    NOT_READY = "standby-not-ready"  # down, a way fits, the standby is not ready for it
    PAUSED = "paused-outage"  # down, a way fits, and a person paused the watchdog
    LATCHED = "latched"  # down, and the watchdog acts no more until a person resumes it
    ACTING = "acting"  # it cuts over (or fails back) now
    GREEN = "acted-green"  # it cut over, every host green
    NOT_GREEN = "acted-not-green"  # it cut over, not green within the budget: latched
    FAILED_OVER = "failed-over"  # the stack is in failover, the tunnel not back
    TUNNEL_BACK = "tunnel-back"  # in failover, the tunnel answers again: fail back when ready

    @property
    def pages(self) -> bool:
        """Whether reaching it is worth a page. Not the quiet ones: all is well, a count that has not
        reached its rounds (flapping would page every flap), too few voices (the watch box's own
        network flapping), the stack in failover while the tunnel is still down (paged as GREEN)."""
        return self not in (Situation.OK, Situation.WATCHING, Situation.TOO_FEW, Situation.FAILED_OVER)


@dataclass
class Action(Json):
    at: float
    what: Act
    way: Way | None
    green: bool
    detail: str


@dataclass
class WatchState(Json):
    """What survives a restart: the counters, the latch, what it did, what it last paged."""

    round: int = 0
    down_rounds: int = 0
    last_down_at: float | None = None  # the last round that counted (rounds in a row, not days apart)
    tunnel_green_since: float | None = None
    latched: str | None = None  # why, while latched
    resumed_at: float | None = None  # a person's resume: the budget counts from here
    actions: list[Action] = field(default_factory=list)
    pending: Action | None = None  # on record while it acts: stopped meanwhile, a restart latches
    page: Situation = Situation.OK


@dataclass(frozen=True)
class Decision:
    act: Act
    situation: Situation
    words: str  # what a page says
    way: Way | None = None
    command: str | None = None  # what a person can run


@dataclass(frozen=True)
class Round:
    """What one round saw: the votes, the watch box's check report, the stack's outputs, the time, and
    the pause a person set (None: not paused)."""

    votes: Sequence[Vote]
    report: Report
    outputs: Mapping[str, Any]
    now: float
    paused: str | None = None


def decide(state: WatchState, seen: Round, policy: Policy) -> tuple[Decision, WatchState]:
    """This round's decision, and the state after it (the counters; an action is recorded by `acted`)."""
    state = replace(state, round=state.round + 1)
    if seen.report.mode != "tunnel":
        return _in_failover(state, seen, policy)
    votes = seen.votes
    voting = [v for v in votes if v.kind is not VoteKind.ABSTAIN]
    all_down = len(voting) >= policy.min_voters and all(v.kind is VoteKind.DOWN for v in voting)
    any_down = any(v.kind is VoteKind.DOWN for v in voting)
    if state.last_down_at is not None and seen.now - state.last_down_at > policy.stale:
        state = replace(state, down_rounds=0)  # not in a row: the watchdog stopped, or rounds were missed
    if any(v.kind is VoteKind.UP for v in voting):
        state = replace(state, down_rounds=0)  # any voice saying it answers starts the count over
    if len(voting) < policy.min_voters:
        # Too few voices to count: no round counts (the counter waits, and goes stale).
        if any_down:
            return Decision(Act.NOTHING, Situation.TOO_FEW, _too_few(votes, policy)), state
        # No voice says down, and too few vote to tell: not "ok" — that would page "resolved" after an
        # outage's page while the watch box is merely blind — but the quiet too-few, which pages nothing
        # and leaves the last page standing.
        words = f"no vantage point sees the path down, but too few vote to tell: {_said(votes)}"
        return Decision(Act.NOTHING, Situation.TOO_FEW, words), state
    if not all_down:
        if any_down:
            return Decision(Act.NOTHING, Situation.WATCHING, _split(votes)), state
        return Decision(Act.NOTHING, Situation.OK, "the public path answers from every vantage point"), state
    state = replace(state, down_rounds=state.down_rounds + 1, last_down_at=seen.now)
    if state.down_rounds < policy.rounds:
        words = f"the public path is down from every vantage point, round {state.down_rounds} of {policy.rounds}"
        return Decision(Act.NOTHING, Situation.WATCHING, words), state
    return _outage(state, seen, policy)


def _outage(state: WatchState, seen: Round, policy: Policy) -> tuple[Decision, WatchState]:
    """Down from every vantage point for enough rounds: act, or say why not."""
    report, outputs, paused = seen.report, seen.outputs, seen.paused
    diagnosis, stack = report.diagnosis, report.stack
    down = f"the public path is down from every vantage point for {state.down_rounds} rounds"
    if diagnosis.way is None:
        return Decision(Act.NOTHING, Situation.NO_WAY, f"{down}; no cut-over helps: {diagnosis.why}"), state
    command = diagnosis.command or cutover_command(diagnosis.way, stack, report_emergency(outputs))
    if diagnosis.way.home:
        words = (
            f"{down}; only the home's direct way fits ({diagnosis.way.words}), which shows the home's own address "
            f"to every visitor: a person decides: {diagnosis.why}"
        )
        return Decision(Act.NOTHING, Situation.HOME, words, diagnosis.way, command), state
    if diagnosis.way is Way.EMERGENCY:
        words = f"{down}; only the emergency path fits, and its registrar switch needs a person: {diagnosis.why}"
        return Decision(Act.NOTHING, Situation.EMERGENCY, words, diagnosis.way, command), state
    if paused:
        words = f"{down}; a cut-over {diagnosis.way.words} fits, but the watchdog is paused ({paused})"
        return Decision(Act.NOTHING, Situation.PAUSED, words, diagnosis.way, command), state
    if state.latched:
        words = f"{down}; the watchdog is latched ({state.latched}): a person decides"
        return Decision(Act.NOTHING, Situation.LATCHED, words, diagnosis.way, command), state
    blockers = _blockers(seen.votes, report, outputs, diagnosis.way)
    if blockers:
        words = f"{down}; a cut-over {diagnosis.way.words} fits, but the standby is not ready: {'; '.join(blockers)}"
        return Decision(Act.NOTHING, Situation.NOT_READY, words, diagnosis.way, command), state
    since = max(seen.now - policy.window, state.resumed_at or float("-inf"))
    recent = [a for a in state.actions if a.what is Act.CUT_OVER and a.at > since]
    if len(recent) >= policy.max_actions:
        why = f"{len(recent)} automatic cut-over(s) within {policy.window / 3600:g} h, its budget"
        state = replace(state, latched=why)
        words = f"{down}; the watchdog has spent its budget ({why}) and latches: a person decides"
        return Decision(Act.NOTHING, Situation.LATCHED, words, diagnosis.way, command), state
    words = f"{down}; cutting over {diagnosis.way.words}: {diagnosis.why}"
    return Decision(Act.CUT_OVER, Situation.ACTING, words, diagnosis.way, command), state


def _blockers(votes: Sequence[Vote], report: Report, outputs: Mapping[str, Any], way: Way) -> list[str]:
    """The standby ready as the watch box sees it (check's own rule) and as the VPS sees it."""
    stack = report.stack or "prod"
    blockers = [b for b in [adoption_blocker(outputs, "failover", way, stack)] if b]
    blockers += switch_blockers(report, outputs, "failover", way)
    vps = next((v for v in votes if v.vantage == "vps"), None)
    if vps is None or vps.standby_ready is not True:
        blockers.append(
            f"the VPS does not see the Mac Mini answer across WireGuard ({vps.reason if vps else 'no vote'})"
        )
    return blockers


def _in_failover(state: WatchState, seen: Round, policy: Policy) -> tuple[Decision, WatchState]:
    """The stack is on the VPS: watch the tunnel's probe for a fail-back (a person's, unless auto_failback)."""
    report, now, paused = seen.report, seen.now, seen.paused
    state = replace(state, down_rounds=0)
    probe = report.tunnel_probe
    if probe.state is not TunnelState.UP:
        state = replace(state, tunnel_green_since=None)
        return Decision(
            Act.NOTHING, Situation.FAILED_OVER, f"in failover; the tunnel is not back ({probe.error})"
        ), state
    since = state.tunnel_green_since if state.tunnel_green_since is not None else now
    state = replace(state, tunnel_green_since=since)
    command = f"mana-infra failback{stack_flag(report.stack)}"
    green_for = now - since
    # Only its own cut-over: a person's (cutover, or the by-hand flip) is the person's to undo.
    its_own = str(seen.outputs.get(Output.MODE_CHANGED_BY) or "").startswith(WATCHDOG)
    if policy.auto_failback and its_own and not paused and not state.latched and green_for >= policy.stable:
        words = f"the tunnel has answered for {green_for:.0f} s without a break: failing back"
        return Decision(Act.FAIL_BACK, Situation.ACTING, words, None, command), state
    words = f"the tunnel serves again ({probe.host} answers through it, for {green_for:.0f} s): fail back when ready"
    return Decision(Act.NOTHING, Situation.TUNNEL_BACK, words, None, command), state


def acted(state: WatchState, decision: Decision, green: bool, detail: str, now: float) -> tuple[Situation, WatchState]:
    """Record what the watchdog did; not green latches it (no ping-pong)."""
    action = Action(now, decision.act, decision.way, green, detail)
    state = replace(state, actions=[*state.actions, action], down_rounds=0, tunnel_green_since=None)
    if green:
        return Situation.GREEN, state
    return Situation.NOT_GREEN, replace(state, latched=f"the {decision.act} at round {state.round} was not green")


def report_emergency(outputs: Mapping[str, Any]) -> str | None:
    value = outputs.get(Output.EMERGENCY_CUTOVER)
    return str(value) if value else None


def _too_few(votes: Sequence[Vote], policy: Policy) -> str:
    return f"the public path looks down, but fewer than {policy.min_voters} vantage points vote: {_said(votes)}"


def _split(votes: Sequence[Vote]) -> str:
    return f"the vantage points disagree: {_said(votes)}"


def _said(votes: Sequence[Vote]) -> str:
    return "; ".join(f"{v.vantage}: {v.kind} ({v.reason})" for v in votes)
