"""Which DNS record each inventory host gets in each mode: one pure rule for the program and the plan."""

from __future__ import annotations

from .model import AUTOMATIC_TTL, DnsRecord, Mode, Service, tunnel_target


def inventory_record(
    service: Service, mode: Mode, *, tunnel_id: str, origin_name: str, failover_ttl: int, failover_proxied: bool
) -> DnsRecord:
    """Always a CNAME, whatever the mode: the flip is an in-place update of content, proxied and TTL,
    never a delete-and-create that leaves a moment without a record (and a cached NXDOMAIN), and never
    an A record beside a CNAME (Cloudflare error 81053)."""
    if mode == "tunnel":
        return DnsRecord(service.host, "CNAME", tunnel_target(tunnel_id), AUTOMATIC_TTL, proxied=True)
    ttl = AUTOMATIC_TTL if failover_proxied else failover_ttl
    return DnsRecord(service.host, "CNAME", origin_name, ttl, proxied=failover_proxied)
