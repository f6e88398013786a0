"""`mana-infra check` against real servers on 127.0.0.0/8: knotd serves the zones, Caddy (local CA)
is the VPS, Python TLS servers are the Cloudflare edge and a stray server, plain HTTP servers are the
Mac Mini. The VPS script runs through a local shell (the injectable runner) with a stub `wg`.
The SSH transport itself is left to the network-namespace lab."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from mana_infra.check import JSON_SCHEMA
from mana_infra.check import cli as check
from mana_infra.check.cli import Reach
from mana_infra.check.core import Endpoints, classify
from mana_infra.check.probes import (
    DnsAnswer,
    RunResult,
    command_runner,
    parse_resolver,
    parse_vps_output,
    run_vps_script,
)
from mana_lab.standins import LocalCA, Site, free_port

ZONE = "mana.test"
TUNNEL_ID = "3f1c2d4e-0000-4000-8000-00000000abcd"
TUNNEL_TARGET = f"{TUNNEL_ID}.cfargotunnel.com"
EDGE_IP, VPS_IP, MINI_IP, STRAY_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
TUNNEL_HOSTS = ("mana.test", "auth.mana.test", "chat.mana.test")
FAILOVER_HOSTS = ("todo.mana.test", "clock.mana.test")
PROJECT = Path(__file__).resolve().parent.parent


def _require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(
                f"{tool} is missing, and CI must run these tests "
                f"(apt-get install {'knot' if tool == 'knotd' else tool})"
            )
        pytest.skip(
            f"{tool} is not installed (Debian: apt-get install {'knot' if tool == 'knotd' else tool}); "
            "check's server tests need it"
        )
    return path


def _free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def _wait(predicate: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text()[-2000:]}")
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready after {timeout} s: {log.read_text()[-2000:]}")


def _zone_files(directory: Path) -> None:
    head = (
        "$TTL 60\n@ 60 IN SOA ns.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ 60 IN NS ns.{z}.\nns 60 IN A 127.0.0.1\n"
    )
    mana = (
        head.format(z=ZONE)
        + "".join(
            [
                f"{ZONE}. 60 IN A {EDGE_IP}\n",  # the apex: Cloudflare flattens its CNAME to the edge's address
                *(f"{h}. 60 IN CNAME {TUNNEL_TARGET}.\n" for h in TUNNEL_HOSTS[1:]),
                f"untrusted.{ZONE}. 60 IN CNAME {TUNNEL_TARGET}.\n",
                f"wrong.{ZONE}. 60 IN CNAME old-server.{ZONE}.\n",
                f"old-server.{ZONE}. 60 IN A {STRAY_IP}\n",
                *(f"{h}. 60 IN CNAME vps.{ZONE}.\n" for h in FAILOVER_HOSTS),
                f"vps.{ZONE}. 60 IN A {VPS_IP}\n",
                f"vpsf.{ZONE}. 60 IN A {VPS_IP}\n",
            ]
        )
    )
    (directory / f"{ZONE}.zone").write_text(mana)
    tunnel = head.format(z="cfargotunnel.com") + f"{TUNNEL_TARGET}. 60 IN A {EDGE_IP}\n"
    (directory / "cfargotunnel.com.zone").write_text(tunnel)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class World:
    """Everything the tests point check at."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sites: list[Site] = []

    def start(self) -> World:
        knotd, caddy = _require("knotd"), _require("caddy")
        self.port = free_port([EDGE_IP, VPS_IP, STRAY_IP])
        # DNS: knotd, authoritative for the zone and for cfargotunnel.com, like Cloudflare's servers.
        dns_dir = self.tmp / "dns"
        dns_dir.mkdir()
        _zone_files(dns_dir)
        self.dns_port = _free_udp_port("127.0.0.1")
        (dns_dir / "knot.conf").write_text(
            f"server:\n    listen: 127.0.0.1@{self.dns_port}\n    rundir: {dns_dir}\n"
            f"log:\n  - target: stderr\n    any: warning\n"
            f"database:\n    storage: {dns_dir}\ncontrol:\n    listen: {dns_dir}/knot.sock\n"
            f'template:\n  - id: default\n    storage: {dns_dir}\n    file: "%s.zone"\n    zonefile-sync: -1\n'
            f"    zonefile-load: whole\n    journal-content: none\n    semantic-checks: off\n"
            f"zone:\n  - domain: {ZONE}\n  - domain: cfargotunnel.com\n"
        )
        self._spawn([knotd, "-c", str(dns_dir / "knot.conf")], "knotd")

        # The Mac Mini: one plain HTTP backend per inventory port.
        self.ports = {
            host: free_port([MINI_IP])
            for host in (*TUNNEL_HOSTS, *FAILOVER_HOSTS, f"untrusted.{ZONE}", f"wrong.{ZONE}")
        }
        for port in self.ports.values():
            self.sites.append(Site(MINI_IP, port, f"mini port={port}"))

        # The VPS: Caddy with its internal CA, the two health names, and failover sites.
        caddy_dir = self.tmp / "caddy"
        caddy_dir.mkdir()
        sites = [
            f"vps.{ZONE} {{\n\tbind {VPS_IP}\n"
            '\trespond /healthz "ok mode=tunnel" 200\n\trespond "mana-infra standby" 404\n}',
            f'vpsf.{ZONE} {{\n\tbind {VPS_IP}\n\trespond /healthz "ok mode=failover" 200\n}}',
        ]
        sites += [f"{h} {{\n\tbind {VPS_IP}\n\treverse_proxy {MINI_IP}:{self.ports[h]}\n}}" for h in FAILOVER_HOSTS]
        (caddy_dir / "Caddyfile").write_text(
            f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttps_port {self.port}\n"
            f"\thttp_port {free_port([VPS_IP])}\n\tauto_https disable_redirects\n"
            f"\tstorage file_system {{\n\t\troot {caddy_dir / 'data'}\n\t}}\n}}\n\n" + "\n\n".join(sites) + "\n"
        )
        env = {
            **os.environ,
            "HOME": str(caddy_dir),
            "XDG_DATA_HOME": str(caddy_dir / "xdg"),
            "XDG_CONFIG_HOME": str(caddy_dir / "xdg"),
        }
        caddy_proc = self._spawn(
            [caddy, "run", "--config", str(caddy_dir / "Caddyfile"), "--adapter", "caddyfile"], "caddy", env=env
        )

        # The Cloudflare edge and a stray server: Python TLS servers with a test CA; one host gets a
        # certificate from a CA nobody trusts.
        ca = LocalCA(self.tmp / "ca")
        rogue = LocalCA(self.tmp / "rogue", name="rogue CA")
        good = ca.issue("edge", [*TUNNEL_HOSTS, f"wrong.{ZONE}"])
        self.edge = Site(
            EDGE_IP,
            self.port,
            "edge",
            {TUNNEL_HOSTS[0]: good, f"untrusted.{ZONE}": rogue.issue("bad", [f"untrusted.{ZONE}"])},
        )
        self.sites += [self.edge, Site(STRAY_IP, self.port, "stray", {f"wrong.{ZONE}": good})]

        # Ready: knotd answers, Caddy has its certificates.
        caddy_root = caddy_dir / "data" / "pki" / "authorities" / "local" / "root.crt"
        leaves = [
            caddy_dir / "data" / "certificates" / "local" / h / f"{h}.crt" for h in ("vps." + ZONE, *FAILOVER_HOSTS)
        ]
        _wait(
            lambda: caddy_root.exists() and all(p.exists() for p in leaves), "caddy", caddy_proc, self.tmp / "caddy.log"
        )
        _wait(self._knot_answers, "knotd", self.procs[0], self.tmp / "knotd.log")
        self.ca_file = self.tmp / "bundle.pem"
        self.ca_file.write_text(ca.cert_path.read_text() + caddy_root.read_text())

        # The stub `wg` for the VPS script (WG_AGE: seconds since the last handshake).
        stub = self.tmp / "bin"
        stub.mkdir()
        (stub / "wg").write_text(
            '#!/bin/bash\n[ "$1 $2 $3" = "show wg0 latest-handshakes" ] || '
            '{ echo "Unable to access interface: No such device" >&2; exit 1; }\n'
            'echo "macminiKey= $(( $(date +%s) - ${WG_AGE:-5} ))"\n'
        )
        (stub / "wg").chmod(0o755)
        self.stub_dir = stub

        self.hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        threading.Thread(target=self.hook.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def _spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _knot_answers(self) -> bool:
        from mana_infra.check.probes import Nameserver, resolve

        return bool(resolve(f"vps.{ZONE}", [Nameserver("127.0.0.1", self.dns_port)], 0.2).addresses)

    def stop(self) -> None:
        for site in self.sites:
            site.close()
        if hasattr(self, "hook"):
            self.hook.shutdown()
            self.hook.server_close()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def services(self, *hosts: str) -> str:
        path = self.tmp / f"services-{abs(hash(hosts))}.yaml"
        path.write_text("services:\n" + "".join(f"  - host: {h}\n    port: {self.ports.get(h, 9)}\n" for h in hosts))
        return str(path)

    def reach(self, wg_age: int = 5) -> Reach:
        """The world's servers sit on a free port; its VPS is a local shell with the stub `wg`
        (``wg_age``: seconds since the last handshake)."""
        shell = ["env", f"WG_AGE={wg_age}", f"PATH={self.stub_dir}:/usr/bin:/bin", "bash"]
        return Reach(https_port=self.port, vps_runner=command_runner(shell))

    def argv(self, *hosts: str, mode: str = "tunnel", extra: tuple[str, ...] = ()) -> list[str]:
        return [
            "--no-pulumi",
            "--mode",
            mode,
            "--zone",
            ZONE,
            "--services",
            self.services(*hosts),
            "--origin-name",
            f"vps.{ZONE}",
            "--origin-ip",
            VPS_IP,
            "--tunnel-target",
            TUNNEL_TARGET,
            "--health-url",
            f"https://{'vpsf' if mode == 'failover' else 'vps'}.{ZONE}/healthz",
            "--resolver",
            f"127.0.0.1:{self.dns_port}",
            "--ca-file",
            str(self.ca_file),
            "--timeout",
            "2",
            "--macmini-address",
            MINI_IP,
            "--cert-warn-days",
            "0",
            *extra,
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("check"))
    try:
        yield w.start()
    finally:
        w.stop()


def run(argv: list[str], capsys: pytest.CaptureFixture[str], reach: Reach) -> tuple[int, str, str]:
    code = check.main(check.parse_args(argv), reach=reach)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str], reach: Reach) -> tuple[int, dict[str, Any]]:
    code, out, _ = run([*argv, "--json"], capsys, reach)
    return code, json.loads(out)


