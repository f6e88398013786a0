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

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from cryptography import x509

from mana_infra.check.report import Report
from mana_infra.model import TUNNEL_DOMAIN, DnsRecord, tunnel_target
from mana_infra.names import ARTIFACT_NAMES
from mana_infra.render.remote import caddy_command as caddy_command_text

from . import certs
from . import edge as edge_config
from . import topology as topo
from .dnszone import render_knot_conf, render_zone, rrset_records, tunnel_zone_records
from .machine import WG_ENV, Machine
from .system import (
    ETC_NETNS,
    LabError,
    attach_to_bridge,
    cleanup_leftovers,
    ip,
    kill_pids,
    lab_namespaces,
    netns_exec_argv,
    run,
    run_logged,
    spawn,
)

PACKAGE_DIR = Path(__file__).resolve().parent
# What each step of up() does, as its progress line says it.
STEP_WORDS = {
    "cleanup-leftovers": "removing leftovers of earlier runs",
    "network": "the network: namespaces, links, addresses",
    "files": "the files: DNS zones, the edge, the Mac Mini's apps and WireGuard, the VPS's image",
    "daemons": "starting knotd, the edge's Caddy, the apps, pebble",
    "install-certificates": "installing both certificates on the VPS (the plan's commands)",
    "push-caddyfile": "the plan's Caddyfile onto the VPS (its apply script)",
    "wait-ready": "waiting until every daemon listens",
    "wg-handshake": "waiting for WireGuard's first handshake",
}
REQUIRED_TOOLS = (
    "ip",
    "caddy",
    "wg",
    "wg-quick",
    "wireguard-go",
    "knotd",
    "knotc",
    "sshd",
    "ssh",
    "nsenter",
    "nft",
    "ssh-keygen",
    "pebble",
    "lego",
    "openssl",
    "curl",
)
# The certificates, in the order the plan installs them (before any Caddyfile).
CERTIFICATES = ("public", "origin")
ACME_LATENCY_MS = 25  # the CA is an internet away (see latency.py)

LAB_SUBDIRS = ("pids", "dns", "edge", "vps", "mini", "client", "acme", "pki")


