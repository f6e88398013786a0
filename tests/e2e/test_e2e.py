"""The operator's runs through the real Pulumi engine (CLI, Python language host, the six provider
plugins) against the stand-in clouds, the lab as their machines: `mana-infra lab e2e --json --keep`,
once per test run (conftest.py). Each run's own assertions are in mana_lab/e2e.py (its `problems`); these tests hold the
report to them and to the facts an operator relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mana_lab.e2e import CHANGE_KEYS, RUN_NAMES
from mana_lab.engine import pinned_plugins

from ..support import PROJECT_DIR


@pytest.fixture(scope="module")
def report(kept_e2e: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return kept_e2e[0]


def run_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [run for run in report["runs"] if run["name"] == name]
    assert found, f"no run {name}: the report has {[run['name'] for run in report['runs']]}"
    return found[0]


def test_the_report_names_the_engine_and_every_run(report: dict[str, Any]) -> None:
    assert report["pulumi"].startswith("v3.")
    assert report["plugins"] == pinned_plugins(PROJECT_DIR)
    assert [run["name"] for run in report["runs"]] == list(RUN_NAMES)
    for run in report["runs"]:
        assert set(run) >= {"name", "command", "ok", "seconds", "changes", "resources", "requests"}
        assert set(run["changes"]) >= set(CHANGE_KEYS) and set(run["requests"]) == {"hetzner", "cloudflare"}
        assert all(set(r) == {"type", "name", "op"} and r["op"] != "same" for r in run["resources"])
    assert report["exit_code"] == (0 if report["ok"] else 1)


@pytest.mark.parametrize("name", RUN_NAMES)
def test_each_run_proves_what_it_claims(report: dict[str, Any], name: str) -> None:
    run = run_of(report, name)
    assert run["ok"], f"{run['command']}: {run['problems']}"


def test_the_first_up_adopts_every_record_and_creates_none_twice(report: dict[str, Any]) -> None:
    run = run_of(report, "up-tunnel")
    records = [r for r in run["resources"] if r["type"] == "cloudflare:index/dnsRecord:DnsRecord"]
    imported = sorted(r["name"] for r in records if r["op"] == "import")
    created = sorted(r["name"] for r in records if r["op"] == "create")
    # The records of the VPS's own name and the tunnel's probe are new; the inventory's are adopted.
    # The home's name (Plan C) too.
    names = ["dns-home-a", "dns-home-aaaa", "dns-origin-a", "dns-origin-aaaa", "tunnel-probe"]
    assert len(imported) == 27 and created == names
    assert run["changes"]["import"] == 27 and run["changes"]["update"] == run["changes"]["delete"] == 0
    servers = [r for r in run["resources"] if r["type"] == "hcloud:index/server:Server"]
    assert servers == [{"type": "hcloud:index/server:Server", "name": "standby-server", "op": "create"}]


@pytest.mark.parametrize("name", ["up-noop", "refresh", "up-after-refresh"])
def test_nothing_changes_when_nothing_changed(report: dict[str, Any], name: str) -> None:
    run = run_of(report, name)
    assert run["resources"] == [] and run["changes"]["same"] > 80, run["changes"]


@pytest.mark.parametrize("name", ["cutover", "failback", "failback-by-hand"])
def test_a_flip_updates_the_records_in_place_and_reruns_the_caddy_command(report: dict[str, Any], name: str) -> None:
    run = run_of(report, name)
    ops = {(r["type"], r["op"]) for r in run["resources"]}
    assert ops == {("cloudflare:index/dnsRecord:DnsRecord", "update"), ("command:remote:Command", "replace")}, ops
    assert sum(r["op"] == "update" for r in run["resources"]) == 27


@pytest.mark.parametrize("name", ["cutover-direct", "failback-direct"])
def test_a_direct_flip_updates_the_records_in_place_and_runs_nothing_on_the_vps(
    report: dict[str, Any], name: str
) -> None:
    """Plan C: the VPS is dark during the cut-over; only records move, in place: the 27 at Cloudflare, and
    the Hetzner mirror's, which point at the home while a direct way has the hosts."""
    run = run_of(report, name)
    record, rrset = "cloudflare:index/dnsRecord:DnsRecord", "hcloud:index/zoneRrset:ZoneRrset"
    assert {(r["type"], r["op"]) for r in run["resources"]} <= {(record, "update"), (rrset, "update")}
    assert sum(r["type"] == record for r in run["resources"]) == 27
    mirror = sorted(r["name"] for r in run["resources"] if r["type"] == rrset)
    # To the home and back: 26 CNAMEs and the apex's A and AAAA.
    assert len(mirror) == 28, mirror
    writes = run["changes"]
    assert writes["create"] == writes["delete"] == writes.get("replace", 0) == 0, writes


def test_the_emergency_asks_cloudflare_nothing(report: dict[str, Any]) -> None:
    run = run_of(report, "emergency")
    assert run["command"].startswith("pulumi config set --stack prod cloudflareZoneId ")
    assert [r["name"] for r in run["resources"]] == ["caddy-apply"]
