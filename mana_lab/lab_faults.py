"""The faults the drill and the tests make and mend: the edge, the VPS's reachability, WireGuard,
the Mac Mini's line, the nameserver switch."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from mana_infra.names import WG_SERVER, WIREGUARD_CONFIG_PATH

from . import topology as topo
from .lab_base import LabBase
from .machine import WG_ENV
from .system import LabError, ip, kill_pids, netns_exec_argv, run, run_logged


class LabFaults(LabBase):
    """The faults the drill and the tests make and mend: the edge, the VPS's reachability, WireGuard,
    the Mac Mini's line, the nameserver switch."""

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
        self.restore_tunnel_link()
        self.restore_edge_proxy()

    def restore_tunnel_link(self) -> None:
        self._tunnel_link_up()

    def restore_edge_proxy(self) -> None:
        """The edge's Caddy running again (after ``cut_edge("stop")``)."""
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

    def impostor(self, on: bool = True) -> None:
        """Someone else answering SSH for the VPS on the operator's way to it (a man in the middle): the
        operator's packets to the VPS's port 22 go to the outsider, where an sshd with a host key of its
        own answers every session with a forged vote — everything down, the Mac Mini answering. Whoever
        pins the VPS's host key (the watchdog does) refuses the session before any vote is read."""
        folder, client = self.workdir / "impostor", topo.ns_name("client")
        table = "ip lab-impostor"
        if not on:
            run(netns_exec_argv(client, ["nft", "-f", "-"]), input=f"table {table}\ndelete table {table}\n")
            proc = self._procs.pop("impostor-sshd", None)
            if proc:
                kill_pids([proc.pid])
            return
        folder.mkdir(parents=True, exist_ok=True)
        key = folder / "host_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=20)
        (folder / "authorized_keys").write_text(self.operator_public_key + "\n")
        hosts = [host for host, _ in self.services]
        forged = {"resolver": "ok", "public": dict.fromkeys(hosts, 0), "standby": dict.fromkeys(hosts, 200)}
        (folder / "vote.json").write_text(json.dumps(forged) + "\n")
        (folder / "sshd_config").write_text(
            f"ListenAddress {topo.OUTSIDER_IP}\nPort 22\nHostKey {key}\nPidFile {folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nStrictModes no\nPermitRootLogin yes\n"
            f"PasswordAuthentication no\nForceCommand cat {folder / 'vote.json'}\n"
        )
        self._spawn("outsider", "impostor-sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")])
        self._wait_listening("impostor-sshd", "tcp", 22)
        rules = (
            f"table {table} {{\n\tchain output {{\n\t\ttype nat hook output priority -100;\n"
            f"\t\tip daddr {topo.VPS_IP} tcp dport 22 dnat to {topo.OUTSIDER_IP}\n\t}}\n}}\n"
        )
        run(netns_exec_argv(client, ["nft", "-f", "-"]), input=f"table {table}\ndelete table {table}\n{rules}")

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
        self._wg_errors.clear()
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

        if WG_SERVER in self.artifacts:
            server = self.artifacts[WG_SERVER]
        else:  # the VPS's own, as its user data wrote it
            server = self.exec("vps", ["cat", WIREGUARD_CONFIG_PATH], check=True).stdout
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
