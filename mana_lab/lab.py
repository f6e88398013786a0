"""The lab: network namespaces standing in for client, DNS, an ACME CA, Cloudflare's edge, the VPS, the
Mac Mini and a visitor from elsewhere.

Real software everywhere it matters: knotd serves the zone (a second knotd the Hetzner mirror), pebble
(Let's Encrypt's test CA) issues the public certificate that lego obtains by DNS-01 against knot, Caddy
terminates TLS on the VPS and on the edge, wireguard-go carries the tunnel, OpenSSH's sshd receives
the certificates and the Caddyfile through the very script Pulumi's remote commands run. Only the Mac
Mini's services are stubs.

See topology.py for the addresses. Everything is torn down by down(), which also clears the
leftovers of a crashed run (namespaces with the lab prefix and every process inside them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mana_infra.names import WG_MACMINI

from . import certs
from . import topology as topo
from .lab_base import (
    ACME_LATENCY_MS,
    CERTIFICATES,
    LAB_SUBDIRS,
    PACKAGE_DIR,
    REQUIRED_TOOLS,
    STEP_WORDS,
    CheckRun,
    LabSpec,
    missing_tools,
)
from .lab_certs import LabCertificates
from .lab_checks import LabChecks
from .lab_dns import LabDns
from .lab_faults import LabFaults
from .lab_home import LabHome
from .machine import WG_ENV
from .system import (
    ETC_NETNS,
    LabError,
    attach_to_bridge,
    cleanup_leftovers,
    ip,
    lab_namespaces,
    netns_exec_argv,
    run,
    run_logged,
)

__all__ = [
    "ACME_LATENCY_MS",
    "CERTIFICATES",
    "PACKAGE_DIR",
    "REQUIRED_TOOLS",
    "CheckRun",
    "Lab",
    "LabSpec",
    "missing_tools",
]


class Lab(LabFaults, LabDns, LabChecks, LabCertificates, LabHome):
    """One lab instance: its life (up, down, the state it serves); each concern's methods are in a class
    of its own (lab_base, lab_dns, lab_certs, lab_checks, lab_faults). Use as a context manager, or call
    up() and down() (both idempotent)."""

    @classmethod
    def from_inputs(cls, workdir: str | Path, inputs: Mapping[str, Any], state: str = "tunnel", **kwargs: Any) -> Lab:
        """A lab starting in ``state`` ("tunnel", "failover", "failover-dns") from drill inputs (see
        inputs.py for the shape)."""
        return cls(workdir, LabSpec.from_inputs(inputs, state), **kwargs)

    def apply_state(self, state_inputs: Mapping[str, Any], *, dns_first: bool = False) -> dict[str, Any]:
        """Switch to a state's artifacts the way the program's order does: Caddyfile push and DNS records.

        Cut-over pushes the Caddyfile first (the VPS must serve before names point at it); fail-back
        passes dns_first=True (names leave the VPS before it stops serving them). A rejected push
        leaves DNS alone. Returns {"push_ok", "push_output", "push_seconds", "dns_seconds", "dns_at"}:
        ``dns_at`` is the monotonic time the records started to change (the edge following them
        included), for measuring from the DNS switch. The certificates are already there (up()), and
        WireGuard configs are the same in every state (cloud-init writes the server's once): untouched.
        """
        result: dict[str, Any] = {"dns_seconds": None, "dns_at": None}
        if dns_first:
            result["dns_at"] = time.monotonic()
            result["dns_seconds"] = self.set_dns(state_inputs["dns_records"])
        t0 = time.monotonic()
        ok, out = self.push_caddyfile(state_inputs["Caddyfile"])
        result.update(push_ok=ok, push_output=out, push_seconds=round(time.monotonic() - t0, 3))
        if ok and not dns_first:
            result["dns_at"] = time.monotonic()
            result["dns_seconds"] = self.set_dns(state_inputs["dns_records"])
        return result

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lab:
        self._install_signal_handlers()
        try:
            self.up()
        except BaseException:
            self.down()
            self._restore_signal_handlers()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.down()
        finally:
            self._restore_signal_handlers()

    def _install_signal_handlers(self) -> None:
        # SIGTERM/SIGHUP become KeyboardInterrupt so the with-block's cleanup runs (Ctrl-C already is).
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    def up(self) -> float:
        """Build the lab; returns the seconds it took. Tears down leftovers of any earlier run first."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        missing = missing_tools()
        if missing:
            raise LabError(f"missing tools: {', '.join(missing)}")
        t0 = time.monotonic()
        self._step("cleanup-leftovers", lambda: cleanup_leftovers(self.pid_dir))
        self._reset_workdir()
        self._is_up = True  # from here on, down() has something to undo
        self._step("network", self._build_network)
        self._step("files", self._write_files)
        self._step("daemons", self._start_daemons)
        if self.artifacts:
            self._standby_up(t0)
        else:
            self._step("wait-ready", self._wait_ready)
            self.timings["up"] = round(time.monotonic() - t0, 3)
        return self.timings["up"]

    def _standby_up(self, t0: float) -> None:
        """The standby as the plan builds it: the VPS booted from the user data, the certificates, the
        Caddyfile, WireGuard to the Mac Mini."""
        self._progress(
            "lab: the VPS boots from the plan's user data and WireGuard comes up; pebble issues the "
            "public certificate by DNS-01 meanwhile"
        )
        wg_thread = threading.Thread(target=self._boot_vps_and_wireguard)
        self._wg_errors = []
        self._vps_booted = threading.Event()
        t = time.monotonic()
        wg_thread.start()
        # The public certificate from the ACME CA, while the VPS boots and WireGuard comes up.
        self._cert_errors = []
        cert_thread = threading.Thread(target=self._obtain_public_certificate)
        cert_thread.start()
        try:
            cert_thread.join()
            if self._cert_errors:
                raise LabError("; ".join(self._cert_errors))
            self._vps_booted.wait(60)
            if self._wg_errors:
                raise LabError("; ".join(self._wg_errors))
            # As the plan orders it: both certificates, then the Caddyfile that refers to them.
            self._step("install-certificates", self._install_certificates)
            ok, out = self._step("push-caddyfile", lambda: self.push_caddyfile(self.artifacts["Caddyfile"]))
            if not ok:
                raise LabError(f"initial Caddyfile push failed:\n{out}")
            macmini = self.spec.macmini_command
            if macmini:  # as the plan orders it: after the VPS's own Caddyfile
                ok, out = self._step("push-macmini", lambda: self.run_command(macmini["create"], macmini["stdin"]))
                if not ok:
                    raise LabError(f"the Mac Mini's Caddyfile did not reach the VPS:\n{out}")
        finally:
            wg_thread.join()
        self.timings["wireguard"] = round(time.monotonic() - t, 3)
        if self._wg_errors:
            raise LabError("; ".join(self._wg_errors))
        self._step("wait-ready", self._wait_ready)
        self._step("wg-handshake", self.wait_handshake)
        if self.spec.macmini_command:
            self._step("home", self.home_up)
        self.timings["up"] = round(time.monotonic() - t0, 3)

    def down(self) -> list[str]:
        """Stop everything and remove namespaces and runtime files (logs stay). Idempotent."""
        # Orderly first: wg-quick down removes the interfaces (wireguard-go exits, its socket goes).
        conf = self._wg_conf_path()
        if conf.exists() and topo.ns_name("mini") in lab_namespaces():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                run_logged(
                    topo.ns_name("mini"),
                    ["wg-quick", "down", str(conf)],
                    self.log_dir / "wg-mini.log",
                    env=WG_ENV,
                    timeout=10,
                )
        if self.vps is not None:
            self.vps.destroy()
            self.vps = None
        removed = cleanup_leftovers(self.pid_dir)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        self._procs.clear()
        for sub in LAB_SUBDIRS:
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self._is_up = False
        return removed

    def _step(self, name: str, fn: Any) -> Any:
        self._progress(f"lab: {STEP_WORDS.get(name, name)}")
        t = time.monotonic()
        result = fn()
        self.timings[name] = round(time.monotonic() - t, 3)
        return result

    def _reset_workdir(self) -> None:
        for sub in LAB_SUBDIRS:
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        for d in (
            self.pid_dir,
            self.log_dir,
            self.dns_dir,
            self.edge_dir,
            self.vps_dir,
            self.mini_dir,
            self.client_dir,
            self.acme_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        for f in self.log_dir.glob("*.log"):
            f.unlink()

    # ------------------------------------------------------------------ network

    def _build_network(self) -> None:
        # The VPS is a machine of its own (boot_vps): the clouds create it.
        for ns in [topo.NET_NS] + [m.ns for m in self.members.values()]:
            run(["ip", "netns", "add", ns])
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", "br0", "type", "bridge", ns=topo.NET_NS)
        ip("link", "set", "br0", "up", ns=topo.NET_NS)
        for m in self.members.values():
            attach_to_bridge(m.ns, f"p-{m.role}", m.ipv4, m.ipv6)
        if self.mirror_records is not None:
            ip("addr", "add", f"{topo.MIRROR_DNS_IP}/24", "dev", "wan0", ns=topo.ns_name("dns"))
        ip("addr", "add", f"{topo.RESOLVER_IP}/24", "dev", "wan0", ns=topo.ns_name("dns"))
        self._delegate(topo.DNS_IP)
        edge, mini = topo.MEMBERS["edge"].ns, topo.MEMBERS["mini"].ns
        # change_mini_wan() adds the new address before it removes the old one; without promotion,
        # removing the primary address would take the new (secondary) one with it.
        run(netns_exec_argv(mini, ["sysctl", "-qw", "net.ipv4.conf.wan0.promote_secondaries=1"]))
        run(
            [
                "ip",
                "link",
                "add",
                topo.TUNNEL_LINK_IF,
                "netns",
                edge,
                "type",
                "veth",
                "peer",
                "name",
                topo.TUNNEL_LINK_IF,
                "netns",
                mini,
            ]
        )
        self._tunnel_link_up()
        self._build_home()

    # ------------------------------------------------------------------ files

    def _write_files(self) -> None:
        # The operator's machine resolves through the lab's DNS as delegated (lego's propagation check
        # asks the zone's nameserver by name); ip netns exec mounts this over /etc/resolv.conf.
        client_etc = ETC_NETNS / topo.ns_name("client")
        client_etc.mkdir(parents=True, exist_ok=True)
        (client_etc / "resolv.conf").write_text(f"nameserver {topo.RESOLVER_IP}\n")
        self.pki = certs.LabPki(self.pki_dir, self.zone, topo.ACME_NAME, topo.ACME_IP)
        certs.pebble_config(
            self.acme_dir / "pebble.json",
            self.pki.acme_cert,
            self.pki.acme_key,
            f"127.0.0.1:{topo.ACME_PORT}",
            f"{topo.ACME_IP}:{topo.ACME_MANAGEMENT_PORT}",
        )
        self._write_client_key()
        self._write_dns_files()
        self._write_edge_files()
        if self._services_file is None:
            self.services_file.write_text(
                "services:\n" + "".join(f"  - host: {h}\n    port: {p}\n" for h, p in self.services)
            )
        spec = {"bind": "::", "services": self.services, "catch_all": topo.CLOUDFLARED_CATCH_ALL_PORT}
        (self.mini_dir / "backends.json").write_text(json.dumps(spec))
        if WG_MACMINI in self.artifacts:
            self._write_wg_conf(self.artifacts[WG_MACMINI])

    def install_macmini_config(self, text: str) -> None:
        """The operator puts the stack's ``macminiWireguardConfig`` in place and restarts WireGuard."""
        if ip("link", "show", topo.WG_MINI_IF, ns=topo.ns_name("mini"), check=False).returncode == 0:
            self.wireguard_down()
        self._write_wg_conf(text)
        self.wireguard_up()

    def _write_wg_conf(self, text: str) -> None:
        """The Mac Mini's wg0.conf, as the operator puts the stack output in place."""
        if "PrivateKey" not in text:
            raise LabError("the Mac Mini's WireGuard config has no PrivateKey line; the lab needs the key inline")
        path = self._wg_conf_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(text)

    # ------------------------------------------------------------------ daemons

    def _start_daemons(self) -> None:
        self._spawn("dns", "knotd", ["knotd", "-c", str(self.dns_dir / "knot.conf")])
        if self.mirror_records is not None:
            self._spawn("dns", "knotd-mirror", ["knotd", "-c", str(self.mirror_dir / "knot.conf")])
        self._spawn(
            "acme",
            "pebble",
            ["pebble", "-config", str(self.acme_dir / "pebble.json"), "-dnsserver", f"{topo.RESOLVER_IP}:53"],
            env=certs.PEBBLE_ENV,
        )
        self._spawn(
            "acme",
            "acme-latency",
            [
                self.python,
                str(PACKAGE_DIR / "latency.py"),
                f"{topo.ACME_IP}:{topo.ACME_PORT}",
                f"127.0.0.1:{topo.ACME_PORT}",
                str(ACME_LATENCY_MS),
            ],
        )
        self._spawn(
            "mini", "backends", [self.python, str(PACKAGE_DIR / "backends.py"), str(self.mini_dir / "backends.json")]
        )
        self._spawn(
            "edge",
            "caddy-edge",
            ["caddy", "run", "--config", str(self.edge_dir / "Caddyfile"), "--adapter", "caddyfile"],
            env=self._xdg_env(self.edge_dir),
        )

    def _wait_ready(self) -> None:
        self._wait_listening("knotd", "udp", 53, address=topo.DNS_IP)
        if self.mirror_records is not None:
            self._wait_listening("knotd-mirror", "udp", 53, address=topo.MIRROR_DNS_IP)
        self._wait_listening("backends", "tcp", self.services[0][1])
        self._wait_listening("caddy-edge", "tcp", 443)

    # ------------------------------------------------------------------ certificates

    # ------------------------------------------------------------------ operations
