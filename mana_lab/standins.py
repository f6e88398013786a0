"""Local stand-ins for `mana-infra check`'s benchmark (and its tests): a test CA, HTTPS sites with SNI,
plain HTTP backends and a tiny DNS server, all on 127.0.0.0/8 only.

    python -m mana_lab.standins [--hosts 27] [--rounds 5]

prints the wall time of `run_check` against 27 hosts (DNS, HTTPS through the path DNS gives, HTTPS
straight to the "VPS" with each host's name, the health URL) and exits 1 when the median is over the
3 s goal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mana_infra.model import MODES

from .clouds.origin_ca import self_signed_ca

GOAL_SECONDS = 3.0


# ------------------------------------------------------------------------------------------- the CA


@dataclass
class LocalCA:
    """A throw-away CA; ``issue`` writes a leaf for some hostnames."""

    directory: Path
    name: str = "mana-infra check test CA"
    key: ec.EllipticCurvePrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = self_signed_ca(self.key, subject, now - dt.timedelta(hours=1), now + dt.timedelta(days=365))
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    def issue(self, label: str, hosts: Sequence[str], days: float = 90, ips: Sequence[str] = ()) -> tuple[Path, Path]:
        """A leaf for ``hosts`` (and IP addresses ``ips``): (certificate and this CA, key) as files."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{label}.crt", self.directory / f"{label}.key"
        cert_path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path


# ----------------------------------------------------------------------------------- HTTP servers


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        status, body = self.server.site.answer(host, self.path)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    site: Site

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that rejects the certificate is the point of some tests, not news


class Site:
    """An HTTP(S) server on ip:port. With ``certs`` (hostname -> (cert, key)), HTTPS with SNI: each
    hostname gets its own certificate, others the first one. Answers ``status`` (per host, or
    ``default_status``) with a body ``<label> host=<host> path=<path>``, or ``bodies[(host, path)]``,
    or ``default_body`` when set (e.g. Cloudflare's ``error code: 1033`` for a dead tunnel)."""

    def __init__(self, ip: str, port: int, label: str, certs: Mapping[str, tuple[Path, Path]] | None = None) -> None:
        self.label = label
        self.default_status = 200
        self.default_body: str | None = None
        self.status: dict[str, int] = {}
        self.bodies: dict[tuple[str, str], str] = {}
        self.httpd = _Server((ip, port), _Handler)
        self.httpd.site = self
        if certs:
            contexts = {}
            for host, (cert, key) in certs.items():
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                contexts[host] = context
            default = next(iter(contexts.values()))

            def pick(sock: ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
                if name and name.lower() in contexts:
                    sock.context = contexts[name.lower()]

            default.sni_callback = pick  # type: ignore[assignment]
            self.httpd.socket = default.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
            # do_handshake_on_connect=False: the handshake happens in the handler thread, not in
            # accept(), so a slow or failing client blocks no one.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def answer(self, host: str, path: str) -> tuple[int, str]:
        status = self.status.get(host, self.default_status)
        default = self.default_body if self.default_body is not None else f"{self.label} host={host} path={path}"
        body = self.bodies.get((host, path), default)
        return status, body

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------- tiny DNS


class TinyDns:
    """A UDP DNS server answering like a recursive resolver from ``records``:
    name -> ("CNAME", target) or ("A"/"AAAA", [addresses]). CNAME chains come whole in one answer."""

    def __init__(self, records: Mapping[str, tuple[str, Any]], ip: str = "127.0.0.1", port: int = 0) -> None:
        self.records = dict(records)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), peer)
            except Exception:
                continue

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        for _ in range(10):
            record = self.records.get(name)
            if record is None:
                if name == question.name.to_text(omit_final_dot=True).lower():
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            kind, value = record
            if kind == "CNAME":
                response.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "CNAME", value.rstrip(".") + "."))
                name = value.rstrip(".").lower()
                continue
            if dns.rdatatype.from_text(kind) == question.rdtype:
                response.answer.append(dns.rrset.from_text_list(name + ".", 60, "IN", kind, list(value)))
            return response
        return response

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=1)
        self.sock.close()


def free_port(ips: Sequence[str]) -> int:
    """A TCP port free on every one of ``ips``."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((ips[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for ip in ips:
                with socket.socket() as other:
                    other.bind((ip, port))
        except OSError:
            continue
        return port
    raise OSError("no free port")


# ------------------------------------------------------------------------------------------ bench

EDGE_IP, VPS_IP, DNS_IP = "127.0.0.2", "127.0.0.3", "127.0.0.1"
TUNNEL_TARGET = "00000000-0000-4000-8000-000000000000.cfargotunnel.com"


def bench(hosts: int = 27, rounds: int = 5, mode: str = "failover") -> dict[str, Any]:
    """Median and max wall time of run_check for ``hosts`` hosts against local servers."""
    from mana_infra.check import Endpoints, Options, run_check
    from mana_infra.check.probes import Nameserver
    from mana_infra.model import Service

    zone = "bench.test"
    names = [f"app{i}.{zone}" for i in range(hosts)]
    origin = f"vps.{zone}"
    with tempfile.TemporaryDirectory(prefix="check-bench-") as tmp:
        ca = LocalCA(Path(tmp))
        leaf = ca.issue("leaf", [*names, origin])
        port = free_port([EDGE_IP, VPS_IP])
        edge = Site(EDGE_IP, port, "edge", {origin: leaf})
        vps = Site(VPS_IP, port, "vps", {origin: leaf})
        vps.bodies[(origin, "/healthz")] = f"ok mode={mode}"
        target = TUNNEL_TARGET if mode == "tunnel" else origin
        records: dict[str, tuple[str, Any]] = dict.fromkeys(names, ("CNAME", target))
        records[TUNNEL_TARGET] = ("A", [EDGE_IP])
        records[origin] = ("A", [VPS_IP])
        server = TinyDns(records, DNS_IP)
        try:
            endpoints = Endpoints(
                mode=mode,
                origin_name=origin,
                tunnel_target=TUNNEL_TARGET,
                services=tuple(Service(n, 5000 + i, n) for i, n in enumerate(names)),
                origin_ips=(VPS_IP,),
                health_url=f"https://{origin}/healthz",
            )
            options = Options(
                resolvers=[Nameserver(DNS_IP, server.address[1])],
                timeout=3.0,
                https_port=port,
                ca_file=str(ca.cert_path),
            )
            times, healthy = [], True
            for _ in range(rounds):
                report = run_check(endpoints, options)
                times.append(report.seconds)
                healthy = healthy and report.healthy
                if not report.healthy:
                    print("\n".join(report.problems), file=sys.stderr)
        finally:
            server.close()
            edge.close()
            vps.close()
    return {
        "hosts": hosts,
        "mode": mode,
        "rounds": rounds,
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "healthy": healthy,
        "goal_s": GOAL_SECONDS,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mana_lab.standins", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=27)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=MODES, default="failover")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = bench(args.hosts, args.rounds, args.mode)
    result["total_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(result))
    return 0 if result["healthy"] and result["median_s"] <= GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
