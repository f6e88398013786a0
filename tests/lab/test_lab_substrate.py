"""The lab substrate carries real traffic with the plan's artifacts: DNS -> edge -> Mac Mini, sshd on
the VPS, WireGuard; its certificates come as production's do, before the first Caddyfile (pebble by
DNS-01 against the lab's knot, the Cloudflare stand-in's Origin CA); and it cleans up after itself
(also after Ctrl-C) so that the next run works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mana_infra.model import DnsRecord
from mana_infra.render.remote import caddy_command
from mana_lab import topology as topo
from mana_lab.machine import VPS_BIN


@pytest.fixture(scope="module")
def lab(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mana_lab.lab import Lab

    with Lab.from_inputs(tmp_path_factory.mktemp("lab"), plan_inputs, "tunnel") as lab:
        yield lab


def test_inputs_are_the_plans(plan_inputs: dict[str, Any]) -> None:
    assert len(plan_inputs["services"]) == 27
    states = plan_inputs["states"]
    assert list(states) == ["tunnel", "failover", "failover-dns", "failover-direct", "failover-direct-dns"]
    for state in states.values():
        assert state["Caddyfile"].startswith("# OFFLINE PLAN")
        assert "PrivateKey = " in state["wg0-macmini.conf"]
        assert "import mac_mini" in state["Caddyfile"]  # warm in every state: every host is served
    assert "\timport public_certificate\n\timport elsewhere_refused\n" in states["tunnel"]["Caddyfile"]
    assert "\timport origin_certificate\n\timport elsewhere_refused\n" in states["failover"]["Caddyfile"]
    assert "elsewhere_refused" not in states["failover-dns"]["Caddyfile"]
    # The plans were evaluated with the lab's edge as Cloudflare's published ranges: it is let through.
    assert "@elsewhere not remote_ip 198.51.100.10/32 2001:db8::10/128 192.0.2.0/24" in states["failover"]["Caddyfile"]
    assert "@elsewhere not remote_ip 192.0.2.0/24\n" in states["tunnel"]["Caddyfile"]

    def record(state: str, name: str = "auth.mana.how") -> DnsRecord:
        return next(r for r in states[state]["dns_records"] if r.name == name and r.type == "CNAME")

    target = plan_inputs["tunnel_target"]
    assert record("tunnel") == DnsRecord("auth.mana.how", "CNAME", target, 1, True)
    assert record("failover") == DnsRecord("auth.mana.how", "CNAME", "vps.mana.how", 1, True)  # only the target moves
    assert record("failover-dns") == DnsRecord("auth.mana.how", "CNAME", "vps.mana.how", 60, False)
    assert record("failover-direct") == DnsRecord("auth.mana.how", "CNAME", "home.mana.how", 1, True)
    assert record("failover-direct-dns") == DnsRecord("auth.mana.how", "CNAME", "home.mana.how", 60, False)
    home = {(r.name, r.type): r for r in states["tunnel"]["dns_records"] if r.name == "home.mana.how"}
    assert home == {
        ("home.mana.how", "A"): DnsRecord("home.mana.how", "A", topo.HOME_IP, 60, False),
        ("home.mana.how", "AAAA"): DnsRecord("home.mana.how", "AAAA", topo.MINI_LAN_IP6, 60, False),
    }
    origin = {(r.name, r.type): r for r in states["failover"]["dns_records"]}
    assert origin[("vps.mana.how", "A")] == DnsRecord("vps.mana.how", "A", topo.VPS_IP, 60, False)
    assert (
        states["failover-dns"]["outputs"]["failoverVia"] == "dns"
        and states["failover"]["outputs"]["mode"] == "failover"
    )


def test_certificate_commands_are_the_plans(plan_inputs: dict[str, Any]) -> None:
    """The lab installs both certificates through the plan's own command text (before the Caddyfile,
    which inputs_from_plan checks the plan orders so)."""
    certificates = plan_inputs["certificates"]
    assert {k: (v["name"], v["target"]) for k, v in certificates.items()} == {
        "public": ("certificate-public-apply", "certs/public.pem"),
        "origin": ("certificate-origin-apply", "certs/origin.pem"),
    }
    assert certificates["public"]["create"] == caddy_command("certs/public.pem")
    assert certificates["origin"]["create"] == caddy_command("certs/origin.pem")


def test_mirror_emergency_and_rehearsal_inputs_are_the_plans(plan_inputs: dict[str, Any]) -> None:
    from mana_lab.dnszone import rrset_records

    mirror = {(r.name, r.type): r.content for r in rrset_records(plan_inputs["mirror"]["rrsets"], "mana.how")}
    assert mirror[("auth.mana.how", "CNAME")] == "vps.mana.how."
    assert mirror[("mana.how", "A")] == mirror[("vps.mana.how", "A")] == topo.VPS_IP
    assert mirror[("mana.how", "AAAA")] == topo.VPS_IP6
    assert len([k for k in mirror if k[1] == "CNAME"]) == 26  # every inventory host but the apex
    # The emergency cut-over's targeted up: the DNS-only Caddyfile through the same command text.
    emergency, failover_dns = plan_inputs["emergency"], plan_inputs["states"]["failover-dns"]
    assert emergency["overrides"]["cloudflareReachable"] == "false" and emergency["overrides"]["mode"] == "failover"
    assert emergency["overrides"]["failoverVia"] == "dns"
    assert failover_dns["Caddyfile"].endswith(emergency["Caddyfile"])  # the artifact adds the OFFLINE PLAN mark
    assert emergency["caddy_command"] == failover_dns["caddy_command"]
    rehearsal = plan_inputs["rehearsal"]
    assert rehearsal["dns_records"] == [DnsRecord("failover-test.mana.how", "CNAME", "vps.mana.how", 60)]
    assert rehearsal["create"].startswith("CADDY_TARGET=sites.d/mana-infra-rehearsal.caddy\nCADDY_ACTION=install\n")
    assert rehearsal["delete"].startswith("CADDY_TARGET=sites.d/mana-infra-rehearsal.caddy\nCADDY_ACTION=remove\n")
    assert "failover-test.mana.how {" in rehearsal["site_file"] and "import mac_mini" in rehearsal["site_file"]
    assert rehearsal["outputs"]["mode"] == "failover" and rehearsal["outputs"]["prodStack"] == "prod"


def test_emergency_command_is_followed_or_refused() -> None:
    from mana_lab.inputs import parse_emergency
    from mana_lab.system import LabError

    command = "pulumi config set --stack prod a 1 && pulumi up --stack prod --target 'urn:x$y::z'"
    assert parse_emergency(command) == ({"a": "1"}, "urn:x$y::z")
    with pytest.raises(LabError, match="cannot follow"):
        parse_emergency("pulumi config set --stack prod a 1 && curl https://example.invalid")
    with pytest.raises(LabError, match="cannot follow"):  # a command for whichever stack is selected
        parse_emergency("pulumi config set a 1 && pulumi up --stack prod --target 'urn:x$y::z'")
    with pytest.raises(LabError, match="targets no resource"):
        parse_emergency("pulumi config set --stack prod a 1")


def test_the_edge_follows_each_records_target(tmp_path: Path) -> None:
    """The edge's configuration: the tunnel for a record that targets it, HTTPS to the origin with the
    Origin CA alone for one that targets the origin name, Cloudflare's 1001 for one that is not proxied."""
    from mana_lab import edge

    tunnel = "00000000-0000-4000-8000-000000000000.cfargotunnel.com"
    files = edge.EdgeFiles(tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "origin-ca.pem", tmp_path / "data")
    records = [
        DnsRecord("a.mana.how", "CNAME", tunnel, 1, True),
        DnsRecord("b.mana.how", "CNAME", "vps.mana.how", 1, True),
        DnsRecord("c.mana.how", "CNAME", "vps.mana.how", 60, False),
        DnsRecord("vps.mana.how", "AAAA", topo.VPS_IP6, 60),
        DnsRecord("vps.mana.how", "A", topo.VPS_IP, 60),
    ]
    text = edge.render(
        records, [("a.mana.how", 1), ("b.mana.how", 2), ("c.mana.how", 3)], tunnel, "2001:db8:cf::2", files
    )
    a, b, c = (text.split(f"\n{h} {{\n")[1].split("\n}\n")[0] for h in ("a.mana.how", "b.mana.how", "c.mana.how"))
    assert "reverse_proxy [2001:db8:cf::2]:1 {" in a and "keepalive off" in a
    assert f"reverse_proxy {topo.VPS_IP}:443 {{" in b  # IPv4 first, as the edge dials it
    assert "tls_server_name b.mana.how" in b and f"tls_trusted_ca_certs {files.origin_ca}" in b
    assert 'respond "error code: 1001" 530' in c
    assert all(f"tls {files.cert} {files.key}" in site for site in (a, b, c))


