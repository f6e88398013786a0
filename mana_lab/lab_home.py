"""Plan C in the lab: the home router between the internet and the Mac Mini, and the Mac Mini's own Caddy
kept warm by the stack's sync.

- **The router** (namespace ``home``, topology.py): its line's public IPv4 and IPv6 on the lab's
  internet, the home LAN behind it. nftables as a home router does it: tcp/443 of the public IPv4
  forwarded to the Mac Mini (DNAT), IPv6 routed with a stateful firewall that opens tcp/443 to the Mac
  Mini's address alone. ``home_router(forward_ipv4=..., open_ipv6=...)`` takes either away (the port
  not forwarded, the IPv6 firewall closed).
- **The Mac Mini** runs what the stack renders, byte for byte: ``macminiSyncScript`` fetches its
  Caddyfile and the public certificate from the VPS through WireGuard, and Caddy runs as
  ``macminiCaddyLaunchdPlist`` says. Their paths are Homebrew's (/opt/homebrew): each of their
  processes gets a mount namespace of its own with the lab's folder bound there, and Homebrew's caddy
  is the lab's.
"""

from __future__ import annotations

import plistlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mana_infra.outputs import Output
from mana_infra.render.caddyfile import HOME_CADDY_DIR
from mana_infra.render.home import SYNC_SCRIPT
from mana_infra.render.services import HOMEBREW

from . import topology as topo
from .lab_base import LabBase
from .system import LabError, ip, netns_exec_argv, run

# What a home router does, as nftables: DNAT for the public IPv4, a forward firewall for both families.
ROUTER_RULES = """\
table inet mana_home
delete table inet mana_home
table inet mana_home {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
{dnat}    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{lan}" accept
{opened}    }}
}}
"""


def router_ruleset(*, forward_ipv4: bool, open_ipv6: bool) -> str:
    dnat = f"        ip daddr {topo.HOME_IP} tcp dport 443 dnat ip to {topo.MINI_LAN_IP}:443\n" if forward_ipv4 else ""
    opened = (f"        ip daddr {topo.MINI_LAN_IP} tcp dport 443 ct status dnat accept\n" if forward_ipv4 else "") + (
        f"        ip6 daddr {topo.MINI_LAN_IP6} tcp dport 443 accept\n" if open_ipv6 else ""
    )
    return ROUTER_RULES.format(dnat=dnat, lan=topo.HOME_LAN_IF, opened=opened)


