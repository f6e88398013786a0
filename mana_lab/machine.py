"""A server of the lab: a network namespace at its public addresses, booted from its cloud-init user
data inside a root of its own, with the SSH keys its API request named and the firewall its API holds.

This is what a Hetzner server is to the program: the stand-in Hetzner API (``mana_lab.clouds``)
creates one for each ``POST /servers`` (the end-to-end runs), and the drill's lab creates one from the
offline plan's ``cloud-init.yaml``. Either way the machine runs exactly the program's user data.

- **Its own root.** One anchor process holds the machine's mount namespace: ``/etc``, ``/root`` and
  ``/var/lib`` are overlays of the host's (the image) with an upper layer in the machine's folder, so
  whatever the machine writes there (cloud-init's files, its host keys, ``authorized_keys``, Caddy's
  data) stays in the machine; ``/run/wireguard`` is a tmpfs of its own, so its WireGuard interface is
  ``wg0`` as on the VPS, however many lab namespaces run wireguard-go. Every process of the machine
  is entered into the anchor's namespaces (``nsenter``).
- **The image** (Ubuntu's cloud image, as far as the program relies on it): sshd with
  ``Include /etc/ssh/sshd_config.d/*.conf`` first, a fresh host key, root's ``authorized_keys`` from
  the API's keys (Hetzner hands them to cloud-init); the lab's ``systemctl`` and ``cloud-init`` first
  on every session's PATH (``vps_bin/``), which run the units the user data names the way Ubuntu's
  units do, and report the boot's result as ``cloud-init status`` does.
- **The boot** runs the user data's modules in cloud-init's order: ``ssh_pwauth``, ``write_files``,
  ``packages`` (each must be one the lab's host has: its programs are the package), ``runcmd``. A key
  the lab cannot honour is refused, never skipped: the machine would not be the program's. A failing
  ``runcmd`` entry makes the status ``error``, as cloud-init's does, and the boot goes on.
- **The firewall** is Hetzner's, outside the server: nftables in the machine's namespace on its public
  interface only (WireGuard's inner traffic never passes Hetzner's firewall), stateful, and inbound
  traffic that no rule allows is dropped once any inbound rule exists (Hetzner Cloud docs, "Firewalls:
  overview": "all traffic that is not explicitly allowed is blocked"; rules apply to the public network
  interface). IPv6 neighbour discovery is the network's own and always passes.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import topology as topo
from .system import LabError, attach_to_bridge, netns_exec_argv, run, spawn

PACKAGE_DIR = Path(__file__).resolve().parent
VPS_BIN = PACKAGE_DIR / "vps_bin"
WRITE_FILES = PACKAGE_DIR / "write_files.py"

# What the machine writes to stays in its root: these are overlaid on the host's (the image).
OVERLAID = ("/etc", "/root", "/var/lib")
# The cloud-config keys the lab's boot runs, in cloud-init's order (others are refused).
BOOT_KEYS = ("package_update", "package_upgrade", "ssh_pwauth", "write_files", "packages", "runcmd")
WRITE_FILE_KEYS = frozenset({"path", "content", "owner", "permissions"})
# Ubuntu's packages the user data may name, and the host programs that are that package in the lab.
PACKAGES: dict[str, tuple[str, ...]] = {
    "wireguard": ("wg", "wg-quick", "wireguard-go"),
    "caddy": ("caddy",),
    "unattended-upgrades": (),
}
PUBLIC_INTERFACE = "wan0"

WG_ENV = {"WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
"""wg-quick with the userspace implementation (no kernel module on the lab host); the second variable
silences wireguard-go's banner."""


@dataclass
class Boot:
    """How a machine's boot went: cloud-init's verdict (``done`` or ``error``) and its reasons."""

    status: str = "running"
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    authorized_keys: int = 0
    host_key: str = ""
    """The machine's SSH host key (``ssh-ed25519 AAAA...``): what a known_hosts line pins."""


