"""`mana-infra check` against real servers on 127.0.0.0/8: knotd serves the zones, Caddy (local CA)
is the VPS and serves every inventory host in both modes, Python TLS servers are the Cloudflare edge
and a stray server, plain HTTP servers are the Mac Mini, a small HTTP server is Cloudflare's API (its
token check, reached through CLOUDFLARE_BASE_URL). The VPS script (WireGuard's handshake) runs through
a local shell (the injectable runner) with a stub `wg`. The SSH transport itself is left to the
network-namespace lab."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mana_infra.check import JSON_SCHEMA, Report, decision
from mana_infra.check import cli as check
from mana_infra.check.cli import Reach
from mana_infra.check.core import Endpoints, classify, tunnel_error
from mana_infra.check.probes import (
    DnsAnswer,
    HttpsResult,
    RunResult,
    command_runner,
    https_get,
    parse_resolver,
    parse_vps_output,
    run_vps_script,
    tls_context,
)
from mana_infra.check.view import shell_lines
from mana_infra.model import STANDBY_REFUSAL
from mana_lab.standins import LocalCA, Site, free_port

from .support import unavailable

ZONE = "mana.test"
TUNNEL_ID = "3f1c2d4e-0000-4000-8000-00000000abcd"
TUNNEL_TARGET = f"{TUNNEL_ID}.cfargotunnel.com"
EDGE_IP, VPS_IP, MINI_IP, STRAY_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
TUNNEL_HOSTS = ("mana.test", "auth.mana.test", "chat.mana.test")
FAILOVER_HOSTS = ("todo.mana.test", "clock.mana.test")
SOON = f"soon.{ZONE}"  # the VPS serves it a certificate with 15 days left
GONE = f"gone.{ZONE}"  # no DNS record; the VPS proxies it to a Mac Mini port where nothing listens
# Through the tunnel, and refused by the VPS to this machine, as the program's Caddyfile refuses outsiders.
REFUSED = (f"refused.{ZONE}", f"refused2.{ZONE}")
# Through the tunnel, and proxied by the VPS to a Mac Mini port where nothing listens: the Mac Mini down.
DEAD = (f"dead.{ZONE}", f"dead2.{ZONE}")
PROBE = f"tunnel-probe.{ZONE}"  # on the tunnel in every mode, no site anywhere: the edge answers it
PROJECT = Path(__file__).resolve().parent.parent
GOOD_TOKEN = "good-token-" + "x" * 40
BAD_TOKEN = "revoked-token-" + "y" * 40
EMERGENCY = (
    "pulumi config set --stack prod cloudflareZoneId 0123456789abcdef0123456789abcdef && pulumi config set --stack "
    "prod cloudflareReachable false && pulumi config set --stack prod mode failover && pulumi up --stack prod --target "
    "'urn:pulumi:prod::mana-infra::mana-infra:index:CaddyConfig$command:remote:Command::caddy-apply'"
)


def _require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
    if path is None:
        unavailable(f"needs {tool} (Debian: apt-get install {'knot' if tool == 'knotd' else tool})")
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
    mana = head.format(z=ZONE) + "".join(
        [
            # The apex: Cloudflare flattens its CNAME to the edge's address, with the TTL of proxied records.
            f"{ZONE}. 300 IN A {EDGE_IP}\n",
            *(f"{h}. 60 IN CNAME {TUNNEL_TARGET}.\n" for h in (*TUNNEL_HOSTS[1:], SOON, *REFUSED, *DEAD, PROBE)),
            f"untrusted.{ZONE}. 60 IN CNAME {TUNNEL_TARGET}.\n",
            f"wrong.{ZONE}. 60 IN CNAME old-server.{ZONE}.\n",
            f"old-server.{ZONE}. 60 IN A {STRAY_IP}\n",
            *(f"{h}. 60 IN CNAME vps.{ZONE}.\n" for h in FAILOVER_HOSTS),
            f"vps.{ZONE}. 60 IN A {VPS_IP}\n",
            f"vpsf.{ZONE}. 60 IN A {VPS_IP}\n",
        ]
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


class _CloudflareApi(BaseHTTPRequestHandler):
    """Cloudflare's token check as the API answers it: GOOD_TOKEN is active, any other is refused
    (401, code 1000); every other path is Cloudflare's 400 "No route for that URI"."""

    seen: ClassVar[list[str]] = []  # the Authorization headers received

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        if self.path != "/client/v4/user/tokens/verify":
            status, body = 400, {"success": False, "errors": [{"code": 7000, "message": "No route for that URI"}]}
        elif self.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}":
            status, body = 200, {"success": True, "errors": [], "result": {"id": "ab12", "status": "active"}}
        else:
            status, body = 401, {"success": False, "errors": [{"code": 1000, "message": "Invalid API Token"}]}
        data = json.dumps({"messages": [], "result": None, **body}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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

        # The Mac Mini: one plain HTTP backend per inventory port (none on GONE's).
        self.ports = {
            host: free_port([MINI_IP])
            for host in (
                *TUNNEL_HOSTS,
                *FAILOVER_HOSTS,
                SOON,
                GONE,
                *REFUSED,
                *DEAD,
                f"untrusted.{ZONE}",
                f"wrong.{ZONE}",
            )
        }
        for host, port in self.ports.items():
            if host not in (GONE, *DEAD):
                self.sites.append(Site(MINI_IP, port, f"mini port={port}"))

        # The certificates of the edge, the stray server and the VPS's health names and SOON.
        ca = LocalCA(self.tmp / "ca")
        rogue = LocalCA(self.tmp / "rogue", name="rogue CA")
        good = ca.issue("edge", [*TUNNEL_HOSTS, SOON, *REFUSED, *DEAD, PROBE, f"wrong.{ZONE}"])
        health = ca.issue("health", [f"vps.{ZONE}", f"vpsf.{ZONE}"])
        soon = ca.issue("soon", [SOON], days=15)

        # The VPS: Caddy serving the two health names, and every inventory host in both modes (as the
        # program's Caddyfile does now), with its internal CA; SOON with a certificate of its own.
        caddy_dir = self.tmp / "caddy"
        caddy_dir.mkdir()
        tls = "\ttls {} {}\n"
        sites = [
            f"vps.{ZONE} {{\n\tbind {VPS_IP}\n" + tls.format(*health) + '\trespond /healthz "ok mode=tunnel" 200\n'
            '\trespond "mana-infra standby" 404\n}',
            f"vpsf.{ZONE} {{\n\tbind {VPS_IP}\n" + tls.format(*health) + '\trespond /healthz "ok mode=failover" 200\n}',
        ]
        self.served = (*TUNNEL_HOSTS, *FAILOVER_HOSTS, GONE, *DEAD)
        sites += [f"{h} {{\n\tbind {VPS_IP}\n\treverse_proxy {MINI_IP}:{self.ports[h]}\n}}" for h in self.served]
        refusal = STANDBY_REFUSAL.format(host="{host}", served="served through Cloudflare", address="{remote_host}")
        sites += [f'{h} {{\n\tbind {VPS_IP}\n\trespond "{refusal}" 403\n}}' for h in REFUSED]
        sites.append(
            f"{SOON} {{\n\tbind {VPS_IP}\n" + tls.format(*soon) + f"\treverse_proxy {MINI_IP}:{self.ports[SOON]}\n}}"
        )
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
        caddy_argv = [caddy, "run", "--config", str(caddy_dir / "Caddyfile"), "--adapter", "caddyfile"]
        caddy_proc = self._spawn(caddy_argv, "caddy", env=env)

        # The Cloudflare edge and a stray server: Python TLS servers with the test CA; one host gets a
        # certificate from a CA nobody trusts.
        self.edge = Site(
            EDGE_IP,
            self.port,
            "edge",
            {TUNNEL_HOSTS[0]: good, f"untrusted.{ZONE}": rogue.issue("bad", [f"untrusted.{ZONE}"])},
        )
        self.sites += [self.edge, Site(STRAY_IP, self.port, "stray", {f"wrong.{ZONE}": good})]

        # Ready: knotd answers, Caddy has its certificates.
        caddy_root = caddy_dir / "data" / "pki" / "authorities" / "local" / "root.crt"
        leaves = [caddy_dir / "data" / "certificates" / "local" / h / f"{h}.crt" for h in (*self.served, *REFUSED)]

        def certificates_ready() -> bool:
            return caddy_root.exists() and all(p.exists() for p in leaves)

        try:
            _wait(certificates_ready, "caddy", caddy_proc, self.tmp / "caddy.log")
        except RuntimeError:
            # Seen once in a full run: Caddy 2.6 held one name's issuance lock forever (certificate
            # obtained for all others). A fresh start with the locks cleared issues the rest.
            caddy_proc.kill()
            caddy_proc.wait()
            shutil.rmtree(caddy_dir / "data" / "locks", ignore_errors=True)
            caddy_proc = self._spawn(caddy_argv, "caddy", env=env)
            _wait(certificates_ready, "caddy", caddy_proc, self.tmp / "caddy.log")
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
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), _CloudflareApi)
        threading.Thread(target=self.api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
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
        for server in (getattr(self, "hook", None), getattr(self, "api", None)):
            if server is not None:
                server.shutdown()
                server.server_close()
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

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.server_address[1]}/client/v4"

    def argv(
        self, *hosts: str, mode: str = "tunnel", extra: tuple[str, ...] = (), warn_days: str | None = "0"
    ) -> list[str]:
        """Flags for ``hosts``; warn_days "0" (the default) turns the certificates' warning off: Caddy's
        internal CA issues 12-hour certificates. None: check's own default."""
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
            *(["--cert-warn-days", warn_days] if warn_days is not None else []),
            *extra,
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("check"))
    try:
        yield w.start()
    finally:
        w.stop()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare token or terminal width from the machine running the tests."""
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], reach: Reach, sleep: Any = time.sleep
) -> tuple[int, str, str]:
    code = check.main(check.parse_args(argv), sleep=sleep, reach=reach)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str], reach: Reach) -> tuple[int, dict[str, Any]]:
    code, out, _ = run([*argv, "--json"], capsys, reach)
    report = json.loads(out)
    if "hosts" in report:  # every report reads back into check's types unchanged, and fits the schema
        assert Report.from_json(report).to_json() == report
        jsonschema.validate(report, JSON_SCHEMA)
    return code, report


def flat(text: str) -> str:
    """The text with every run of whitespace one space: what rich wrapped reads as one line again."""
    return " ".join(text.split())


def outputs_file(world: World, path: Path, hosts: tuple[str, ...] = TUNNEL_HOSTS, **changes: Any) -> Path:
    """The prod stack's outputs in tunnel mode, as `pulumi stack output --json` gives them."""
    outputs: dict[str, Any] = {
        "mode": "tunnel",
        "originName": f"vps.{ZONE}",
        "originIpv4": VPS_IP,
        "originIpv6": "[secret]",
        "healthUrl": f"https://vps.{ZONE}/healthz",
        "tunnelTarget": TUNNEL_TARGET,
        "zone": ZONE,
        "emergencyCutover": EMERGENCY,
        "hosts": [
            {"host": h, "port": world.ports[h], "type": "CNAME", "target": TUNNEL_TARGET, "proxied": True, "ttl": 1}
            for h in hosts
        ],
    }
    outputs.update(changes)
    path.write_text(json.dumps({k: v for k, v in outputs.items() if v is not None}))
    return path


