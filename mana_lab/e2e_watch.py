"""The watchdog's runs in the e2e: `mana-infra watch` from the operator's seat (the watch box), the VPS
its second vantage point, each fault made and mended through the faults table (faults.py) that `lab
fault` uses. Rounds run faster than the default (tests may), the rules are the defaults otherwise."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mana_infra.outputs import Output
from mana_infra.watchdog.decide import WATCHDOG

from . import topology as topo
from .faults import Faults

if TYPE_CHECKING:
    from .e2e import EndToEnd, Run

Lines = list[tuple[float, str]]


def _watch(e2e: EndToEnd, state: Path, *flags: str, timeout: float = 2) -> str:
    lab = [*e2e.world.check_flags(timeout=timeout), "--mirror-nameserver", topo.MIRROR_DNS_IP]
    return shlex.join(["mana-infra", "watch", "--stack", "prod", "--state", str(state), "--json", *flags, *lab])


def rounds_of(lines: Lines) -> list[tuple[float, dict[str, Any]]]:
    return [(at, json.loads(line)) for at, line in lines if line.startswith("{")]


def pages_of(lines: Lines) -> list[str]:
    return [line for _, line in lines if line.startswith("PAGE ")]  # the watchdog's stderr


def _changed_by(e2e: EndToEnd) -> str:
    return str(e2e.op.outputs().get(Output.MODE_CHANGED_BY))


def tunnel_cut(e2e: EndToEnd, run: Run, interval: float = 1.0) -> None:
    """The tunnel cut: it cuts over through the edge by itself, every host green within 60 s of the
    fault (`make bench` reports it); the tunnel mended: it fails back by itself (opt-in) once the
    tunnel's probe has been green for the stable window, not before; the tunnel cut again the same
    day: its budget spent, it latches and pages once, and acts no more. `make bench` runs it at the
    default interval (10 s), the tests faster."""
    op, world = e2e.op, e2e.world
    faults = Faults(world)
    stable = 4.0
    state = e2e.workdir / "watch" / "watch-prod.json"
    flags = ("--interval", f"{interval:g}", "--rounds", "200", "--auto-failback", "--stable", f"{stable:g}")
    run.command = _watch(e2e, state, *flags)
    marks: dict[str, float] = {}

    def until(line: str) -> bool:
        if '"acted-green"' in line and "mended" not in marks:
            faults.set("tunnel", False)
            marks["mended"] = time.monotonic()
        elif '"decision": "fail-back"' in line and "cut again" not in marks:
            faults.set("tunnel", True)
            marks["cut again"] = time.monotonic()
        return "cut again" in marks and '"situation": "latched"' in line

    faults.set("tunnel", True)
    fault = time.monotonic()
    try:
        lines = op.stream(run.command, until=until, timeout=60 + 30 * interval)
    finally:
        faults.set("tunnel", False)
    rounds = rounds_of(lines)
    run.details["rounds"] = [r for _, r in rounds]
    acts = [(at, r) for at, r in rounds if r["decision"] != "nothing"]
    run.expect([r["decision"] for _, r in acts] == ["cut-over", "fail-back"], f"acts: {[r for _, r in acts]}")
    if len(acts) != 2:
        return
    (cut_at, cut), (back_at, back) = acts
    run.details["fault_to_green_seconds"] = round(cut_at - fault, 1)
    run.expect(cut_at - fault < 60, f"every host green {cut_at - fault:.1f} s after the fault: the goal is 60 s")
    e2e.log(f"e2e: the watchdog: every host green {cut_at - fault:.1f} s after the tunnel was cut")
    run.expect(cut["situation"] == "acted-green" and cut["votes"] == {"watch": "down", "vps": "down"}, f"{cut}")
    waited = back_at - marks["mended"]
    run.details["mend_to_failback_seconds"] = round(waited, 1)
    run.expect(waited >= stable, f"it failed back {waited:.1f} s after the tunnel was mended, before {stable:g} s")
    run.expect(back["situation"] == "acted-green", f"the fail-back: {back}")
    between = {r["situation"] for at, r in rounds if cut_at < at < back_at}
    run.expect(between <= {"failed-over", "tunnel-back"}, f"between the acts: {between}")
    run.expect(_changed_by(e2e).startswith("mana-infra watch (automatic)"), f"modeChangedBy {_changed_by(e2e)}")
    latched = [p for p in pages_of(lines) if p.startswith("PAGE latched")]
    run.details["pages"] = pages_of(lines)
    run.expect(rounds[-1][1]["situation"] == "latched" and len(latched) == 1, f"the second outage: {rounds[-1:]}")
    run.expect(op.outputs().get(Output.MODE) == "tunnel", "the second outage moved the stack")
    world.settle()
    e2e.green(run, mode="tunnel")


def restart_race(e2e: EndToEnd, run: Run) -> None:
    """The edge down. The watchdog stopped (SIGTERM) after two rounds of it and started again: its first round is
    the third in a row (the count survived the restart), and it cuts over DNS-only. Meanwhile the person
    runs `mana-infra cutover --via dns` too: it waits for the stack's lock the watchdog holds, then finds
    the stack where it wanted it and changes nothing. One writer; the watchdog's state whole. (The
    README's flip back by hand follows it: `failback-by-hand`.)"""
    op, world = e2e.op, e2e.world
    faults = Faults(world)
    state = e2e.workdir / "watch-race" / "watch-prod.json"
    run.command = _watch(e2e, state, "--interval", "1")
    flags = shlex.join([*world.check_flags(), "--mirror-nameserver", topo.MIRROR_DNS_IP])
    person: dict[str, Any] = {}

    def the_person() -> None:
        person["saw the watchdog hold the lock"] = _until_locked(op.project / ".mana-infra-prod.lock", WATCHDOG)
        person["done"] = op.sh(f"mana-infra cutover --stack prod --via dns --yes --json {flags}")

    thread = threading.Thread(target=the_person)

    def until(line: str) -> bool:
        if line.startswith("PAGE acting") and not thread.is_alive():
            thread.start()  # the watchdog is about to take the lock: the person acts at the same moment
        return False

    with faults.made("edge"):
        # Stopped (SIGTERM, as systemd stops it) right after its second round's line.
        first = rounds_of(op.stream(run.command, until=lambda line: '"down_rounds": 2' in line, timeout=60))
        before = world.requests()
        lines = op.stream(run.command + " --rounds 1", until=until, timeout=180)
        if thread.ident is not None:  # started
            thread.join()
    after = rounds_of(lines)
    run.details["down_rounds"] = [r["down_rounds"] for _, r in first]
    run.expect([r["down_rounds"] for _, r in first] == [1, 2], f"before the restart: {[r for _, r in first]}")
    line = after[0][1] if after else {}
    run.details["after-restart"] = line
    run.expect(line.get("decision") == "cut-over" and line.get("situation") == "acted-green", f"{line}")
    outputs = op.outputs()
    run.expect(outputs.get(Output.FAILOVER_VIA) == "dns", f"failoverVia {outputs.get(Output.FAILOVER_VIA)}")
    run.expect(_changed_by(e2e).startswith("mana-infra watch (automatic)"), f"modeChangedBy {_changed_by(e2e)}")
    done = person.get("done")
    run.expect(done is not None, "the person's cutover never ran")
    run.expect(person.get("saw the watchdog hold the lock") is True, "the watchdog never held the stack's lock")
    if done is not None:
        verdict = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        run.details["person"] = {"exit": done.returncode, "steps": verdict.get("steps")}
        run.expect(done.returncode == 0 and verdict.get("green") is True, f"the person's cutover: {done.stderr[-300:]}")
        run.expect(not verdict.get("steps"), f"the person's cutover changed {verdict.get('steps')}")
    saved = json.loads(state.read_text())
    acts = [(a["what"], a["way"], a["green"]) for a in saved.get("actions", [])]
    whole = saved.get("pending") is None and not saved.get("latched") and acts == [("cut-over", "dns", True)]
    run.expect(whole, f"the watchdog's state: {saved}")
    _flipped_in_place(e2e, run, before)
    world.settle()