def parse_user_data(user_data: str) -> dict[str, Any]:
    """The user data's cloud-config, refused with the reason when the lab cannot boot it as written."""
    if not user_data.startswith("#cloud-config"):
        raise LabError("the user data is not a #cloud-config document: the lab boots cloud-config only")
    document = yaml.safe_load(user_data)
    if not isinstance(document, dict):
        raise LabError("the user data's cloud-config is not a mapping")
    unknown = sorted(set(document) - set(BOOT_KEYS))
    if unknown:
        raise LabError(f"the lab cannot boot the cloud-config key(s) {', '.join(unknown)}: it runs {BOOT_KEYS}")
    for entry in document.get("write_files") or []:
        extra = sorted(set(entry) - WRITE_FILE_KEYS)
        if extra:
            raise LabError(f"write_files entry {entry.get('path')!r} uses {extra}, which the lab does not write")
        if not any(str(entry.get("path", "")).startswith(prefix + "/") for prefix in OVERLAID):
            raise LabError(f"write_files path {entry.get('path')!r} is outside the machine's root ({OVERLAID})")
    unknown_packages = sorted(set(document.get("packages") or []) - set(PACKAGES))
    if unknown_packages:
        raise LabError(f"the lab has no package {', '.join(unknown_packages)} (it has {sorted(PACKAGES)})")
    return document


def machine_environment(run_dir: Path) -> dict[str, str]:
    """What every process of the machine sees: the lab's systemctl and cloud-init first on PATH (they
    keep their pids, logs and the boot's verdict in ``run_dir``), Caddy's data where caddy.service keeps it."""
    return {
        "PATH": f"{VPS_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LAB_RUN_DIR": str(run_dir),
        "HOME": "/root",
        "XDG_DATA_HOME": "/var/lib/caddy/.local/share",
        "XDG_CONFIG_HOME": "/var/lib/caddy/.config",
        **WG_ENV,
    }


def firewall_ruleset(rules: Sequence[Mapping[str, Any]], interface: str = PUBLIC_INTERFACE) -> str:
    """nftables for Hetzner firewall rules (the API's shape: direction, protocol, port, source_ips,
    destination_ips): per direction, everything not allowed is dropped once a rule of that direction
    exists; stateful; on the public interface only."""
    chains = []
    for direction, hook, iface, peer in (("in", "input", "iifname", "saddr"), ("out", "output", "oifname", "daddr")):
        chosen = [r for r in rules if r.get("direction") == direction]
        if not chosen:
            continue
        lines = [
            f"type filter hook {hook} priority filter; policy drop;",
            f'{iface} != "{interface}" accept',
            "ct state established,related accept",
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept",
        ]
        for rule in chosen:
            lines.extend(_rule_lines(rule, peer))
        body = "\n\t\t".join(lines)
        chains.append(f"\tchain {direction}bound {{\n\t\t{body}\n\t}}")
    table = "table inet hetzner-firewall"
    return f"{table}\ndelete {table}\n" + (f"{table} {{\n" + "\n".join(chains) + "\n}\n" if chains else "")


def _rule_lines(rule: Mapping[str, Any], peer: str) -> list[str]:
    protocol = str(rule.get("protocol"))
    addresses = rule.get("source_ips" if peer == "saddr" else "destination_ips") or []
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for network in addresses:
        parsed = ipaddress.ip_network(str(network), strict=False)
        by_family[parsed.version].append(str(parsed))
    if protocol in ("tcp", "udp"):
        port = str(rule.get("port") or "")
        match = f"{protocol} dport {port}" if port and port != "any" else f"meta l4proto {protocol}"
    elif protocol == "icmp":
        match = ""
    else:  # esp, gre: by protocol
        match = f"meta l4proto {protocol}"
    lines = []
    for version, networks in by_family.items():
        if not networks:
            continue
        family = "ip" if version == 4 else "ip6"
        icmp = ("meta l4proto icmp" if version == 4 else "meta l4proto ipv6-icmp") if protocol == "icmp" else ""
        lines.append(f"{family} {peer} {{ {', '.join(networks)} }} {icmp or match} accept".replace("  ", " "))
    return lines