def outputs_argv(world: World, path: Path, *extra: str, warn_days: str | None = "0") -> list[str]:
    """Flags for an outputs file; warn_days as in World.argv."""
    return ["--outputs", str(path), "--resolver", f"127.0.0.1:{world.dns_port}", "--ca-file", str(world.ca_file),
            "--timeout", "2", *(["--cert-warn-days", warn_days] if warn_days is not None else []), *extra]  # fmt: skip


class SilentResolver:
    """A DNS server that never answers: every name times out."""

    def __enter__(self) -> str:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def replace(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


# ------------------------------------------------------------------------------------- the paths


def test_all_healthy_in_tunnel_mode(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0, out + err
    assert "HEALTHY" in out and f" - {len(TUNNEL_HOSTS)} hosts in " in out
    code, out, err = run(world.argv("auth.mana.test"), capsys, world.reach())
    assert code == 0 and " - 1 host in " in out, out + err  # not "1 hosts"
    code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0 and report["healthy"] and report["problems"] == []
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["auth.mana.test"]["dns"]["chain"] == ["auth.mana.test", TUNNEL_TARGET]
    assert hosts["mana.test"]["dns"]["path"] == "tunnel"  # the flattened apex: the tunnel's address
    for host in hosts.values():
        assert host["live"]["ok"] and host["live"]["status"] == 200 and host["live"]["cert_trusted"]
        assert host["live"]["address"] == EDGE_IP and 80 < host["live"]["cert_days_left"] <= 90
    assert report["vps"]["health"]["ok"] and report["vps"]["health"]["served_mode"] == "tunnel"
    assert report["vps"]["wireguard"]["ok"] and report["vps"]["wireguard"]["age_seconds"] <= 10
    assert report["public_path"] == {"state": "up", "total": 3, "failed": 0, "failures": {}}
    assert report["diagnosis"] == {
        "way": None,
        "why": "every host answers through the tunnel: nothing to cut over",
        "command": None,
        "case": None,
    }
    assert report["tunnel_down"] is False
    assert report["seconds"] < 3


def test_the_standby_is_proven_through_the_vps_in_tunnel_mode(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The pre-flight: in tunnel mode too, each host through the VPS's address with its own name (SNI,
    Host, the certificate the VPS serves) and its health path across WireGuard to the Mac Mini."""
    code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0, report["problems"]
    for host in report["hosts"]:
        standby = host["standby"]
        assert standby["kind"] == "https-via-vps" and standby["ok"], standby
        assert standby["address"] == VPS_IP and standby["status"] == 200 and standby["cert_trusted"] is True
        assert (
            standby["proven"]
            == "the VPS serves this host over HTTPS: its Caddy site, certificate, WireGuard, the Mac Mini"
        )
        assert standby["unproven"] == "DNS to the VPS (it comes with the cut-over)"
    assert report["paths"]["standby"] == {"state": "up", "total": 3, "failed": 0, "refused": 0, "kind": "https-via-vps"}

    # A host whose Mac Mini port is closed (Caddy answers 502), one the VPS has no site for (no certificate).
    code, report = run_json(world.argv("auth.mana.test", GONE, f"untrusted.{ZONE}"), capsys, world.reach())
    assert code == 1
    hosts = {h["host"]: h["standby"] for h in report["hosts"]}
    assert hosts[GONE]["ok"] is False and hosts[GONE]["error"] == "HTTP 502" and hosts[GONE]["failure"] == "http_5xx"
    assert hosts[GONE]["cert_trusted"] is True  # the VPS has its certificate; WireGuard's far end fails
    assert hosts[f"untrusted.{ZONE}"]["failure"] == "tls_error"
    [problem] = [p for p in report["problems"] if p.startswith("standby path")]
    prefix = "standby path (HTTPS straight to the VPS) down: 2 of 3 fail: "
    assert problem.startswith(f"{prefix}{GONE} (HTTP 502); untrusted.{ZONE} (TLS handshake"), problem
    assert report["budget"]["acme"] == [f"untrusted.{ZONE}"]


def test_all_healthy_in_failover_mode(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv(*FAILOVER_HOSTS, mode="failover"), capsys, world.reach())
    assert code == 0, report["problems"]
    for host in report["hosts"]:
        assert host["dns"]["path"] == "origin" and host["dns"]["detail"] == f"CNAME to vps.{ZONE}"
        assert host["live"]["ok"] and host["live"]["address"] == VPS_IP
        assert host["standby"]["kind"] == "https-via-vps" and host["standby"]["ok"], host["standby"]
        assert host["standby"]["unproven"] == ""
    assert report["vps"]["health"]["served_mode"] == "failover"
    assert report["diagnosis"]["way"] is None and report["diagnosis"]["why"].startswith("mode failover:")


def test_tunnel_down(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.edge.default_status = 530  # what Cloudflare answers when no cloudflared connection is up
    try:
        code, out, _ = run(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
        assert code == 1
        assert "DEGRADED" in out and "tunnel path down: 3 of 3 hosts fail" in out and "HTTP 530" in out
        code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
        assert report["tunnel_down"] and report["paths"]["live_tunnel"]["state"] == "down"
        assert report["paths"]["standby"]["state"] == "up"  # the standby path is still fine
        assert report["public_path"]["state"] == "down"
        assert report["hosts"][0]["live"]["error"] == "HTTP 530 (Cloudflare's origin error)"
    finally:
        world.edge.default_status = 200


def test_dns_failing_for_every_host_alerts_once_with_the_dns_only_command(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """DNS times out for every host, 4 rounds: after 2 the alert (once) names what failed and the
    DNS-only way; the webhook gets the same. (Before, only HTTPS failures through the tunnel counted.)"""
    _Hook.received.clear()
    url = f"http://127.0.0.1:{world.hook.server_address[1]}/alert"
    with SilentResolver() as silent:
        argv = world.argv(*TUNNEL_HOSTS, extra=("--watch", "0.01", "--rounds", "4", "--alert-after", "2"))
        argv = replace(replace(argv, "--resolver", silent), "--timeout", "0.3")
        code, out, err = run([*argv, "--webhook", url, "--json"], capsys, world.reach())
    assert code == 1
    reports = [json.loads(line) for line in out.splitlines()]
    assert len(reports) == 4 and all(r["tunnel_down"] for r in reports)
    failures = {"dns_timeout": list(TUNNEL_HOSTS)}
    assert reports[0]["public_path"] == {"state": "down", "total": 3, "failed": 3, "failures": failures}
    assert reports[0]["diagnosis"] == {
        "way": "dns",
        "why": "DNS for the names fails (DNS timeout: 3 hosts)",
        "command": "mana-infra cutover --via dns",
        "case": "edge/serving",
    }
    assert err.count("ALERT") == 1
    assert err == (
        "ALERT: the public path failed 2 checks in a row (3 of 3 hosts fail):\n"
        "    DNS timeout: 3 hosts (mana.test, auth.mana.test, chat.mana.test)\n"
        "Cut over DNS-only: DNS for the names fails (DNS timeout: 3 hosts)\n"
        "    mana-infra cutover --via dns\n"
    )
    [payload] = _Hook.received
    assert {k: payload[k] for k in ("event", "kind", "way", "command", "failures", "counts", "standby_ready")} == {
        "event": "public_path_down",
        "kind": "dns_timeout",
        "way": "dns",
        "command": "mana-infra cutover --via dns",
        "failures": failures,
        "counts": {"dns_timeout": 3},
        "standby_ready": True,
    }
    assert payload["consecutive_failures"] == 2 and payload["problems"] == reports[1]["problems"]


def test_tunnel_errors_alert_with_the_edge_command_once_per_outage(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edge answers 530 "error code: 1033" (Cloudflare's page for a tunnel without cloudflared): the
    edge way fits. Down, down (alert), up (resolved), down, down (alert again): two alerts, one all-clear."""
    _Hook.received.clear()
    url = f"http://127.0.0.1:{world.hook.server_address[1]}/alert"
    states = [530, 530, 200, 530, 530]
    rounds = iter(states[1:])

    def next_round(_seconds: float) -> None:
        world.edge.default_status = next(rounds)

    world.edge.default_status, world.edge.default_body = states[0], "error code: 1033"
    try:
        argv = world.argv(*TUNNEL_HOSTS, extra=("--watch", "0.01", "--rounds", "5", "--alert-after", "2"))
        code, out, err = run([*argv, "--webhook", url], capsys, world.reach(), sleep=next_round)
    finally:
        world.edge.default_status, world.edge.default_body = 200, None
    assert code == 1, err
    lines = out.splitlines()
    assert lines.count("ALERT: the public path failed 2 checks in a row (3 of 3 hosts fail):") == 2
    assert lines.count("    tunnel error: 3 hosts (mana.test, auth.mana.test, chat.mana.test)") == 2
    # Each down round's table says what fits; the alert comes twice.
    fits = "Fits: through Cloudflare's edge — the edge answers over TLS, the tunnel behind it fails"
    fits += " (tunnel error: 3 hosts):"
    assert flat(out).count(f"{fits} mana-infra cutover --via edge") == 4
    assert (
        flat(out).count(
            "Cut over through Cloudflare's edge: the edge answers over TLS, the tunnel behind it fails "
            "(tunnel error: 3 hosts) mana-infra cutover --via edge"
        )
        == 2
    )
    assert (
        "Error 1033" not in out
        and "HTTP 530 (Cloudflare error 1033: the tunnel has no cloudflared connection)" in flat(out)
    )
    # Each outage: one alert, and the round the path answers again, one resolved notice.
    assert [payload["status"] for payload in _Hook.received] == ["firing", "resolved", "firing"]
    assert _Hook.received[1]["why"] == "the public path answers again (3 of 3 hosts)"
    for payload in _Hook.received[::2]:
        assert payload["event"] == "public_path_down" and payload["kind"] == "tunnel_error"
        assert payload["way"] == "edge" and payload["command"] == "mana-infra cutover --via edge"
        assert payload["failures"] == {"tunnel_error": list(TUNNEL_HOSTS)} and payload["standby_ready"] is True


def test_a_refused_api_token_means_the_emergency_path(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CLOUDFLARE_API_TOKEN set, check asks the API (CLOUDFLARE_BASE_URL) whether it takes the token:
    refused, no record can change at Cloudflare, so the command is the stack's emergencyCutover."""
    _CloudflareApi.seen.clear()
    _Hook.received.clear()
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", world.api_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", BAD_TOKEN)
    argv = outputs_argv(world, outputs_file(world, tmp_path / "outputs.json"))
    world.edge.default_status, world.edge.default_body = 530, "error code: 1033"
    try:
        code, report = run_json(argv, capsys, world.reach())
        code_text, out, err = run(argv, capsys, world.reach())
        url = f"http://127.0.0.1:{world.hook.server_address[1]}/alert"
        watch = ("--watch", "0.01", "--rounds", "1", "--alert-after", "1", "--webhook", url)
        _, watched, watch_err = run([*argv, *watch], capsys, world.reach())
    finally:
        world.edge.default_status, world.edge.default_body = 200, None
    assert code == 1 and code_text == 1
    jsonschema.validate(report, JSON_SCHEMA)
    assert _CloudflareApi.seen and set(_CloudflareApi.seen) == {f"Bearer {BAD_TOKEN}"}
    assert report["cloudflare_api"] == {
        "checked": True,
        "ok": False,
        "state": "refused",
        "error": "HTTP 401: 1000 Invalid API Token",
        "why_not_checked": None,
        "url": f"{world.api_url}/user/tokens/verify",
        "seconds": report["cloudflare_api"]["seconds"],
    }
    assert report["diagnosis"] == {
        "way": "emergency",
        "why": "the Cloudflare API refuses the token (HTTP 401: 1000 Invalid API Token), so no record can change "
        "at Cloudflare; the public path fails (tunnel error: 3 hosts)",
        "command": EMERGENCY,
        "case": "api/serving",
    }
    assert (
        "the Cloudflare API refuses the token (HTTP 401: 1000 Invalid API Token): no record can change at "
        "Cloudflare, a cut-over would have to take the emergency path"
    ) in report["problems"]
    # The table: the command in lines a shell reads as the one command, none wider than the pipe's 100.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Fits: the emergency path — "))
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("'urn:"))
    command = [line for line in lines[start + 1 : end + 1] if line.startswith("    ")]
    assert " ".join(line.strip().removesuffix(" \\") for line in command) == EMERGENCY
    assert all(line.endswith(" \\") for line in command[:-1]) and max(map(len, lines)) <= 100
    [payload] = _Hook.received
    assert payload["way"] == "emergency" and payload["command"] == EMERGENCY and payload["cloudflare_api"] == "refused"
    assert "Cut over by the emergency path: the Cloudflare API refuses the token" in flat(watched)
    for text in (json.dumps(report), out, err, watched, watch_err, json.dumps(payload)):
        assert BAD_TOKEN not in text  # never shown

    # The token taken: the edge way again; the API unreachable: the emergency path.
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", GOOD_TOKEN)
    code, report = run_json(argv, capsys, world.reach())
    assert code == 0 and report["cloudflare_api"]["state"] == "ok" and report["cloudflare_api"]["ok"] is True
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"http://127.0.0.1:{free_port(['127.0.0.1'])}/client/v4")
    world.edge.default_status = 502
    try:
        code, report = run_json(argv, capsys, world.reach())
    finally:
        world.edge.default_status = 200
    api = report["cloudflare_api"]
    assert code == 1 and api["state"] == "unreachable" and "Connection refused" in api["error"], api
    assert report["diagnosis"]["way"] == "emergency" and report["diagnosis"]["command"] == EMERGENCY


