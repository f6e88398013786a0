"""The failover drill on the plan's own artifacts, judged by the real `mana-infra check` at every phase:
the standby proven warm in tunnel mode (the preflight), the rehearsal stack against production, both
ways of cutting over (through Cloudflare's edge, and DNS-only) with not one ACME order, the faults, and
the nameserver switch to the Hetzner mirror when Cloudflare is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mana_lab.system
from mana_lab import topology as topo

PHASES = [
    "tunnel",
    "preflight",
    "not-checked-from-here",
    "rehearsal",
    "outage",
    "cut-over-edge",
    "failback-too-early",
    "fail-back-edge",
    "mac-mini-down",
    "edge-outage",
    "cut-over",
    "fail-back",
    "nameserver-switch",
]
ORIGIN_CA = "CloudFlare Origin SSL ECC CA (mana-lab stand-in)"


@pytest.fixture(scope="module")
def drill_run(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[str]]:
    """One drill for the module: its report and the progress lines it logged."""
    from mana_lab.drill import run_drill

    lines: list[str] = []

    def log(text: str) -> None:
        print(text)
        lines.extend(text.splitlines())

    report = run_drill(plan_inputs, tmp_path_factory.mktemp("drill"), log=log)
    print(report.to_dict())
    return report, lines


@pytest.fixture(scope="module")
def drill(drill_run: tuple[Any, list[str]]) -> Any:
    return drill_run[0]


def test_report_shape(drill: Any) -> None:
    data = drill.to_dict()
    assert set(data) == {"hosts", "phases", "faults"} and data["hosts"] == 27
    assert [p["name"] for p in data["phases"]] == PHASES
    assert [f["name"] for f in data["faults"]] == ["wireguard-down", "invalid-caddyfile", "wan-change"]
    assert all(set(p) == {"name", "check_exit", "healthy_hosts", "seconds", "acme_orders"} for p in data["phases"])
    assert all(set(f) == {"name", "recovered", "seconds", "failed_requests"} for f in data["faults"])


@pytest.mark.parametrize(
    "name, exit_code, healthy",
    [
        ("tunnel", 0, 27),
        ("preflight", 0, 27),
        ("not-checked-from-here", 1, 0),
        ("rehearsal", 0, 27),
        ("outage", 1, 0),
        ("cut-over-edge", 0, 27),
        ("failback-too-early", 0, 27),
        ("fail-back-edge", 0, 27),
        ("mac-mini-down", 1, 0),
        ("edge-outage", 1, 0),
        ("cut-over", 0, 27),
        ("fail-back", 0, 27),
        ("nameserver-switch", 0, 27),
    ],
)
def test_phase_verdict(drill: Any, name: str, exit_code: int, healthy: int) -> None:
    phase = drill.phase(name)
    assert phase.check_exit == exit_code, phase.details["problems"]
    assert phase.healthy_hosts == healthy, phase.details.get("served", phase.details.get("standby"))
    assert phase.ok, phase.details


def test_no_acme_order_after_the_lab_is_up(drill: Any) -> None:
    """Nothing asks ACME once the certificates are installed: not the preflight, not either cut-over
    (pebble is the VPS's ACME CA in the lab, so a site that asked would show here)."""
    for name in ("preflight", "cut-over-edge", "cut-over"):
        assert drill.phase(name).acme_orders == 0, name
    assert [p.acme_orders for p in drill.phases] == [0] * len(PHASES)


def test_public_certificate_issued_by_pebble_before_the_cut_over(drill: Any) -> None:
    """One ACME order, during the lab's up, at pebble by DNS-01; installed before the program's first
    Caddyfile (while the caddy package's own was live); the very certificate the VPS serves every host
    with in the preflight (tunnel mode) and DNS-only."""
    public = drill.certificates["public"]
    assert public["issuer"].startswith("Pebble Intermediate CA") and public["orders"] == 1
    assert public["names"] == ["mana.how", "*.mana.how"]
    assert public["install_output"].endswith("certs/public.pem is live")
    for name in ("preflight", "cut-over"):
        details = drill.phase(name).details
        assert details["standby_certificates"] == {
            "issuers": [public["issuer"]],
            "serials": [public["serial"]],
            "verified": 27,
            "errors": [],
        }, name
        assert details["public_certificate_served"], name
    # check agrees: nothing left to obtain, before the cut-over and after it.
    assert drill.phase("preflight").details["budget_certificates"] == "none"
    assert drill.phase("cut-over").details["budget_certificates"] == "none"


def test_preflight_proves_the_standby_for_every_host(drill: Any, plan_inputs: dict[str, Any]) -> None:
    details = drill.phase("preflight").details
    assert details["problems"] == [] and details["paths"]["standby"] == "up"
    for host, _port in plan_inputs["services"]:
        standby = details["standby"][host]
        assert standby == {
            "kind": "https-via-vps",
            "ok": True,
            "address": topo.VPS_IP,
            "status": 200,
            "cert_trusted": True,
            "error": None,
            "failure": None,
            "refused": None,
            "answered_by": "mac-mini",  # the app answered, through Caddy and WireGuard
        }, host


def test_outsider_refused_by_the_vps_in_tunnel_mode(drill: Any, plan_inputs: dict[str, Any]) -> None:
    """A visitor from 203.0.113.200 (neither the operator's 192.0.2.0/24 nor the edge): refused at the
    VPS in tunnel mode and through the edge, served by the edge meanwhile, and by the VPS DNS-only."""
    preflight = drill.phase("preflight").details
    edge = drill.phase("cut-over-edge").details
    assert preflight["outsider"]["address"] == topo.OUTSIDER_IP == "203.0.113.200"
    for host, port in plan_inputs["services"]:
        assert preflight["outsider"]["refused_by_vps"][host] == {
            "refused": True,
            "status": 403,
            "body": f"mana-infra standby: {host} is served through Cloudflare (refused for {topo.OUTSIDER_IP})",
        }, host
        assert edge["outsider"]["refused_by_vps"][host]["body"] == (
            f"mana-infra standby: {host} is served through Cloudflare's proxy (refused for {topo.OUTSIDER_IP})"
        ), host
        for visitor in (preflight["outsider"]["via_edge"][host], edge["outsider"]["via_edge"][host]):
            assert visitor == {"ok": True, "ip": topo.EDGE_IP, "status": 200, "body": f"host={host} port={port}"}
        served = drill.phase("cut-over").details["outsider"]["served"][host]
        assert served == {"ok": True, "ip": topo.VPS_IP, "status": 200, "body": f"host={host} port={port}"}
    assert preflight["outsider_refused"] and edge["outsider_refused"]


def test_the_edge_reaches_the_vps_with_the_origin_certificate_only(drill: Any, plan_inputs: dict[str, Any]) -> None:
    """Through the edge: the records still proxied, only their target moved to the origin name; the edge
    verifies the VPS's certificate against the Origin CA alone (Full (strict)): every host's is the
    Origin CA certificate, and the public one (the VPS's own name serves it) is refused there."""
    details = drill.phase("cut-over-edge").details
    origin, public = drill.certificates["origin"], drill.certificates["public"]
    assert origin["issuer"] == ORIGIN_CA
    assert details["edge_to_vps"] == {
        "issuers": [ORIGIN_CA],
        "serials": [origin["serial"]],
        "verified": 27,
        "errors": [],
    }
    assert details["public_certificate_at_edge"] == {
        "issuer": public["issuer"],
        "serial": public["serial"],
        "verified": False,
        "verify_error": "unable to get local issuer certificate",
    }
    assert details["origin_certificate_only"]
    for host, _port in plan_inputs["services"]:
        # Visitors keep meeting the edge; check sees the proxied records' path as the origin.
        assert details["served"][host]["ip"] == topo.EDGE_IP, host
        assert details["check_hosts"][host] == {
            "dns_path": "origin",
            "address": topo.EDGE_IP,
            "live_ok": True,
            "standby_ok": True,
        }, host


@pytest.mark.parametrize("name", ["cut-over-edge", "cut-over"])
def test_cut_over_every_host_green_within_a_second_of_the_records(drill: Any, name: str) -> None:
    """Measured from the DNS switch (the edge following the records included), the push before it."""
    phase = drill.phase(name)
    assert phase.details["push_ok"] and phase.details["push_output"] == "apply-caddyfile: /etc/caddy/Caddyfile is live"
    assert phase.seconds is not None and 0 < phase.seconds <= 1.0, phase.details
    assert phase.details["seconds_from_push"] >= phase.seconds


@pytest.mark.parametrize("name, way", [("outage", "edge"), ("edge-outage", "dns")])
def test_outages_name_the_way_the_drill_takes(drill: Any, name: str, way: str) -> None:
    details = drill.phase(name).details
    assert details["tunnel_down"] is True
    assert details["diagnosis"]["way"] == way
    assert details["diagnosis"]["command"] == f"mana-infra cutover --via {way}"


def test_outage_is_the_tunnel_path(drill: Any) -> None:
    details = drill.phase("outage").details
    assert [p for p in details["problems"] if p.startswith("tunnel path down: 27 of 27 hosts fail")], details
    assert details["paths"]["standby"] == "up" and details["paths"]["vps"] == "up"


@pytest.mark.parametrize(
    "name, address",
    [
        ("tunnel", topo.EDGE_IP),
        ("rehearsal", topo.EDGE_IP),  # production stays on the tunnel during the rehearsal
        ("cut-over-edge", topo.EDGE_IP),  # through the edge, to the VPS
        ("fail-back-edge", topo.EDGE_IP),
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
    # And the VPS has no site for it: its backend no longer answers there (the wildcard certificate
    # still fits the name, so Caddy completes TLS and answers nothing).
    assert after["at_vps"][host]["served"] is False and after["at_vps"][host]["body"] != f"host={host} port=5000"
    assert after["health"] == {"status": 200, "body": "ok mode=tunnel", "ip": topo.VPS_IP}
    assert after["production_all_ok"] and details["removed"]


def test_nameserver_switch_serves_every_host_from_the_mirror(drill: Any, plan_inputs: dict[str, Any]) -> None:
    """Cloudflare gone: the emergency cut-over's Caddy command alone (DNS-only), the client's DNS the
    Hetzner mirror."""
    details = drill.phase("nameserver-switch").details
    assert details["resolver"] == topo.MIRROR_DNS_IP
    assert details["emergency_target"] == plan_inputs["emergency"]["target"]
    assert details["emergency_target"].endswith("$command:remote:Command::caddy-apply")
    assert details["emergency_state"] == "failover-dns"
    assert details["push_ok"] and details["served_mode"] == "failover"
    assert details["health_body"] == "ok mode=failover via=dns"
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


def test_the_drills_progress_fits_a_terminal(drill_run: tuple[Any, list[str]]) -> None:
    _, lines = drill_run
    assert lines and [line for line in lines if len(line) > 100] == []


def test_cli_drill_says_its_verdict_once_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, drill: Any
) -> None:
    from mana_lab import cli, inputs
    from mana_lab import drill as drill_module

    monkeypatch.setattr(inputs, "inputs_from_plan", lambda *a, **k: {})
    monkeypatch.setattr(mana_lab.system, "lab_namespaces", lambda: [])
    monkeypatch.setattr(drill_module, "run_drill", lambda *a, log=print, **k: drill)
    assert cli.main(["--workdir", str(tmp_path), "drill"]) == 0
    out, err = capsys.readouterr()
    assert out == f"drill passed in {drill.seconds:.1f} s\n" and "passed" not in err


def test_cli_drill_json_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, drill: Any
) -> None:
    """`mana-infra lab drill --json`: exactly the report on stdout, progress on stderr (drill stubbed)."""
    import json

    from mana_lab import cli, inputs
    from mana_lab import drill as drill_module

    monkeypatch.setattr(inputs, "inputs_from_plan", lambda *a, **k: {})
    monkeypatch.setattr(mana_lab.system, "lab_namespaces", lambda: [])
    monkeypatch.setattr(drill_module, "run_drill", lambda *a, log=print, **k: (log("progress"), drill)[1])
    assert cli.main(["--workdir", str(tmp_path), "drill", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == drill.to_dict()
    assert "progress" in err


def test_a_check_from_outside_is_not_checked_from_here_never_green(drill: Any) -> None:
    details = drill.phase("not-checked-from-here").details
    assert details["refused"] == 27 and details["paths"]["standby"] == "unchecked", details
    assert f"the VPS refuses {topo.OUTSIDER_IP} for 27 hosts" in details["problem"]
    assert "checkAllowedCidrs" in details["problem"]


def test_a_fail_back_waits_for_the_tunnel(drill: Any) -> None:
    """The probe name through the tunnel: down while it is cut (the pre-flight refuses), up once back."""
    early = drill.phase("failback-too-early").details
    assert early["tunnel_probe"]["state"] == "down" and early["tunnel_probe"]["host"] == "tunnel-probe.mana.how"
    assert early["failback_preflight"][0].startswith("the tunnel is down (tunnel-probe.mana.how: HTTP 502")
    for name in ("fail-back-edge", "fail-back"):
        assert drill.phase(name).details["failback_preflight"] == [], name


def test_the_mac_mini_down_is_no_cut_over(drill: Any) -> None:
    details = drill.phase("mac-mini-down").details
    assert details["statuses_at_the_vps"] == [502] and details["back"] is True
    assert details["diagnosis"]["way"] is None and details["diagnosis"]["case"] == "tunnel/mac-mini-down"
