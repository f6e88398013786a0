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
                            "dns_records": [DnsRecord, ...],
                            "caddy_command": "<the SSH command text of the Caddy command>"},
               "failover": {...}},
     "mirror": {"rrsets": [{"name", "type", "records": [{"value"}], "ttl"}, ...],   # the plan's ZoneRrsets
                "nameservers": [...]},                        # secondaryDnsNameservers (names only)
     "emergency": {"commands": [...], "target": "<urn>",      # the emergencyCutover output, parsed
                   "overrides": {...}, "caddy_command", "Caddyfile"},   # the targeted resource's create/stdin
     "rehearsal": {"stack": "failover", "dns_records": [...], "create", "delete", "site_file",
                   "outputs": {...}}}                         # the rehearsal stack's plan (None without one)

``mirror`` is absent when the stack has no ``secondaryDns``; ``emergency`` needs the mirror too.
"""

from __future__ import annotations

import copy
import functools
import shlex
from pathlib import Path
from typing import Any

from mana_infra.model import MODES, TUNNEL_DOMAIN, DnsRecord
from mana_infra.project import Project, find_project_dir

from .system import LabError

DNS_RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord"
COMMAND_TYPE = "command:remote:Command"
RRSET_TYPE = "hcloud:index/zoneRrset:ZoneRrset"
CADDY_COMMAND_NAME = "caddy-apply"
REHEARSAL_COMMAND_NAME = "rehearsal-caddy-apply"


def inputs_from_plan(
    stack: str = "prod", rehearsal_stack: str | None = "failover", project_dir: Path | None = None
) -> dict[str, Any]:
    """The drill's inputs from the offline plan of ``stack`` (both modes, plus the emergency cut-over
    its ``emergencyCutover`` output describes) and of ``rehearsal_stack`` when that stack file exists
    and rehearses ``stack``. Cached per process: the plan is deterministic, and evaluating it takes
    about a second per run. The project: the one around the working directory."""
    return copy.deepcopy(_inputs_from_plan(stack, rehearsal_stack, find_project_dir(project_dir)))


def _dns_records(resources: list[Any]) -> list[DnsRecord]:
    """The plan's Cloudflare records, as the lab's DNS serves them."""
    return [
        DnsRecord(r.inputs["name"], r.inputs["type"], r.inputs["content"], r.inputs["ttl"], r.inputs["proxied"])
        for r in resources
        if r.type == DNS_RECORD_TYPE
    ]


def _command(resources: list[Any], name: str, what: str) -> dict[str, Any]:
    found = [r.revealed or {} for r in resources if r.type == COMMAND_TYPE and r.name == name]
    if len(found) != 1:
        raise LabError(f"{what} has {len(found)} {COMMAND_TYPE} named {name!r}, expected one")
    command: dict[str, Any] = found[0]
    return command


def parse_emergency(text: str) -> tuple[dict[str, str], str]:
    """The ``emergencyCutover`` output (``pulumi config set K V && ... && pulumi up --target URN``):
    the config it sets and the one resource it targets."""
    overrides: dict[str, str] = {}
    target = ""
    for part in text.split("&&"):
        argv = shlex.split(part)
        if argv[:3] == ["pulumi", "config", "set"] and len(argv) == 5:
            overrides[argv[3]] = argv[4]
        elif argv[:2] == ["pulumi", "up"] and "--target" in argv:
            target = argv[argv.index("--target") + 1]
        else:
            raise LabError(f"emergencyCutover: cannot follow {part.strip()!r}")
    if not target:
        raise LabError("emergencyCutover targets no resource")
    return overrides, target


@functools.lru_cache(maxsize=4)
def _inputs_from_plan(stack: str, rehearsal_stack: str | None, project_dir: Path) -> dict[str, Any]:
    from mana_infra import plan as planning

    project = Project.at(project_dir)
    modes: dict[str, Any] = {}
    outputs: dict[str, dict[str, Any]] = {}
    rrsets: list[dict[str, Any]] = []
    for mode in MODES:
        result = planning.plan(stack, mode=mode, project=project)
        records = _dns_records(result.resources)
        if not records:
            raise LabError(f"the {mode} plan of {stack} has no DNS records")
        # The SSH command text the program's Caddy command runs: the lab pushes through the same.
        command = _command(result.resources, CADDY_COMMAND_NAME, f"the {mode} plan of {stack}")
        modes[mode] = {
            **result.artifacts,
            "dns_records": records,
            "caddy_command": command["create"],
        }
        outputs[mode] = result.outputs
        mirror = [
            {k: r.inputs.get(k) for k in ("name", "type", "records", "ttl")}
            for r in result.resources
            if r.type == RRSET_TYPE
        ]
        if rrsets and mirror != rrsets:
            raise LabError(f"the Hetzner mirror of {stack} differs between the modes (it is always failover form)")
        rrsets = mirror
    out = outputs["failover"]
    tunnel_target = str(out["tunnelTarget"]).lower()
    suffix = "." + TUNNEL_DOMAIN
    if not tunnel_target.endswith(suffix):
        raise LabError(f"tunnelTarget {tunnel_target!r} is not <tunnelId>{suffix}")
    config = project.stack_config(stack)
    hosts = [[str(h["host"]).lower(), int(h["port"])] for h in out["hosts"]]
    if hosts != [[str(h["host"]).lower(), int(h["port"])] for h in outputs["tunnel"]["hosts"]]:
        raise LabError("the two modes' plans list different hosts")
    inputs: dict[str, Any] = {
        "stack": stack,
        "zone": str(config.get("zone")).lower().rstrip("."),
        "tunnel_id": tunnel_target[: -len(suffix)],
        "tunnel_target": tunnel_target,
        "origin_name": str(out["originName"]).lower(),
        "origin_ips": [ip for ip in (out.get("originIpv4"), out.get("originIpv6")) if ip],
        "health_url": out.get("healthUrl"),
        "services_file": str(project.path(config.get("services") or "").resolve()),
        "services": hosts,
        "modes": modes,
    }
    if rrsets:
        inputs["mirror"] = {"rrsets": rrsets, "nameservers": list(out.get("secondaryDnsNameservers") or [])}
        inputs["emergency"] = _emergency(project, stack, str(out["emergencyCutover"]))
    if rehearsal_stack and _rehearses(project, rehearsal_stack, stack):
        inputs["rehearsal"] = _rehearsal(project, rehearsal_stack)
    return inputs


def _emergency(project: Project, stack: str, text: str) -> dict[str, Any]:
    """What the emergency cut-over's targeted ``pulumi up`` runs: the plan under the config it sets,
    and of that plan only the targeted resource (the Caddy command)."""
    from mana_infra import plan as planning

    overrides, target = parse_emergency(text)
    result = planning.plan(stack, overrides=overrides, project=project)
    targeted = [r for r in result.resources if r.urn == target]
    if len(targeted) != 1 or targeted[0].type != COMMAND_TYPE:
        raise LabError(f"emergencyCutover targets {target!r}, which is not one Caddy command in the plan")
    command = targeted[0].revealed or {}
    return {
        "commands": [part.strip() for part in text.split("&&")],
        "overrides": overrides,
        "target": target,
        "caddy_command": command["create"],
        "Caddyfile": command["stdin"],
    }


def _rehearses(project: Project, rehearsal_stack: str, stack: str) -> bool:
    if rehearsal_stack not in project.stacks():
        return False
    config = project.stack_config(rehearsal_stack)
    return config.get("role") == "rehearsal" and (config.get("prodStack") or "").split("/")[-1] == stack


def _rehearsal(project: Project, rehearsal_stack: str) -> dict[str, Any]:
    """The rehearsal stack's record(s), its site-file command (create, delete, the file on stdin) and outputs."""
    from mana_infra import plan as planning

    result = planning.plan(rehearsal_stack, project=project)
    records = _dns_records(result.resources)
    if not records:
        raise LabError(f"the plan of {rehearsal_stack} has no DNS records")
    command = _command(result.resources, REHEARSAL_COMMAND_NAME, f"the plan of {rehearsal_stack}")
    return {
        "stack": rehearsal_stack,
        "dns_records": records,
        "create": command["create"],
        "delete": command["delete"],
        "site_file": command["stdin"],
        "outputs": result.outputs,
    }
