"""The real-engine lab a person or a script drives: the world `lab e2e --keep` kept (conftest.py; `lab up
--engine` keeps one the same way after the README's set-up alone), with `lab fault` to list, make and
mend faults, `lab watch` (the watchdog from the watch box's place), `lab sh` and `lab check` in the
operator's seat, `lab down`. The faults the watchdog meets here: the watch box's own uplink cut, and
the tunnel flapping for sixty rounds; neither may cut over."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mana_lab.faults import FAULT_NAMES
from mana_lab.keeper import ask
from mana_lab.system import lab_namespaces

from ..support import PROJECT_DIR
from .conftest import lab


@pytest.fixture(scope="module")
def running(kept_e2e: tuple[dict[str, Any], Path]) -> Path:
    """The world `lab e2e --keep` kept: prod in tunnel mode, as its last run leaves it."""
    return kept_e2e[1]


def fault_table(workdir: Path) -> dict[str, bool]:
    listed = lab(workdir, "fault")
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: line.split()[1] == "ON" for line in listed.stdout.splitlines()}


def watch_rounds(workdir: Path, *flags: str) -> tuple[list[dict[str, Any]], list[str]]:
    done = lab(workdir, "watch", "--json", *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    rounds = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return rounds, [line for line in done.stderr.splitlines() if line.startswith("PAGE ")]


def test_the_stack_is_deployed_in_tunnel_mode_and_every_host_is_green(running: Path) -> None:
    mode = lab(running, "sh", "pulumi stack output --stack prod mode")
    assert (mode.returncode, mode.stdout.strip()) == (0, "tunnel"), mode.stderr
    check = lab(running, "check", "--json")
    assert check.returncode == 0, check.stdout[-2000:]
    assert json.loads(check.stdout)["mode"] == "tunnel"
    status = lab(running, "status")
    assert "stack prod, state tunnel (real engine, after the e2e)" in status.stdout, status.stdout


def test_lab_fault_lists_makes_and_mends_each_fault(running: Path) -> None:
    wanted = {"tunnel", "edge", "cloudflare-api", "wireguard", "mac-mini", "vps", "watch-uplink"}
    assert set(FAULT_NAMES) >= wanted
    assert fault_table(running) == dict.fromkeys(FAULT_NAMES, False)
    made = lab(running, "fault", "tunnel", "on")
    assert made.returncode == 0 and "tunnel         ON " in made.stdout, made.stdout + made.stderr
    assert lab(running, "fault", "mac-mini", "on").returncode == 0
    # The tunnel's link is mac-mini's too: mending the tunnel alone leaves it cut.
    assert lab(running, "fault", "tunnel", "off").returncode == 0
    down = lab(running, "check", "--json")
    assert down.returncode == 1 and json.loads(down.stdout)["diagnosis"]["case"] == "tunnel/mac-mini-down"
    assert lab(running, "fault", "mac-mini", "off").returncode == 0
    assert fault_table(running) == dict.fromkeys(FAULT_NAMES, False)
    # The VPS not answering: check sees the standby path down (a cut-over would not help).
    assert lab(running, "fault", "vps", "on").returncode == 0
    vps_down = lab(running, "check", "--json")
    assert lab(running, "fault", "vps", "off").returncode == 0
    assert vps_down.returncode == 1 and json.loads(vps_down.stdout)["paths"]["standby"]["state"] == "down"
    # The Mac Mini's WireGuard down and back (mending waits for the handshake).
    for to in ("on", "off"):
        done = lab(running, "fault", "wireguard", to)
        assert done.returncode == 0 and f"wireguard      {'ON ' if to == 'on' else 'off'}" in done.stdout, done.stderr
    assert lab(running, "check").returncode == 0
    unknown = lab(running, "fault", "dns", "on")
    assert unknown.returncode == 2 and "no fault 'dns': one of tunnel, edge" in unknown.stderr, unknown.stderr


def test_the_watch_box_cut_off_votes_nothing_and_nothing_is_done(running: Path, tmp_path: Path) -> None:
    """Both vantage points abstain, nothing is done, no page; and the watchdog's metrics (its textfile, as
    node_exporter reads it) say so, in a form Prometheus's own linter takes."""
    textfile = tmp_path / "watchdog.prom"
    assert lab(running, "fault", "watch-uplink", "on").returncode == 0
    try:
        rounds, pages = watch_rounds(running, "--interval", "1", "--rounds", "3", "--textfile", str(textfile))
    finally:
        assert lab(running, "fault", "watch-uplink", "off").returncode == 0
    linted = subprocess.run(
        ["promtool", "check", "metrics"], input=textfile.read_text(), capture_output=True, text=True
    )
    assert linted.returncode == 0 and not (linted.stdout + linted.stderr).strip(), linted
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(textfile.read_text()) for s in family.samples}  # fmt: skip
    ours = (("stack", "prod"), ("watcher", "watchdog"))
    for vantage in ("watch", "vps"):
        assert samples[("mana_watchdog_vote", (*ours[:1], ("vantage", vantage), ("vote", "abstain"), *ours[1:]))] == 1
    assert samples[("mana_watch_rounds_total", ours)] == 3
    assert samples[("mana_mode", (("mode", "tunnel"), *ours))] == 1
    assert samples[("mana_watchdog_down_rounds", ours)] == 0
    assert len(rounds) == 3, rounds
    assert all(set(r) >= {"round", "at", "mode", "votes", "decision", "acted"} for r in rounds), rounds[0]
    assert [r["mode"] for r in rounds] == ["tunnel"] * 3 and [r["acted"] for r in rounds] == [None] * 3
    assert all(r["decision"] == "nothing" for r in rounds), rounds
    assert all(r["votes"] == {"watch": "abstain", "vps": "abstain"} for r in rounds), [r["votes"] for r in rounds]
    assert pages == []
    assert lab(running, "sh", "pulumi stack output --stack prod mode").stdout.strip() == "tunnel"


