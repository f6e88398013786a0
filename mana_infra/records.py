"""Which DNS record each inventory host gets in each mode: one pure rule for the program and the plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model import AUTOMATIC_TTL, VIAS, DnsRecord, Mode, Service, Via, tunnel_target, via_home, via_proxied


def inventory_record(
    service: Service, mode: Mode, *, via: Via, tunnel_id: str, origin_name: str, failover_ttl: int, home_name: str
) -> DnsRecord:
    """Always a CNAME, whatever the mode: the flip is an in-place update of content, proxied and TTL,
    never a delete-and-create that leaves a moment without a record (and a cached NXDOMAIN), and never
    an A record beside a CNAME (Cloudflare error 81053).

    Through the edge the record stays proxied: resolvers keep Cloudflare's addresses, so nothing waits
    on a TTL, and Cloudflare follows the new target within seconds. DNS-only, resolvers wait out the
    old records' TTL (300 s for proxied ones), then ask again every `failover_ttl` seconds. The direct
    ways do the same with the home's name (home.<zone>, its A/AAAA records) in place of the VPS's."""
    if mode == "tunnel":
        return DnsRecord(service.host, "CNAME", tunnel_target(tunnel_id), AUTOMATIC_TTL, proxied=True)
    target = home_name if via_home(via) else origin_name
    if via_proxied(via):
        return DnsRecord(service.host, "CNAME", target, AUTOMATIC_TTL, proxied=True)
    return DnsRecord(service.host, "CNAME", target, failover_ttl, proxied=False)


# A name under the zone that stays on the tunnel in every mode, served by no Caddy site: while the
# inventory records point at the VPS, it still tells whether the tunnel would serve (cloudflared's
# catch-all answers it, 404; the edge answers its tunnel error when no cloudflared is connected).
TUNNEL_PROBE_LABEL = "tunnel-probe"


def tunnel_probe_host(zone: str) -> str:
    return f"{TUNNEL_PROBE_LABEL}.{zone}"


# The rehearsal stack's test hostname unless its rehearsalHosts names others: no app may take it.
REHEARSAL_LABEL = "failover-test"


def rehearsal_host(zone: str, n: int = 1) -> str:
    return f"{REHEARSAL_LABEL}{'' if n == 1 else f'-{n}'}.{zone}"


def tunnel_probe_record(zone: str, tunnel_id: str) -> DnsRecord:
    """The probe's record: proxied to the tunnel, whatever the mode (no flip moves it)."""
    return DnsRecord(tunnel_probe_host(zone), "CNAME", tunnel_target(tunnel_id), AUTOMATIC_TTL, proxied=True)


def adoption_left_text(hosts: Sequence[str], stack: str, *, deployed: bool) -> str:
    """What adoptRecords set means: right for the first `pulumi up`, which imports the records; after it
    (``deployed``: the stack has outputs), their TTL and comment changes are ignored (a flip to DNS-only
    would keep TTL 300) until it is removed."""
    hosts_text = f"{len(hosts)} host{'s' * (len(hosts) != 1)}"
    remove = f"pulumi config rm --stack {stack} adoptRecords && pulumi up --stack {stack}"
    if deployed:
        return f"adoptRecords is still set for {hosts_text}: their records ignore TTL and comment changes; {remove}"
    return (
        f"adoptRecords is set for {hosts_text}: right for the first `pulumi up` (it imports them); after it their "
        f"records ignore TTL and comment changes until it is removed: {remove}"
    )


# What Cloudflare answers for a proxied name: its own addresses, with a fixed TTL of 300 s.
PROXIED_TTL_SECONDS = 300
# How soon Cloudflare's edge follows a proxied record's new target (its community reports: under 60 s).
EDGE_APPLIES_SECONDS = 60


def cutover_budget(records: Sequence[DnsRecord], failover_ttl: int) -> dict[str, Any]:
    """How long a change of the inventory records takes to reach visitors in the real world, from the
    records as they are now; no way waits on a certificate (they are installed beforehand)."""
    answered_ttl = max((PROXIED_TTL_SECONDS if r.proxied else r.ttl for r in records), default=failover_ttl)
    all_proxied = bool(records) and all(r.proxied for r in records)
    held = (
        f"resolvers hold Cloudflare's answers for proxied records up to {PROXIED_TTL_SECONDS} s (fixed)"
        if all_proxied
        else f"resolvers hold today's DNS-only answers up to their TTL, {answered_ttl} s"
    )
    edge: dict[str, Any] = {"seconds": answered_ttl, "why": held}
    if all_proxied:
        edge = {
            "seconds": EDGE_APPLIES_SECONDS,
            "why": "the records stay proxied: resolvers keep Cloudflare's addresses and nothing waits on a TTL; "
            "Cloudflare follows the new target within a minute",
        }
    dns = {"seconds": answered_ttl, "why": f"{held}; afterwards changes take up to {failover_ttl} s (failoverTtl)"}
    # The direct ways move the same records the same way: only their target is the home's name.
    by_way: dict[str, Any] = {via: edge if via_proxied(via) else dns for via in VIAS}
    return {
        **by_way,
        "certificates": "none to obtain: both are on the VPS before any cut-over, and the public one on the "
        "Mac Mini (fetched through WireGuard)",
    }