def _flipped_in_place(e2e: EndToEnd, run: Run, before: dict[str, int]) -> None:
    """What the clouds were asked to write: each inventory record updated once, in place — nothing
    created or deleted, nothing at Hetzner (the stand-ins' request logs: the engine's own account is
    in the watchdog's process)."""
    writes = [
        (api, entry["method"], entry["path"])
        for api in ("hetzner", "cloudflare")
        for entry in e2e.world.request_log(api, before[api])
        if entry["method"] not in ("GET", "HEAD")
    ]
    updates = {path for api, method, path in writes if api == "cloudflare" and method in ("PATCH", "PUT")}
    run.details["writes"] = len(writes)
    run.expect(len(updates) == len(e2e.services) == len(writes), f"the cut-over wrote {writes[:5]} ...")


def _until_locked(lock: Path, holder: str, timeout: float = 30) -> bool:
    """Until ``holder`` holds the stack's lock (its record in the lock file); False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().startswith(holder):
            return True
        time.sleep(0.02)
    return False


HOLD_BACK: Sequence[tuple[str, tuple[str, ...], str, int]] = (
    # (case, faults, the situation it ends in, pages)
    ("mac-mini-down", ("mac-mini",), "no-way", 1),
    ("vps-disagrees", ("watch-blind",), "watching", 0),
    ("cloudflare-api-down", ("tunnel", "cloudflare-api"), "emergency", 1),
    # The tunnel cut and WireGuard down, the home answering: only the direct way fits, a person's (Plan C).
    ("home-fits", ("tunnel", "wireguard"), "home-fits", 1),
    # The watch box sees the path down; the "VPS" that answers says so too, but is an impostor.
    ("forged-vote", ("watch-blind", "forged-vote"), "too-few-votes", 0),
)


def _impostor_says_down(e2e: EndToEnd) -> bool:
    """The forged vote is there for whoever does not pin the VPS's host key (the fault is real)."""
    world = e2e.world
    done = world.exec(
        "client",
        ["ssh", "-i", str(world.client_key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"root@{topo.VPS_IP}", "true"],
    )  # fmt: skip
    try:
        return set(json.loads(done.stdout)["public"].values()) == {0}
    except (ValueError, KeyError, AttributeError):
        return False


def holds_back(e2e: EndToEnd, run: Run) -> None:
    """The watchdog where it must not act, fault by fault: the Mac Mini down (no way helps: one page);
    the watch box alone seeing the public path fail (the VPS's vote says it answers); the tunnel cut
    with Cloudflare's API gone (only the emergency path fits, a person's: one page with its command); a
    man in the middle answering SSH for the VPS with a forged "down" vote while the watch box sees the
    path down (the host key pin refuses it: one voice, too few); the tunnel cut and WireGuard down while the
    home answers (only the direct way fits, which shows the home's address: a person's, one page with its
    command). No cut-over; the stack stays in tunnel mode."""
    op, world = e2e.op, e2e.world
    faults = Faults(world)
    state = e2e.workdir / "watch-holds-back" / "watch-prod.json"
    run.command = _watch(e2e, state, "--interval", "1", "--rounds", "3")
    emergency = str(op.outputs().get(Output.EMERGENCY_CUTOVER) or "")
    run.expect(emergency.startswith("pulumi "), f"the stack's emergencyCutover output: {emergency!r}")
    for name, made, expected, wanted in HOLD_BACK:
        with faults.made(*made):
            lines = op.stream(run.command, until=lambda _line: False, timeout=120)
            forged = _impostor_says_down(e2e) if name == "forged-vote" else None
        rounds = [r for _, r in rounds_of(lines)]
        situations = [r["situation"] for r in rounds]
        pages = pages_of(lines)
        run.details[name] = {"situations": situations, "votes": [r["votes"] for r in rounds], "pages": pages}
        run.expect(len(rounds) == 3 and all(r["decision"] == "nothing" for r in rounds), f"{name}: {rounds[-1:]}")
        run.expect(situations[-1:] == [expected], f"{name}: situations {situations}, expected to end {expected}")
        run.expect(len(pages) == wanted, f"{name}: {len(pages)} pages, expected {wanted}: {pages}")
        if name == "forged-vote":
            run.expect(forged is True, f"{name}: the impostor's session did not forge a down vote")
            run.expect(
                all(
                    r["votes"]["vps"] == "abstain" and "Host key verification failed" in r["why"]["vps"] for r in rounds
                ),
                f"{name}: the VPS's vote was taken: {[r['why'] for r in rounds]}",
            )
        if expected == "emergency":
            said = " ".join(pages)
            run.expect(emergency in said, f"{name}: the page names no emergency command: {said[-300:]}")
            run.details[name]["emergency"] = emergency[:80]
        if expected == "home-fits":
            said = " ".join(pages)
            run.expect("mana-infra cutover --via direct" in said, f"{name}: the page names no command: {said[-300:]}")
        state.unlink(missing_ok=True)
    run.expect(op.outputs().get(Output.MODE) == "tunnel", "the stack left tunnel mode")
    world.settle()
    e2e.green(run, mode="tunnel")
