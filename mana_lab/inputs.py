"""The lab's inputs, taken from the offline plan: the lab runs exactly what the program renders.

``inputs_from_plan(stack)`` evaluates ``plan.plan(stack, ...)`` in the standby's states (tunnel;
failover through Cloudflare's edge, ``failoverVia: edge``; DNS-only failover, ``failoverVia: dns``; the
direct ways to the home, ``direct`` and ``direct-dns``), all with the lab's home addresses (LAB_HOME), with
the lab's Cloudflare: ``OfflineClouds(ip_ranges=...)`` answers the edge's addresses as Cloudflare's
published ranges, so the edge-way Caddyfile lets the lab's edge through. Per state it keeps the rendered
artifacts, the zone's DNS records (the plan's ``DnsRecord`` resources: name, type, content, ttl,
proxied), the Caddy command's text and the stack outputs. The plan's keys are its deterministic offline
keys; its addresses are the documentation addresses the lab's VPS has (203.0.113.10, 2001:db8::1).
Shape::

    {"stack": "prod", "zone": "mana.how", "tunnel_id": "...", "tunnel_target": "<id>.cfargotunnel.com",
     "origin_name": "vps.mana.how", "origin_ips": ["203.0.113.10", "2001:db8::1"],
     "health_url": "https://vps.mana.how/healthz", "services_file": "/abs/services.yaml",
     "services": [[host, port], ...],                         # from the plan's outputs (hosts)
     "states": {"tunnel":       {"Caddyfile", "cloud-init.yaml", "wg0-server.conf", "wg0-macmini.conf",
                                 "dns_records": [DnsRecord, ...], "outputs": {...},
                                 "caddy_command": "<the SSH command text of the Caddy command>"},
                "failover":     {...},                        # through the edge (failoverVia edge)
                "failover-dns": {...},                        # DNS-only (failoverVia dns)
                "failover-direct": {...}, "failover-direct-dns": {...}},   # Plan C: to the home
     "certificates": {"public": {"name", "target", "create"},  # the certificate commands: their create
                      "origin": {...}},                       # text (stdin is what only the clouds know)
     "mirror": {"rrsets": [{"name", "type", "records": [{"value"}], "ttl"}, ...],   # the plan's ZoneRrsets
                "nameservers": [...]},                        # secondaryDnsNameservers (names only)
     "emergency": {"commands": [...], "target": "<urn>",      # the emergencyCutover output, parsed
                   "overrides": {...}, "caddy_command", "Caddyfile"},   # the targeted resource's create/stdin
     "rehearsal": {"stack": "failover", "dns_records": [...], "create", "delete", "site_file",
                   "outputs": {...}}}                         # the rehearsal stack's plan (None without one)

The plan installs both certificates before any Caddyfile (the Caddy command depends on both
certificate commands, in every state): ``inputs_from_plan`` refuses a plan where it does not.
``mirror`` is absent when the stack has no ``secondaryDns``; ``emergency`` needs the mirror too.
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mana_infra.model import TUNNEL_DOMAIN, DnsRecord
from mana_infra.names import CADDY_COMMAND, CERTIFICATE_COMMANDS, MACMINI_CADDY_COMMAND, REHEARSAL_COMMAND
from mana_infra.outputs import Output
from mana_infra.project import Project, find_project_dir

from . import topology as topo
from .system import LabError

if TYPE_CHECKING:
    from mana_infra.plan import OfflineClouds

DNS_RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord"
COMMAND_TYPE = "command:remote:Command"
RRSET_TYPE = "hcloud:index/zoneRrset:ZoneRrset"

# The lab's home (Plan C): its router's public IPv4 and the Mac Mini's IPv6 behind it, in every state.
LAB_HOME = {"homeAddress": topo.HOME_IP, "homeAddress6": topo.MINI_LAN_IP6}
# The standby's states: the config each one is (tests/support.py names the first three the same); the
# direct ways (Plan C) point the hosts at the home instead of the VPS.
STATES: dict[str, dict[str, str]] = {
    "tunnel": {"mode": "tunnel", **LAB_HOME},
    "failover": {"mode": "failover", "failoverVia": "edge", **LAB_HOME},
    "failover-dns": {"mode": "failover", "failoverVia": "dns", **LAB_HOME},
    "failover-direct": {"mode": "failover", "failoverVia": "direct", **LAB_HOME},
    "failover-direct-dns": {"mode": "failover", "failoverVia": "direct-dns", **LAB_HOME},
}
DIRECT_STATES = ("failover-direct", "failover-direct-dns")


def lab_clouds() -> OfflineClouds:
    """What the clouds answer in the lab: Cloudflare's published ranges are the lab edge's addresses."""
    from mana_infra.plan import OfflineClouds

    v4 = tuple(n for n in topo.EDGE_NETWORKS if ":" not in n)
    v6 = tuple(n for n in topo.EDGE_NETWORKS if ":" in n)
    return OfflineClouds(ip_ranges=(v4, v6))


def inputs_from_plan(
    stack: str = "prod", rehearsal_stack: str | None = "failover", project_dir: Path | None = None
) -> dict[str, Any]:
    """The drill's inputs from the offline plan of ``stack`` (its three states, plus the emergency cut-over
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
    """The ``emergencyCutover`` output (``pulumi config set --stack S K V && ... && pulumi up --stack S
    --target URN``): the config it sets and the one resource it targets. Every command names its stack."""
    overrides: dict[str, str] = {}
    target = ""
    for part in text.split("&&"):
        argv = shlex.split(part)
        if argv[:3] == ["pulumi", "config", "set"] and argv[3:4] == ["--stack"] and len(argv) == 7:
            overrides[argv[5]] = argv[6]
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
    states: dict[str, Any] = {}
    rrsets: list[dict[str, Any]] = []
    certificates: dict[str, dict[str, str]] = {}
    for state, settings in STATES.items():
        overrides = dict(settings)
        mode = overrides.pop("mode")
        result = planning.plan(stack, mode=mode, overrides=overrides, project=project, clouds=lab_clouds())
        what = f"the {state} plan of {stack}"
        records = _dns_records(result.resources)
        if not records:
            raise LabError(f"{what} has no DNS records")
        # The SSH command text the program's Caddy command runs: the lab pushes through the same.
        command = _command(result.resources, CADDY_COMMAND, what)
        macmini = _command(result.resources, MACMINI_CADDY_COMMAND, what)
        states[state] = {
            **result.artifacts,
            "dns_records": records,
            "caddy_command": command["create"],
            # Plan C: the command that puts the Mac Mini's Caddyfile on the VPS, and that file.
            "macmini_command": {"create": macmini["create"], "stdin": macmini["stdin"]},
            "outputs": result.outputs,
        }
        found = _certificate_commands(result.resources, what)
        if certificates and found != certificates:
            raise LabError(f"the certificate commands of {stack} differ between its states")
        certificates = found
        mirror = [
            {k: r.inputs.get(k) for k in ("name", "type", "records", "ttl")}
            for r in result.resources
            if r.type == RRSET_TYPE
        ]
        if state in DIRECT_STATES:
            continue  # a direct way's mirror points at the home: the emergency's direct records
        if rrsets and mirror != rrsets:
            raise LabError(f"the Hetzner mirror of {stack} differs between its states (it is always failover form)")
        rrsets = mirror
    out = states["failover"]["outputs"]
    tunnel_target = str(out[Output.TUNNEL_TARGET]).lower()
    suffix = "." + TUNNEL_DOMAIN
    if not tunnel_target.endswith(suffix):
        raise LabError(f"tunnelTarget {tunnel_target!r} is not <tunnelId>{suffix}")
    config = project.stack_config(stack)
    hosts = [[str(h["host"]).lower(), int(h["port"])] for h in out[Output.HOSTS]]
    for state, values in states.items():
        if [[str(h["host"]).lower(), int(h["port"])] for h in values["outputs"][Output.HOSTS]] != hosts:
            raise LabError(f"the {state} plan of {stack} lists other hosts than its failover plan")
    inputs: dict[str, Any] = {
        "stack": stack,
        "zone": str(config.get("zone")).lower().rstrip("."),
        "tunnel_id": tunnel_target[: -len(suffix)],
        "tunnel_target": tunnel_target,
        "origin_name": str(out[Output.ORIGIN_NAME]).lower(),
        "origin_ips": [ip for ip in (out.get(Output.ORIGIN_IPV4), out.get(Output.ORIGIN_IPV6)) if ip],
        "health_url": out.get(Output.HEALTH_URL),
        "services_file": str(project.path(config.get("services") or "").resolve()),
        "services": hosts,
        "states": states,
        "certificates": certificates,
    }
    if rrsets:
        inputs["mirror"] = {"rrsets": rrsets, "nameservers": list(out.get(Output.SECONDARY_DNS_NAMESERVERS) or [])}
        inputs["emergency"] = _emergency(project, stack, str(out[Output.EMERGENCY_CUTOVER]))
    if rehearsal_stack and _rehearses(project, rehearsal_stack, stack):
        inputs["rehearsal"] = _rehearsal(project, rehearsal_stack)
    return inputs