def test_up_is_fast(lab: Any) -> None:
    print("lab timings", lab.timings)
    assert lab.timings["up"] < 10, lab.timings


def test_certificates_are_installed_before_the_first_caddyfile(lab: Any) -> None:
    """The public certificate: one order at pebble (DNS-01 against the lab's knot) for the zone and
    *.zone; the origin certificate: the Cloudflare stand-in's Origin CA. Both are on the VPS as the plan's
    commands put them there, each while the caddy package's own Caddyfile was still the live one."""
    public, origin = lab.certificates["public"], lab.certificates["origin"]
    assert public["issuer"].startswith("Pebble Intermediate CA") and public["names"] == ["mana.how", "*.mana.how"]
    assert public["orders"] == 1 and lab.acme_orders() == 1  # and none since
    assert origin["issuer"] == "CloudFlare Origin SSL ECC CA (mana-lab stand-in)"
    assert origin["names"] == ["mana.how", "*.mana.how"]
    for name, certificate in (("public", public), ("origin", origin)):
        assert certificate["install_output"].endswith(f"/etc/caddy/certs/{name}.pem is live"), certificate
    proc = lab.ssh("cat /etc/caddy/certs/public.pem; echo ===; cat /etc/caddy/certs/origin.pem; echo ===;"
                   " cat /etc/caddy/Caddyfile.previous")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    installed_public, installed_origin, replaced = proc.stdout.split("===\n")
    # What the program's first Caddyfile replaced: the package's own (a new server serves it at first).
    assert "mana-infra" not in replaced and "file_server" in replaced
    assert installed_public == public["pem"] and installed_origin == origin["pem"]
    assert public["pem"].count("BEGIN CERTIFICATE") == 2 and "PRIVATE KEY-----" in public["pem"]  # chain, key
    # Through pebble: DNS-01 at knot, dynamic updates from the operator's address only.
    log = (lab.log_dir / "lego.log").read_text()
    assert "acme: use dns-01 solver" in log and "The server validated our request" in log


