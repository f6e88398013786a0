"""`mana-infra check` against the lab's real servers (knotd, Caddy, sshd, WireGuard, pebble's
certificate), on the plan's stack outputs, once healthy and once per failure mode: every cell of check's
diagnosis table (the tunnel, the edge or the Cloudflare API down, with the standby serving, unproven,
behind a dead WireGuard or itself down; WireGuard down while the tunnel serves), a host pointing
elsewhere, an untrusted certificate, a Hetzner mirror that differs from failover. Each asserts check's
exit code and the problem it names."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mana_infra.model import DnsRecord
from mana_lab import topology as topo


@pytest.fixture(scope="module")
def lab(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mana_lab.lab import Lab

    with Lab.from_inputs(tmp_path_factory.mktemp("lab"), plan_inputs, "tunnel") as lab:
        yield lab


def problem(run: Any, start: str) -> str:
    found: list[str] = [p for p in run.problems if p.startswith(start)]
    assert found, f"no problem starting {start!r} in {run.problems}"
    return found[0]


def test_healthy_tunnel_mode(lab: Any) -> None:
    run = lab.check("tunnel", mirror=True)
    assert run.exit_code == 0, run.problems
    report = run.report
    assert report["version"] == 2 and report["problems"] == [] and report["healthy"]
    assert len(report["hosts"]) == 27
    for host in report["hosts"]:
        # Proxied: the edge's address (--edge-cidr), the tunnel behind it (the outputs' hosts[].proxied).
        assert host["dns"]["path"] == "tunnel" and host["dns"]["addresses"] == [topo.EDGE_IP], host
        assert host["live"]["ok"] and host["live"]["address"] == topo.EDGE_IP and host["live"]["cert_trusted"], host
        # The standby, warm: HTTPS to the VPS with the host's name, its public certificate, WireGuard,
        # the Mac Mini's port.
        standby = host["standby"]
        assert standby["kind"] == "https-via-vps" and standby["ok"] and standby["address"] == topo.VPS_IP, host
        assert standby["status"] == 200 and standby["cert_trusted"] and standby["cert_days_left"] > 365, host
    assert report["vps"]["wireguard"]["ok"] and report["vps"]["health"]["served_mode"] == "tunnel"
    assert report["paths"]["standby"]["state"] == "up"
    assert report["public_path"] == {"state": "up", "total": 27, "failed": 0, "failures": {}}
    assert report["diagnosis"]["way"] is None and report["budget"]["acme"] == "none"
    # The outputs' certificate dates are the lab's own: pebble's 5 years, the Origin CA's 15.
    assert 365 < report["certificates"]["public"]["days_left"] < 5 * 366
    assert report["certificates"]["origin"]["days_left"] > 14 * 365
    # The Hetzner mirror (the plan's RRSets, on the lab's second knotd): every host in failover form.
    assert report["paths"]["mirror"] == {"state": "up", "total": 27, "failed": 0}
    assert all(h["mirror"]["path"] == "origin" for h in report["hosts"])


def test_certificate_not_trusted(lab: Any, tmp_path: Path) -> None:
    run = lab.check("tunnel", ca_file=other_ca(tmp_path / "other-ca.pem"))
    assert run.exit_code == 1
    assert "certificate not trusted" in problem(run, "tunnel path down: 27 of 27 hosts fail")
    assert "certificate not trusted" in problem(run, "VPS health https://vps.mana.how/healthz fails")
    assert "certificate not trusted" in problem(run, "standby path (HTTPS straight to the VPS) down: 27 of 27 fail")
    assert all(h["live"]["cert_trusted"] is False for h in run.report["hosts"])
    assert run.report["public_path"]["failures"] == {"cert_untrusted": [h for h, _ in lab.services]}


def test_wrong_dns_target(lab: Any, plan_inputs: dict[str, Any]) -> None:
    """auth.mana.how points at an address that is neither the tunnel nor the VPS."""
    tunnel_records = plan_inputs["states"]["tunnel"]["dns_records"]
    wrong = [r for r in tunnel_records if r.name != "auth.mana.how"]
    wrong.append(DnsRecord("auth.mana.how", "A", topo.DNS_IP, 60))
    lab.set_dns(wrong)
    try:
        run = lab.check("tunnel")
    finally:
        lab.set_dns(tunnel_records)
    assert run.exit_code == 1
    assert "auth.mana.how" in problem(
        run, "DNS: 1 host resolves to neither path (other) while the stack's mode is tunnel"
    )
    auth = next(h for h in run.report["hosts"] if h["host"] == "auth.mana.how")
    assert auth["dns"]["path"] == "other" and auth["dns"]["addresses"] == [topo.DNS_IP]
    assert [h["host"] for h in run.report["hosts"] if h["dns"]["path"] != "tunnel"] == ["auth.mana.how"]


def test_mirror_differs_from_failover(lab: Any) -> None:
    """auth.mana.how's RRSet at the mirror still points at the tunnel: the nameserver switch would send
    it to a dead tunnel. check's mirror look names it; the live paths are fine."""
    mirror = list(lab.mirror_records)
    stale = [r for r in mirror if r.name != "auth.mana.how"]
    stale.append(DnsRecord("auth.mana.how", "CNAME", lab.tunnel_target, 60))
    lab.set_mirror(stale)
    try:
        run = lab.check("tunnel", mirror=True)
    finally:
        lab.set_mirror(mirror)
    assert run.exit_code == 1
    found = problem(run, "the Hetzner mirror differs from failover for 1 host: auth.mana.how (")
    # Asked directly, the mirror answers the CNAME and refuses the out-of-zone tunnel name (as an
    # authoritative-only server does): check names the tunnel target either way.
    assert lab.tunnel_target in found, found
    assert run.report["paths"]["mirror"] == {"state": "degraded", "total": 27, "failed": 1}
    assert [h["host"] for h in run.report["hosts"] if h["mirror"]["path"] != "origin"] == ["auth.mana.how"]
    assert [p for p in run.problems if "mirror" not in p] == []  # only the mirror: DNS and HTTPS are fine