# ------------------------------------------------------------------------------------- the paths


def test_all_healthy_in_tunnel_mode(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0, out + err
    assert "HEALTHY" in out
    code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0 and report["healthy"] and report["problems"] == []
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["auth.mana.test"]["dns"]["chain"] == ["auth.mana.test", TUNNEL_TARGET]
    assert hosts["mana.test"]["dns"]["path"] == "tunnel"  # the flattened apex: the tunnel's address
    for host in hosts.values():
        assert host["live"]["ok"] and host["live"]["status"] == 200 and host["live"]["cert_trusted"]
        assert 80 < host["live"]["cert_days_left"] <= 90
        assert host["standby"]["kind"] == "wireguard-port" and host["standby"]["ok"], host["standby"]
        assert host["standby"]["proven"] and "certificate" in host["standby"]["unproven"]
    assert report["vps"]["health"]["ok"] and report["vps"]["health"]["served_mode"] == "tunnel"
    assert report["vps"]["wireguard"]["ok"] and report["vps"]["wireguard"]["age_seconds"] <= 10
    assert report["seconds"] < 3


def test_all_healthy_in_failover_mode(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv(*FAILOVER_HOSTS, mode="failover"), capsys, world.reach())
    assert code == 0, report["problems"]
    for host in report["hosts"]:
        assert host["dns"]["path"] == "origin" and host["dns"]["detail"] == f"CNAME to vps.{ZONE}"
        assert host["live"]["ok"] and host["live"]["address"] == VPS_IP
        assert host["standby"]["kind"] == "https-via-vps" and host["standby"]["ok"], host["standby"]
    assert report["vps"]["health"]["served_mode"] == "failover"


def test_tunnel_down(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.edge.default_status = 530  # what Cloudflare answers when no cloudflared connection is up
    try:
        code, out, _ = run(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
        assert code == 1
        assert "DEGRADED" in out and "tunnel path down: 3 of 3 hosts fail" in out and "HTTP 530" in out
        code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
        assert report["tunnel_down"] and report["paths"]["live_tunnel"]["state"] == "down"
        assert report["paths"]["standby"]["state"] == "up"  # the standby path is still fine
    finally:
        world.edge.default_status = 200


def test_watch_alerts_after_k_tunnel_failures(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _Hook.received.clear()
    url = f"http://127.0.0.1:{world.hook.server_address[1]}/alert"
    world.edge.default_status = 502
    try:
        code, out, err = run(
            world.argv(
                *TUNNEL_HOSTS, extra=("--watch", "0.01", "--rounds", "3", "--alert-after", "2", "--webhook", url)
            ),
            capsys,
            world.reach(),
        )
    finally:
        world.edge.default_status = 200
    assert code == 1, err
    assert out.count("ALERT: the tunnel path failed 2 checks in a row") == 1
    assert "pulumi config set mode failover && pulumi up" in out
    assert len(_Hook.received) == 1
    payload = _Hook.received[0]
    assert payload["event"] == "tunnel_path_down" and payload["consecutive_failures"] == 2
    assert payload["command"] == "pulumi config set mode failover && pulumi up" and payload["standby_ready"]


def test_wrong_dns_target_is_other(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv("auth.mana.test", f"wrong.{ZONE}"), capsys, world.reach())
    assert code == 1
    wrong = next(h for h in report["hosts"] if h["host"] == f"wrong.{ZONE}")
    assert wrong["dns"]["path"] == "other" and wrong["dns"]["addresses"] == [STRAY_IP]
    assert wrong["dns"]["chain"] == [f"wrong.{ZONE}", f"old-server.{ZONE}"]
    assert any("(other)" in p and f"wrong.{ZONE}" in p for p in report["problems"]), report["problems"]
    code, out, _ = run(world.argv("auth.mana.test", f"wrong.{ZONE}"), capsys, world.reach())
    assert "other: CNAME to old-server.mana.test" in out


def test_untrusted_certificate(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv("auth.mana.test", f"untrusted.{ZONE}"), capsys, world.reach())
    assert code == 1
    bad = next(h for h in report["hosts"] if h["host"] == f"untrusted.{ZONE}")
    assert bad["dns"]["path"] == "tunnel"
    assert bad["live"]["cert_trusted"] is False and not bad["live"]["ok"]
    assert bad["live"]["error"].startswith("certificate not trusted")
    assert bad["live"]["cert_days_left"] is not None  # read from the untrusted certificate all the same
    assert any("certificate not trusted" in p and f"untrusted.{ZONE}" in p for p in report["problems"])


def test_wireguard_stale_and_mini_port_closed(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.ports["gone.mana.test"] = free_port([MINI_IP])  # nothing listens there
    code, report = run_json(world.argv("auth.mana.test", "gone.mana.test"), capsys, world.reach(wg_age=500))
    assert code == 1
    assert report["vps"]["wireguard"]["ok"] is False and report["vps"]["wireguard"]["age_seconds"] >= 500
    assert any(p.startswith("WireGuard down: last handshake 8 min ago") for p in report["problems"]), report["problems"]
    gone = next(h for h in report["hosts"] if h["host"] == "gone.mana.test")
    assert gone["standby"]["ok"] is False and "unreachable from the VPS" in gone["standby"]["error"]
    assert any(p.startswith("standby path (VPS -> WireGuard -> Mac Mini)") for p in report["problems"])


def test_no_ssh_leaves_the_standby_path_unchecked(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json([*world.argv(*TUNNEL_HOSTS), "--no-ssh"], capsys, world.reach())
    assert code == 0
    assert report["paths"]["standby"]["state"] == "unchecked" and report["paths"]["wireguard"]["state"] == "unchecked"
    assert any("not checked" in n for n in report["notes"])


def test_ssh_failure_is_one_problem(world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    closed = free_port(["127.0.0.1"])  # real ssh, to a port where nothing listens: refused at once
    argv = world.argv(*TUNNEL_HOSTS)
    argv += ["--ssh-host", "127.0.0.1", "--ssh-port", str(closed), "--ssh-option", f"UserKnownHostsFile={tmp_path}/kh"]
    code, report = run_json(argv, capsys, Reach(https_port=world.port))
    assert code == 1
    assert report["vps"]["ssh"]["checked"] and report["vps"]["ssh"]["via"] == "ssh root@127.0.0.1"
    assert "Connection refused" in report["vps"]["ssh"]["error"], report["vps"]["ssh"]
    assert report["paths"]["wireguard"]["state"] == "unchecked" and report["paths"]["standby"]["state"] == "unchecked"
    assert len(report["problems"]) == 1 and report["problems"][0].startswith(
        "SSH to the VPS failed, so WireGuard and the standby path went unchecked: "
    )


def test_json_shape(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        world.argv(*TUNNEL_HOSTS),
        world.argv(*FAILOVER_HOSTS, mode="failover"),
        world.argv("auth.mana.test", f"wrong.{ZONE}", f"untrusted.{ZONE}"),
    ):
        _, report = run_json(argv, capsys, world.reach())
        jsonschema.validate(report, JSON_SCHEMA)
        assert report["exit_code"] == (0 if report["healthy"] else 1)
    assert [h["host"] for h in report["hosts"]] == ["auth.mana.test", f"wrong.{ZONE}", f"untrusted.{ZONE}"]


def test_timeouts_are_results(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        argv = world.argv("auth.mana.test", extra=("--no-ssh",))
        argv[argv.index("--resolver") + 1] = f"127.0.0.1:{silent.getsockname()[1]}"
        argv[argv.index("--timeout") + 1] = "0.3"
        started = time.monotonic()
        code, report = run_json(argv, capsys, world.reach())
    finally:
        silent.close()
    assert code == 1 and time.monotonic() - started < 2
    assert report["hosts"][0]["dns"]["path"] == "error" and "timeout" in report["hosts"][0]["dns"]["error"]
    assert any(p.startswith("DNS fails for 1 host") for p in report["problems"])


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "change, message",
    [
        (("--services", "/nonexistent/services.yaml"), "cannot read the inventory"),
        (("--resolver", "dns.example"), "is not IP[:port]"),
        (("--origin-ip", "not-an-ip"), "'not-an-ip' is not an IP address"),
        (("--timeout", "0"), "--timeout: 0 is not in (0, 120] seconds"),
        (("--webhook", "ftp://x"), "is not an http(s) URL"),
    ],
)
def test_bad_input_exits_2(
    world: World, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    argv = world.argv(*TUNNEL_HOSTS)
    flag, value = change
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    code, out, err = run(argv, capsys, world.reach())
    assert code == 2 and out == ""
    assert err.startswith("mana-infra: ") and message in err and "Traceback" not in err


def test_bad_input_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = tmp_path / "services.yaml"
    services.write_text("services:\n  - host: a.elsewhere.org\n    port: 99999\n")
    code = check.cli(["--no-pulumi", "--services", str(services), "--zone", ZONE, "--resolver", "127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    for text in (
        "--mode: is not known",
        "--origin-name: is not known",
        "--tunnel-target: is not known",
        "outside the zone mana.test",
        "port 99999",
        "fix: ",
    ):
        assert text in err, err


# ------------------------------------------------------------------------------------ pure parts


def test_outputs_file_gives_the_endpoints(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {
        "mode": "tunnel",
        "originName": f"vps.{ZONE}",
        "originIpv4": VPS_IP,
        "originIpv6": "[secret]",
        "healthUrl": f"https://vps.{ZONE}/healthz",
        "tunnelTarget": TUNNEL_TARGET,
        "zone": ZONE,
        "macminiAddress": MINI_IP,
        "hosts": [
            {"host": h, "port": world.ports[h], "health": f"/health-{i}", "type": "CNAME", "target": TUNNEL_TARGET,
             "proxied": True, "ttl": 1}
            for i, h in enumerate(TUNNEL_HOSTS)
        ],
    }  # fmt: skip
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    argv = [
        "--outputs",
        str(path),
        "--resolver",
        f"127.0.0.1:{world.dns_port}",
        "--ca-file",
        str(world.ca_file),
        "--timeout",
        "2",
        "--cert-warn-days",
        "0",
        "--no-ssh",
    ]
    code, report = run_json(argv, capsys, world.reach())
    assert code == 0, report["problems"]
    assert [h["host"] for h in report["hosts"]] == list(TUNNEL_HOSTS)
    # check needs nothing but the outputs: each host's health path comes from them too.
    assert [h["health"] for h in report["hosts"]] == [f"/health-{i}" for i in range(len(TUNNEL_HOSTS))]
    assert report["endpoints"]["origin_ips"] == [VPS_IP]


def test_stack_outputs_come_from_the_pulumi_cli_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []
    monkeypatch.setattr(check.shutil, "which", lambda name: "/usr/bin/pulumi" if name == "pulumi" else None)

    def reader(stack: str | None) -> dict[str, Any]:
        calls.append(stack)
        return {
            "mode": "failover",
            "originName": "vps.mana.how",
            "originIpv4": "203.0.113.10",
            "tunnelTarget": TUNNEL_TARGET,
            "healthUrl": "https://vps.mana.how/healthz",
            "hosts": [{"host": "chat.mana.how", "port": 5010, "proxied": False}],
        }

    endpoints, options = check.build(check.parse_args(["--stack", "prod", "--resolver", "127.0.0.1"]), reader)
    assert calls == ["prod"]
    assert endpoints.mode == "failover" and endpoints.origin_ips == ("203.0.113.10",)
    assert endpoints.services[0].host == "chat.mana.how" and endpoints.proxied == {"chat.mana.how": False}
    assert options.runner is not None and options.runner_note == "root@203.0.113.10".join(("ssh ", ""))
    assert check.cutover_command("prod") == "pulumi config set mode failover --stack prod && pulumi up --stack prod"


def test_classify_cloudflare_proxied_addresses() -> None:
    endpoints = Endpoints(mode="tunnel", origin_name="vps.mana.how", tunnel_target=TUNNEL_TARGET, services=())
    proxied = DnsAnswer(chain=["chat.mana.how"], addresses=["104.21.3.4", "172.67.1.2"])
    assert classify(proxied, endpoints, set(), {"203.0.113.10"})[0] == "tunnel"
    assert (
        classify(DnsAnswer(chain=["chat.mana.how"], addresses=["203.0.113.10"]), endpoints, set(), {"203.0.113.10"})[0]
        == "origin"
    )
    other_tunnel = DnsAnswer(chain=["chat.mana.how", "ffff.cfargotunnel.com"], addresses=["104.21.3.4"])
    assert classify(other_tunnel, endpoints, set(), set())[0] == "other"


def test_parse_resolver_and_vps_output() -> None:
    assert str(parse_resolver("192.0.2.53")) == "192.0.2.53:53"
    assert str(parse_resolver("127.0.0.1:5353")) == "127.0.0.1:5353"
    assert str(parse_resolver("[::1]:5300")) == "[::1]:5300"
    with pytest.raises(ValueError):
        parse_resolver("127.0.0.1:0")
    report = parse_vps_output("now 1000\nwg key= 990\nport 3001 200\nport 3002 000\nport 3003 open\n")
    assert report.handshakes == {"key=": 990} and report.ports == {3001: "200", 3002: "000", 3003: "open"}
    failed = run_vps_script(
        lambda script, timeout: RunResult(255, "", "ssh: connect to host x port 22: Connection refused"), "true", 1
    )
    assert failed.error == "the VPS script did not run (ssh: connect to host x port 22: Connection refused)"


def test_the_flags_parse() -> None:
    args = check.parse_args(["--json", "--watch", "5", "--resolver", "127.0.0.1:53"])
    assert args.json and args.watch == 5.0 and args.alert_after == 3 and args.resolver == ["127.0.0.1:53"]


def test_the_mirror_is_asked_directly_and_differences_are_named(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The world's zone stands in for the Hetzner mirror: its failover hosts are in failover form
    (CNAME to the origin), its tunnel hosts are not, so the mirror check must name exactly those."""
    mirror = ("--mirror-nameserver", f"127.0.0.1:{world.dns_port}")
    code, report = run_json(world.argv(*FAILOVER_HOSTS, mode="failover", extra=mirror), capsys, world.reach())
    assert code == 0, report["problems"]
    assert report["paths"]["mirror"] == {"state": "up", "total": 2, "failed": 0}
    assert all(h["mirror"]["ok"] and h["mirror"]["path"] == "origin" for h in report["hosts"])

    code, report = run_json(world.argv(*TUNNEL_HOSTS, extra=mirror), capsys, world.reach())
    assert code == 1 and report["paths"]["mirror"]["failed"] == len(TUNNEL_HOSTS)
    [problem] = [p for p in report["problems"] if "mirror" in p]
    assert problem.startswith(f"the Hetzner mirror differs from failover for {len(TUNNEL_HOSTS)} hosts")
    assert "`pulumi up` rewrites it" in problem


def test_a_rehearsal_does_not_expect_the_prod_vps_in_failover_mode(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rehearsal stack's outputs say mode failover (its hosts are), while the prod VPS it borrows
    serves `ok mode=tunnel`: that is the point of a rehearsal, not a problem."""
    outputs = {
        "mode": "failover",
        "prodStack": "prod",
        "originName": f"vps.{ZONE}",
        "originIpv4": VPS_IP,
        "healthUrl": f"https://vps.{ZONE}/healthz",  # answers "ok mode=tunnel"
        "hosts": [
            {"host": h, "port": world.ports[h], "type": "CNAME", "target": f"vps.{ZONE}", "proxied": False, "ttl": 60}
            for h in FAILOVER_HOSTS
        ],
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    argv = ["--outputs", str(path), "--resolver", f"127.0.0.1:{world.dns_port}", "--ca-file", str(world.ca_file),
            "--timeout", "2", "--cert-warn-days", "0", "--no-ssh"]  # fmt: skip
    code, report = run_json(argv, capsys, world.reach())
    assert code == 0, report["problems"]
    health = report["vps"]["health"]
    assert health["ok"] and health["served_mode"] == "tunnel" and health["mode_matches"] is None
    # Without prodStack the same outputs are a stack whose VPS lags behind its mode: a problem.
    del outputs["prodStack"]
    path.write_text(json.dumps(outputs))
    code, report = run_json(argv, capsys, world.reach())
    assert code == 1 and any("the VPS's Caddy runs mode=tunnel" in p for p in report["problems"])
