"""The faults a person (`mana-infra lab fault NAME on|off`), the e2e's watchdog cases and any script
make and mend on a running real-engine lab: one table, each fault a set of parts, so that faults that
share a part (the tunnel's link is cut by `tunnel` and by `mac-mini`) mend only what no other fault
still holds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from . import topology as topo
from .world import World


class Part(StrEnum):
    """One thing broken in the lab; a fault is one or more of them."""

    TUNNEL_LINK = "tunnel-link"  # the edge's private link to the Mac Mini (cloudflared's connection)
    EDGE = "edge"  # the edge's Caddy stopped: connections refused
    CLOUDFLARE_API = "cloudflare-api"  # every packet to the Cloudflare API dropped
    WIREGUARD = "wireguard"  # the Mac Mini's wg-quick down
    VPS = "vps"  # the VPS's HTTPS, HTTP and SSH reset
    HOME_LINE = "home-line"  # nothing passes the home router's public side (Plan C's way in)
    HOME_PORT = "home-port"  # the home router forwards tcp/443 no more (IPv4), nor opens it (IPv6)
    WATCH_UPLINK = "watch-uplink"  # nothing leaves the operator's machine (the watch box)
    WATCH_EDGE_ROUTE = "watch-edge-route"  # the operator's machine alone cannot reach the edge
    IMPOSTOR = "impostor"  # another sshd answers for the VPS on the operator's way to it


@dataclass(frozen=True)
class Fault:
    name: str
    words: str
    parts: frozenset[Part]


def _fault(name: str, words: str, *parts: Part) -> Fault:
    return Fault(name, words, frozenset(parts))


FAULTS: tuple[Fault, ...] = (
    _fault("tunnel", "the Cloudflare Tunnel cut: the edge answers 502, as when cloudflared loses it", Part.TUNNEL_LINK),
    _fault("edge", "Cloudflare's edge down: connections to it refused", Part.EDGE),
    _fault("cloudflare-api", "Cloudflare's API unreachable (every packet to it dropped)", Part.CLOUDFLARE_API),
    _fault("wireguard", "the Mac Mini's WireGuard down", Part.WIREGUARD),
    _fault(
        "mac-mini",
        "the Mac Mini down: its tunnel, its WireGuard and its own address",
        Part.TUNNEL_LINK,
        Part.WIREGUARD,
        Part.HOME_LINE,
    ),
    _fault("home-port", "the home router forwards port 443 to the Mac Mini no more (IPv4 and IPv6)", Part.HOME_PORT),
    _fault("vps", "the VPS not answering: its HTTPS, HTTP and SSH reset", Part.VPS),
    _fault("watch-uplink", "the watch box's own network: nothing leaves the operator's machine", Part.WATCH_UPLINK),
    _fault(
        "watch-blind",
        "the watch box alone cannot reach Cloudflare's edge (its own route); the VPS still can",
        Part.WATCH_EDGE_ROUTE,
    ),
    _fault(
        "forged-vote",
        "a man in the middle answers SSH for the VPS with a host key of its own and a vote saying all is down",
        Part.IMPOSTOR,
    ),
)
FAULT_NAMES = tuple(fault.name for fault in FAULTS)
BY_NAME = {fault.name: fault for fault in FAULTS}

CLIENT_TABLE = "mana_watch_fault"  # the operator's machine's own nftables table for its two faults


def _client_rules(world: World, parts: frozenset[Part]) -> None:
    """The operator's machine's outbound rules for the watch box's faults (one table, rewritten)."""
    rules = []
    if Part.WATCH_UPLINK in parts:
        rules.append('oifname != "lo" reject')  # no route: errors at once, as a dead link gives
    if Part.WATCH_EDGE_ROUTE in parts:
        rules.append(f"ip daddr {topo.EDGE_IP} reject")
    text = f"table inet {CLIENT_TABLE}\ndelete table inet {CLIENT_TABLE}\n"
    if rules:
        body = "\n\t\t".join(rules)
        text += (
            f"table inet {CLIENT_TABLE} {{\n\tchain out {{\n\t\ttype filter hook output priority 0;\n"
            f"\t\t{body}\n\t}}\n}}\n"
        )
    world.exec("client", ["nft", "-f", "-"], input=text, check=True)


class Faults:
    """The faults on one world: which are on, and the parts they hold."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.on: set[str] = set()
        self.broken: set[Part] = set()  # the parts really broken now (a make or mend may fail halfway)

    def parts(self, names: set[str] | None = None) -> frozenset[Part]:
        return frozenset(part for name in (self.on if names is None else names) for part in BY_NAME[name].parts)

    def set(self, name: str, on: bool) -> None:
        """Make (on) or mend (off) the fault ``name``; a part another fault holds stays broken."""
        wanted = self.on | {name} if on else self.on - {name}
        after = self.parts(wanted)
        # Against what is really broken, part by part: a make or mend that failed halfway is finished
        # by the next `on` or `off`, never forgotten.
        for part in Part:
            if (part in self.broken) != (part in after):
                self._apply(part, part in after, after)
                if part in after:
                    self.broken.add(part)
                else:
                    self.broken.discard(part)
        self.on = wanted

    @contextlib.contextmanager
    def made(self, *names: str) -> Iterator[None]:
        """These faults on for the block, mended afterwards whatever happens."""
        try:
            for name in names:
                self.set(name, True)
            yield
        finally:
            for name in reversed(names):
                self.set(name, False)

    def _apply(self, part: Part, broken: bool, parts: frozenset[Part]) -> None:
        world = self.world
        actions: dict[Part, tuple[Callable[[], None], Callable[[], None]]] = {
            Part.TUNNEL_LINK: (lambda: world.cut_edge("link"), world.restore_tunnel_link),
            Part.EDGE: (lambda: world.cut_edge("stop"), world.restore_edge_proxy),
            Part.CLOUDFLARE_API: (world.cloudflare_unreachable, lambda: world.cloudflare_unreachable(False)),
            Part.WIREGUARD: (world.wireguard_down, self._wireguard_back),
            Part.VPS: (world.vps_unreachable, lambda: world.vps_unreachable(False)),
            Part.HOME_LINE: (lambda: world.home_line(up=False), world.home_line),
            Part.HOME_PORT: (
                lambda: world.home_router(forward_ipv4=False, open_ipv6=False),
                world.home_router,
            ),
            Part.WATCH_UPLINK: (lambda: _client_rules(world, parts), lambda: _client_rules(world, parts)),
            Part.WATCH_EDGE_ROUTE: (lambda: _client_rules(world, parts), lambda: _client_rules(world, parts)),
            Part.IMPOSTOR: (world.impostor, lambda: world.impostor(False)),
        }
        make, mend = actions[part]
        (make if broken else mend)()

    def _wireguard_back(self) -> None:
        self.world.wireguard_up()
        self.world.wait_handshake(timeout=30)

    def listing(self) -> list[dict[str, object]]:
        return [{"name": f.name, "on": f.name in self.on, "words": f.words} for f in FAULTS]
