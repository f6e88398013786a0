"""The lab's certificates: the public one from pebble by DNS-01, the Origin CA one, and their
installation on the VPS."""

from __future__ import annotations

import time
from pathlib import Path

from . import certs
from . import topology as topo
from .lab_base import CERTIFICATES, LabBase
from .system import LabError


class LabCertificates(LabBase):
    """The lab's certificates: the public one from pebble by DNS-01, the Origin CA one, and their
    installation on the VPS."""

    def _obtain_public_certificate(self) -> None:
        """lego in the operator's namespace: one order at pebble for the zone and *.zone, DNS-01 by
        RFC 2136 against the lab's knot; then pebble's root (its management API) for the client's
        trust. Runs in a thread during up(): errors are collected, not raised."""
        try:
            t0 = time.monotonic()
            self._wait_listening("knotd", "udp", 53, address=topo.DNS_IP)
            self._wait_listening("pebble", "tcp", topo.ACME_MANAGEMENT_PORT, address=topo.ACME_IP)
            self._wait_listening("acme-latency", "tcp", topo.ACME_PORT, address=topo.ACME_IP)
            assert self.pki is not None
            names = certs.zone_names(self.zone)
            argv = certs.lego_argv(self.acme_directory, self.zone, names, self.lego_dir, f"{topo.DNS_IP}:53")
            env = certs.lego_env(self.pki.ca_path, f"{topo.DNS_IP}:53")
            proc = self.exec("client", argv, env=env, timeout=90)
            (self.log_dir / "lego.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise LabError(f"lego failed (exit {proc.returncode}); see {self.log_dir / 'lego.log'}")
            self.timings["acme"] = round(time.monotonic() - t0, 3)
            self.trust_pebble()
            public = certs.public_pem(self.lego_dir, names[0])
            (self.acme_dir / "public.pem").write_text(public)
            self.certificates = {
                "public": {**certs.describe(public), "pem": public, "orders": self.acme_orders()},
                "origin": {**certs.describe(self.pki.origin_pem), "pem": self.pki.origin_pem},
            }
        except Exception as exc:  # a thread's failure is up()'s to raise
            self._cert_errors.append(f"the public certificate: {type(exc).__name__}: {exc}")

    def trust_pebble(self) -> None:
        """What visitors and the operator trust: the web PKI's stand-in (the edge's certificate) and
        pebble's root (the public certificate), from pebble's management API (a new one at every start).
        Not the Origin CA: only the edge trusts it."""
        assert self.pki is not None
        self._wait_listening("pebble", "tcp", topo.ACME_MANAGEMENT_PORT, address=topo.ACME_IP)
        root = self.exec(
            "client",
            ["curl", "-sS", "--fail", "--max-time", "5", "--cacert", str(self.pki.ca_path), self._pebble_root_url],
            check=True,
        ).stdout
        self.pebble_root.write_text(root)
        self.ca_bundle.write_text(self.pki.ca_path.read_text() + root)

    @property
    def _pebble_root_url(self) -> str:
        return f"https://{topo.ACME_IP}:{topo.ACME_MANAGEMENT_PORT}/roots/0"

    def _install_certificates(self) -> None:
        """Both certificates through the plan's certificate commands (their create text over SSH, the
        PEM on stdin), as Pulumi runs them: the public one, then the origin one."""
        for name in CERTIFICATES:
            ok, out = self.run_command(self.certificate_commands[name], self.certificates[name]["pem"])
            self.certificates[name]["install_output"] = out[-300:]
            if not ok:
                raise LabError(f"installing the {name} certificate failed:\n{out}")

    def acme_orders(self) -> int:
        """How many ACME orders pebble has received since the lab came up (its log counts them)."""
        return certs.count_orders(self.log_dir / "pebble.log")

    @property
    def ca_bundle_with_origin_ca(self) -> Path:
        """The client's trust plus the Origin CA's root: for a probe that must get past TLS at the VPS
        through the edge (where it serves the Origin CA certificate) to see what Caddy answers."""
        path = self.client_dir / "ca-bundle-with-origin-ca.pem"
        if not path.exists() and self.pki is not None:
            path.write_text(self.ca_bundle.read_text() + self.pki.origin_ca_pem)
        return path
