"""The lab substrate carries real traffic with the plan's artifacts: DNS -> edge -> Mac Mini, sshd on
the VPS, WireGuard; and it cleans up after itself (also after Ctrl-C) so that the next run works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mana_infra.model import DnsRecord
from mana_lab import topology as topo
from mana_lab.lab import VPS_BIN


@pytest.fixture(scope="module")
def lab(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mana_lab.lab import Lab

    with Lab.from_inputs(tmp_path_factory.mktemp("lab"), plan_inputs, "tunnel") as lab:
        yield lab


def test_inputs_are_the_plans(plan_inputs: dict[str, Any]) -> None:
    assert len(plan_inputs["services"]) == 27
    tunnel, failover = plan_inputs["modes"]["tunnel"], plan_inputs["modes"]["failover"]
    for mode in (tunnel, failover):
        assert mode["Caddyfile"].startswith("# OFFLINE PLAN")
        assert "PrivateKey = " in mode["wg0-macmini.conf"]
    assert "import mac_mini" in failover["Caddyfile"]
    records = {(r.name, r.type): r for r in failover["dns_records"]}
    assert records[("auth.mana.how", "CNAME")].content == "vps.mana.how"
    assert records[("vps.mana.how", "A")].content == topo.VPS_IP
    tunnel_auth = next(r for r in tunnel["dns_records"] if r.name == "auth.mana.how")
    assert (tunnel_auth.content, tunnel_auth.proxied) == (plan_inputs["tunnel_target"], True)


def test_mirror_emergency_and_rehearsal_inputs_are_the_plans(plan_inputs: dict[str, Any]) -> None:
    from mana_lab.dnszone import rrset_records

    mirror = {(r.name, r.type): r.content for r in rrset_records(plan_inputs["mirror"]["rrsets"], "mana.how")}
    assert mirror[("auth.mana.how", "CNAME")] == "vps.mana.how."
    assert mirror[("mana.how", "A")] == mirror[("vps.mana.how", "A")] == topo.VPS_IP
    assert mirror[("mana.how", "AAAA")] == topo.VPS_IP6
    assert len([k for k in mirror if k[1] == "CNAME"]) == 26  # every inventory host but the apex
    # The emergency cut-over's targeted up: the failover Caddyfile through the same command text.
    emergency, failover = plan_inputs["emergency"], plan_inputs["modes"]["failover"]
    assert emergency["overrides"]["cloudflareReachable"] == "false" and emergency["overrides"]["mode"] == "failover"
    assert failover["Caddyfile"].endswith(emergency["Caddyfile"])  # the artifact adds the OFFLINE PLAN mark
    assert emergency["caddy_command"] == failover["caddy_command"]
    rehearsal = plan_inputs["rehearsal"]
    assert rehearsal["dns_records"] == [DnsRecord("failover-test.mana.how", "CNAME", "vps.mana.how", 60)]
    assert rehearsal["create"].startswith("CADDY_TARGET=sites.d/mana-infra-rehearsal.caddy\nCADDY_ACTION=install\n")
    assert rehearsal["delete"].startswith("CADDY_TARGET=sites.d/mana-infra-rehearsal.caddy\nCADDY_ACTION=remove\n")
    assert "failover-test.mana.how {" in rehearsal["site_file"] and "import mac_mini" in rehearsal["site_file"]
    assert rehearsal["outputs"]["mode"] == "failover" and rehearsal["outputs"]["prodStack"] == "prod"


def test_emergency_command_is_followed_or_refused() -> None:
    from mana_lab.inputs import parse_emergency
    from mana_lab.system import LabError

    assert parse_emergency("pulumi config set a 1 && pulumi up --target 'urn:x$y::z'") == ({"a": "1"}, "urn:x$y::z")
    with pytest.raises(LabError, match="cannot follow"):
        parse_emergency("pulumi config set a 1 && curl https://example.invalid")
    with pytest.raises(LabError, match="targets no resource"):
        parse_emergency("pulumi config set a 1")


def test_up_is_fast(lab: Any) -> None:
    print("lab timings", lab.timings)
    assert lab.timings["up"] < 10, lab.timings


def test_tunnel_path_client_dns_edge_mini(lab: Any) -> None:
    result = lab.probe()
    bad = [r for r in result["results"] if not r["ok"]]
    assert not bad, bad
    assert {r["ip"] for r in result["results"]} == {topo.EDGE_IP}
    auth = next(r for r in result["results"] if r["host"] == "auth.mana.how")
    assert auth["chain"][-1].endswith(".cfargotunnel.com")
    assert auth["body"] == "host=auth.mana.how port=3001"


def test_wireguard_handshake(lab: Any) -> None:
    peer = lab.wg_show("vps")["peers"][0]
    assert peer["latest_handshake"] > 0
    assert peer["endpoint"].startswith(lab.mini_wan_ip + ":")


def test_ssh_to_vps_sees_the_lab_at_the_production_paths(lab: Any) -> None:
    """An SSH session on the VPS finds the lab's /etc/caddy and the lab's systemctl running Caddy."""
    proc = lab.ssh("cat /etc/caddy/global.d/lab.caddy; command -v systemctl; systemctl is-active caddy && echo up")
    assert proc.returncode == 0, proc.stderr
    assert "local_certs" in proc.stdout
    assert f"{VPS_BIN}/systemctl\nup" in proc.stdout
    proc = lab.ssh("ip -4 -br addr show wan0")
    assert topo.VPS_IP in proc.stdout


def test_vps_caddy_health_in_tunnel_mode(lab: Any) -> None:
    res = lab.fetch("vps.mana.how", "/healthz")
    assert res["status"] == 200 and res["body"] == "ok mode=tunnel", res


def test_down_cleans_up_and_a_second_run_works(plan_inputs: dict[str, Any], tmp_path: Path, lab: Any) -> None:
    """Runs last in the module: tears the shared lab down, checks nothing is left, runs another that
    is interrupted (Ctrl-C) and must clean up just the same."""
    from mana_lab.lab import Lab
    from mana_lab.system import lab_namespaces, pid_alive, pids_from_dir

    def nothing_left(pids: list[int]) -> None:
        assert lab_namespaces() == []
        assert not any(pid_alive(p) for p in pids)
        assert not list(Path("/var/run/wireguard").glob("mlab*")) if Path("/var/run/wireguard").exists() else True
        assert not list(Path("/etc/netns").glob("mlab-*")) if Path("/etc/netns").exists() else True

    pids = [int(p.read_text()) for p in lab.pid_dir.glob("*.pid")]
    assert pids
    lab.down()
    nothing_left(pids)
    assert pids_from_dir(lab.pid_dir) == []

    again = Lab.from_inputs(tmp_path / "second", plan_inputs, "tunnel")
    with pytest.raises(KeyboardInterrupt), again:
        result = again.probe([("mana.how", 5000)])
        assert result["all_ok"] and result["results"][0]["ip"] == topo.EDGE_IP, result
        pids = [int(p.read_text()) for p in again.pid_dir.glob("*.pid")]
        raise KeyboardInterrupt
    nothing_left(pids)