class Machine:
    """One server. ``boot`` brings it up; ``destroy`` removes every trace (idempotent)."""

    def __init__(
        self,
        name: str,
        folder: Path,
        ipv4: str,
        ipv6: str | None,
        *,
        pid_dir: Path,
        log_dir: Path,
        role: str = "vps",
    ) -> None:
        self.name = name
        self.role = role
        self.ns = topo.ns_name(role)
        self.folder = folder
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.pid_dir = pid_dir
        self.log_dir = log_dir
        self.run_dir = folder / "run"
        self.boot_result = Boot()
        self.anchor_pid: int | None = None
        self.firewall_rules: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------- running things

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the machine: its network and its root."""
        if self.anchor_pid is None:
            raise LabError(f"machine {self.name} is not running")
        return ["nsenter", "-t", str(self.anchor_pid), "-n", "-m", "--", *argv]

    def env(self) -> dict[str, str]:
        return machine_environment(self.run_dir)

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 30,
        check: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(argv), input=input, timeout=timeout, check=check, env={**self.env(), **(env or {})})

    def spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        return spawn(
            self.ns,
            argv,
            name=name,
            pid_dir=self.pid_dir,
            log_dir=self.log_dir,
            env=self.env(),
            enter=self.argv([]),
        )

    def write_files(self, files: Sequence[Mapping[str, Any]]) -> None:
        """Files inside the machine's root (path, content, permissions, owner), written from inside."""
        self.exec(["python3", str(WRITE_FILES)], input=json.dumps(list(files)), check=True)

    # ------------------------------------------------------------------------------------- lifecycle

    def boot(
        self, user_data: str, authorized_keys: Sequence[str], *, extra_files: Sequence[Mapping[str, Any]] = ()
    ) -> Boot:
        """Create the machine and boot it from ``user_data``; ``authorized_keys`` are root's (the API's
        keys); ``extra_files`` are the image's own (e.g. host-local Caddy options). Returns the boot."""
        started = time.monotonic()
        document = parse_user_data(user_data)
        boot = self.boot_result = Boot(authorized_keys=len(authorized_keys))
        self._create()
        self._image(authorized_keys, extra_files)
        self.apply_firewall(self.firewall_rules)
        if document.get("ssh_pwauth") is False:
            # What cloud-init's set_passwords module writes on Ubuntu for ssh_pwauth: false.
            self.write_files(
                [{"path": "/etc/ssh/sshd_config.d/50-cloud-init.conf", "content": "PasswordAuthentication no\n"}]
            )
        self.write_files(
            [
                {
                    "path": entry["path"],
                    "content": entry.get("content", ""),
                    "permissions": entry.get("permissions", "0644"),
                    "owner": entry.get("owner", "root:root"),
                }
                for entry in document.get("write_files") or []
            ]
        )
        self._start_sshd()
        for package in document.get("packages") or []:
            if package == "caddy":
                # Ubuntu's caddy package starts caddy.service on install, with its own default Caddyfile.
                done = self.exec(["systemctl", "enable", "--now", "caddy"])
                if done.returncode != 0:
                    boot.errors.append(f"package caddy: caddy.service did not start: {done.stderr.strip()}")
        for index, command in enumerate(document.get("runcmd") or []):
            argv = [str(a) for a in command] if isinstance(command, list) else ["sh", "-c", str(command)]
            done = self.exec(argv, timeout=60)
            if done.returncode != 0:
                reason = (done.stderr or done.stdout).strip()
                boot.errors.append(f"runcmd[{index}] {shlex.join(argv)} exited {done.returncode}: {reason}")
        boot.status = "error" if boot.errors else "done"
        boot.seconds = round(time.monotonic() - started, 3)
        (self.run_dir / "cloud-init.json").write_text(json.dumps({"status": boot.status, "errors": boot.errors}))
        self.write_files([{"path": "/var/lib/cloud/instance/boot-finished", "content": f"{time.time()}\n"}])
        return boot

    def _create(self) -> None:
        for sub in ("upper", "work"):
            for path in OVERLAID:
                (self.folder / sub / path.strip("/")).mkdir(parents=True, exist_ok=True)
        # Its network's resolver, as Hetzner's gives its servers one (not this machine's own: the lab's
        # traffic stays in the lab).
        (self.folder / "upper" / "etc" / "resolv.conf").write_text(f"nameserver {topo.RESOLVER_IP}\n")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        Path("/run/wireguard").mkdir(mode=0o700, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        run(["ip", "netns", "add", self.ns])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        attach_to_bridge(self.ns, f"p-{self.role}", self.ipv4, self.ipv6)
        mounts = [
            f"mount -t overlay overlay -o lowerdir={path},upperdir={self.folder / 'upper' / path.strip('/')},"
            f"workdir={self.folder / 'work' / path.strip('/')} {path}"
            for path in OVERLAID
        ]
        ready = self.run_dir / "anchor-ready"
        script = " && ".join([*mounts, "mount -t tmpfs -o mode=0700 tmpfs /run/wireguard", f"touch {ready}"])
        proc = spawn(
            self.ns,
            ["sh", "-c", f"{script} && exec sleep infinity"],
            name=f"{self.role}-anchor",
            pid_dir=self.pid_dir,
            log_dir=self.log_dir,
        )
        deadline = time.monotonic() + 10
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(
                    f"machine {self.name}: its root did not mount; see {self.log_dir}/{self.role}-anchor.log"
                )
            time.sleep(0.01)
        # `ip netns exec` execs the shell, which execs sleep: the Popen pid is the anchor.
        self.anchor_pid = proc.pid

    def _image(self, authorized_keys: Sequence[str], extra_files: Sequence[Mapping[str, Any]]) -> None:
        """What Ubuntu's cloud image and Hetzner's metadata give a new server before its user data runs."""
        env = " ".join(f"{k}={v}" for k, v in self.env().items() if k != "HOME")
        listen = [f"ListenAddress {self.ipv4}:22"] + ([f"ListenAddress [{self.ipv6}]:22"] if self.ipv6 else [])
        sshd_config = "\n".join(
            [
                "# The lab image's sshd_config: Ubuntu's order, the drop-ins first (the first value wins).",
                "Include /etc/ssh/sshd_config.d/*.conf",
                *listen,
                "HostKey /etc/ssh/ssh_host_ed25519_key",
                f"PidFile {self.run_dir / 'sshd.pid'}",
                "AuthorizedKeysFile .ssh/authorized_keys",
                # No PAM: the lab has no login sessions to set up.
                "UsePAM no",
                "PrintMotd no",
                "UseDNS no",
                # sshd passes no environment of the client's; the machine's own reaches every session.
                f"SetEnv {env}",
                "",
            ]
        )
        self.write_files(
            [
                {"path": "/etc/ssh/sshd_config", "content": sshd_config},
                {"path": "/etc/ssh/sshd_config.d/.keep", "content": ""},
                {
                    "path": "/root/.ssh/authorized_keys",
                    "content": "".join(k.strip() + "\n" for k in authorized_keys),
                    "permissions": "0600",
                },
                *extra_files,
            ]
        )
        key = "/etc/ssh/ssh_host_ed25519_key"
        self.exec(
            ["sh", "-c", f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -C {self.name} -f {key}"], check=True
        )
        self.boot_result.host_key = " ".join(self.exec(["cat", f"{key}.pub"], check=True).stdout.split()[:2])

    def _start_sshd(self) -> None:
        sshd = "/usr/sbin/sshd"  # sshd insists on an absolute path (it re-executes itself)
        self.spawn(f"{self.role}-sshd", [sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config"])
        deadline = time.monotonic() + 10
        while not (self.run_dir / "sshd.pid").exists():
            if time.monotonic() > deadline:
                raise LabError(f"machine {self.name}: sshd did not start; see {self.log_dir}/{self.role}-sshd.log")
            time.sleep(0.01)

    def apply_firewall(self, rules: Sequence[Mapping[str, Any]]) -> None:
        """The Hetzner firewall rules that apply to this server now (all its firewalls' rules together)."""
        self.firewall_rules = [dict(r) for r in rules]
        if self.anchor_pid is None:
            return  # applied at boot, before sshd listens
        run(netns_exec_argv(self.ns, ["nft", "-f", "-"]), input=firewall_ruleset(self.firewall_rules))

    def destroy(self) -> None:
        """Power off and delete: every process of the machine, its namespace and its root."""
        from .system import kill_pids, netns_pids

        if self.ns in _namespaces():
            kill_pids(netns_pids(self.ns))
            # The veth first, synchronously: a deleted namespace's interfaces go later, in the kernel's
            # own time, and a new machine at the same port would find its peer's name still taken.
            run(["ip", "-n", self.ns, "link", "del", PUBLIC_INTERFACE], check=False)
            run(["ip", "netns", "del", self.ns], check=False)
        for name in ("anchor", "sshd"):
            (self.pid_dir / f"{self.role}-{name}.pid").unlink(missing_ok=True)
        self.anchor_pid = None
        subprocess.run(["rm", "-rf", str(self.folder)], check=False, timeout=120)


def _namespaces() -> list[str]:
    from .system import netns_list

    return netns_list()


def own_known_hosts_line(machine: Machine) -> str:
    """The known_hosts line that pins the machine's host key at its addresses."""
    hosts = ",".join([machine.ipv4] + ([machine.ipv6] if machine.ipv6 else []))
    return f"{hosts} {machine.boot_result.host_key}\n"
