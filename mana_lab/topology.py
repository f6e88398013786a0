"""Names and addresses of the lab network.

Layout (one flat "internet" segment plus one private link):

    client   192.0.2.100, 2001:db8::100 ─┐  the operator (inside checkAllowedCidrs' 192.0.2.0/24)
    dns      192.0.2.53, 192.0.2.54      │  knot: Cloudflare's zone, the Hetzner mirror
    acme     192.0.2.60                  ├── bridge "br0" in namespace mlab-net
    edge     198.51.100.10, 2001:db8::10 ┤  Cloudflare's edge (proxy and tunnel end)
    vps      203.0.113.10, 2001:db8::1   ┤
    mini     198.51.100.20 (its "WAN")   ┤
    outsider 203.0.113.200              ┤  any visitor: neither the operator's networks nor the edge
    home     198.51.100.40, 2001:db8::40 ─┘  the home router (Plan C): its line's public addresses
    edge 2001:db8:cf::1/64 ── veth "cf0" ── mini 2001:db8:cf::2/64   (the Cloudflare Tunnel stand-in)
    home 192.168.178.1, 2001:db8:1a::1 ── veth "lan0" ── mini 192.168.178.20, 2001:db8:1a::20   (the home LAN)

The home router forwards tcp/443 of its public IPv4 to the Mac Mini (nftables DNAT) and routes
2001:db8:1a::/64, with a firewall that opens tcp/443 to the Mac Mini's address alone (as a FRITZ!Box's
IPv6 port sharing). The LAN's IPv4 is private as a home's is (FRITZ!Box's 192.168.178.0/24), and no
namespace but the router and the Mac Mini has a route to it. The Mac Mini answers what came through the
router back through it (source routing), as a Mac Mini behind a home router does.

Every namespace gets on-link routes for all three documentation /24s on its bridge port, so the
three /24s share one L2 segment and need no router: Linux answers ARP for any local address. The
bridge lives in its own namespace so nothing of the lab touches the host's network namespace.
The tunnel link is IPv6-only on purpose: a Linux host answers ARP for *any* of its IPv4 addresses on
*any* interface, so an IPv4 address on cf0 would stay reachable over the bridge after cf0 is cut.
IPv6 neighbour discovery only answers for addresses on the asking interface, and nothing else routes
2001:db8:cf::/64, so cutting cf0 really cuts the path.
All addresses come from the documentation ranges (RFC 5737 / RFC 3849): lab traffic can never leave
for a real destination, and the host has no route to them anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "mlab"
"""Every namespace, WireGuard interface and /etc/netns entry of the lab starts with this."""

NET_NS = f"{PREFIX}-net"
ROLES = ("dns", "acme", "edge", "vps", "mini", "client", "outsider", "home", "clouds")
"""Every lab namespace; the VPS is a machine the clouds create (machine.py), the others are MEMBERS."""

DOC_NETS_V4 = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
V6_NET = "2001:db8::/64"

DNS_IP = "192.0.2.53"  # knotd with the Cloudflare zone (the plan's DnsRecords) and cfargotunnel.com
MIRROR_DNS_IP = "192.0.2.54"  # a second knotd in the dns namespace: the Hetzner mirror (the plan's ZoneRrsets)
# What the resolvers ask (pebble's validation, the operator's machine): the dns namespace forwards it to the
# nameserver the registrar delegates the zone to, DNS_IP or, after the switch, MIRROR_DNS_IP.
RESOLVER_IP = "192.0.2.55"
EDGE_IP = "198.51.100.10"  # where Cloudflare answers proxied records (flattened), and its proxy's source
EDGE_IP6 = "2001:db8::10"
VPS_IP = "203.0.113.10"  # the offline plan's VPS IPv4: the Endpoint in wg0-macmini.conf
VPS_IP6 = "2001:db8::1"
CLIENT_IP = "192.0.2.100"
CLIENT_IP6 = "2001:db8::100"
OUTSIDER_IP = "203.0.113.200"
# pebble (Let's Encrypt's test CA): its ACME API through a latency hop (see Lab), its management API.
ACME_IP = "192.0.2.60"
ACME_PORT = 14000
ACME_MANAGEMENT_PORT = 15000
ACME_NAME = "acme.lab.test"  # the name on the ACME API's certificate (beside its address)
MINI_WAN_IPS = ("198.51.100.20", "198.51.100.21")  # change_mini_wan() alternates between these
# Plan C: the home router's public addresses and the home LAN behind it.
HOME_IP = "198.51.100.40"
HOME_IP6 = "2001:db8::40"
HOME_LAN_IF = "lan0"
HOME_LAN_IP, MINI_LAN_IP, HOME_LAN_PREFIX = "192.168.178.1", "192.168.178.20", 24
HOME_LAN_IP6, MINI_LAN_IP6, HOME_LAN_PREFIX6 = "2001:db8:1a::1", "2001:db8:1a::20", 64
HOME_LAN_NET6 = "2001:db8:1a::/64"
HOME_ROUTE_TABLE = "178"

# The private link edge <-> mini stands in for cloudflared's outbound connection.
TUNNEL_LINK_IF = "cf0"
EDGE_TUNNEL_IP = "2001:db8:cf::1"
MINI_TUNNEL_IP = "2001:db8:cf::2"
TUNNEL_LINK_PREFIX = 64

WG_LISTEN_PORT = 51820
# cloudflared's catch-all on the Mac Mini (its ingress' last rule, `service: http_status:404`): what a
# name on the tunnel that no app has gets, the tunnel's probe name among them.
CLOUDFLARED_CATCH_ALL_PORT = 39404
WG_SERVER_IF = "wg0"  # the VPS machine has a /run/wireguard of its own: its interface is the standby's
WG_MINI_IF = f"{PREFIX}mini"  # UAPI sockets in the host's /var/run/wireguard are global: a unique name

ZONE_NS_NAME = "ns"  # the lab zone's own NS host, ns.<zone> A DNS_IP


@dataclass(frozen=True)
class Member:
    role: str
    ns: str
    ipv4: str
    ipv6: str | None = None


def ns_name(role: str) -> str:
    return f"{PREFIX}-{role}"


MEMBERS: dict[str, Member] = {
    "dns": Member("dns", ns_name("dns"), DNS_IP),
    "acme": Member("acme", ns_name("acme"), ACME_IP),
    "edge": Member("edge", ns_name("edge"), EDGE_IP, EDGE_IP6),
    "mini": Member("mini", ns_name("mini"), MINI_WAN_IPS[0]),
    "client": Member("client", ns_name("client"), CLIENT_IP, CLIENT_IP6),
    "outsider": Member("outsider", ns_name("outsider"), OUTSIDER_IP),
    "home": Member("home", ns_name("home"), HOME_IP, HOME_IP6),
}

# The clouds' APIs (the end-to-end runs): the stand-in Hetzner Cloud and Cloudflare APIs, an internet away.
CLOUDS = Member("clouds", ns_name("clouds"), "198.51.100.30")
HETZNER_API_PORT = 8080
# lego's Hetzner DNS provider has the API's address in its code: the operator's machine finds the stand-in
# there (its hosts file), over HTTPS with the lab CA's certificate.
HETZNER_API_NAME = "api.hetzner.cloud"
HETZNER_API_TLS_PORT = 443
CLOUDFLARE_API_PORT = 8081

EDGE_NETWORKS = (f"{EDGE_IP}/32", f"{EDGE_IP6}/128")
"""The lab's Cloudflare: what the plans get as Cloudflare's published ranges and check as --edge-cidr."""
