"""Which DNS record each inventory host gets in each mode: one pure rule for the program, plan and lab."""

from __future__ import annotations

from dataclasses import dataclass

from .inventory import Service
from .render.caddyfile import Mode

TUNNEL_DOMAIN = "cfargotunnel.com"
# Cloudflare's "automatic" TTL, the only one a proxied record takes.
AUTOMATIC_TTL = 1


@dataclass(frozen=True)
class RecordSpec:
    """One DNS record as Cloudflare stores it."""

    name: str
    type: str
    content: str
    proxied: bool
    ttl: int


def tunnel_target(tunnel_id: str) -> str:
    return f"{tunnel_id}.{TUNNEL_DOMAIN}"


def inventory_record(
    service: Service, mode: Mode, *, tunnel_id: str, origin_name: str, failover_ttl: int, failover_proxied: bool
) -> RecordSpec:
    """Always a CNAME, whatever the mode: the flip is an in-place update of content, proxied and TTL,
    never a delete-and-create that leaves a moment without a record (and a cached NXDOMAIN), and never
    an A record beside a CNAME (Cloudflare error 81053)."""
    if mode == "tunnel":
        return RecordSpec(service.host, "CNAME", tunnel_target(tunnel_id), True, AUTOMATIC_TTL)
    ttl = AUTOMATIC_TTL if failover_proxied else failover_ttl
    return RecordSpec(service.host, "CNAME", origin_name, failover_proxied, ttl)
