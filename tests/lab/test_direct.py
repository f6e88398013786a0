"""Plan C in the lab: the home router between the internet and the Mac Mini (nftables: tcp/443 DNAT over
IPv4, a forward rule over IPv6), the Mac Mini running the stack's Caddyfile with the certificate its sync
fetched from the VPS through WireGuard. The tunnel cut and the VPS down: check's verdict is the direct
way, and every host is green through it, through the edge and DNS-only; an IPv6-only home served to
IPv4 visitors through the edge; a forged client address reaching no app; the port not forwarded and
the IPv6 firewall closed named by check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mana_lab import topology as topo
from mana_lab.backends import HEADERS_PATH

FORGED = "6.6.6.6"
HOST = "auth.mana.how"


@pytest.fixture(scope="module")
def lab(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mana_lab.lab import Lab

    with Lab.from_inputs(tmp_path_factory.mktemp("direct-lab"), plan_inputs, "tunnel") as lab:
        yield lab


def all_green(lab: Any) -> dict[str, Any]:
    result: dict[str, Any] = lab.probe(mode="until_ok", deadline=10)
    assert result["all_ok"], result["first_failures"]
    return result


def problems(run: Any, subject: str) -> list[str]:
    return [f["text"] for f in run.report["findings"] if f["subject"] == subject]


def test_the_mac_mini_serves_warm_what_its_sync_fetched_from_the_vps(lab: Any, plan_inputs: dict[str, Any]) -> None:
    """Before any incident: the Mac Mini's Caddyfile is the stack's, its certificate the VPS's public
    one, fetched through WireGuard; visitors still go through the tunnel, and check's third column
    proves every host straight at the home, over both families."""
    outputs = plan_inputs["states"]["tunnel"]["outputs"]
    files = lab.home_files()
    assert files["Caddyfile"] == outputs["macminiCaddyfile"]
    assert files["public.pem"] == lab.certificates["public"]["pem"]
    run = lab.check("tunnel")
    assert run.exit_code == 0, run.report["problems"]
    assert run.report["paths"]["direct"] == {"state": "up", "total": 27, "failed": 0}
    reached = {(r["family"], r["ok"], r["body"]) for r in run.report["home"]}
    assert reached == {(4, True, "ok home"), (6, True, "ok home")}
    assert all(h["direct"]["ok"] for h in run.report["hosts"]) and run.report["paths"]["live_tunnel"]["state"] == "up"


def test_a_renewed_certificate_reaches_the_mac_mini_at_its_next_sync(lab: Any, plan_inputs: dict[str, Any]) -> None:
    """A renewal puts a new public certificate on the VPS (the plan's certificate command); the Mac
    Mini's next sync takes it and its Caddy serves it, without a person. Unchanged, nothing is reloaded."""
    from cryptography import x509

    sync = plan_inputs["states"]["tunnel"]["outputs"]["macminiSyncScript"]
    assert lab.home_sync(sync) == "macmini-sync: unchanged"
    assert lab.pki is not None
    renewed = lab.pki.edge_cert.read_text() + lab.pki.edge_key.read_text()  # another trusted *.zone certificate
    serial = x509.load_pem_x509_certificate(lab.pki.edge_cert.read_bytes()).serial_number
    original = lab.certificates["public"]["pem"]
    try:
        ok, out = lab.run_command(lab.certificate_commands["public"], renewed)
        assert ok, out
        assert lab.home_sync(sync) == "macmini-sync: new files are live"
        served = lab.served_certificates([HOST], topo.HOME_IP)[HOST]
        assert served["verified"] and served["serial"] == format(serial, "x"), served
    finally:
        ok, out = lab.run_command(lab.certificate_commands["public"], original)
        assert ok, out
        assert lab.home_sync(sync) == "macmini-sync: new files are live"
    assert lab.home_files()["public.pem"] == original


def test_the_tunnel_cut_and_the_vps_down_the_verdict_is_direct_and_every_host_is_green_both_ways(
    lab: Any, plan_inputs: dict[str, Any]
) -> None:
    states = plan_inputs["states"]
    lab.cut_edge("link")
    lab.vps_unreachable()
    try:
        run = lab.check("tunnel")
        diagnosis = run.report["diagnosis"]
        assert (diagnosis["way"], diagnosis["case"]) == ("direct", "tunnel/vps-down/home"), diagnosis
        assert diagnosis["command"].startswith("mana-infra cutover --via direct")
        for state in ("failover-direct", "failover-direct-dns"):
            lab.set_dns(states[state]["dns_records"])
            result = all_green(lab)
            via_edge = state == "failover-direct"
            assert {r["ip"] for r in result["results"]} == {topo.EDGE_IP if via_edge else topo.HOME_IP}, state
            after = lab.check(state)
            assert after.report["paths"]["live_home"]["state"] == "up", after.report["problems"]
            assert {h["dns"]["path"] for h in after.report["hosts"]} == {"home"}
    finally:
        lab.set_dns(states["tunnel"]["dns_records"])
        lab.vps_unreachable(False)
        lab.restore_edge()


def seen(lab: Any, address: str) -> dict[str, Any]:
    """What the app behind HOST sees of a client that asks ``address`` and forges its address headers."""
    names = ("Cf-Connecting-IP", "X-Real-IP", "True-Client-IP")
    forged = [arg for name in names for arg in ("-H", f"{name}: {FORGED}")]
    target = f"[{address}]" if ":" in address else address
    argv = ["curl", "-sS", "--fail", "--max-time", "10", "--cacert", str(lab.ca_bundle), "--resolve",
            f"{HOST}:443:{target}", *forged, f"https://{HOST}{HEADERS_PATH}"]  # fmt: skip
    done = lab.exec("client", argv)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_a_forged_client_address_reaches_no_app_at_home(lab: Any, plan_inputs: dict[str, Any]) -> None:
    """Straight at the home (DNS-only), over either family, the app sees the visitor's own address;
    through the edge, the one Cloudflare's edge saw."""
    for address, visitor in ((topo.HOME_IP, topo.CLIENT_IP), (topo.MINI_LAN_IP6, topo.CLIENT_IP6)):
        app = seen(lab, address)
        assert app["Cf-Connecting-IP"] == app["X-Real-IP"] == visitor, app
        assert app["True-Client-IP"] is None and FORGED not in json.dumps(app).replace(f"{FORGED}, ", "")
    lab.set_dns(plan_inputs["states"]["failover-direct"]["dns_records"])
    try:
        app = seen(lab, topo.EDGE_IP)
        assert app["Cf-Connecting-IP"] == app["X-Real-IP"] == topo.CLIENT_IP, app
    finally:
        lab.set_dns(plan_inputs["states"]["tunnel"]["dns_records"])


def test_an_ipv6_only_home_serves_ipv4_visitors_through_the_edge_and_check_says_dns_only_cannot(
    lab: Any, plan_inputs: dict[str, Any]
) -> None:
    from mana_lab.inputs import plan_state

    only6 = plan_state({"mode": "failover", "failoverVia": "direct", "homeAddress6": topo.MINI_LAN_IP6})
    assert {r.type for r in only6["dns_records"] if r.name == "home.mana.how"} == {"AAAA"}
    lab.set_dns(only6["dns_records"])
    try:
        result = all_green(lab)  # the client asks over IPv4: the edge reaches the home over IPv6
        assert {r["ip"] for r in result["results"]} == {topo.EDGE_IP}
    finally:
        lab.set_dns(plan_inputs["states"]["tunnel"]["dns_records"])
    tunnel6 = plan_state({"mode": "tunnel", "homeAddress6": topo.MINI_LAN_IP6})
    lab.cut_edge("stop")
    lab.vps_unreachable()
    try:
        run = lab.check(None, outputs=lab.write_outputs("tunnel-ipv6-only", tunnel6["outputs"]))
    finally:
        lab.vps_unreachable(False)
        lab.restore_edge()
    diagnosis = run.report["diagnosis"]
    assert diagnosis["way"] is None and diagnosis["case"] == "edge/vps-down", diagnosis
    assert "the home serves over IPv6 only, which DNS-only leaves visitors without IPv6 nothing" in diagnosis["why"]


def test_the_port_not_forwarded_and_the_ipv6_firewall_closed_are_named(lab: Any) -> None:
    try:
        lab.home_router(forward_ipv4=False)
        [said] = problems(lab.check("tunnel"), "home")
        assert said.startswith(f"the home's IPv4 {topo.HOME_IP} does not answer on tcp/443"), said
        assert "port 443 is not forwarded to the Mac Mini" in said and "IPv6 answers" in said
        lab.home_router(open_ipv6=False)
        [said] = problems(lab.check("tunnel"), "home")
        assert said.startswith(f"the home's IPv6 {topo.MINI_LAN_IP6} does not answer on tcp/443"), said
        assert "the router's IPv6 firewall does not open it" in said
    finally:
        lab.home_router()
    assert lab.check("tunnel").exit_code == 0
