"""What the lab runs against itself: the probe, and `mana-infra check` from the client with the lab's
outputs and flags."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from . import certs
from . import topology as topo
from .lab_base import PACKAGE_DIR, CheckRun, LabBase
from .system import LabError


class LabChecks(LabBase):
    """What the lab runs against itself: the probe, and `mana-infra check` from the client with the lab's
    outputs and flags."""

    def probe(
        self,
        hosts: Sequence[tuple[str, int | None] | tuple[str, int | None, str]] | None = None,
        mode: str = "once",
        timeout: float = 3,
        *,
        role: str = "client",
        **options: Any,
    ) -> dict[str, Any]:
        """Run probe.py in the client namespace (DNS via the lab server, TLS verified by what visitors
        trust: the lab CA and pebble's root), or in ``role``'s ("outsider": a visitor from elsewhere).

        hosts default to every inventory host with its expected backend port. See probe.py for
        modes ("once", "until_ok" with deadline, "loop" with duration/max_requests, "certs") and the
        result; ``connect="<ip>"`` skips DNS and asks that address (a VPS asked directly).
        """
        req = {
            "dns": self.resolver,
            "cafile": str(self.ca_bundle),
            "timeout": timeout,
            "mode": mode,
            "hosts": [list(h) for h in (hosts if hosts is not None else self.services)],
            **options,
        }
        budget = float(options.get("deadline", 0)) + float(options.get("duration", 0)) + 10 * timeout + 30
        proc = self.exec(role, [self.python, str(PACKAGE_DIR / "probe.py")], input=json.dumps(req), timeout=budget)
        if proc.returncode != 0:
            raise LabError(f"probe failed: {proc.stderr.strip()}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def outputs_file(self, state: str) -> Path:
        """The plan's stack outputs of ``state`` as ``pulumi stack output --json`` would give them, with
        what only the clouds know filled in by the lab: its certificates' expiry dates."""
        return self.write_outputs(state, self.state_outputs[state])

    def write_outputs(self, name: str, outputs: Mapping[str, Any]) -> Path:
        """A plan's stack outputs (another config's than the lab's states) as outputs_file writes them."""
        path = self.client_dir / f"outputs-{name}.json"
        path.write_text(json.dumps({**outputs, **certs.certificate_outputs(self.certificates)}, indent=2) + "\n")
        return path

    def check_argv(
        self,
        state: str | None,
        *,
        ca_file: str | Path | None = None,
        timeout: float = 5,
        extra: Sequence[str] = (),
        outputs: str | Path | None = None,
        mirror: bool = False,
    ) -> list[str]:
        """``mana-infra check --json`` pointed at the lab, to run in the client namespace.

        The endpoints: the state's stack outputs (see outputs_file) when the lab has them, else a
        given ``outputs`` file (a rehearsal stack's; state None: the outputs' mode), else flags (state
        is then the mode). Lab-specific flags: the lab's DNS server and CA bundle, its edge as
        Cloudflare's (``--edge-cidr``), its sshd (host key pinned), its WireGuard interface name.
        ``timeout`` must exceed the failover Caddyfile's 3 s dial timeout, or a dead WireGuard shows as
        a timeout instead of Caddy's 502. mirror: also ask the lab's Hetzner mirror
        (``--mirror-nameserver``); else it is skipped (``--no-mirror``).
        """
        argv = [self.python, "-m", "mana_infra", "check", "--json"]
        if outputs is None and state in self.state_outputs:
            outputs = self.outputs_file(state)
            state = None
        if outputs is not None:
            argv += ["--outputs", str(outputs)] + (["--mode", state] if state else [])
        else:
            if state is None:
                raise ValueError("check needs a mode without an outputs file")
            argv += [
                "--no-pulumi",
                "--mode",
                state,
                "--origin-name",
                self.origin_name,
                "--origin-ip",
                topo.VPS_IP,
                "--tunnel-target",
                self.tunnel_target,
                "--services",
                str(self.services_file),
                "--zone",
                self.zone,
            ]
        argv += self.check_flags(ca_file=ca_file, timeout=timeout)
        if self.health_url and outputs is None:
            argv += ["--health-url", self.health_url]
        argv += ["--mirror-nameserver", topo.MIRROR_DNS_IP] if mirror else ["--no-mirror"]
        return argv + list(extra)

    def check_flags(self, *, ca_file: str | Path | None = None, timeout: float = 5) -> list[str]:
        """The check flags that point ``mana-infra check`` (and cutover's pre-flight) at the lab: its DNS
        server and trust, its edge as Cloudflare's networks, the VPS's SSH with its pinned host key."""
        return [
            "--resolver",
            self.resolver,
            "--ca-file",
            str(ca_file or self.ca_bundle),
            "--timeout",
            f"{timeout:g}",
            *(arg for cidr in topo.EDGE_NETWORKS for arg in ("--edge-cidr", cidr)),
            "--ssh-host",
            topo.VPS_IP,
            "--ssh-user",
            "root",
            "--ssh-key",
            str(self.client_key),
            "--ssh-option",
            f"UserKnownHostsFile={self.known_hosts}",
            "--ssh-option",
            "StrictHostKeyChecking=yes",
            "--ssh-option",
            "LogLevel=ERROR",
        ]

    def check(
        self, state: str | None, *, role: str = "client", env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> CheckRun:
        """Run the real ``mana-infra check`` in the client namespace, or ``role``'s (see check_argv for
        the flags), with ``env`` added to its environment (e.g. CLOUDFLARE_API_TOKEN)."""
        argv = self.check_argv(state, **kwargs)
        t0 = time.monotonic()
        project = str(PACKAGE_DIR.parent)
        path = project + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
        proc = self.exec(role, argv, env={**(env or {}), "PYTHONPATH": path}, timeout=120)
        seconds = round(time.monotonic() - t0, 3)
        try:
            report = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            report = None
        return CheckRun(proc.returncode, report, seconds, proc.stderr.strip())

    def fetch(self, host: str, path: str = "/", expected_port: int | None = None) -> dict[str, Any]:
        """One HTTPS GET of https://<host><path> from the client; the probe's per-host result."""
        result: dict[str, Any] = self.probe([(host, expected_port, path)])["results"][0]
        return result

    def served_certificates(
        self, hosts: Sequence[str], address: str, *, role: str = "client", ca_file: str | Path | None = None
    ) -> dict[str, dict[str, Any]]:
        """The certificate ``address`` serves for each host (SNI), asked from ``role``'s namespace:
        issuer, subject, names, serial, expiry, and whether ``ca_file`` (the client's trust) verifies it
        for the host (``verified``, else ``verify_error``)."""
        result = self.probe(
            [(h, None) for h in hosts],
            mode="certs",
            role=role,
            connect=address,
            cafile=str(ca_file or self.ca_bundle),
        )
        out: dict[str, dict[str, Any]] = {}
        for r in result["results"]:
            entry: dict[str, Any] = {k: r.get(k) for k in ("verified", "verify_error", "error")}
            if r.get("der"):
                entry.update(certs.describe_certificate(x509.load_der_x509_certificate(base64.b64decode(r["der"]))))
            out[r["host"]] = entry
        return out
