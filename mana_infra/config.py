"""The stack configuration: read once, validated as a whole, handed to the program as typed data.

Defaults live in Pulumi.yaml alone (the CLI applies them, and the offline plan applies them the same
way); this module only reads and checks what arrives.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pulumi

from .errors import InputError, Problem, raise_if_any
from .inventory import Service, hostname_problem, in_zone, load_inventory
from .render.caddyfile import MODES, Mode
from .render.wireguard import WireGuardNetwork

PROJECT = "mana-infra"
PROJECT_DIR = Path(__file__).resolve().parent.parent

# Keys read as plain text; `sshPrivateKey` is read apart, as a secret.
PLAIN_KEYS = (
    "mode",
    "zone",
    "tunnelId",
    "services",
    "serverType",
    "location",
    "image",
    "sshPublicKey",
    "sshUser",
    "sshAllowedCidrs",
    "wireguardSubnet",
    "wireguardVpsAddress",
    "wireguardMacMiniAddress",
    "wireguardPort",
    "macMiniPublicKey",
    "macMiniPrivateKeyPath",
    "originName",
    "healthPath",
    "failoverTtl",
    "failoverProxied",
    "acmeEmail",
    "protect",
    "adoptRecords",
)
SECRET_KEYS = ("sshPrivateKey",)

# Provider credentials: set in the stack config as secrets, or in the environment.
PROVIDER_TOKENS = {
    "hcloud:token": ("HCLOUD_TOKEN", "a Hetzner Cloud API token (read & write)"),
    "cloudflare:apiToken": ("CLOUDFLARE_API_TOKEN", "a Cloudflare API token with Zone:DNS:Edit on the zone"),
}

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SSH_PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$"
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_IMPORT_ID = re.compile(r"^[0-9a-f]{32}/[0-9a-f]{32}$")

# Shapes of parse_stack_config's local readers, for the helpers split out of it.
_ProblemSink = Callable[[str, str, str], None]
_TextReader = Callable[[str, str], str]
_IntReader = Callable[[str, int, int, str], int]


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, checked."""

    stack: str
    mode: Mode
    zone: str
    tunnel_id: str
    services: tuple[Service, ...]
    server_type: str
    location: str
    image: str
    ssh_public_key: str
    ssh_private_key: pulumi.Input[str]
    ssh_user: str
    ssh_allowed_cidrs: tuple[str, ...]
    wireguard: WireGuardNetwork
    macmini_public_key: str | None
    macmini_private_key_path: str
    origin_name: str
    health_path: str
    failover_ttl: int
    failover_proxied: bool
    acme_email: str | None
    protect: bool
    adopt_records: Mapping[str, str]


def set_command(key: str, value: str, secret: bool = False) -> str:
    return f"pulumi config set {'--secret ' if secret else ''}{key} {value}"


def read_stack_config() -> StackConfig:
    """Read this stack's configuration through Pulumi (the CLI or the offline plan put it there)."""
    config = pulumi.Config()
    values = {key: config.get(key) for key in PLAIN_KEYS}
    tokens_present = {
        key
        for key, (env_var, _) in PROVIDER_TOKENS.items()
        if pulumi.Config(key.split(":")[0]).get_secret(key.split(":")[1]) is not None or os.environ.get(env_var)
    }
    return parse_stack_config(
        values,
        stack=pulumi.get_stack(),
        ssh_private_key=config.get_secret("sshPrivateKey"),
        tokens_present=tokens_present,
        project_dir=PROJECT_DIR,
    )