def plan_state(config: dict[str, str], stack: str = "prod", project_dir: Path | None = None) -> dict[str, Any]:
    """One more state of ``stack`` as the lab serves it (its DNS records and outputs), from ``config``
    (``mode`` and any keys) instead of the lab's states: e.g. a home with IPv6 alone."""
    from mana_infra import plan as planning

    overrides = dict(config)
    mode = overrides.pop("mode")
    project = Project.at(find_project_dir(project_dir))
    result = planning.plan(stack, mode=mode, overrides=overrides, project=project, clouds=lab_clouds())
    return {"dns_records": _dns_records(result.resources), "outputs": result.outputs}


def _certificate_commands(resources: list[Any], what: str) -> dict[str, dict[str, str]]:
    """The certificate commands (name, the file they install, their create text), after checking that
    the Caddy command comes after both: a Caddyfile that refers to a certificate not yet there is
    refused by Caddy."""
    commands: dict[str, dict[str, str]] = {}
    urns = []
    for key, name in CERTIFICATE_COMMANDS.items():
        create = str(_command(resources, name, what)["create"])
        target = re.match(r"CADDY_TARGET=(\S+)\n", create)
        if target is None:
            raise LabError(f"{what}: {name} installs no CADDY_TARGET")
        commands[key] = {"name": name, "target": shlex.split(target.group(1))[0], "create": create}
        urns += [r.urn for r in resources if r.type == COMMAND_TYPE and r.name == name]
    caddy = next(r for r in resources if r.type == COMMAND_TYPE and r.name == CADDY_COMMAND)
    missing = [urn for urn in urns if urn not in caddy.options.get("dependsOn", [])]
    if missing:
        raise LabError(f"{what}: {CADDY_COMMAND} does not wait for {missing}: the certificates must come first")
    return commands


def _emergency(project: Project, stack: str, text: str) -> dict[str, Any]:
    """What the emergency cut-over's targeted ``pulumi up`` runs: the plan under the config it sets,
    and of that plan only the targeted resource (the Caddy command)."""
    from mana_infra import plan as planning

    overrides, target = parse_emergency(text)
    result = planning.plan(stack, overrides={**LAB_HOME, **overrides}, project=project, clouds=lab_clouds())
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
    command = _command(result.resources, REHEARSAL_COMMAND, f"the plan of {rehearsal_stack}")
    return {
        "stack": rehearsal_stack,
        "dns_records": records,
        "create": command["create"],
        "delete": command["delete"],
        "site_file": command["stdin"],
        "outputs": result.outputs,
    }