# The decision table's rows and columns, each as the lab makes it happen. The public failure: the tunnel cut
# (the edge answers 502), the edge itself stopped (connections refused), or the tunnel cut while the
# Cloudflare API cannot be reached (check asks it: CLOUDFLARE_API_TOKEN, at a lab address where nothing
# listens). The standby: serving, unproven (check run from outside the networks the VPS serves in
# tunnel mode), the Mac Mini's WireGuard down (Caddy on the VPS answers 502), the VPS not answering.
PUBLIC_FAILURES = ("tunnel", "edge", "api")
STANDBY_STATES = ("serving", "unproven", "mac-mini-down", "vps-down")
API_UNREACHABLE = {
    "CLOUDFLARE_API_TOKEN": "lab-token-never-sent-anywhere",
    "CLOUDFLARE_BASE_URL": f"http://{topo.DNS_IP}:9/client/v4",
}


def test_every_cell_of_the_diagnosis_table_has_a_lab_case() -> None:
    from mana_infra.check.decision import TABLE as DIAGNOSIS_TABLE

    assert set(DIAGNOSIS_TABLE) == {(p, s) for p in PUBLIC_FAILURES for s in STANDBY_STATES}


@contextlib.contextmanager
def standby_state(lab: Any, state: str) -> Iterator[str]:
    """Make the standby ``state``; yields the role check runs as. Where the table has no way, the home's
    line is down too: the cell as the table has it (the home's direct way there is test_direct's)."""
    from mana_lab.drill import until_every_host_502

    if state == "mac-mini-down":
        lab.wireguard_down()
        until_every_host_502(lab, connect=topo.VPS_IP)  # the pooled upstream connections gone first
    elif state == "vps-down":
        lab.vps_unreachable()
    if state in ("mac-mini-down", "vps-down"):
        lab.home_line(up=False)
    try:
        yield "outsider" if state == "unproven" else "client"
    finally:
        lab.home_line()
        if state == "mac-mini-down":
            lab.wireguard_up()
            lab.wait_handshake(after=0)
        elif state == "vps-down":
            lab.vps_unreachable(False)


def public_failure_checks(lab: Any, role: str) -> dict[str, Any]:
    """check with each public failure: the tunnel cut (asked without and with the unreachable API, at
    once: the same edge state), then the edge stopped."""
    lab.cut_edge("link")
    try:
        with ThreadPoolExecutor(2) as pool:
            tunnel = pool.submit(lab.check, "tunnel", role=role)
            api = pool.submit(lab.check, "tunnel", role=role, env=API_UNREACHABLE)
            runs = {"tunnel": tunnel.result(), "api": api.result()}
    finally:
        lab.restore_edge()
    lab.cut_edge("stop")
    try:
        runs["edge"] = lab.check("tunnel", role=role)
    finally:
        lab.restore_edge()
    return runs


@pytest.mark.parametrize("standby", STANDBY_STATES)
def test_diagnosis_table_in_the_lab(lab: Any, standby: str) -> None:
    """Each cell of the table, made real: check's diagnosis names the cell and offers its way, or no
    cut-over at all where none helps (the Mac Mini down, the VPS down); never a healthy verdict. With
    the Mac Mini's WireGuard down and the tunnel still serving, check also says the standby is down
    before any visitor notices."""
    from mana_infra.check.decision import TABLE as DIAGNOSIS_TABLE

    with standby_state(lab, standby) as role:
        quiet = lab.check("tunnel") if standby == "mac-mini-down" else None
        runs = public_failure_checks(lab, role)
    assert lab.check("tunnel").exit_code == 0  # everything restored
    for public, run in runs.items():
        diagnosis = run.report["diagnosis"]
        outcome = DIAGNOSIS_TABLE[(public, standby)]
        expected_way = None if outcome.startswith("none:") else outcome
        assert (diagnosis["case"], diagnosis["way"]) == (f"{public}/{standby}", expected_way), (public, diagnosis)
        assert run.exit_code == 1 and not run.report["healthy"], public
        if expected_way is None:
            why = diagnosis["why"]
            assert diagnosis["command"] is None and ("no cut-over helps" in why or "a cut-over would move" in why), why
        if standby == "serving":
            assert run.report["paths"]["standby"]["state"] == "up"  # the VPS could take over
    if standby == "serving":
        assert "HTTP 502" in problem(runs["tunnel"], "tunnel path down: 27 of 27 hosts fail")
        assert runs["tunnel"].report["tunnel_down"] is True
        assert runs["tunnel"].report["diagnosis"]["command"] == "mana-infra cutover --via edge"
        assert runs["edge"].report["public_path"]["failures"] == {"connect_refused": [h for h, _ in lab.services]}
        assert runs["api"].report["cloudflare_api"]["state"] == "unreachable"
    if quiet is not None:  # Caddy on the VPS answers 502 (its 3 s dial timeout); visitors are still served
        assert quiet.exit_code == 1
        assert "HTTP 502" in problem(quiet, "standby path (HTTPS straight to the VPS) down: 27 of 27 fail")
        assert quiet.report["paths"]["live_tunnel"]["state"] == "up"


def other_ca(path: Path) -> str:
    """A CA certificate that has nothing to do with the lab's CAs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the lab CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)