def test_a_flapping_tunnel_never_cuts_over(running: Path) -> None:
    """Sixty rounds, the tunnel cut after every round that saw it up and mended after every round that
    saw it down (through the keeper's socket, a script's way in: a millisecond, not a process start), so
    it is never down for the three rounds in a row the default rule wants. What the rounds spent at the
    stand-in APIs is counted too."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "mana_infra", "lab", "--workdir", str(running), "watch", "--json",
         "--interval", "0.2", "--rounds", "60"],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    rounds = []
    before = ask(running, {"op": "requests"})["requests"]
    try:
        assert watch.stdout is not None
        for line in watch.stdout:
            if line.startswith("{"):
                rounds.append(json.loads(line))
                ask(running, {"op": "fault", "name": "tunnel", "on": rounds[-1].get("down_rounds", 0) == 0})
        stderr = watch.stderr.read() if watch.stderr else ""
        assert watch.wait(timeout=60) == 0, stderr[-2000:]
    finally:
        ask(running, {"op": "fault", "name": "tunnel", "on": False})
        if watch.poll() is None:
            watch.kill()
    assert len(rounds) == 60
    # Cloudflare's budget: a round asks its API one thing at most (check's token probe), Hetzner's nothing;
    # at the default interval (10 s) that is 30 requests in any 5 minutes, of the 1,200 allowed.
    spent = {api: n - before[api] for api, n in ask(running, {"op": "requests"})["requests"].items()}
    assert spent["hetzner"] == 0 and 0 < spent["cloudflare"] <= 60, spent
    down = [r for r in rounds if r["votes"]["watch"] == "down"]
    assert len(down) >= 20, [r["votes"] for r in rounds]
    assert max(r.get("down_rounds", 0) for r in rounds) <= 2
    assert all(r["decision"] == "nothing" for r in rounds)
    assert not [line for line in stderr.splitlines() if line.startswith("PAGE ")]
    assert lab(running, "sh", "pulumi stack output --stack prod mode").stdout.strip() == "tunnel"


def test_lab_up_engine_refuses_what_it_cannot_deploy(tmp_path: Path) -> None:
    """`lab up --engine` deploys prod in tunnel mode as the README sets it up: another mode or stack is
    refused with the way to get there, before anything starts (the running lab is not touched)."""
    for flags in (["--mode", "failover"], ["--stack", "failover"]):
        refused = lab(tmp_path / "lab", "up", "--engine", *flags)
        assert refused.returncode == 2 and "deploys stack prod in tunnel mode" in refused.stderr, refused.stderr


def test_lab_down_removes_the_world(running: Path) -> None:
    state = json.loads((running / "lab.json").read_text())
    down = lab(running, "down")
    assert down.returncode == 0 and "the real-engine lab's keeper (its world)" in down.stdout, down.stdout
    assert lab_namespaces() == []
    assert not Path(f"/proc/{state['keeper']}").exists()
    gone = lab(running, "fault")
    assert gone.returncode == 2 and "start one with `mana-infra lab up --engine`" in gone.stderr