def test_the_edge_failing_itself_means_dns_only(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """5xx that are not tunnel errors (Cloudflare-wide 503) and TLS failing at the edge: the edge itself
    fails, so records must point at the VPS directly."""
    world.edge.status = {"mana.test": 503, "auth.mana.test": 503}
    try:
        code, report = run_json(world.argv(*TUNNEL_HOSTS, f"untrusted.{ZONE}"), capsys, world.reach())
    finally:
        world.edge.status = {}
    assert code == 1
    assert report["public_path"]["failures"] == {
        "cert_untrusted": [f"untrusted.{ZONE}"],
        "http_5xx": ["mana.test", "auth.mana.test"],
    }
    assert report["public_path"]["state"] == "down" and report["tunnel_down"] is True
    assert report["diagnosis"] == {
        "way": "dns",
        # The VPS has no site for the untrusted host either: the way fits, for the others.
        "why": "the edge itself fails (certificate not trusted: 1 host; HTTP 5xx: 2 hosts); but the standby "
        "fails for 1 host too",
        "command": "mana-infra cutover --via dns",
        "case": "edge/unproven",
    }


def test_the_budget_in_plain_words(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """From today's answers: the edge way seconds; DNS-only the longest TTL (the proxied apex: 300 s);
    certificates the VPS would still have to obtain."""
    code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert code == 0
    assert {k: report["budget"][k] for k in ("edge_seconds", "dns_seconds", "acme")} == {
        "edge_seconds": 60,
        "dns_seconds": 300,
        "acme": "none",
    }
    _, out, _ = run(world.argv(*TUNNEL_HOSTS), capsys, world.reach())
    assert (
        "Budget: edge way within a minute (Cloudflare applies a record change that fast); DNS-only up to 300 s "
        "(the old records' TTL); certificates: none to obtain"
    ) in flat(out)
    code, report = run_json(world.argv("auth.mana.test", f"untrusted.{ZONE}"), capsys, world.reach())
    assert report["budget"]["dns_seconds"] == 60 and report["budget"]["acme"] == [f"untrusted.{ZONE}"]
    assert report["budget"]["text"]["certificates"] == f"to obtain for untrusted.{ZONE}"


def test_a_certificate_under_21_days_is_a_problem_when_watching(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The VPS serves SOON a certificate with 15 days left: fine for one check (7 days), a problem with
    --watch (21 days: time to renew before a cut-over needs it)."""
    code, report = run_json(world.argv(SOON, warn_days=None), capsys, world.reach())
    assert code == 0 and report["problems"] == [], report["problems"]
    assert 14.9 < report["hosts"][0]["standby"]["cert_days_left"] <= 15
    argv = world.argv(SOON, warn_days=None, extra=("--watch", "0.01", "--rounds", "1"))
    code, out, _ = run([*argv, "--json"], capsys, world.reach())
    report = json.loads(out)
    assert code == 1
    assert report["problems"] == [f"the VPS's certificate expires within 21 days (15 days left) for 1 host: {SOON}"]
    assert report["hosts"][0]["standby"]["cert_expiring"] is True


def test_certificates_dated_by_the_outputs(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    origin, public = now + timedelta(days=10, hours=1), now + timedelta(days=200)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    path = outputs_file(  # SOON: the one host with a certificate for more than Caddy's internal 12 hours
        world,
        tmp_path / "outputs.json",
        (SOON,),
        originCertificateExpiresOn=origin.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),  # as Cloudflare's API has it
        publicCertificateExpiresOn=public.strftime(stamp),
    )
    argv = outputs_argv(world, path, warn_days=None)
    code, report = run_json(argv, capsys, world.reach())
    assert code == 0, report["problems"]
    jsonschema.validate(report, JSON_SCHEMA)
    certificates = report["certificates"]
    assert set(certificates) == {"origin", "public"}
    assert (
        certificates["origin"]["output"] == "originCertificateExpiresOn"
        and 10 < certificates["origin"]["days_left"] < 10.1
    )
    assert certificates["public"]["expiring"] is False and certificates["public"]["expired"] is False
    code, out, _ = run([*argv, "--watch", "0.01", "--rounds", "1", "--json"], capsys, world.reach())
    expires = origin.replace(microsecond=0).isoformat()
    assert code == 1 and json.loads(out)["problems"] == [
        f"the VPS's certificate expires within 21 days (15 days left) for 1 host: {SOON}",
        "originCertificateExpiresOn: the Cloudflare Origin CA certificate (the edge way) expires within 21 days "
        f"(10 days left, on {expires})",
    ]


def test_wrong_dns_target_is_other(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv("auth.mana.test", f"wrong.{ZONE}"), capsys, world.reach())
    assert code == 1
    wrong = next(h for h in report["hosts"] if h["host"] == f"wrong.{ZONE}")
    assert wrong["dns"]["path"] == "other" and wrong["dns"]["addresses"] == [STRAY_IP]
    assert wrong["dns"]["chain"] == [f"wrong.{ZONE}", f"old-server.{ZONE}"]
    assert any("(other)" in p and f"wrong.{ZONE}" in p for p in report["problems"]), report["problems"]
    code, out, _ = run(world.argv("auth.mana.test", f"wrong.{ZONE}"), capsys, world.reach())
    assert "│ other: CNAME to " in out and "│ old-server.mana.test -> " in out  # the table's DNS cell


def test_untrusted_certificate(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv("auth.mana.test", f"untrusted.{ZONE}"), capsys, world.reach())
    assert code == 1
    bad = next(h for h in report["hosts"] if h["host"] == f"untrusted.{ZONE}")
    assert bad["dns"]["path"] == "tunnel"
    assert bad["live"]["cert_trusted"] is False and not bad["live"]["ok"] and bad["live"]["failure"] == "cert_untrusted"
    assert bad["live"]["error"].startswith("certificate not trusted")
    assert bad["live"]["cert_days_left"] is not None  # read from the untrusted certificate all the same
    assert any("certificate not trusted" in p and f"untrusted.{ZONE}" in p for p in report["problems"])


def test_wireguard_stale(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(world.argv("auth.mana.test"), capsys, world.reach(wg_age=500))
    assert code == 1
    # 499 when the stub's clock ticks between the script's `now` and its `wg` line.
    assert report["vps"]["wireguard"]["ok"] is False and report["vps"]["wireguard"]["age_seconds"] >= 499
    assert report["problems"] == ["WireGuard down: last handshake 8 min ago (stale after 180 s)"]


def test_skipped_checks_say_so_and_why(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every check that did not run is a note with its reason, in the JSON and the table."""
    code, report = run_json([*world.argv(*TUNNEL_HOSTS), "--no-ssh"], capsys, world.reach())
    assert code == 0
    assert report["paths"]["wireguard"]["state"] == "unchecked" and report["paths"]["standby"]["state"] == "up"
    assert report["notes"] == [
        "Hetzner mirror not checked: no stack outputs were read, so no secondaryDnsNameservers "
        "(give --mirror-nameserver IP)",
        "WireGuard not checked: skipped: --no-ssh",
        "Cloudflare API not asked: CLOUDFLARE_API_TOKEN is not set (the edge and DNS-only ways need the API to "
        "take it)",
        "tunnel probe not checked: no tunnelProbe output was read (a stack's first `pulumi up` since it came "
        "exports it)",
    ]
    assert report["cloudflare_api"]["checked"] is False and report["cloudflare_api"]["why_not_checked"].startswith(
        "CLOUDFLARE_API_TOKEN is not set"
    )
    _, out, _ = run([*world.argv(*TUNNEL_HOSTS), "--no-ssh"], capsys, world.reach())
    for note in report["notes"]:
        assert f"note: {note}" in flat(out)

    # No address to SSH to (no runner, no --ssh-host, no outputs).
    _, report = run_json(world.argv("auth.mana.test"), capsys, Reach(https_port=world.port))
    assert (
        "WireGuard not checked: no address to SSH to (give --ssh-host, or read the stack's outputs)" in report["notes"]
    )

    # From the stack's outputs: --no-ssh says so (not "give --ssh-host"); the mirror's three reasons.
    path = outputs_file(world, tmp_path / "outputs.json", secondaryDnsNameservers=["hydrogen.ns.mirror.test"])
    code, out, _ = run([*outputs_argv(world, path), "--no-ssh", "--no-mirror", "--json"], capsys, world.reach())
    notes = json.loads(out)["notes"]
    assert notes[:2] == ["Hetzner mirror not checked: skipped: --no-mirror", "WireGuard not checked: skipped: --no-ssh"]
    assert "give --ssh-host" not in out
    _, report = run_json(outputs_argv(world, path), capsys, world.reach())
    assert report["notes"][0] == (
        "Hetzner mirror not checked: its nameservers' names did not resolve: hydrogen.ns.mirror.test "
        "(DNS error REFUSED for hydrogen.ns.mirror.test)"
    )
    path = outputs_file(world, tmp_path / "outputs.json")
    _, report = run_json(outputs_argv(world, path), capsys, world.reach())
    assert report["notes"][0] == (
        "Hetzner mirror not checked: the outputs have no secondaryDnsNameservers (the stack's secondaryDns is off)"
    )


def test_ssh_failure_is_one_problem(world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    closed = free_port(["127.0.0.1"])  # real ssh, to a port where nothing listens: refused at once
    argv = world.argv(*TUNNEL_HOSTS)
    argv += ["--ssh-host", "127.0.0.1", "--ssh-port", str(closed), "--ssh-option", f"UserKnownHostsFile={tmp_path}/kh"]
    code, report = run_json(argv, capsys, Reach(https_port=world.port))
    assert code == 1
    assert report["vps"]["ssh"]["checked"] and report["vps"]["ssh"]["via"] == "ssh root@127.0.0.1"
    assert "Connection refused" in report["vps"]["ssh"]["error"], report["vps"]["ssh"]
    assert report["paths"]["wireguard"]["state"] == "unchecked" and report["paths"]["standby"]["state"] == "up"
    assert len(report["problems"]) == 1 and report["problems"][0].startswith(
        "SSH to the VPS failed, so WireGuard went unchecked: "
    )


def test_json_shape(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        world.argv(*TUNNEL_HOSTS),
        world.argv(*FAILOVER_HOSTS, mode="failover"),
        world.argv("auth.mana.test", f"wrong.{ZONE}", f"untrusted.{ZONE}", GONE),
    ):
        _, report = run_json(argv, capsys, world.reach())
        jsonschema.validate(report, JSON_SCHEMA)
        assert report["exit_code"] == (0 if report["healthy"] else 1)
    assert [h["host"] for h in report["hosts"]] == ["auth.mana.test", f"wrong.{ZONE}", f"untrusted.{ZONE}", GONE]
    assert report["public_path"]["failures"] == {"dns_nxdomain": [GONE], "cert_untrusted": [f"untrusted.{ZONE}"]}


def test_the_table_fits_the_pipe(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pipe: 100 columns (not 160), or COLUMNS; no line wider."""
    argv = world.argv("auth.mana.test", f"wrong.{ZONE}", f"untrusted.{ZONE}", GONE)
    _, out, _ = run(argv, capsys, world.reach())
    assert max(map(len, out.splitlines())) <= 100
    assert any(len(line) > 90 for line in out.splitlines())  # it does use the width
    monkeypatch.setenv("COLUMNS", "72")
    _, out, _ = run(argv, capsys, world.reach())
    assert max(map(len, out.splitlines())) <= 72


def test_timeouts_are_results(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    with SilentResolver() as silent:
        argv = world.argv("auth.mana.test", extra=("--no-ssh",))
        argv = replace(replace(argv, "--resolver", silent), "--timeout", "0.3")
        started = time.monotonic()
        code, report = run_json(argv, capsys, world.reach())
    assert code == 1 and time.monotonic() - started < 2
    assert report["hosts"][0]["dns"]["path"] == "error" and "timeout" in report["hosts"][0]["dns"]["error"]
    assert report["hosts"][0]["dns"]["failure"] == "dns_timeout"
    assert any(p.startswith("DNS fails for 1 host") for p in report["problems"])


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "change, message",
    [
        (("--services", "/nonexistent/services.yaml"), "cannot read the inventory"),
        (("--resolver", "dns.example"), "is not IP[:port]"),
        (("--origin-ip", "not-an-ip"), "--origin-ip: 'not-an-ip' is not an IP address"),
        (("--timeout", "0"), "--timeout: 0 is not in (0, 120] seconds"),
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


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--rounds", "3"), "--rounds: has no effect without --watch (a single check runs once)\n"
         "    fix: add --watch N (e.g. --watch 60), or drop --rounds"),
        (("--alert-after", "2"), "--alert-after: has no effect without --watch (the alert counts rounds of the "
         "watch loop)\n    fix: add --watch N (e.g. --watch 60), or drop --alert-after"),
        (("--webhook", "http://127.0.0.1:9/x"), "--webhook: has no effect without --watch (only the watch loop "
         "alerts)\n    fix: add --watch N (e.g. --watch 60), or drop --webhook"),
        (("--no-mirror", "--mirror-nameserver", "127.0.0.1"), "--mirror-nameserver: cannot take effect with "
         "--no-mirror (the mirror is skipped)\n    fix: drop --mirror-nameserver or --no-mirror"),
        (("--no-ssh", "--ssh-host", "127.0.0.1"), "--ssh-host: cannot take effect with --no-ssh (nothing is asked "
         "over SSH)\n    fix: drop --ssh-host or --no-ssh"),
        (("--no-ssh", "--wg-interface", "wg1"), "--wg-interface: cannot take effect with --no-ssh"),
        (("--macmini-address", "10.0.0.2"), "--macmini-address: no longer has an effect: the standby path is "
         "checked over HTTPS through the VPS"),
    ],
)  # fmt: skip
def test_flags_that_cannot_take_effect_are_refused(
    world: World, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    code, out, err = run([*world.argv(*TUNNEL_HOSTS), *flags], capsys, world.reach())
    assert code == 2 and out == ""
    assert err.startswith("mana-infra: 1 problem in the input") and f"  - {message}" in err, err


def test_the_standby_takes_the_stacks_own_origin_certificate_by_its_pin_and_nothing_else(tmp_path: Path) -> None:
    """Through the edge the VPS serves the Origin CA certificate, which no trust store holds: check
    takes it by the fingerprint in the outputs (originCertificateSha256), for the names it carries,
    and only that one."""
    trusted, origin_ca = LocalCA(tmp_path / "trusted"), LocalCA(tmp_path / "origin", name="Origin CA stand-in")
    origin_leaf, origin_key = origin_ca.issue("origin", [ZONE, f"*.{ZONE}"])
    site = Site("127.0.0.1", free_port(["127.0.0.1"]), "vps", certs={f"chat.{ZONE}": (origin_leaf, origin_key)})
    try:
        pin = x509.load_pem_x509_certificate(origin_leaf.read_bytes()).fingerprint(hashes.SHA256()).hex()
        context = tls_context(str(trusted.cert_path))

        def get(host: str, pinned: tuple[str, ...]) -> HttpsResult:
            return https_get(host, "127.0.0.1", site.port, "/health", context, 2, pinned=pinned)

        unpinned = get(f"chat.{ZONE}", ())
        assert (unpinned.error_kind, unpinned.cert_trusted, unpinned.status) == ("cert_untrusted", False, None)
        pinned = get(f"chat.{ZONE}", (pin,))
        assert (pinned.error, pinned.status, pinned.cert_trusted, pinned.cert_pinned) == (None, 200, True, True)
        assert pinned.body == f"vps host=chat.{ZONE} path=/health" and 89 < (pinned.cert_days_left or 0) <= 90
        # Another fingerprint, or a name the certificate does not carry: not trusted.
        assert get(f"chat.{ZONE}", ("0" * 64,)).error_kind == "cert_untrusted"
        elsewhere = get("chat.elsewhere.org", (pin,))
        assert (elsewhere.error_kind, elsewhere.cert_pinned) == ("cert_untrusted", False)
        assert get(f"a.chat.{ZONE}", (pin,)).error_kind == "cert_untrusted"  # a wildcard is one label
    finally:
        site.close()


def test_bad_outputs_are_blamed_on_the_file_not_a_flag(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = outputs_file(
        world,
        tmp_path / "outputs.json",
        originIpv4="x",
        originCertificateExpiresOn="soon",
        originCertificateSha256="AB:CD",
    )
    code, out, err = run(outputs_argv(world, path), capsys, world.reach())
    assert code == 2 and out == ""
    assert (
        f"  - {path}: originIpv4: 'x' is not an IP address\n"
        f"    fix: save fresh outputs (`pulumi stack output --json > {path}`), or give --origin-ip\n"
    ) in err
    assert f"  - {path}: originCertificateExpiresOn: 'soon' is not an RFC 3339 timestamp\n" in err
    assert f"  - {path}: originCertificateSha256: 'AB:CD' is not a SHA-256 fingerprint in hex\n" in err
    assert "--origin-ip: 'x'" not in err
    # The flag overrides the bad output.
    code, _, err = run([*outputs_argv(world, path), "--origin-ip", VPS_IP], capsys, world.reach())
    assert code == 2 and "originIpv4" not in err and "originCertificateExpiresOn" in err


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
    code, report = run_json(outputs_argv(world, path, "--no-ssh"), capsys, world.reach())
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
    assert endpoints.emergency_command is None
    # Without --stack: the selected stack's outputs, and the stack named, so every command carries it.
    monkeypatch.setattr(check, "selected_stack", lambda _where: "prod")
    endpoints, _ = check.build(check.parse_args(["--resolver", "127.0.0.1"]), reader)
    assert calls[-1] is None and endpoints.stack == "prod"


def test_the_commands_of_the_three_ways() -> None:
    assert check.cutover_command("edge", None) == "mana-infra cutover --via edge"
    assert check.cutover_command("edge", "prod") == "mana-infra cutover --via edge --stack prod"
    assert check.cutover_command("dns", "prod") == "mana-infra cutover --via dns --stack prod"
    assert check.cutover_command("emergency", "prod", EMERGENCY) == EMERGENCY
    assert check.cutover_command("emergency", None) == "pulumi stack output emergencyCutover"
    assert check.cutover_command("emergency", "prod") == "pulumi stack output emergencyCutover --stack prod"


def test_tunnel_errors_are_read_from_cloudflare_answers() -> None:
    assert tunnel_error(530, "error code: 1033") == "Cloudflare error 1033: the tunnel has no cloudflared connection"
    assert tunnel_error(530, "<title>Cloudflare Tunnel error | example</title>") == "Cloudflare Tunnel error"
    assert tunnel_error(530, '<span class="cf-error-code">1016</span>') == "Cloudflare error 1016: origin DNS error"
    assert tunnel_error(502, "Bad gateway") == "bad gateway behind the edge (cloudflared)"
    assert tunnel_error(504, "") == "gateway timeout behind the edge (cloudflared)"
    assert tunnel_error(503, "Service Unavailable") is None and tunnel_error(500, "") is None
    assert tunnel_error(404, "error code: 1033") is None


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
    report = parse_vps_output("now 1000\nwg key= 990\nwg other= 0\n")
    assert report.now == 1000 and report.handshakes == {"key=": 990, "other=": 0}
    assert parse_vps_output("now 5\nwgerr Unable to access interface\n").wg_error == "Unable to access interface"
    failed = run_vps_script(
        lambda script, timeout: RunResult(255, "", "ssh: connect to host x port 22: Connection refused"), "true", 1
    )
    assert failed.error == "the VPS script did not run (ssh: connect to host x port 22: Connection refused)"


def test_shell_lines_keep_one_command() -> None:
    assert shell_lines("mana-infra cutover --via dns", 100) == ["    mana-infra cutover --via dns"]
    lines = shell_lines(EMERGENCY, 100)
    assert lines == [
        "    pulumi config set --stack prod cloudflareZoneId 0123456789abcdef0123456789abcdef \\",
        "    && pulumi config set --stack prod cloudflareReachable false \\",
        "    && pulumi config set --stack prod mode failover \\",
        "    && pulumi up --stack prod --target \\",
        "    'urn:pulumi:prod::mana-infra::mana-infra:index:CaddyConfig$command:remote:Command::caddy-apply'",
    ]
    assert " ".join(line.strip().removesuffix(" \\") for line in lines) == EMERGENCY


def test_the_flags_parse() -> None:
    args = check.parse_args(["--json", "--watch", "5", "--resolver", "127.0.0.1:53"])
    assert args.json and args.watch == 5.0 and args.resolver == ["127.0.0.1:53"]
    # Defaults applied later, so that a flag given without effect can be refused: --alert-after 3,
    # --cert-warn-days 7 (21 with --watch).
    assert args.alert_after is None and args.cert_warn_days is None
    _, options = check.build(check.parse_args(["--no-pulumi", "--mode", "failover", "--origin-name", "vps.mana.how",
                                               "--services", str(PROJECT / "services.yaml"), "--resolver", "127.0.0.1",
                                               "--no-ssh", "--watch", "60"]))  # fmt: skip
    assert options.cert_warn_days == 21


@pytest.mark.parametrize(("lifetime", "warn_days"), [(None, 21), (90, 21), (64, 13.3), (45, 7)])
def test_watch_warns_a_week_past_the_renewal_point_of_a_short_lived_certificate(
    tmp_path: Path, lifetime: int | None, warn_days: float
) -> None:
    """The weekly run renews at a third of the lifetime left, so a healthy 64-day certificate falls to
    about 14 days: --watch's 21 would alert every cycle. Its default follows the lifetime the outputs
    date (publicCertificateIssuedOn to publicCertificateExpiresOn), never above 21 days."""
    expires = datetime(2027, 6, 1, tzinfo=UTC)
    outputs = {"mode": "failover", "originName": "vps.mana.how", "publicCertificateExpiresOn": expires.isoformat()}
    if lifetime is not None:
        outputs["publicCertificateIssuedOn"] = (expires - timedelta(days=lifetime)).isoformat()
    (path := tmp_path / "outputs.json").write_text(json.dumps(outputs))
    argv = ["--outputs", str(path), "--services", str(PROJECT / "services.yaml"), "--resolver", "127.0.0.1", "--no-ssh"]
    _, watching = check.build(check.parse_args([*argv, "--watch", "60"]))
    _, once = check.build(check.parse_args(argv))
    _, given = check.build(check.parse_args([*argv, "--watch", "60", "--cert-warn-days", "30"]))
    assert (watching.cert_warn_days, once.cert_warn_days, given.cert_warn_days) == (warn_days, 7, 30)


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
    argv = outputs_argv(world, path, "--no-ssh")
    code, report = run_json(argv, capsys, world.reach())
    assert code == 0, report["problems"]
    health = report["vps"]["health"]
    assert health["ok"] and health["served_mode"] == "tunnel" and health["mode_matches"] is None
    # Without prodStack the same outputs are a stack whose VPS lags behind its mode: a problem.
    del outputs["prodStack"]
    path.write_text(json.dumps(outputs))
    code, report = run_json(argv, capsys, world.reach())
    assert code == 1 and any("the VPS's Caddy runs mode=tunnel" in p for p in report["problems"])


def test_a_refusal_is_not_checked_from_here_and_never_healthy(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """This machine outside checkAllowedCidrs (a home address that changed overnight): the VPS answers
    every host with its own 403. Nothing about the standby is proven: not healthy, the pre-flight of a
    cut-over refuses, and the problem names the refused address and the command that allows it."""
    code, report = run_json(world.argv(*REFUSED), capsys, world.reach())
    assert code == 1 and report["healthy"] is False
    jsonschema.validate(report, JSON_SCHEMA)
    address = report["hosts"][0]["standby"]["refused"]
    assert address.startswith("127."), report["hosts"][0]["standby"]
    for host in report["hosts"]:
        standby = host["standby"]
        assert (standby["ok"], standby["failure"], standby["answered_by"], standby["proven"]) == (
            False, "refused_here", "vps", ""
        ), standby  # fmt: skip
        assert host["live"]["ok"]  # the tunnel serves it
    assert report["paths"]["standby"] == {"state": "unchecked", "total": 2, "failed": 0, "refused": 2,
                                          "kind": "https-via-vps"}  # fmt: skip
    [problem] = [p for p in report["problems"] if "standby" in p]
    assert problem.startswith(f"standby not checked from here: the VPS refuses {address} for 2 hosts (refused.")
    assert problem.endswith(
        f"To check from here: add {address}/32 to checkAllowedCidrs (`pulumi config get checkAllowedCidrs` lists "
        "it), then pulumi up"
    )
    blockers = decision.standby_blockers(Report.from_json(report))
    assert blockers, "a cut-over's pre-flight took a refusal for a proven standby"

    # With the stack's outputs the command is exact: the list as it is, the refused address added.
    outputs = outputs_file(world, tmp_path / "o.json", REFUSED, checkAllowedCidrs=["198.51.100.7/32"])
    code, report = run_json([*outputs_argv(world, outputs), "--stack", "prod"], capsys, world.reach())
    [problem] = [p for p in report["problems"] if "standby" in p]
    assert problem.endswith(
        "To check from here: pulumi config set-all --stack prod --path --plaintext "
        f"'checkAllowedCidrs[0]=198.51.100.7/32' --plaintext 'checkAllowedCidrs[1]={address}/32' "
        "&& pulumi up --stack prod"
    ), problem
    code, out, _ = run(world.argv(*REFUSED), capsys, world.reach())
    assert code == 1 and "HEALTHY" not in out and "not checked from here" in flat(out)


def test_the_mac_mini_down_is_no_cut_over(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Home power or the home line: the edge answers with tunnel errors, the VPS's WireGuard has no
    handshake and Caddy there reaches no app. No way is offered (the VPS reaches the Mac Mini no better),
    and the alert says so. A stale handshake alone, while the VPS serves every host, is no such case."""
    world.edge.default_status = 530
    try:
        code, report = run_json(world.argv(*TUNNEL_HOSTS), capsys, world.reach(wg_age=4000))
        assert report["diagnosis"]["way"] == "edge" and report["diagnosis"]["case"] == "tunnel/serving"
        code, report = run_json(world.argv(*DEAD), capsys, world.reach(wg_age=4000))
        assert code == 1
        assert report["public_path"]["failures"] == {"tunnel_error": list(DEAD)}
        diagnosis = report["diagnosis"]
        assert (diagnosis["way"], diagnosis["command"], diagnosis["case"]) == (None, None, "tunnel/mac-mini-down")
        assert diagnosis["why"].startswith("the Mac Mini or its line is down: the tunnel fails at it and so does "
                                           "WireGuard from the VPS (WireGuard down: ")  # fmt: skip
        assert diagnosis["why"].endswith("no cut-over helps. Check the Mac Mini's power, its line and cloudflared")
        argv = [*world.argv(*DEAD), "--watch", "1", "--rounds", "2", "--alert-after", "2"]
        code, out, err = run(argv, capsys, world.reach(wg_age=4000), sleep=lambda _s: None)
        assert "No cut-over fits: the Mac Mini or its line is down" in flat(out + err)
        assert "mana-infra cutover" not in out + err
    finally:
        world.edge.default_status = 200


def test_every_host_behind_the_vps_failing_is_no_cut_over(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The VPS answers, Caddy's 502 for every host (the Mac Mini's apps behind WireGuard do not): a
    cut-over would serve visitors the same failure."""
    _code, report = run_json(world.argv(GONE), capsys, world.reach())
    standby = report["hosts"][0]["standby"]
    assert (standby["status"], standby["answered_by"]) == (502, "vps")
    assert report["diagnosis"]["way"] is None and report["diagnosis"]["case"] == "edge/mac-mini-down"
    assert report["diagnosis"]["why"].startswith(
        "the VPS answers but the Mac Mini behind WireGuard does not (Caddy on the VPS answers 502 for every host)"
    )


def test_every_failure_maps_to_one_way_or_none() -> None:
    """The table is complete: every public failure against every standby state has its answer."""
    from mana_infra.check.decision import TABLE, NoWay
    from mana_infra.check.report import Way

    publics, standbys = ("tunnel", "edge", "api"), ("serving", "unproven", "mac-mini-down", "vps-down")
    assert set(TABLE) == {(p, s) for p in publics for s in standbys}
    for outcome in TABLE.values():
        assert isinstance(outcome, Way | NoWay), outcome
    assert {TABLE[(p, "serving")] for p in publics} == {w for w in Way if not w.home}
    # The direct ways answer the same rows when the home serves instead (decision.DIRECT).
    from mana_infra.check.decision import DIRECT

    assert set(DIRECT) == {p for p, _ in TABLE}
    assert set(DIRECT.values()) | {TABLE[(p, "serving")] for p in publics} == set(Way)


def test_the_tunnel_probe_tells_whether_a_failback_would_serve(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """In failover mode the hosts point at the VPS; the probe name still goes through the tunnel: any
    answer from behind it (cloudflared's catch-all 404 included) is the tunnel up, the edge's tunnel
    error is the tunnel down."""
    argv = [*world.argv(*FAILOVER_HOSTS, mode="failover"), "--tunnel-probe", PROBE, "--stack", "prod"]
    world.edge.status = {PROBE: 404}
    try:
        code, report = run_json(argv, capsys, world.reach())
        assert code == 0 and report["tunnel_probe"] == {"host": PROBE, "state": "up", "status": 404, "error": None}
        assert report["paths"]["tunnel"] == {"state": "up"}
        assert f"the tunnel serves again ({PROBE} answers HTTP 404 through it): `mana-infra failback --stack prod`" in (
            " ".join(report["notes"])
        )
        world.edge.status = {PROBE: 530}
        code, report = run_json(argv, capsys, world.reach())
        assert code == 0  # the standby serves: healthy in failover mode, and the tunnel is not needed
        assert report["tunnel_probe"]["state"] == "down" and report["paths"]["tunnel"] == {"state": "down"}
        assert any(n.startswith(f"the tunnel is still down ({PROBE}: HTTP 530") for n in report["notes"])
        _, out, _ = run(argv, capsys, world.reach())
        assert f"Tunnel probe {PROBE}: down: HTTP 530" in flat(out)
    finally:
        world.edge.status = {}


def test_adopt_records_left_set_is_a_note(world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    outputs = outputs_file(world, tmp_path / "o.json", adoptRecordsLeft=["auth.mana.test"])
    _, report = run_json([*outputs_argv(world, outputs), "--stack", "prod"], capsys, world.reach())
    assert (
        "adoptRecords is still set for 1 host: their records ignore TTL and comment changes; pulumi config rm "
        "--stack prod adoptRecords && pulumi up --stack prod"
    ) in report["notes"]


def test_a_renewal_due_while_cloudflare_refuses_is_a_problem(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public certificate renews by DNS-01 at Cloudflare, once a third of its lifetime is left: due
    while the API refuses the token or does not answer, it will not renew, and the DNS-only way goes
    with it. Not due (more than a third left, of 90 days or of the 45 the outputs date) is no problem;
    with cloudflareReachable false the renewal is Hetzner's, and check says what it waits for."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    now = datetime.now(UTC)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", world.api_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", BAD_TOKEN)

    def renewal(left: float, lifetime: float | None = None, **outputs: Any) -> tuple[list[str], list[str]]:
        expires = now + timedelta(days=left)
        issued = None if lifetime is None else (expires - timedelta(days=lifetime)).strftime(stamp)
        path = outputs_file(
            world, tmp_path / "outputs.json", publicCertificateExpiresOn=expires.strftime(stamp),
            publicCertificateIssuedOn=issued, **outputs,
        )  # fmt: skip
        _, report = run_json(outputs_argv(world, path), capsys, world.reach())
        mine = [text for text in (*report["problems"], *report["notes"]) if text.startswith("publicCertificate")]
        return [p for p in report["problems"] if p in mine], [n for n in report["notes"] if n in mine]

    [problem], [] = renewal(29)  # no publicCertificateIssuedOn: a stack from before it, 90 days
    assert "its renewal is due (" in problem and "the Cloudflare API refuses the token" in problem, problem
    assert "with cloudflareReachable false the challenge goes to the Hetzner zone" in problem, problem
    assert renewal(31) == ([], [])
    assert renewal(16, lifetime=45) == ([], [])  # Let's Encrypt's lifetime from 2028: due at 15
    assert len(renewal(14, lifetime=45)[0]) == 1

    [], [note] = renewal(14, lifetime=45, cloudflareReachable=False)
    assert "with cloudflareReachable false its DNS-01 challenge goes to the Hetzner zone" in note, note
    assert "once the registrar lists the stack's secondaryDnsNameservers" in note, note

    monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"http://127.0.0.1:{free_port(['127.0.0.1'])}/client/v4")
    [problem], [] = renewal(20)
    assert "its renewal is due (" in problem and "the Cloudflare API is unreachable" in problem, problem
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", world.api_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", GOOD_TOKEN)
    assert renewal(20) == ([], [])


def test_ssh_silent_while_https_answers_names_sshallowedcidrs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """A home address that changed: the firewall drops SSH from it (a timeout) while HTTPS answers. check
    says so, with the address the VPS saw (from its refusal) and the command, before a `pulumi up` fails
    on the Caddy command."""

    def timing_out(script: str, timeout: float) -> Any:
        raise subprocess.TimeoutExpired(["ssh", "root@203.0.113.10"], timeout)

    reach = Reach(https_port=world.port, vps_runner=timing_out)
    _, report = run_json([*world.argv(*REFUSED), "--stack", "prod"], capsys, reach)
    [problem] = [p for p in report["problems"] if p.startswith("SSH to the VPS failed")]
    address = report["hosts"][0]["standby"]["refused"]
    assert "The VPS answers HTTPS but not SSH: its firewall lets SSH in from sshAllowedCidrs only" in problem
    assert f"address changed (the VPS sees this machine as {address})" in problem, problem
    assert (
        "pulumi config set --stack prod --path 'sshAllowedCidrs[N]' <address>/32 && pulumi up --stack prod" in problem
    )


def test_one_app_behind_wireguard_silent_names_its_listen_address(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """One host's app does not answer the VPS (Caddy's 502) while another's does, WireGuard up: the app
    listens on 127.0.0.1 only, and check says where it must listen."""
    _code, report = run_json(world.argv(GONE, TUNNEL_HOSTS[0]), capsys, world.reach())
    [problem] = [p for p in report["problems"] if p.startswith("Caddy on the VPS gets no answer")]
    assert f"for 1 host while others answer: {GONE} (port " in problem
    assert "must listen on the Mac Mini's WireGuard address too (wireguardMacMiniAddress" in problem
    _code, alone = run_json(world.argv(GONE), capsys, world.reach())  # every host: the Mac Mini, not one app
    assert not [p for p in alone["problems"] if p.startswith("Caddy on the VPS gets no answer")]


def test_the_watch_leaves_each_rounds_metrics_in_its_textfile(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--textfile`: node_exporter's textfile collector reads what the last round saw, every host on the
    public path answering, how many rounds there were, and since when the stack is in its mode."""
    from prometheus_client.parser import text_string_to_metric_families

    textfile = tmp_path / "mana-watch.prom"
    outputs = outputs_file(world, tmp_path / "outputs.json", modeSince="2026-12-07T03:00:00Z")
    argv = outputs_argv(world, outputs, "--watch", "0.01", "--rounds", "2", "--textfile", str(textfile))
    code, _out, err = run([*argv, "--json"], capsys, world.reach())
    assert code == 0, err
    samples = [s for family in text_string_to_metric_families(textfile.read_text()) for s in family.samples]
    value = {s.name: s.value for s in samples if "host" not in s.labels and "path" not in s.labels}
    assert value["mana_watch_rounds_total"] == 2 and value["mana_public_path_up"] == 1
    assert value["mana_mode_since_timestamp_seconds"] == 1796612400  # the outputs' modeSince: its age alerts
    public = {
        s.labels["host"]: s.value for s in samples if s.name == "mana_probe_success" and s.labels["path"] == "public"
    }
    assert public == dict.fromkeys(TUNNEL_HOSTS, 1.0)
