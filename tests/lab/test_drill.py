"""The failover drill on the plan's own artifacts, judged by the real `mana-infra check` at every phase:
the rehearsal stack against production, the cut-over and its faults, and the nameserver switch to the
Hetzner mirror when Cloudflare is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mana_lab import topology as topo


@pytest.fixture(scope="module")
def drill(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mana_lab.drill import run_drill

    report = run_drill(plan_inputs, tmp_path_factory.mktemp("drill"), log=print)
    print(report.to_dict())
    return report


def test_report_shape(drill: Any) -> None:
    data = drill.to_dict()
    assert set(data) == {"hosts", "phases", "faults"} and data["hosts"] == 27
    assert [p["name"] for p in data["phases"]] == [
        "tunnel",
        "rehearsal",
        "outage",
        "cut-over",
        "fail-back",
        "nameserver-switch",
    ]
    assert [f["name"] for f in data["faults"]] == ["wireguard-down", "invalid-caddyfile", "wan-change"]
    assert all(set(p) == {"name", "check_exit", "healthy_hosts", "seconds"} for p in data["phases"])
    assert all(set(f) == {"name", "recovered", "seconds", "failed_requests"} for f in data["faults"])


@pytest.mark.parametrize(
    "name, exit_code, healthy",
    [
        ("tunnel", 0, 27),
        ("rehearsal", 0, 27),
        ("outage", 1, 0),
        ("cut-over", 0, 27),
        ("fail-back", 0, 27),
        ("nameserver-switch", 0, 27),
    ],
)
def test_phase_verdict(drill: Any, name: str, exit_code: int, healthy: int) -> None:
    phase = drill.phase(name)
    assert phase.check_exit == exit_code, phase.details["problems"]
    assert phase.healthy_hosts == healthy, phase.details["served"]
    assert phase.ok, phase.details


def test_outage_is_the_tunnel_path(drill: Any) -> None:
    details = drill.phase("outage").details
    assert details["tunnel_down"] is True
    assert [p for p in details["problems"] if p.startswith("tunnel path down: 27 of 27 hosts fail")], details
    assert details["paths"]["standby"] == "up" and details["paths"]["vps"] == "up"


@pytest.mark.parametrize(
    "name, address",
    [
        ("tunnel", topo.EDGE_IP),
        ("rehearsal", topo.EDGE_IP),  # production stays on the tunnel during the rehearsal
        ("cut-over", topo.VPS_IP),
        ("fail-back", topo.EDGE_IP),
        ("nameserver-switch", topo.VPS_IP),
    ],
)
def test_every_host_served_by_its_backend(drill: Any, plan_inputs: dict[str, Any], name: str, address: str) -> None:
    served = drill.phase(name).details["served"]
    for host, port in plan_inputs["services"]:
        assert served[host]["body"] == f"host={host} port={port}", (host, served[host])
        assert served[host]["ip"] == address and served[host]["status"] == 200, (host, served[host])


def test_rehearsal_serves_the_test_hostname_through_the_vps(drill: Any, plan_inputs: dict[str, Any]) -> None:
    """The rehearsal stack's record and site file: its test hostname through DNS -> VPS -> Caddy ->
    WireGuard -> the Mac Mini port of its service, judged by check on the rehearsal stack's outputs."""
    details = drill.phase("rehearsal").details
    [test] = plan_inputs["rehearsal"]["outputs"]["hosts"]
    host, port = test["host"], test["port"]
    assert (host, port) == ("failover-test.mana.how", 5000)
    assert details["create_ok"] and details["create_output"].endswith("mana-infra-rehearsal.caddy is live")
    served = details["test_served"][host]
    assert served == {"ok": True, "ip": topo.VPS_IP, "status": 200, "body": f"host={host} port={port}"}, served
    assert details["check_hosts"] == {
        host: {"dns_path": "origin", "address": topo.VPS_IP, "live_ok": True, "standby_ok": True}
    }
    assert details["problems"] == [] and details["paths"]["live_origin"] == "up"
    assert details["paths"]["standby"] == "up" and details["paths"]["wireguard"] == "up"