def test_proxied_records_answer_the_edges_addresses(lab: Any) -> None:
    """As Cloudflare's DNS: a proxied record is the edge's addresses (TTL 300), whatever its target; the
    origin name, DNS-only, is the VPS."""

    def dig(name: str, rtype: str) -> str:
        proc = lab.exec("client", ["kdig", f"@{topo.DNS_IP}", "+noall", "+answer", name, rtype], check=True)
        return " ".join(proc.stdout.split())

    assert dig("auth.mana.how", "A") == f"auth.mana.how. 300 IN A {topo.EDGE_IP}"
    assert dig("auth.mana.how", "AAAA") == f"auth.mana.how. 300 IN AAAA {topo.EDGE_IP6}"
    assert dig("vps.mana.how", "A") == f"vps.mana.how. 60 IN A {topo.VPS_IP}"


def test_tunnel_path_client_dns_edge_mini(lab: Any) -> None:
    result = lab.probe()
    bad = [r for r in result["results"] if not r["ok"]]
    assert not bad, bad
    assert {r["ip"] for r in result["results"]} == {topo.EDGE_IP}
    auth = next(r for r in result["results"] if r["host"] == "auth.mana.how")
    assert auth["chain"] == ["auth.mana.how"]  # proxied: the edge's address, no CNAME shown
    assert auth["body"] == "host=auth.mana.how port=3001"


def test_the_vps_refuses_an_outsider_in_tunnel_mode(lab: Any) -> None:
    """A visitor outside the operator's networks and the edge: every host refused at the VPS (403),
    every host served through the edge."""
    direct = lab.probe(role="outsider", connect=topo.VPS_IP)
    for r in direct["results"]:
        assert (r["status"], r["body"]) == (
            403,
            f"mana-infra standby: {r['host']} is served through Cloudflare (refused for {topo.OUTSIDER_IP})",
        ), r
    assert lab.probe(role="outsider", expect_ips=[topo.EDGE_IP])["all_ok"]


def test_wireguard_handshake(lab: Any) -> None:
    peer = lab.wg_show("vps")["peers"][0]
    assert peer["latest_handshake"] > 0
    assert peer["endpoint"].startswith(lab.mini_wan_ip + ":")


