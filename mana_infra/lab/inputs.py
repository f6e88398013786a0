"""The lab's inputs, taken from the offline plan: the lab runs exactly what the program renders.

``inputs_from_plan(stack)`` evaluates ``plan.plan(stack, mode=m)`` for both modes and keeps, per mode,
the rendered artifacts and the zone's DNS records (the plan's ``DnsRecord`` resources: name, type,
content, ttl). The plan's keys are its deterministic offline keys; its addresses are the documentation
addresses the lab's VPS has (203.0.113.10, 2001:db8::1). Shape::

    {"stack": "prod", "zone": "mana.how", "tunnel_id": "...", "tunnel_target": "<id>.cfargotunnel.com",
     "origin_name": "vps.mana.how", "origin_ips": ["203.0.113.10", "2001:db8::1"],
     "health_url": "https://vps.mana.how/healthz", "services_file": "/abs/services.yaml",
     "services": [[host, port], ...],                         # from the plan's outputs (hosts)
     "modes": {"tunnel":   {"Caddyfile", "cloud-init.yaml", "wg0-server.conf", "wg0-macmini.conf",
                            "dns_records": [{"name", "type", "content", "ttl"}, ...],
                            "caddy_command": "<the SSH command text of the Caddy command>"},
               "failover": {...}}}
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from ..records import TUNNEL_DOMAIN
from .system import LabError

DNS_RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord"
MODES = ("tunnel", "failover")


def inputs_from_plan(stack: str = "prod") -> dict[str, Any]:
    """The drill's inputs from the offline plan of ``stack`` (both modes). Cached per process: the
    plan is deterministic, and evaluating it takes about a second per mode."""
    return copy.deepcopy(_inputs_from_plan(stack))


@functools.lru_cache(maxsize=4)
def _inputs_from_plan(stack: str) -> dict[str, Any]:
    from .. import plan as planning
    from ..config import PROJECT, PROJECT_DIR

    modes: dict[str, Any] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        result = planning.plan(stack, mode=mode)
        records = [
            {k: r.inputs[k] for k in ("name", "type", "content", "ttl")}
            for r in result.resources
            if r.type == DNS_RECORD_TYPE
        ]
        if not records:
            raise LabError(f"the {mode} plan of {stack} has no DNS records")
        [command] = [r.revealed or {} for r in result.resources if r.type == "command:remote:Command"]
        # The SSH command text the program's Caddy command runs: the lab pushes through the same.
        modes[mode] = {
            **result.artifacts,
            "dns_records": records,
            "caddy_command": command["create"],
        }
        outputs[mode] = result.outputs
    out = outputs["failover"]
    tunnel_target = str(out["tunnelTarget"]).lower()
    suffix = "." + TUNNEL_DOMAIN
    if not tunnel_target.endswith(suffix):
        raise LabError(f"tunnelTarget {tunnel_target!r} is not <tunnelId>{suffix}")
    values, _, _ = planning.stack_config(PROJECT_DIR, stack, {})
    hosts = [[str(h["host"]).lower(), int(h["port"])] for h in out["hosts"]]
    if hosts != [[str(h["host"]).lower(), int(h["port"])] for h in outputs["tunnel"]["hosts"]]:
        raise LabError("the two modes' plans list different hosts")
    return {
        "stack": stack,
        "zone": values[f"{PROJECT}:zone"].lower().rstrip("."),
        "tunnel_id": tunnel_target[: -len(suffix)],
        "tunnel_target": tunnel_target,
        "origin_name": str(out["originName"]).lower(),
        "origin_ips": [ip for ip in (out.get("originIpv4"), out.get("originIpv6")) if ip],
        "health_url": out.get("healthUrl"),
        "services_file": str((PROJECT_DIR / values.get(f"{PROJECT}:services", "services.yaml")).resolve()),
        "services": hosts,
        "modes": modes,
    }