def test_rehearsal_removed_leaves_the_vps_serving(drill: Any) -> None:
    details = drill.phase("rehearsal").details
    after = details["after_removal"]
    assert details["delete_ok"] and details["delete_output"].endswith("mana-infra-rehearsal.caddy removed")
    [(host, gone)] = after["test_served"].items()
    assert not gone["ok"] and "rcode 3" in gone["body"], gone  # NXDOMAIN: the record is gone
    assert after["refused_by_vps"][host]["refused"], after  # and the VPS has no site for it
    assert after["health"] == {"status": 200, "body": "ok mode=tunnel", "ip": topo.VPS_IP}
    assert after["production_all_ok"] and details["removed"]


def test_nameserver_switch_serves_every_host_from_the_mirror(drill: Any, plan_inputs: dict[str, Any]) -> None:
    """Cloudflare gone: the emergency cut-over's Caddy command alone, the client's DNS the Hetzner mirror."""
    details = drill.phase("nameserver-switch").details
    assert details["resolver"] == topo.MIRROR_DNS_IP
    assert details["emergency_target"] == plan_inputs["emergency"]["target"]
    assert details["emergency_target"].endswith("$command:remote:Command::caddy-apply")
    assert details["push_ok"] and details["served_mode"] == "failover"
    assert details["cloudflare_zone_untouched"]
    assert details["problems"] == [] and details["mirror"] == {"state": "up", "total": 27, "failed": 0}
    for host, _port in plan_inputs["services"]:
        assert details["check_hosts"][host] == {
            "dns_path": "origin",
            "address": topo.VPS_IP,
            "live_ok": True,
            "standby_ok": True,
            "mirror_path": "origin",
        }, host
    assert details["restored"] and details["restore_push_output"].endswith("Caddyfile is live")
    assert all(s["ok"] and s["ip"] == topo.EDGE_IP for s in details["restored_served"].values())


def test_wireguard_down_gives_502_and_recovers(drill: Any) -> None:
    fault = drill.fault("wireguard-down")
    details = fault.details
    assert details["statuses_while_down"] == [502]
    assert details["slowest_502_seconds"] < 4.5  # the 3 s dial timeout, not a hang
    assert details["check_exit_while_down"] == 1
    assert details["paths"]["standby"] == "down", details["problems"]
    assert [
        p
        for p in details["problems"]
        if p.startswith("standby path (HTTPS straight to the VPS) down") and "HTTP 502" in p
    ], details["problems"]
    assert fault.recovered and fault.ok


def test_invalid_caddyfile_is_rejected_without_a_failed_request(drill: Any) -> None:
    fault = drill.fault("invalid-caddyfile")
    assert fault.details["push_rejected"], fault.details
    assert "invalid" in fault.details["push_output"]
    assert fault.failed_requests == 0 and fault.details["requests_during_push"] > 27
    assert fault.recovered and fault.ok


def test_wan_change_roams(drill: Any) -> None:
    fault = drill.fault("wan-change")
    assert fault.details["vps_sees_endpoint"].startswith(fault.details["new_wan_ip"] + ":")
    assert fault.recovered and fault.ok


def test_drill_passes_and_cleans_up(drill: Any) -> None:
    from mana_lab.system import lab_namespaces

    assert drill.ok
    assert lab_namespaces() == []


def test_cli_drill_json_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, drill: Any
) -> None:
    """`mana-infra lab drill --json`: exactly the report on stdout, progress on stderr (drill stubbed)."""
    import json

    from mana_lab import cli, inputs
    from mana_lab import drill as drill_module

    monkeypatch.setattr(inputs, "inputs_from_plan", lambda stack="prod", project_dir=None: {})
    monkeypatch.setattr(drill_module, "run_drill", lambda *a, log=print, **k: (log("progress"), drill)[1])
    assert cli.main(["--workdir", str(tmp_path), "drill", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == drill.to_dict()
    assert "progress" in err