class LabHome(LabBase):
    """The home router and the Mac Mini's Caddy (Plan C)."""

    def _build_home(self) -> None:
        """The home LAN between the router and the Mac Mini, the router's forwarding, the routes to it."""
        home, mini, lan = topo.ns_name("home"), topo.ns_name("mini"), topo.HOME_LAN_IF
        run(["ip", "link", "add", lan, "netns", home, "type", "veth", "peer", "name", lan, "netns", mini])
        for ns, v4, v6 in ((home, topo.HOME_LAN_IP, topo.HOME_LAN_IP6), (mini, topo.MINI_LAN_IP, topo.MINI_LAN_IP6)):
            ip("addr", "add", f"{v4}/{topo.HOME_LAN_PREFIX}", "dev", lan, ns=ns)
            ip("-6", "addr", "add", f"{v6}/{topo.HOME_LAN_PREFIX6}", "dev", lan, "nodad", ns=ns)
            ip("link", "set", lan, "up", ns=ns)
        # Forwarding; and every refusal said at once (the kernel paces ICMP errors to 1 a second otherwise).
        forwarding = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.icmp.ratelimit=0"]
        run(netns_exec_argv(home, ["sysctl", "-qw", *forwarding, "net.ipv4.icmp_ratelimit=0"]))
        # What came in through the router goes back through it (the Mac Mini's default route at home).
        table = topo.HOME_ROUTE_TABLE
        routes = (("-4", topo.MINI_LAN_IP, topo.HOME_LAN_IP), ("-6", topo.MINI_LAN_IP6, topo.HOME_LAN_IP6))
        for family, source, gateway in routes:
            ip(family, "rule", "add", "from", source, "table", table, ns=mini)
            ip(family, "route", "add", "default", "via", gateway, "dev", lan, "table", table, ns=mini)
        # The internet routes the home's IPv6 prefix to the router (its line's delegated prefix).
        for role in ("client", "edge"):
            ip("-6", "route", "add", topo.HOME_LAN_NET6, "via", topo.HOME_IP6, ns=topo.ns_name(role))
        self.home_router()

    def home_router(self, *, forward_ipv4: bool = True, open_ipv6: bool = True) -> None:
        """The router's rules: tcp/443 forwarded over IPv4 and opened over IPv6, or either taken away."""
        ruleset = router_ruleset(forward_ipv4=forward_ipv4, open_ipv6=open_ipv6)
        run(netns_exec_argv(topo.ns_name("home"), ["nft", "-f", "-"]), input=ruleset)

    def home_line(self, up: bool = True) -> None:
        """The home's line down (home power, the provider's outage) or back: nothing passes the router's
        public side, and the provider's side answers "host unreachable" for it, as an access network does
        for a line that is not connected. The Mac Mini's tunnel and WireGuard have their own links in the
        lab: cut them too."""
        rules = "table inet mana_home_line\ndelete table inet mana_home_line\n"
        if not up:
            unreachable = "iifname wan0 reject with icmpx type host-unreachable"
            rules += (
                "table inet mana_home_line {\n"
                # Neighbour discovery is the link's own: without it not even the refusal gets out.
                "\tchain line_in {\n\t\ttype filter hook input priority -10;\n"
                f"\t\ticmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n\t\t{unreachable}\n\t}}\n"
                f"\tchain line_through {{\n\t\ttype filter hook forward priority -10;\n\t\t{unreachable}\n\t}}\n"
                "}\n"
            )
        run(netns_exec_argv(topo.ns_name("home"), ["nft", "-f", "-"]), input=rules)

    # ----------------------------------------------------------------------------- the Mac Mini's Caddy

    @property
    def homebrew(self) -> Path:
        """The lab's /opt/homebrew for the Mac Mini's processes."""
        return self.mini_dir / "homebrew"

    def _homebrew_argv(self, argv: list[str]) -> list[str]:
        """``argv`` with the lab's folder at /opt/homebrew, in a mount namespace of its own."""
        bind = f'mount --bind {self.homebrew} {HOMEBREW} && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", bind, "sh", *argv]

    def _homebrew_ready(self) -> None:
        Path(HOMEBREW).mkdir(parents=True, exist_ok=True)  # the mount point (empty on the lab's host)
        for sub in ("bin", "etc/mana-infra", "var/lib", "var/log"):
            (self.homebrew / sub).mkdir(parents=True, exist_ok=True)
        caddy = self.homebrew / "bin" / "caddy"
        if not caddy.exists():
            found = shutil.which("caddy")
            if found is None:
                raise LabError("caddy is not installed")
            caddy.symlink_to(found)

    def home_sync(self, script: str) -> str:
        """Run the stack's macminiSyncScript on the Mac Mini, as launchd does; its output."""
        self._homebrew_ready()
        path = self.homebrew / SYNC_SCRIPT.removeprefix(f"{HOMEBREW}/")
        path.write_text(script)
        argv = self._homebrew_argv(["sh", SYNC_SCRIPT])
        done = run(netns_exec_argv(topo.ns_name("mini"), argv), check=False, timeout=60)
        if done.returncode != 0:
            raise LabError(f"the Mac Mini's sync failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout.strip()

    def home_caddy_up(self, plist: str) -> None:
        """Caddy on the Mac Mini, as its launchd daemon runs it (the plist's arguments and environment)."""
        document: dict[str, Any] = plistlib.loads(plist.encode())
        environment = {str(k): str(v) for k, v in document.get("EnvironmentVariables", {}).items()}
        if "caddy-home" not in self._procs or self._procs["caddy-home"].poll() is not None:
            self._spawn("mini", "caddy-home", self._homebrew_argv(list(document["ProgramArguments"])), env=environment)
        self._wait_listening("caddy-home", "tcp", 443)

    def home_up(self, outputs: Mapping[str, Any] | None = None) -> str:
        """The Mac Mini set up as the README says: its sync run once (through WireGuard), then its Caddy,
        from a stack's outputs (default: the lab's plan's; the Mac Mini's files are the same in every
        state). Returns the sync's output."""
        outputs = outputs or next(iter(self.state_outputs.values()))
        said = self.home_sync(str(outputs[Output.MACMINI_SYNC_SCRIPT]))
        self.home_caddy_up(str(outputs[Output.MACMINI_CADDY_LAUNCHD_PLIST]))
        return said

    def home_files(self) -> dict[str, str]:
        """What the Mac Mini's Caddy reads now: its Caddyfile and the public certificate."""
        folder = self.homebrew / HOME_CADDY_DIR.removeprefix(f"{HOMEBREW}/")
        return {name: (folder / name).read_text() for name in ("Caddyfile", "public.pem") if (folder / name).exists()}