def parse_stack_config(
    values: Mapping[str, str | None],
    *,
    stack: str,
    ssh_private_key: pulumi.Input[str] | None,
    tokens_present: set[str],
    project_dir: Path,
) -> StackConfig:
    """Check every value; raise one InputError naming every problem and the command that fixes it."""
    problems: list[Problem] = []
    where = f"Pulumi.{stack}.yaml"

    def problem(key: str, message: str, fix: str) -> None:
        problems.append(Problem(f"{where}: {PROJECT}:{key}", message, fix))

    def text(key: str, example: str) -> str:
        value = values.get(key)
        if value is None or value == "":
            problem(key, "is not set", set_command(key, example))
            return ""
        return value

    def optional(key: str) -> str | None:
        return values.get(key) or None

    def integer(key: str, low: int, high: int, example: str) -> int:
        raw = text(key, example)
        if raw and (not re.fullmatch(r"-?\d+", raw) or not low <= int(raw) <= high):
            problem(key, f"{raw!r} is not an integer in {low}-{high}", set_command(key, example))
            return low
        return int(raw) if raw else low

    def boolean(key: str) -> bool:
        raw = text(key, "true")
        if raw and raw not in ("true", "false"):
            problem(key, f"{raw!r} is not true or false", set_command(key, "true") + "  (or false)")
        return raw == "true"

    mode = text("mode", "tunnel")
    if mode and mode not in MODES:
        problem(
            "mode",
            f"{mode!r} is not a mode: the allowed values are {' and '.join(MODES)}",
            set_command("mode", "failover") + "  (or tunnel)",
        )

    zone = text("zone", "mana.how").lower().rstrip(".")
    if zone and (reason := hostname_problem(zone)):
        problem("zone", reason, set_command("zone", "mana.how"))

    tunnel_id = text("tunnelId", "<uuid from `cloudflared tunnel list`>").lower()
    if tunnel_id and not _UUID.match(tunnel_id):
        problem(
            "tunnelId",
            f"{tunnel_id!r} is not a tunnel UUID",
            set_command("tunnelId", "<uuid from `cloudflared tunnel list`>"),
        )

    server_type, location, image = (
        text(key, example) for key, example in (("serverType", "cx23"), ("location", "fsn1"), ("image", "ubuntu-24.04"))
    )
    for key, value, example in (
        ("serverType", server_type, "cx23"),
        ("location", location, "fsn1"),
        ("image", image, "ubuntu-24.04"),
    ):
        if value and not _SLUG.match(value):
            problem(
                key,
                f"{value!r} is not a Hetzner name (lower-case letters, digits, dots, hyphens)",
                set_command(key, example),
            )

    ssh_public_key = text("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"').strip()
    if ssh_public_key and not _SSH_PUBLIC_KEY.match(ssh_public_key):
        problem(
            "sshPublicKey",
            "is not an OpenSSH public key (expected e.g. `ssh-ed25519 AAAA... comment`)",
            set_command("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"'),
        )
    if ssh_private_key is None:
        problem(
            "sshPrivateKey",
            "is not set: the Caddy remote command logs in with it",
            "pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519   (the key matching sshPublicKey)",
        )
    ssh_user = text("sshUser", "root")

    ssh_allowed_cidrs = _cidrs(values.get("sshAllowedCidrs"), problem)

    network = _wireguard_network(values, text, integer, problem)

    macmini_public_key = optional("macMiniPublicKey")
    if macmini_public_key and not _is_wireguard_key(macmini_public_key):
        problem(
            "macMiniPublicKey",
            "is not a WireGuard key (44 characters of base64 for 32 bytes)",
            set_command("macMiniPublicKey", '"$(wg pubkey < /etc/wireguard/client_private.key)"'),
        )
    macmini_private_key_path = text("macMiniPrivateKeyPath", "/etc/wireguard/client_private.key")

    origin_name = (optional("originName") or (f"vps.{zone}" if zone else "")).lower().rstrip(".")
    if origin_name and zone:
        if reason := hostname_problem(origin_name):
            problem("originName", reason, set_command("originName", f"vps.{zone}"))
        elif not in_zone(origin_name, zone):
            problem("originName", f"{origin_name} is outside the zone {zone}", set_command("originName", f"vps.{zone}"))

    health_path = text("healthPath", "/healthz")
    if health_path and (not health_path.startswith("/") or " " in health_path or "{" in health_path):
        problem("healthPath", f"{health_path!r} is not a plain path", set_command("healthPath", "/healthz"))

    failover_ttl = integer("failoverTtl", 60, 86400, "60")
    failover_proxied = boolean("failoverProxied")
    protect = boolean("protect")
    acme_email = optional("acmeEmail")
    if acme_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", acme_email):
        problem("acmeEmail", f"{acme_email!r} is not an e-mail address", set_command("acmeEmail", "ops@example.org"))

    services: tuple[Service, ...] = ()
    services_file = text("services", "services.yaml")
    if services_file and zone and not hostname_problem(zone):
        try:
            services = load_inventory(project_dir / services_file, zone)
        except InputError as error:
            problems.extend(error.problems)
    if origin_name in {service.host for service in services}:
        problem(
            "originName",
            f"{origin_name} is also an inventory host: the origin name must be a name of its own",
            set_command("originName", f"standby.{zone}"),
        )

    adopt_records = _adopt_records(values.get("adoptRecords"), {s.host for s in services}, problem)

    for key, (env_var, what) in PROVIDER_TOKENS.items():
        if key not in tokens_present:
            problems.append(
                Problem(
                    f"{where}: {key}",
                    f"is not set: the program needs {what}",
                    f"pulumi config set --secret {key} <token>   (or export {env_var})",
                )
            )

    raise_if_any(problems)
    assert ssh_private_key is not None
    return StackConfig(
        stack=stack,
        mode=cast(Mode, mode),
        zone=zone,
        tunnel_id=tunnel_id,
        services=services,
        server_type=server_type,
        location=location,
        image=image,
        ssh_public_key=ssh_public_key,
        ssh_private_key=ssh_private_key,
        ssh_user=ssh_user,
        ssh_allowed_cidrs=ssh_allowed_cidrs,
        wireguard=network,
        macmini_public_key=macmini_public_key,
        macmini_private_key_path=macmini_private_key_path,
        origin_name=origin_name,
        health_path=health_path,
        failover_ttl=failover_ttl,
        failover_proxied=failover_proxied,
        acme_email=acme_email,
        protect=protect,
        adopt_records=adopt_records,
    )


def _cidrs(raw: str | None, problem: _ProblemSink) -> tuple[str, ...]:
    fix = "pulumi config set --path 'sshAllowedCidrs[0]' 198.51.100.7/32   (one index per network)"
    if not raw:
        problem("sshAllowedCidrs", "is not set: name the networks allowed to reach SSH on the VPS", fix)
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        entries = None
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, str) for entry in entries):
        problem("sshAllowedCidrs", f"{raw!r} is not a list of networks", fix)
        return ()
    cidrs: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problem("sshAllowedCidrs", f"{entry!r} is not a network (expected e.g. 198.51.100.7/32)", fix)
            continue
        if network.prefixlen == 0:
            problem(
                "sshAllowedCidrs", f"{entry} opens SSH to the whole internet", "name your own networks instead: " + fix
            )
            continue
        cidrs.append(str(network))
    return tuple(cidrs)