def test_ssh_to_vps_sees_the_lab_at_the_production_paths(lab: Any) -> None:
    """An SSH session on the VPS is on a machine booted from the plan's user data, in a root of its
    own: the lab's systemctl running Caddy, the standby's wg0 from cloud-init's wg0.conf, sshd with the
    user data's hardening in force; none of it on the host."""
    proc = lab.ssh(
        "cat /etc/caddy/global.d/lab.caddy; command -v systemctl; systemctl is-active caddy && echo up;"
        " command -v wg; wg show wg0 listen-port; cloud-init status"
    )
    assert proc.returncode == 0, proc.stderr
    assert "local_certs" not in proc.stdout  # nothing asks ACME; if a site did, pebble would count it
    assert f"acme_ca https://{topo.ACME_IP}:{topo.ACME_PORT}/dir\n" in proc.stdout
    assert proc.stdout.endswith(f"{VPS_BIN}/systemctl\nup\n/usr/bin/wg\n{topo.WG_LISTEN_PORT}\nstatus: done\n")
    proc = lab.ssh("ip -4 -br addr show wan0; cmp /etc/wireguard/wg0.conf - && echo same", input=wg_server_conf(lab))
    assert topo.VPS_IP in proc.stdout and proc.stdout.endswith("same\n"), proc.stdout + proc.stderr
    # The user data's sshd drop-in is in force (Ubuntu's order: drop-ins first).
    proc = lab.ssh("/usr/sbin/sshd -T -f /etc/ssh/sshd_config | grep -E '^(passwordauthentication|permitrootlogin) '")
    assert proc.stdout.split("\n")[:2] == ["permitrootlogin without-password", "passwordauthentication no"], proc
    assert not Path("/etc/wireguard/wg0.conf").exists() and not Path("/etc/caddy/certs").exists()


def wg_server_conf(lab: Any) -> str:
    """The VPS's wg0.conf as the user data writes it."""
    document = yaml.safe_load(lab.artifacts["cloud-init.yaml"])
    return next(f["content"] for f in document["write_files"] if f["path"] == "/etc/wireguard/wg0.conf")


def test_an_acme_order_would_be_counted(lab: Any) -> None:
    """The drill's ``acme_orders`` is no empty figure: a site whose name no installed certificate covers
    makes the VPS's Caddy ask its ACME CA, pebble here, and the order is counted. (A name under the zone
    asks nothing: the wildcard covers it.)"""
    import time

    before = lab.acme_orders()
    command = caddy_command("sites.d/acme-probe.caddy")
    ok, out = lab.run_command(command, 'acme-probe.mana.how {\n\trespond "x"\n}\n')
    assert ok, out
    time.sleep(1)
    assert lab.acme_orders() == before
    ok, out = lab.run_command(command, 'acme-probe.example.test {\n\trespond "x"\n}\n')
    assert ok, out
    try:
        deadline = time.monotonic() + 15
        while lab.acme_orders() == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lab.acme_orders() > before
    finally:
        removed, out = lab.run_command(caddy_command("sites.d/acme-probe.caddy", "remove"))
        assert removed, out


def test_vps_caddy_health_in_tunnel_mode(lab: Any) -> None:
    res = lab.fetch("vps.mana.how", "/healthz")
    assert res["status"] == 200 and res["body"] == "ok mode=tunnel", res


def test_lab_status_names_each_namespace_and_what_runs_there(lab: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from mana_lab import cli

    assert cli.main(["status"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert {"mlab-vps", "mlab-dns", "mlab-client"} <= lines.keys()
    assert "caddy" in lines["mlab-vps"] and "sshd" in lines["mlab-vps"] and "knotd" in lines["mlab-dns"]


def test_down_cleans_up_and_a_second_run_works(plan_inputs: dict[str, Any], tmp_path: Path, lab: Any) -> None:
    """Runs last in the module: tears the shared lab down, checks nothing is left, runs another that
    is interrupted (Ctrl-C) and must clean up just the same."""
    from mana_lab.cli import status_text
    from mana_lab.lab import Lab
    from mana_lab.system import lab_namespaces, pid_alive, pids_from_dir

    def nothing_left(pids: list[int]) -> None:
        assert lab_namespaces() == []
        assert status_text() == "no lab is running (`mana-infra lab up` starts one)"
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