def missing_tools() -> list[str]:
    return [t for t in REQUIRED_TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


@dataclass
class CheckRun:
    """One run of ``mana-infra check --json``: its exit code, its report, the wall time (process start included)."""

    exit_code: int
    report: dict[str, Any] | None
    seconds: float
    stderr: str

    @property
    def problems(self) -> list[str]:
        return list(self.report["problems"]) if self.report else [self.stderr or f"exit {self.exit_code}, no report"]

    @property
    def typed(self) -> Report | None:
        """The report read back into check's types: what the decision reads."""
        return Report.from_json(self.report) if self.report else None


class Lab:
    """One lab instance. Use as a context manager, or call up() and down() (both idempotent).

    artifacts: the rendered files of the starting mode: "Caddyfile", "wg0-server.conf",
        "wg0-macmini.conf" (text). The Caddyfile is pushed through the apply script during up().
    services: (host, port) of every inventory host; port is the Mac Mini port behind it.
    dns_records: the zone's records as the plan creates them. Proxied ones are answered with the
        edge's addresses, and the edge follows their targets (see edge.py).
    certificate_commands: "public" and "origin": the create text of the plan's certificate commands
        (default: the shipped script's, for certs/public.pem and certs/origin.pem). up() obtains both
        certificates (see certs.py) and installs them through these before the first Caddyfile.
    state_outputs: per state ("tunnel", "failover", "failover-dns"), the plan's stack outputs: what
        ``check(state)`` hands ``mana-infra check`` (as ``--outputs``, with the lab's certificates'
        dates); a state without outputs is checked with flags.
    origin_name, health_url, services_file: what ``check()`` hands ``mana-infra check`` without
        outputs (defaults: vps.<zone>, check's own default, and an inventory the lab writes from
        ``services``).
    mirror_records: the Hetzner mirror zone's records (see dnszone.rrset_records); when given, a second
        knotd in the dns namespace serves them on MIRROR_DNS_IP. ``switch_nameservers()`` makes the
        client ask it instead of the Cloudflare zone's server (the registrar's nameserver switch).

    The VPS is a lab machine (machine.py) booted from the state's ``cloud-init.yaml`` (the program's
    user data) with the client's key as root's, in a root of its own: its /etc/caddy, /etc/wireguard
    and sshd are the ones the user data and the plan's commands make. ``vps`` is that machine.
    """

    def __init__(
        self,
        workdir: str | Path,
        artifacts: Mapping[str, str],
        services: Sequence[tuple[str, int]],
        zone: str,
        tunnel_id: str,
        dns_records: Iterable[DnsRecord],
        *,
        caddy_command: str | None = None,
        python: str = sys.executable,
        push_timeout: float = 60,
        origin_name: str | None = None,
        health_url: str | None = None,
        services_file: str | Path | None = None,
        mirror_records: Iterable[DnsRecord] | None = None,
        certificate_commands: Mapping[str, str] | None = None,
        state_outputs: Mapping[str, Mapping[str, Any]] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        # No artifacts: the substrate alone (the clouds create the VPS: world.py).
        missing = [k for k in ARTIFACT_NAMES if k not in artifacts] if artifacts else []
        if missing:
            raise LabError(f"artifacts lack {missing}")
        self.workdir = Path(workdir).resolve()
        self.artifacts = dict(artifacts)
        self.services = [(h.lower(), int(p)) for h, p in services]
        self.zone = zone.lower().rstrip(".")
        self.tunnel_id = tunnel_id.lower()
        self.dns_records = list(dns_records)
        self.mirror_records = list(mirror_records) if mirror_records is not None else None
        # The DNS server the client's probe and check ask: the Cloudflare zone's, or after the
        # nameserver switch the mirror's (the delegation; RESOLVER_IP follows it for everyone else).
        self.resolver = topo.DNS_IP
        # The SSH command text of the program's Caddy command: the shipped script, byte for byte.
        self.caddy_command = caddy_command or caddy_command_text()
        self.python = python
        self.push_timeout = push_timeout
        self.origin_name = (origin_name or f"vps.{self.zone}").lower().rstrip(".")
        self.health_url = health_url
        self._services_file = Path(services_file) if services_file else None
        self.certificate_commands = dict(
            certificate_commands or {k: caddy_command_text(f"certs/{k}.pem") for k in CERTIFICATES}
        )
        self.state_outputs = {k: dict(v) for k, v in (state_outputs or {}).items()}
        # The lab's certificates, by up(): per name its description (certs.describe), "pem", and how
        # its installation went; the public one also the ACME orders by then.
        self.certificates: dict[str, dict[str, Any]] = {}
        self.pki: certs.LabPki | None = None
        self.mini_wan_ip = topo.MINI_WAN_IPS[0]
        self.timings: dict[str, float] = {}
        self._progress = progress or (lambda message: None)
        self._serial = int(time.time())
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._is_up = False
        self._old_handlers: dict[int, Any] = {}

        w = self.workdir
        self.pid_dir = w / "pids"
        self.log_dir = w / "logs"
        self.dns_dir = w / "dns"
        self.mirror_dir = self.dns_dir / "mirror"
        self.edge_dir = w / "edge"
        self.vps_dir = w / "vps"
        self.mini_dir = w / "mini"
        self.client_dir = w / "client"
        self.acme_dir = w / "acme"
        self.pki_dir = w / "pki"
        self.ca_bundle = self.client_dir / "ca-bundle.pem"
        self.client_key = self.client_dir / "id_ed25519"
        self.known_hosts = self.client_dir / "known_hosts"
        self.vps: Machine | None = None
        # What the edge trusts at origins (Full (strict)): Cloudflare's Origin CA, the lab PKI's by default.
        self.origin_ca_file: Path | None = None
        self.edge_caddy_data = self.edge_dir / "caddy-data"
        self.lego_dir = self.acme_dir / "lego"
        self.pebble_root = self.acme_dir / "pebble-root.pem"

    @classmethod
    def from_inputs(cls, workdir: str | Path, inputs: Mapping[str, Any], state: str = "tunnel", **kwargs: Any) -> Lab:
        """A lab starting in ``state`` ("tunnel", "failover", "failover-dns") from drill inputs (see
        inputs.py for the shape)."""
        m = inputs["states"][state]
        for key in ("origin_name", "health_url", "services_file"):
            if inputs.get(key):
                kwargs.setdefault(key, inputs[key])
        if m.get("caddy_command"):
            kwargs.setdefault("caddy_command", m["caddy_command"])
        if inputs.get("mirror"):
            kwargs.setdefault("mirror_records", rrset_records(inputs["mirror"]["rrsets"], inputs["zone"]))
        if inputs.get("certificates"):
            kwargs.setdefault("certificate_commands", {k: v["create"] for k, v in inputs["certificates"].items()})
        kwargs.setdefault("state_outputs", {k: v["outputs"] for k, v in inputs["states"].items() if "outputs" in v})
        return cls(
            workdir,
            {k: m[k] for k in ARTIFACT_NAMES},
            [tuple(s) for s in inputs["services"]],
            inputs["zone"],
            inputs["tunnel_id"],
            m["dns_records"],
            **kwargs,
        )

    @property
    def members(self) -> Mapping[str, topo.Member]:
        """The namespaces up() creates (the VPS is a machine: boot_vps)."""
        return topo.MEMBERS

    @property
    def tunnel_target(self) -> str:
        return tunnel_target(self.tunnel_id)

    @property
    def services_file(self) -> Path:
        """The inventory ``check()`` uses: the plan's own file, else one written from ``services``."""
        return self._services_file or self.client_dir / "services.yaml"

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
        self._wg_errors: list[str] = []
        self._vps_booted = threading.Event()
        t = time.monotonic()
        wg_thread.start()
        # The public certificate from the ACME CA, while the VPS boots and WireGuard comes up.
        self._cert_errors: list[str] = []
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
        finally:
            wg_thread.join()
        self.timings["wireguard"] = round(time.monotonic() - t, 3)
        if self._wg_errors:
            raise LabError("; ".join(self._wg_errors))
        self._step("wait-ready", self._wait_ready)
        self._step("wg-handshake", self.wait_handshake)
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

    def _tunnel_link_up(self) -> None:
        for role, addr in (("edge", topo.EDGE_TUNNEL_IP), ("mini", topo.MINI_TUNNEL_IP)):
            ns = topo.ns_name(role)
            ip("link", "set", topo.TUNNEL_LINK_IF, "up", ns=ns)
            # replace: a link that was down lost its IPv6 address (keep_addr_on_down=0).
            ip("addr", "replace", f"{addr}/{topo.TUNNEL_LINK_PREFIX}", "dev", topo.TUNNEL_LINK_IF, "nodad", ns=ns)

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
        if "wg0-macmini.conf" in self.artifacts:
            self._write_wg_conf(self.artifacts["wg0-macmini.conf"])

    def _write_client_key(self) -> None:
        """The operator's SSH key: what the VPS's API request names (root's authorized key)."""
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mana-lab-operator", "-f", str(self.client_key)],
            capture_output=True,
            timeout=20,
        )
        if done.returncode != 0:
            raise LabError(f"ssh-keygen failed: {done.stderr.decode().strip()}")
        self.known_hosts.write_text("")

    @property
    def operator_public_key(self) -> str:
        return Path(f"{self.client_key}.pub").read_text().strip()

    def vps_image_files(self) -> list[dict[str, str]]:
        """The lab's one addition to the VPS image: host-local Caddy options in the global.d drop-in the
        rendered Caddyfile imports (so every push keeps it): pebble as the ACME CA that stands in for
        Let's Encrypt. No site asks ACME for anything; if one did, pebble would count the order
        (Lab.acme_orders) instead of the order failing unseen at an unreachable CA."""
        assert self.pki is not None
        return [
            {
                "path": "/etc/caddy/global.d/lab.caddy",
                "content": "# mana-infra lab: pebble is the ACME CA (the drill counts its orders).\n"
                f"acme_ca {self.acme_directory}\nacme_ca_root {self.pki.ca_path}\n",
            }
        ]

    def boot_vps(
        self,
        user_data: str,
        authorized_keys: Sequence[str],
        ipv4: str = topo.VPS_IP,
        ipv6: str | None = topo.VPS_IP6,
        firewall: Sequence[Mapping[str, Any]] = (),
        name: str = "mana-lab-vps",
    ) -> Machine:
        """A new server: the lab's VPS machine at its addresses, booted from ``user_data`` (the
        program's cloud-init) with root's ``authorized_keys`` and the Hetzner firewall's ``firewall``
        rules; its host key goes into the operator's known_hosts."""
        if self.vps is not None:
            raise LabError(f"the lab runs one VPS and {self.vps.name} is running: delete it first")
        machine = Machine(name, self.vps_dir, ipv4, ipv6, pid_dir=self.pid_dir, log_dir=self.log_dir)
        machine.firewall_rules = [dict(r) for r in firewall]
        self.vps = machine
        boot = machine.boot(user_data, authorized_keys, extra_files=self.vps_image_files())
        addresses = ",".join([ipv4] + ([ipv6] if ipv6 else []))
        self.known_hosts.write_text(f"{addresses} {boot.host_key}\n")
        if boot.status != "done":
            (self.log_dir / "vps-boot.log").write_text("\n".join(boot.errors) + "\n")
        return machine

    def delete_vps(self) -> None:
        """The server is deleted: its machine, namespace and root are gone."""
        if self.vps is not None:
            self.vps.destroy()
            self.vps = None

    @property
    def acme_directory(self) -> str:
        return f"https://{topo.ACME_IP}:{topo.ACME_PORT}/dir"

    def _write_dns_files(self) -> None:
        # The operator's machine may change the zone by dynamic update: lego's DNS-01 TXT records.
        (self.dns_dir / "knot.conf").write_text(
            render_knot_conf(
                self.dns_dir, topo.DNS_IP, [self.zone, TUNNEL_DOMAIN], updates={self.zone: [topo.CLIENT_IP]}
            )
        )
        self._write_zones(self.dns_records)
        if self.mirror_records is not None:
            self.mirror_dir.mkdir(parents=True, exist_ok=True)
            (self.mirror_dir / "knot.conf").write_text(
                render_knot_conf(self.mirror_dir, topo.MIRROR_DNS_IP, [self.zone])
            )
            self._write_mirror_zone(self.mirror_records)

    def _write_mirror_zone(self, records: Sequence[DnsRecord]) -> None:
        # Hetzner's zone holds only the RRSets: no cfargotunnel.com to flatten into, nothing else.
        self._serial += 1
        text = render_zone(self.zone, records, self._serial, topo.MIRROR_DNS_IP)
        tmp = self.mirror_dir / f"{self.zone}.zone.tmp"
        tmp.write_text(text)
        tmp.replace(self.mirror_dir / f"{self.zone}.zone")

    def _write_zones(self, records: Sequence[DnsRecord]) -> None:
        self._serial += 1
        # The tunnel's name has an address only the edge reaches (its end of the private link), as
        # Cloudflare gives it one: visitors reach a tunnel only through a proxied record.
        tunnel = tunnel_zone_records(self.tunnel_id, topo.EDGE_TUNNEL_IP)
        lookup: dict[str, list[DnsRecord]] = {}
        for r in tunnel:
            lookup.setdefault(r.name, []).append(r)
        edge_addresses = [topo.EDGE_IP, topo.EDGE_IP6]
        texts = {
            self.zone: render_zone(self.zone, records, self._serial, topo.DNS_IP, lookup, edge_addresses),
            TUNNEL_DOMAIN: render_zone(TUNNEL_DOMAIN, tunnel, self._serial, topo.DNS_IP),
        }
        for zone, text in texts.items():
            tmp = self.dns_dir / f"{zone}.zone.tmp"
            tmp.write_text(text)
            tmp.replace(self.dns_dir / f"{zone}.zone")  # atomic: knotd never reads half a file

    def _write_edge_files(self) -> bool:
        """The edge's Caddyfile for the records as they are (see edge.py); whether it changed."""
        assert self.pki is not None
        files = edge_config.EdgeFiles(
            self.pki.edge_cert, self.pki.edge_key, self.origin_ca_file or self.pki.origin_ca_path, self.edge_caddy_data
        )
        text = edge_config.render(self.dns_records, self.services, self.tunnel_target, topo.MINI_TUNNEL_IP, files)
        path = self.edge_dir / "Caddyfile"
        if path.exists() and path.read_text() == text:
            return False
        path.write_text(text)
        return True

    def _edge_follows_records(self) -> None:
        """Cloudflare applies a record change to its proxy: the edge's configuration follows the
        records' targets, reloaded in place. The file follows even while the edge is stopped, so a
        restarted edge starts with the records as they are."""
        if self._write_edge_files() and "caddy-edge" in self._procs:
            self.exec(
                "edge",
                ["caddy", "reload", "--config", str(self.edge_dir / "Caddyfile"), "--adapter", "caddyfile"],
                env=self._xdg_env(self.edge_dir),
                check=True,
            )

    def _wg_conf_path(self) -> Path:
        # wg-quick names the interface after the file: a unique name, because the UAPI sockets in
        # /var/run/wireguard are shared by all namespaces (the VPS has a /run/wireguard of its own).
        return self.mini_dir / "wg" / f"{topo.WG_MINI_IF}.conf"

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

    def _xdg_env(self, base: Path) -> dict[str, str]:
        return {"XDG_DATA_HOME": str(base / "xdg-data"), "XDG_CONFIG_HOME": str(base / "xdg-config"), "HOME": str(base)}

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

    def _spawn(self, role: str, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._procs[name] = spawn(
            topo.ns_name(role), argv, name=name, pid_dir=self.pid_dir, log_dir=self.log_dir, env=env
        )

    def _boot_vps_and_wireguard(self) -> None:
        """The VPS first (its user data brings its wg0 up): the Mac Mini's PersistentKeepalive starts a
        handshake as soon as its interface is up, and an initiation the VPS was not listening for is
        retried only after 5 s. Runs in a thread during up(): errors are collected, not raised."""
        try:
            t = time.monotonic()
            machine = self.boot_vps(self.artifacts["cloud-init.yaml"], [self.operator_public_key])
            self.timings["vps-boot"] = round(time.monotonic() - t, 3)
            if machine.boot_result.status != "done":
                self._wg_errors.append("the VPS's boot: " + "; ".join(machine.boot_result.errors))
        except Exception as exc:
            self._wg_errors.append(f"the VPS's boot: {type(exc).__name__}: {exc}")
        finally:
            self._vps_booted.set()
        if not self._wg_errors:
            self._wg_up()

    def _wg_up(self) -> None:
        rc = run_logged(
            topo.ns_name("mini"),
            ["wg-quick", "up", str(self._wg_conf_path())],
            self.log_dir / "wg-mini.log",
            env=WG_ENV,
            timeout=20,
        )
        if rc != 0:
            self._wg_errors.append(f"wg-quick up on mini failed (exit {rc}); see {self.log_dir}/wg-mini.log")

    def _listening(self, pid: int, proto: str, port: int, address: str | None = None) -> bool:
        """Whether the namespace of ``pid`` has a socket on ``port`` (read from /proc: no spawn),
        on the IPv4 ``address`` if given (two knotds share the dns namespace's port 53)."""
        want = f":{port:04X}"
        if address is not None:
            want = "{:08X}".format(struct.unpack("<I", socket.inet_aton(address))[0]) + want
        for table in (proto, proto + "6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                # tcp: state 0A = LISTEN; udp: any bound socket
                if (fields[1] == want if address else fields[1].endswith(want)) and (
                    proto == "udp" or fields[3] == "0A"
                ):
                    return True
        return False

    def _wait_listening(
        self, name: str, proto: str, port: int, timeout: float = 15, address: str | None = None
    ) -> None:
        proc = self._procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{name} exited ({proc.returncode}); see {self.log_dir / (name + '.log')}")
            if self._listening(proc.pid, proto, port, address):
                return
            time.sleep(0.02)
        raise LabError(f"{name} does not listen on {proto}/{port} after {timeout}s")

    def _wait_ready(self) -> None:
        self._wait_listening("knotd", "udp", 53, address=topo.DNS_IP)
        if self.mirror_records is not None:
            self._wait_listening("knotd-mirror", "udp", 53, address=topo.MIRROR_DNS_IP)
        self._wait_listening("backends", "tcp", self.services[0][1])
        self._wait_listening("caddy-edge", "tcp", 443)

    # ------------------------------------------------------------------ certificates

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

    # ------------------------------------------------------------------ operations

    def exec(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 30,
        check: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside a lab namespace ("client" or "mlab-client") and capture its output;
        "vps" runs it inside the VPS machine (its network and its root)."""
        ns = ns if ns.startswith(topo.PREFIX + "-") else topo.ns_name(ns)
        if ns == topo.ns_name("vps"):
            if self.vps is None:
                raise LabError("the lab has no VPS running")
            return self.vps.exec(argv, input=input, timeout=timeout, check=check, env=env)
        return run(
            netns_exec_argv(ns, argv),
            check=check,
            timeout=timeout,
            input=input,
            env={**os.environ, **env} if env else None,
        )

    def ssh_argv(self, command: str | None = None) -> list[str]:
        """ssh from the client namespace to root@vps with the lab key and the pinned host key."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{topo.VPS_IP}",
        ]
        return argv + ([command] if command is not None else [])

    def ssh(self, command: str, *, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.exec("client", self.ssh_argv(command), input=input, timeout=timeout)

    def push_caddyfile(self, text: str, command: str | None = None) -> tuple[bool, str]:
        """Deliver a Caddyfile the way Pulumi does: the script's text as the SSH command, the file on stdin.

        command: another Caddy command's text (default: the lab's, from the starting mode's plan).
        """
        return self.run_command(command or self.caddy_command, text)

    def run_command(self, command: str, stdin: str | None = None) -> tuple[bool, str]:
        """What pulumi-command's remote Command does with a create or delete: the text as the SSH
        command, stdin (if any) on the session's standard input. Returns (exit 0, stdout+stderr)."""
        try:
            proc = self.ssh(command, input=stdin if stdin is not None else "", timeout=self.push_timeout)
        except subprocess.TimeoutExpired as exc:
            return False, f"command timed out after {self.push_timeout}s: {exc}"
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def set_dns(self, records: Iterable[DnsRecord]) -> float:
        """Replace the zone's records and reload knotd, and let the edge follow the proxied records'
        targets (Cloudflare's proxy applies a change with it); returns seconds until both serve it."""
        t0 = time.monotonic()
        self.dns_records = list(records)
        self._write_zones(self.dns_records)
        # -b: wait until knotd has finished loading, so the next query sees the new zone.
        run(["knotc", "-s", str(self.dns_dir / "knot.sock"), "-b", "zone-reload", self.zone], timeout=15)
        self._edge_follows_records()
        return round(time.monotonic() - t0, 4)

    def add_dns_records(self, records: Iterable[DnsRecord]) -> float:
        """Add records to the Cloudflare zone (keeping the rest); seconds until served."""
        new = list(records)
        return self.set_dns([*[r for r in self.dns_records if r not in new], *new])

    def remove_dns_records(self, records: Iterable[DnsRecord]) -> float:
        gone = set(records)
        return self.set_dns([r for r in self.dns_records if r not in gone])

    def set_mirror(self, records: Iterable[DnsRecord]) -> float:
        """Replace the mirror zone's records (what a `pulumi up` would write to Hetzner) and reload."""
        if self.mirror_records is None:
            raise LabError("this lab has no Hetzner mirror (no mirror_records)")
        t0 = time.monotonic()
        self.mirror_records = list(records)
        self._write_mirror_zone(self.mirror_records)
        run(["knotc", "-s", str(self.mirror_dir / "knot.sock"), "-b", "zone-reload", self.zone], timeout=15)
        return round(time.monotonic() - t0, 4)

    def switch_nameservers(self, to: str = "mirror") -> None:
        """The registrar step: the client's DNS now asks the mirror ("mirror") or Cloudflare's zone
        again ("cloudflare"). Real resolvers follow after the delegation's TTL; the lab at once."""
        if to == "mirror":
            if self.mirror_records is None:
                raise LabError("this lab has no Hetzner mirror (no mirror_records)")
            self.resolver = topo.MIRROR_DNS_IP
        elif to == "cloudflare":
            self.resolver = topo.DNS_IP
        else:
            raise ValueError(to)
        self._delegate(self.resolver)

    def _delegate(self, nameserver: str) -> None:
        """Resolvers follow the delegation: RESOLVER_IP (pebble's validation, the operator's machine)
        answers from ``nameserver``, by DNAT in the dns namespace."""
        table = "ip lab-delegation"
        rules = [f"ip daddr {topo.RESOLVER_IP} {proto} dport 53 dnat to {nameserver}" for proto in ("udp", "tcp")]
        chain = (
            "chain prerouting {\n    type nat hook prerouting priority dstnat;\n    " + "\n    ".join(rules) + "\n  }"
        )
        text = f"table {table}\ndelete table {table}\ntable {table} {{\n  {chain}\n}}\n"
        run(netns_exec_argv(topo.ns_name("dns"), ["nft", "-f", "-"]), input=text)

    def cut_edge(self, how: str = "link") -> None:
        """Break the Cloudflare Tunnel path.

        "link" (default): the edge-to-mini link goes down, like cloudflared losing its connection; the
        edge keeps answering TLS, with 502 (as Cloudflare answers with an error page).
        "stop": the edge's Caddy is stopped: connections to the edge are refused.
        """
        if how == "link":
            ip("link", "set", topo.TUNNEL_LINK_IF, "down", ns=topo.ns_name("edge"))
        elif how == "stop":
            proc = self._procs.pop("caddy-edge", None)
            if proc:
                kill_pids([proc.pid])
                (self.pid_dir / "caddy-edge.pid").unlink(missing_ok=True)
        else:
            raise ValueError(how)

    def restore_edge(self) -> None:
        self._tunnel_link_up()
        if "caddy-edge" not in self._procs:
            self._spawn(
                "edge",
                "caddy-edge",
                ["caddy", "run", "--config", str(self.edge_dir / "Caddyfile"), "--adapter", "caddyfile"],
                env=self._xdg_env(self.edge_dir),
            )
            self._wait_listening("caddy-edge", "tcp", 443)

    def vps_unreachable(self, unreachable: bool = True) -> None:
        """The VPS not answering (stopped, or Hetzner's side down): every connection to its HTTPS, HTTP
        and SSH is reset, so nobody answers for any host, its health path and SSH fail alike."""
        rules = "table inet lab-vps-down\ndelete table inet lab-vps-down\n"
        if unreachable:
            rules += (
                "table inet lab-vps-down {\n\tchain input {\n\t\ttype filter hook input priority filter;\n"
                "\t\ttcp dport { 22, 80, 443 } reject with tcp reset\n\t}\n}\n"
            )
        run(netns_exec_argv(topo.ns_name("vps"), ["nft", "-f", "-"]), input=rules)

    def wireguard_down(self) -> None:
        """Take the Mac Mini's tunnel down (wg-quick down).

        With the failover Caddyfile's transport, the VPS's Caddy then answers 502 after its 3 s dial
        timeout; a request that lands on a still-pooled upstream connection hangs until the client
        gives up (which drops that connection) or the 10 s idle keepalive has dropped it first.
        """
        rc = run_logged(
            topo.ns_name("mini"),
            ["wg-quick", "down", str(self._wg_conf_path())],
            self.log_dir / "wg-mini.log",
            env=WG_ENV,
        )
        if rc != 0:
            raise LabError(f"wg-quick down on mini failed (exit {rc})")

    def wireguard_up(self) -> None:
        self._wg_errors = []
        self._wg_up()
        if self._wg_errors:
            raise LabError(self._wg_errors[0])

    def tunnel_addresses(self) -> tuple[str, str]:
        """(VPS, Mac Mini) tunnel addresses, read from the rendered configs' Address lines."""

        def addr(text: str) -> str:
            for line in text.splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "Address":
                    return value.split(",")[0].strip().split("/")[0]
            raise LabError("WireGuard config without Address")

        if "wg0-server.conf" in self.artifacts:
            server = self.artifacts["wg0-server.conf"]
        else:  # the VPS's own, as its user data wrote it
            server = self.exec("vps", ["cat", "/etc/wireguard/wg0.conf"], check=True).stdout
        return addr(server), addr(self._wg_conf_path().read_text())

    def nudge_tunnel(self) -> None:
        """Send one datagram from the Mac Mini into the tunnel.

        wg-quick configures the peer before the link is up, so wireguard-go sends no first keepalive:
        without traffic the handshake waits for the first packet. A real Mac Mini always has some.
        """
        server_ip, _ = self.tunnel_addresses()
        self.exec(
            "mini",
            [
                self.python,
                "-c",
                "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                ".sendto(b'nudge', (sys.argv[1], 9))",
                server_ip,
            ],
            check=True,
        )

    def wait_handshake(self, timeout: float = 10, after: float = 0, nudge: bool = True) -> float:
        """Wait until the VPS has a handshake newer than ``after`` (epoch s); returns seconds waited."""
        t0 = time.monotonic()
        if nudge:
            self.nudge_tunnel()
        while time.monotonic() - t0 < timeout:
            peers = self.wg_show("vps")["peers"]
            if peers and peers[0]["latest_handshake"] > after:
                return round(time.monotonic() - t0, 3)
            time.sleep(0.05)
        raise LabError(f"no WireGuard handshake within {timeout}s")

    def change_mini_wan(self, new_ip: str | None = None, *, rebind: bool = True) -> str:
        """Give the Mac Mini a new WAN address (a new DHCP lease / NAT mapping); returns it.

        WireGuard roams: the VPS learns the new endpoint from the next authenticated packet the Mac
        Mini sends (data, or at the latest the PersistentKeepalive).

        rebind: wireguard-go on Linux caches the source address per peer ("sticky sockets") and only
        drops it on EINVAL, but sending from a vanished address fails with ENETUNREACH here, so it
        would never send again. The Mac's WireGuard client rebinds on every network change; setting
        the peer's endpoint again (same value) is the lab's equivalent: it clears the cached source.
        """
        if new_ip is None:
            new_ip = next(a for a in topo.MINI_WAN_IPS if a != self.mini_wan_ip)
        ns = topo.ns_name("mini")
        # Add before delete: removing an interface's last IPv4 address flushes its routes.
        ip("addr", "add", f"{new_ip}/24", "dev", "wan0", ns=ns)
        ip("addr", "del", f"{self.mini_wan_ip}/24", "dev", "wan0", ns=ns)
        self.mini_wan_ip = new_ip
        if rebind:
            for peer in self.wg_show("mini")["peers"]:
                if peer["endpoint"] != "(none)":
                    self.exec(
                        "mini",
                        ["wg", "set", topo.WG_MINI_IF, "peer", peer["public_key"], "endpoint", peer["endpoint"]],
                        check=True,
                    )
        return new_ip

    def wg_show(self, role: str = "vps") -> dict[str, Any]:
        """Peer state from the WireGuard interface of ``role``: endpoint, latest handshake (epoch s)."""
        ifname = topo.WG_SERVER_IF if role == "vps" else topo.WG_MINI_IF
        out = self.exec(role, ["wg", "show", ifname, "dump"], check=True).stdout.splitlines()
        peers = []
        for line in out[1:]:
            f = line.split("\t")
            peers.append(
                {
                    "public_key": f[0],
                    "endpoint": f[2],
                    "allowed_ips": f[3],
                    "latest_handshake": int(f[4]),
                    "rx": int(f[5]),
                    "tx": int(f[6]),
                }
            )
        return {"interface": ifname, "peers": peers}

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
        outputs = dict(self.state_outputs[state])
        outputs.update(certs.certificate_outputs(self.certificates))
        path = self.client_dir / f"outputs-{state}.json"
        path.write_text(json.dumps(outputs, indent=2) + "\n")
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