def _wireguard_network(
    values: Mapping[str, str | None], text: _TextReader, integer: _IntReader, problem: _ProblemSink
) -> WireGuardNetwork:
    fallback = WireGuardNetwork(
        ipaddress.IPv4Network("10.0.0.0/24"), ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")
    )
    port = integer("wireguardPort", 1, 65535, "51820")
    raw_subnet = text("wireguardSubnet", "10.0.0.0/24")
    try:
        subnet = ipaddress.IPv4Network(raw_subnet)
    except ValueError:
        if raw_subnet:
            problem(
                "wireguardSubnet",
                f"{raw_subnet!r} is not an IPv4 network",
                set_command("wireguardSubnet", "10.0.0.0/24"),
            )
        return fallback
    addresses: list[ipaddress.IPv4Address] = []
    for key, example in (("wireguardVpsAddress", subnet[1]), ("wireguardMacMiniAddress", subnet[2])):
        raw = text(key, str(example))
        try:
            address = ipaddress.IPv4Address(raw)
        except ValueError:
            if raw:
                problem(key, f"{raw!r} is not an IPv4 address", set_command(key, str(example)))
            continue
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            problem(key, f"{address} is not a host address in wireguardSubnet {subnet}", set_command(key, str(example)))
            continue
        addresses.append(address)
    if len(addresses) != 2:
        return fallback
    if addresses[0] == addresses[1]:
        problem(
            "wireguardMacMiniAddress",
            f"{addresses[1]} is also the VPS's address",
            set_command("wireguardMacMiniAddress", str(subnet[2])),
        )
    return WireGuardNetwork(subnet, addresses[0], addresses[1], port)


def _adopt_records(raw: str | None, hosts: set[str], problem: _ProblemSink) -> dict[str, str]:
    fix = "mana-infra adopt --records <export.json>   (prints the commands that set it)"
    if not raw:
        return {}
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError:
        mapping = None
    if not isinstance(mapping, dict):
        problem("adoptRecords", f"{raw!r} is not a mapping of host to `<zoneId>/<recordId>`", fix)
        return {}
    adopted: dict[str, str] = {}
    for host, import_id in mapping.items():
        if host not in hosts:
            problem("adoptRecords", f"{host} is not an inventory host", fix)
        elif not isinstance(import_id, str) or not _IMPORT_ID.match(import_id):
            problem("adoptRecords", f"{host}: {import_id!r} is not `<zoneId>/<recordId>` (32 hex digits each)", fix)
        else:
            adopted[host] = import_id
    return adopted


def _is_wireguard_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False
