"""Votes: what each vantage point makes of the public path, and whether it sees the standby ready.

Two vantage points: the watch box (its own check report) and the VPS (Hetzner's network: it probes the
public path and the Mac Mini through WireGuard itself, over the SSH session the watch box holds — an
authenticated, encrypted channel that exposes nothing new on the VPS). A vantage point whose own network
is in trouble abstains instead of voting "down" (louislam/uptime-kuma #2286: a monitor's own outage
taken for everyone's).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..check.decision import standby_blockers
from ..check.probes import VpsRunner
from ..check.report import AnsweredBy, Json, PathState, Report, TunnelState, Way
from ..model import Service


class VoteKind(StrEnum):
    DOWN = "down"  # the public path is down from here (half the hosts or more fail)
    UP = "up"
    ABSTAIN = "abstain"  # this vantage point's own network is in trouble: it says nothing


@dataclass(frozen=True)
class Vote(Json):
    vantage: str  # "watch" (the watch box), "vps"
    kind: VoteKind
    standby_ready: bool | None  # the standby seen ready from here (None: not seen)
    way: Way | None  # the way the verdict names from here (the watch box only)
    reason: str


def reached_nothing(report: Report) -> bool:
    """The watch box reached nothing at all — no host, no VPS, no tunnel probe, no API: its own network."""
    answered = (
        any(host.live.status is not None for host in report.hosts)
        or any(host.standby.answered_by is not AnsweredBy.NOBODY for host in report.hosts)
        or report.vps.health.status is not None
        or report.tunnel_probe.state in (TunnelState.UP, TunnelState.DOWN)
        or report.cloudflare_api.ok is True
    )
    return not answered


def local_vote(report: Report) -> Vote:
    """The watch box's vote, from its check report."""
    ready = not standby_blockers(report)
    if reached_nothing(report):
        return Vote("watch", VoteKind.ABSTAIN, None, None, "this machine reaches nothing: its own network")
    down = report.public_path.state is PathState.DOWN
    public = report.public_path
    why = f"{public.failed} of {public.total} hosts fail" if public.failed else "every host answers"
    return Vote("watch", VoteKind.DOWN if down else VoteKind.UP, ready, report.diagnosis.way, why)


PROBE_SOURCE = Path(__file__).with_name("vps_probe.py")
NEUTRAL_NAME = "hetzner.com"  # any name outside the zone: its resolver's answer says the VPS's network works


def vps_probe_script(
    services: tuple[Service, ...], macmini: str, timeout: float, nameservers: Sequence[str] = ()
) -> str:
    """The bash script (one SSH session) that runs vps_probe.py on the VPS with this spec (nameservers:
    instead of the VPS's /etc/resolv.conf, for the tests)."""
    spec = {
        "hosts": [{"host": s.host, "port": s.port, "path": s.health} for s in services],
        "macmini": macmini,
        "timeout": timeout,
        "neutral": NEUTRAL_NAME,
        "nameservers": list(nameservers),
    }
    source = PROBE_SOURCE.read_text(encoding="utf-8")
    return f"python3 - {shlex.quote(json.dumps(spec))} <<'MANA_VOTE_PROBE'\n{source}\nMANA_VOTE_PROBE\n"


def vps_vote_from(output: str, problem: str = "") -> Vote:
    """The VPS's vote from its probe's JSON line; no answer is an abstention, saying why."""
    try:
        result = json.loads(output.strip().splitlines()[-1])
        public, standby = dict(result["public"]), dict(result["standby"])
    except (IndexError, ValueError, KeyError, TypeError):
        return Vote("vps", VoteKind.ABSTAIN, None, None, f"no vote from the VPS: {problem or 'no answer'}")
    if result.get("resolver") != "ok":
        return Vote("vps", VoteKind.ABSTAIN, None, None, "the VPS's resolver does not answer: its own network")
    failed = sorted(host for host, code in public.items() if not 200 <= int(code) < 500)
    unserved = sorted(host for host, code in standby.items() if not 200 <= int(code) < 500)
    down = bool(public) and len(failed) * 2 >= len(public)
    why = f"{len(failed)} of {len(public)} hosts fail from Hetzner's network"
    if unserved:
        why += f"; the Mac Mini does not answer across WireGuard for {len(unserved)}"
    return Vote("vps", VoteKind.DOWN if down else VoteKind.UP, not unserved and bool(standby), None, why)


def vps_vote(
    runner: VpsRunner, services: tuple[Service, ...], macmini: str, timeout: float, nameservers: Sequence[str] = ()
) -> Vote:
    """Ask the VPS for its vote over SSH (at most a few probe timeouts long)."""
    try:
        done = runner(vps_probe_script(services, macmini, timeout, nameservers), timeout * 3 + 5)
    except Exception as exc:  # the runner's own failure: no vote
        return vps_vote_from("", f"{type(exc).__name__}: {exc}")
    problem = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return vps_vote_from(done.stdout, problem)
