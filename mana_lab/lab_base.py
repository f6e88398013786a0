"""The lab's shared part: what it runs (LabSpec), its folders and machines, and the commands every
concern uses (LabBase). lab.py composes the concerns into Lab."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mana_infra.check.report import Report
from mana_infra.model import DnsRecord, tunnel_target
from mana_infra.names import ARTIFACT_NAMES, CLOUD_INIT
from mana_infra.render.remote import caddy_command as caddy_command_text

from . import certs
from . import topology as topo
from .dnszone import rrset_records
from .machine import WG_ENV, Machine
from .system import (
    LabError,
    ip,
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


@dataclass(frozen=True)
class LabSpec:
    """What a lab runs: the offline plan's view of one standby state.

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

    artifacts: Mapping[str, str]
    services: Sequence[tuple[str, int]]
    zone: str
    tunnel_id: str
    dns_records: Sequence[DnsRecord]
    caddy_command: str | None = None
    origin_name: str | None = None
    health_url: str | None = None
    services_file: str | Path | None = None
    mirror_records: Sequence[DnsRecord] | None = None
    certificate_commands: Mapping[str, str] | None = None
    state_outputs: Mapping[str, Mapping[str, Any]] | None = None
    macmini_command: Mapping[str, str] | None = None
    """Plan C: the plan's command that puts the Mac Mini's Caddyfile on the VPS ("create", "stdin")."""

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any], state: str = "tunnel") -> LabSpec:
        """The spec of ``state`` ("tunnel", "failover", "failover-dns") in drill inputs (see inputs.py)."""
        m = inputs["states"][state]
        mirror = inputs.get("mirror")
        certificates = inputs.get("certificates")
        return cls(
            artifacts={k: m[k] for k in ARTIFACT_NAMES},
            services=[(str(h), int(p)) for h, p in inputs["services"]],
            zone=inputs["zone"],
            tunnel_id=inputs["tunnel_id"],
            dns_records=list(m["dns_records"]),
            caddy_command=m.get("caddy_command") or None,
            origin_name=inputs.get("origin_name") or None,
            health_url=inputs.get("health_url") or None,
            services_file=inputs.get("services_file") or None,
            mirror_records=rrset_records(mirror["rrsets"], inputs["zone"]) if mirror else None,
            certificate_commands={k: v["create"] for k, v in certificates.items()} if certificates else None,
            state_outputs={k: v["outputs"] for k, v in inputs["states"].items() if "outputs" in v},
            macmini_command=m.get("macmini_command"),
        )


class LabBase:
    """What every part of the lab shares: its spec and folders, the VPS machine and the commands run in
    the namespaces (exec, ssh), the daemons' spawning and readiness, WireGuard's config."""

    def __init__(
        self,
        workdir: str | Path,
        spec: LabSpec,
        *,
        python: str = sys.executable,
        push_timeout: float = 60,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        # No artifacts: the substrate alone (the clouds create the VPS: world.py).
        missing = [k for k in ARTIFACT_NAMES if k not in spec.artifacts] if spec.artifacts else []
        if missing:
            raise LabError(f"artifacts lack {missing}")
        self.spec = spec
        self.workdir = Path(workdir).resolve()
        self.artifacts = dict(spec.artifacts)
        self.services = [(h.lower(), int(p)) for h, p in spec.services]
        self.zone = spec.zone.lower().rstrip(".")
        self.tunnel_id = spec.tunnel_id.lower()
        self.dns_records = list(spec.dns_records)
        self.mirror_records = list(spec.mirror_records) if spec.mirror_records is not None else None
        # The DNS server the client's probe and check ask: the Cloudflare zone's, or after the
        # nameserver switch the mirror's (the delegation; RESOLVER_IP follows it for everyone else).
        self.resolver = topo.DNS_IP
        # The SSH command text of the program's Caddy command: the shipped script, byte for byte.
        self.caddy_command = spec.caddy_command or caddy_command_text()
        self.python = python
        self.push_timeout = push_timeout
        self.origin_name = (spec.origin_name or f"vps.{self.zone}").lower().rstrip(".")
        self.health_url = spec.health_url
        self._services_file = Path(spec.services_file) if spec.services_file else None
        self.certificate_commands = dict(
            spec.certificate_commands or {k: caddy_command_text(f"certs/{k}.pem") for k in CERTIFICATES}
        )
        self.state_outputs = {k: dict(v) for k, v in (spec.state_outputs or {}).items()}
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
        # What the threads of up() found: the VPS's boot and WireGuard, the public certificate.
        self._wg_errors: list[str] = []
        self._cert_errors: list[str] = []
        self._vps_booted = threading.Event()
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
    def operator_public_key(self) -> str:
        return Path(f"{self.client_key}.pub").read_text().strip()

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

    def _boot_vps_and_wireguard(self) -> None:
        """The VPS first (its user data brings its wg0 up): the Mac Mini's PersistentKeepalive starts a
        handshake as soon as its interface is up, and an initiation the VPS was not listening for is
        retried only after 5 s. Runs in a thread during up(): errors are collected, not raised."""
        try:
            t = time.monotonic()
            machine = self.boot_vps(self.artifacts[CLOUD_INIT], [self.operator_public_key])
            self.timings["vps-boot"] = round(time.monotonic() - t, 3)
            if machine.boot_result.status != "done":
                self._wg_errors.append("the VPS's boot: " + "; ".join(machine.boot_result.errors))
        except Exception as exc:
            self._wg_errors.append(f"the VPS's boot: {type(exc).__name__}: {exc}")
        finally:
            self._vps_booted.set()
        if not self._wg_errors:
            self._wg_up()

    def _spawn(self, role: str, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._procs[name] = spawn(
            topo.ns_name(role), argv, name=name, pid_dir=self.pid_dir, log_dir=self.log_dir, env=env
        )

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

    def _xdg_env(self, base: Path) -> dict[str, str]:
        return {"XDG_DATA_HOME": str(base / "xdg-data"), "XDG_CONFIG_HOME": str(base / "xdg-config"), "HOME": str(base)}

    def _wg_conf_path(self) -> Path:
        # wg-quick names the interface after the file: a unique name, because the UAPI sockets in
        # /var/run/wireguard are shared by all namespaces (the VPS has a /run/wireguard of its own).
        return self.mini_dir / "wg" / f"{topo.WG_MINI_IF}.conf"

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

    def _tunnel_link_up(self) -> None:
        for role, addr in (("edge", topo.EDGE_TUNNEL_IP), ("mini", topo.MINI_TUNNEL_IP)):
            ns = topo.ns_name(role)
            ip("link", "set", topo.TUNNEL_LINK_IF, "up", ns=ns)
            # replace: a link that was down lost its IPv6 address (keep_addr_on_down=0).
            ip("addr", "replace", f"{addr}/{topo.TUNNEL_LINK_PREFIX}", "dev", topo.TUNNEL_LINK_IF, "nodad", ns=ns)

    @property
    def tunnel_target(self) -> str:
        return tunnel_target(self.tunnel_id)

    @property
    def services_file(self) -> Path:
        """The inventory ``check()`` uses: the plan's own file, else one written from ``services``."""
        return self._services_file or self.client_dir / "services.yaml"

    @property
    def acme_directory(self) -> str:
        return f"https://{topo.ACME_IP}:{topo.ACME_PORT}/dir"

    @property
    def members(self) -> Mapping[str, topo.Member]:
        """The namespaces up() creates (the VPS is a machine: boot_vps)."""
        return topo.MEMBERS
