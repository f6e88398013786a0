"""The Caddyfile of the lab's Cloudflare edge: what Cloudflare's proxy does with each proxied record.

The edge terminates visitors' TLS with its own certificate (the lab CA's, which the client trusts)
and follows each proxied record's current target, as Cloudflare does within seconds of a change:

- the tunnel (``<tunnelId>.cfargotunnel.com``): the private link to the Mac Mini (the cloudflared
  stand-in), with no pooled connections, so a cut link answers 502 at once, as the edge's error page;
  a name routed to the tunnel that no app has (the tunnel's probe name) gets cloudflared's catch-all
  over the same link: 404 while the link is up, the edge's 502 when it is cut;
- anything else (the origin name, the home's name, an address): HTTPS to the target's address (IPv4
  first) with the host as SNI and Host, the certificate verified as SSL mode Full (strict) does: issued
  by Cloudflare's Origin CA or publicly trusted (developers.cloudflare.com, "Full (strict)"; in the lab
  the public CA is pebble). That the VPS serves the Origin CA's the drill proves by the certificate it
  sees there.

A record that is not proxied sends no visitor to the edge; asked anyway, the edge answers as Cloudflare
does for a name it does not proxy (530, error 1001). Every inventory host keeps a site, so the edge
always listens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mana_infra.model import DnsRecord

from . import topology as topo
from .dnszone import flatten

# No upstream keep-alive to the tunnel: a pooled connection over a cut link would hang the next request
# until TCP gives up, where Cloudflare answers a dead tunnel with an error page at once.
TUNNEL_TRANSPORT = (
    "\t\ttransport http {\n\t\t\tkeepalive off\n\t\t\tdial_timeout 2s\n\t\t\tresponse_header_timeout 10s\n\t\t}\n"
)


# As Cloudflare's proxy: the visitor's address in Cf-Connecting-IP, whatever the visitor sent there
# (developers.cloudflare.com, "Cloudflare HTTP headers": Cloudflare sets it), and X-Forwarded-For appended.
VISITOR = "\t\theader_up Cf-Connecting-IP {remote_host}\n"


@dataclass(frozen=True)
class EdgeFiles:
    cert: Path
    key: Path
    origin_ca: Path
    """What Full (strict) trusts: the Origin CA, and the lab's public CA once it is known."""
    storage: Path


def origin_addresses(target: str, records: Sequence[DnsRecord]) -> list[str]:
    """The addresses a record's target has in the zone (CNAME chains followed), IPv4 first."""
    by_name: dict[str, list[DnsRecord]] = {}
    for r in records:
        by_name.setdefault(r.name, []).append(r)
    return sorted((r.content for r in flatten(target, by_name)), key=lambda a: (":" in a, a))


def upstream(record: DnsRecord, records: Sequence[DnsRecord], tunnel_target: str) -> str | None:
    """Where the edge sends a proxied record's visitors: "tunnel", an origin address, or None."""
    if not record.proxied:
        return None
    if record.type == "CNAME" and record.content.rstrip(".").lower() == tunnel_target:
        return "tunnel"
    if record.type in ("A", "AAAA"):
        return record.content
    addresses = origin_addresses(record.content.rstrip(".").lower(), records)
    return addresses[0] if addresses else None


def render(
    records: Iterable[DnsRecord],
    services: Sequence[tuple[str, int]],
    tunnel_target: str,
    mini_tunnel_ip: str,
    files: EdgeFiles,
) -> str:
    """The edge's whole Caddyfile for the zone's records as they are now."""
    records = list(records)
    by_name: dict[str, DnsRecord] = {}
    for r in records:
        if r.type in ("A", "AAAA", "CNAME"):
            by_name.setdefault(r.name, r)
    sites = []
    tls = f"\ttls {files.cert} {files.key}\n"
    served = {host for host, _ in services}
    # cloudflared answers every other name routed to the tunnel with its catch-all (the probe name).
    catch_all = [
        (name, topo.CLOUDFLARED_CATCH_ALL_PORT)
        for name, r in sorted(by_name.items())
        if name not in served and upstream(r, records, tunnel_target) == "tunnel"
    ]
    for host, port in [*services, *catch_all]:
        record = by_name.get(host)
        target = upstream(record, records, tunnel_target) if record else None
        if target is None:
            proxy = '\trespond "error code: 1001" 530\n'
        elif target == "tunnel":
            proxy = f"\treverse_proxy [{mini_tunnel_ip}]:{port} {{\n{VISITOR}{TUNNEL_TRANSPORT}\t}}\n"
        else:
            address = f"[{target}]" if ":" in target else target
            proxy = (
                f"\treverse_proxy {address}:443 {{\n{VISITOR}\t\ttransport http {{\n\t\t\ttls\n"
                f"\t\t\ttls_server_name {host}\n\t\t\ttls_trusted_ca_certs {files.origin_ca}\n"
                "\t\t\tdial_timeout 2s\n\t\t\tresponse_header_timeout 10s\n\t\t}\n\t}\n"
            )
        sites.append(f"{host} {{\n{tls}{proxy}}}\n")
    header = (
        "# mana-lab: Cloudflare's edge, following the records' targets (see mana_lab/edge.py)\n"
        f"{{\n\tauto_https disable_redirects\n\tstorage file_system {{\n\t\troot {files.storage}\n\t}}\n}}\n\n"
    )
    return header + "\n".join(sites)
