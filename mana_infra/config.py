"""The stack configuration: read once, validated as a whole, handed to the program as typed data.

Defaults live in Pulumi.yaml alone (the CLI applies them, and the offline plan applies them the same
way); this module only reads and checks what arrives. A stack has one of two roles: `standby` (prod:
the VPS, its keys and the DNS flip) or `rehearsal` (the failover stack: test hostnames served by the
prod VPS, read through a StackReference).
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
from pulumi.runtime.config import CONFIG, get_config, is_config_secret

from .errors import InputError, Problem, raise_if_any
from .home import IPV6_ONLY_DNS, Parsed, parse_home_ipv4, parse_home_ipv6
from .inventory import covered_problem, load_inventory, one_level_fix
from .limits import FAILOVER_TTL_MAX, FAILOVER_TTL_MIN
from .model import (
    PROVIDER_TOKENS,
    ROLES,
    TUNNEL_UUID,
    VIAS,
    DnsRecord,
    Home,
    Mode,
    Role,
    Service,
    Via,
    WireGuardNetwork,
    hostname_problem,
    in_zone,
    mode_problem,
    via_home,
    via_proxied,
)
from .project import PROJECT, Project
from .records import inventory_record, rehearsal_host

# Keys read as plain text; `sshPrivateKey` is read apart, as a secret.
PLAIN_KEYS = (
    "role", "mode", "zone", "tunnelId", "services", "serverType", "location", "image", "sshPublicKey", "sshUser",
    "sshAllowedCidrs", "wireguardSubnet", "wireguardVpsAddress", "wireguardMacMiniAddress", "wireguardPort",
    "macMiniPublicKey", "macMiniPrivateKeyPath", "originName", "healthPath", "failoverTtl", "failoverVia",
    "checkAllowedCidrs", "acmeEmail", "acmeServer", "protect", "adoptRecords", "prodStack", "rehearsalHosts",
    "secondaryDns", "cloudflareZoneId", "cloudflareReachable", "homeName", "homeAddress", "homeAddress6",
)  # fmt: skip
SECRET_KEYS = ("sshPrivateKey",)

# The rehearsal stack creates nothing at Hetzner.
TOKENS_BY_ROLE: dict[Role, tuple[str, ...]] = {
    "standby": ("hcloud:token", "cloudflare:apiToken"),
    "rehearsal": ("cloudflare:apiToken",),
}

_SSH_PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$"
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_IMPORT_ID = re.compile(r"^[0-9a-f]{32}/[0-9a-f]{32}$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


@dataclass(frozen=True)
class StandbyConfig:
    """Everything the standby (prod) program needs, checked."""

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
    failover_via: Via
    check_allowed_cidrs: tuple[str, ...]
    """Who reaches the hosts through the VPS while the tunnel serves them: the operator's networks."""
    acme_email: str | None
    acme_server: str
    cloudflare_token: pulumi.Input[str]
    """For the ACME DNS-01 challenge at Cloudflare: only ever handed to the ACME provider."""
    hcloud_token: pulumi.Input[str]
    """For the ACME DNS-01 challenge at the Hetzner mirror (Cloudflare unreachable): the same."""
    protect: bool
    adopt_records: Mapping[str, str]
    secondary_dns: bool
    cloudflare_zone_id: str | None
    cloudflare_reachable: bool
    home_name: str
    home: Home | None
    """The home's public addresses for the direct ways (Plan C); None: not configured."""
    warnings: tuple[str, ...] = ()

    @property
    def record_settings(self) -> RecordSettings:
        return RecordSettings(self.mode, self.failover_via, self.failover_ttl, self.origin_name, self.home_name)

    """What deserves a word but stops nothing (config_warnings)."""


# Hetzner Cloud's locations and server types as its API listed them in 2026 (docs.hetzner.cloud, GET
# /locations and /server_types): Hetzner adds new ones, so another name is a warning, and the API has
# the last word when `pulumi up` creates the server.
KNOWN_LOCATIONS = ("fsn1", "nbg1", "hel1", "ash", "hil", "sin")
KNOWN_SERVER_TYPES = (
    *(f"cx{n}" for n in (22, 32, 42, 52, 23, 33, 43, 53)),
    *(f"cpx{n}" for n in (11, 21, 31, 41, 51, 12, 22, 32, 42, 52, 62)),
    *(f"cax{n}" for n in (11, 21, 31, 41)),
    *(f"ccx{n}" for n in (13, 23, 33, 43, 53, 63)),
)


def config_warnings(location: str, server_type: str, services: tuple[Service, ...], where: str) -> tuple[str, ...]:
    """Names Hetzner may not have, and hosts that share a Mac Mini port (one app behind two names is
    allowed, but is more often a copied line)."""
    warnings = []
    if location and location not in KNOWN_LOCATIONS:
        warnings.append(
            f"{where}: {PROJECT}:location: {location!r} is none of the locations Hetzner had "
            f"({', '.join(KNOWN_LOCATIONS)}); the API decides when `pulumi up` creates the server"
        )
    if server_type and server_type not in KNOWN_SERVER_TYPES:
        warnings.append(
            f"{where}: {PROJECT}:serverType: {server_type!r} is none of the server types Hetzner had (e.g. cx23, "
            "cpx22, cax11); the API decides when `pulumi up` creates the server"
        )
    by_port: dict[int, list[Service]] = {}
    for service in services:
        by_port.setdefault(service.port, []).append(service)
    for port, sharing in sorted(by_port.items()):
        if len(sharing) > 1:
            hosts = ", ".join(f"{s.host} (line {s.line})" if s.line else s.host for s in sharing)
            warnings.append(f"the inventory's {hosts} share the Mac Mini's port {port}: one app behind every name")
    return tuple(warnings)


@dataclass(frozen=True)
class RehearsalHost:
    """A test hostname and the inventory service whose Mac Mini port it reaches."""

    host: str
    service: Service


@dataclass(frozen=True)
class RehearsalConfig:
    """The rehearsal (failover) stack: test hostnames through the prod VPS, production untouched."""

    stack: str
    zone: str
    prod_stack: str
    hosts: tuple[RehearsalHost, ...]
    ssh_private_key: pulumi.Input[str]
    ssh_user: str
    failover_ttl: int


def set_command(key: str, value: str, secret: bool = False, *, stack: str | None = None) -> str:
    named = f"--stack {stack} " if stack else ""
    return f"pulumi config set {named}{'--secret ' if secret else ''}{key} {value}"


class _Reader:
    """Reads raw config values and collects every problem, each with the command that fixes it."""

    def __init__(self, values: Mapping[str, str | None], stack: str) -> None:
        self.values = values
        self.where = f"Pulumi.{stack}.yaml"
        self.stack = stack
        self.problems: list[Problem] = []

    def fix(self, key: str, value: str, secret: bool = False) -> str:
        """The command that sets ``key`` in this stack: named, as the selected stack may be another."""
        return set_command(key, value, secret, stack=self.stack)

    def problem(self, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(f"{self.where}: {PROJECT}:{key}", message, fix))

    def text(self, key: str, example: str) -> str:
        value = self.values.get(key)
        if value is None or value == "":
            self.problem(key, "is not set", self.fix(key, example))
            return ""
        return value

    def optional(self, key: str) -> str | None:
        return self.values.get(key) or None

    def integer(self, key: str, low: int, high: int, example: str) -> int:
        raw = self.text(key, example)
        if raw and (not re.fullmatch(r"-?\d+", raw) or not low <= int(raw) <= high):
            self.problem(key, f"{raw!r} is not an integer in {low}-{high}", self.fix(key, example))
            return low
        return int(raw) if raw else low

    def boolean(self, key: str) -> bool:
        raw = self.text(key, "true")
        if raw and raw not in ("true", "false"):
            self.problem(key, f"{raw!r} is not true or false", self.fix(key, "true") + "  (or false)")
        return raw == "true"

    def json(self, key: str) -> Any:
        raw = self.optional(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


def read_stack_config(project: Project) -> StandbyConfig | RehearsalConfig:
    """Read this stack's configuration through Pulumi (the CLI or the offline plan put it there)."""
    config = pulumi.Config()
    values = {key: config.get(key) for key in PLAIN_KEYS}
    # The raw values: an empty token is no token (and reading them raw does not warn about secrets).
    tokens_present = {
        key for key, (env_var, _) in PROVIDER_TOKENS.items() if get_config(key) or os.environ.get(env_var)
    }
    config_keys = {key: is_config_secret(key) for key in CONFIG.get()}
    # The providers' own settings, for the ACME provider's DNS-01 challenge (secrets, either way).
    provider_tokens = {
        key: pulumi.Config(key.split(":")[0]).get_secret(key.split(":")[1])
        or pulumi.Output.secret(os.environ.get(env_var, ""))
        for key, (env_var, _) in PROVIDER_TOKENS.items()
    }
    return parse_stack_config(
        values,
        stack=pulumi.get_stack(),
        ssh_private_key=config.get_secret("sshPrivateKey"),
        tokens_present=tokens_present,
        project=project,
        provider_tokens=provider_tokens,
        config_keys=config_keys,
    )


def parse_stack_config(
    values: Mapping[str, str | None],
    *,
    stack: str,
    ssh_private_key: pulumi.Input[str] | None,
    tokens_present: set[str],
    project: Project,
    provider_tokens: Mapping[str, pulumi.Input[str]] | None = None,
    config_keys: Mapping[str, bool] | None = None,
) -> StandbyConfig | RehearsalConfig:
    """Check every value; raise one InputError naming every problem and the command that fixes it.
    config_keys: every key the stack's config sets, and whether it is a secret (unknown keys of this
    project and provider tokens in plaintext are refused)."""
    read = _Reader(values, stack)
    _check_keys(read, project, config_keys or {})

    role = read.text("role", "standby")
    if role and role not in ROLES:
        read.problem("role", f"{role!r} is not a role: the allowed values are {' and '.join(ROLES)}",
                     read.fix("role", "standby") + "  (or rehearsal, for the failover stack)")  # fmt: skip
    zone = read.text("zone", "mana.how").lower().rstrip(".")
    if zone and (reason := hostname_problem(zone)):
        read.problem("zone", reason, read.fix("zone", "mana.how"))
    if ssh_private_key is None:
        read.problem(
            "sshPrivateKey",
            "is not set: the Caddy remote command logs in with it",
            f"pulumi config set --stack {read.stack} --secret sshPrivateKey < ~/.ssh/id_ed25519   "
            "(the key matching sshPublicKey)",
        )
    ssh_user = read.text("sshUser", "root")
    failover_ttl = read.integer("failoverTtl", FAILOVER_TTL_MIN, FAILOVER_TTL_MAX, "60")

    services: tuple[Service, ...] = ()
    services_file = read.text("services", "services.yaml")
    if services_file and zone and not hostname_problem(zone):
        try:
            services = load_inventory(project.path(services_file), zone)
        except InputError as error:
            read.problems.extend(error.problems)

    for key in TOKENS_BY_ROLE.get(cast(Role, role), ()):
        if key not in tokens_present:
            env_var, what = PROVIDER_TOKENS[key]
            read.problems.append(
                Problem(
                    f"{read.where}: {key}",
                    f"is not set: the program needs {what}",
                    f"pulumi config set --stack {read.stack} --secret {key} <token>   (or export {env_var})",
                )
            )

    if role == "rehearsal":
        prod_stack = read.text("prodStack", "prod")
        if prod_stack and not _STACK_NAME.match(prod_stack):
            read.problem("prodStack", f"{prod_stack!r} is not a stack name", read.fix("prodStack", "prod"))
        hosts = _rehearsal_hosts(read, zone, services)
        raise_if_any(read.problems)
        return RehearsalConfig(stack, zone, prod_stack, hosts, ssh_private_key or "", ssh_user, failover_ttl)

    standby = _standby(
        read, _Given(stack, zone, services, ssh_private_key or "", ssh_user, failover_ttl, provider_tokens or {})
    )
    raise_if_any(read.problems)
    return standby


@dataclass(frozen=True)
class RecordSettings:
    """What the inventory records follow: the mode, the way, the DNS-only TTL and the VPS's name. The
    program reads them with every other key; `mana-infra adopt` reads just these, the same way."""

    mode: Mode
    failover_via: Via
    failover_ttl: int
    origin_name: str
    home_name: str

    def records(self, services: Sequence[Service], tunnel_id: str) -> tuple[DnsRecord, ...]:
        """Every inventory host's record as these settings write it (the program's, and adopt's wanted)."""
        return tuple(
            inventory_record(
                service,
                self.mode,
                via=self.failover_via,
                tunnel_id=tunnel_id,
                origin_name=self.origin_name,
                failover_ttl=self.failover_ttl,
                home_name=self.home_name,
            )
            for service in services
        )


def record_settings(
    values: Mapping[str, str | None], stack: str, zone: str, services: tuple[Service, ...]
) -> RecordSettings:
    """The record settings of a stack's values (Pulumi.yaml's defaults already in them); InputError
    names every problem."""
    read = _Reader(values, stack)
    settings = _record_settings(read, zone, services)
    raise_if_any(read.problems)
    return settings


def _record_settings(
    read: _Reader, zone: str, services: tuple[Service, ...], failover_ttl: int | None = None
) -> RecordSettings:
    """failover_ttl: already read (parse_stack_config reads it for every role), else read here."""
    mode = read.text("mode", "tunnel")
    if mode and (reason := mode_problem(mode)):
        read.problem("mode", reason, read.fix("mode", "failover") + "  (or tunnel)")
    failover_via = read.text("failoverVia", "edge")
    if failover_via and failover_via not in VIAS:
        read.problem(
            "failoverVia",
            f"{failover_via!r} is not a way to fail over: the allowed values are {', '.join(VIAS)}",
            read.fix("failoverVia", "edge")
            + "  (through Cloudflare's edge; dns: DNS-only; direct, direct-dns: the same straight to the home)",
        )
    if failover_ttl is None:
        failover_ttl = read.integer("failoverTtl", FAILOVER_TTL_MIN, FAILOVER_TTL_MAX, "60")
    origin_name = _origin_name(read, zone, services)
    home_name = _home_name(read, zone, services, origin_name)
    return RecordSettings(cast(Mode, mode), cast(Via, failover_via), failover_ttl, origin_name, home_name)


def _home_name(read: _Reader, zone: str, services: tuple[Service, ...], origin_name: str) -> str:
    """homeName, or home.<zone>: the name the direct ways point the inventory records at."""
    home_name = (read.optional("homeName") or (f"home.{zone}" if zone else "")).lower().rstrip(".")
    configured = read.optional("homeName") or read.optional("homeAddress") or read.optional("homeAddress6")
    if not (home_name and zone and configured):
        return home_name  # no Plan C: the default name is nobody's, an app may have it
    fix = read.fix("homeName", f"home-direct.{zone}")
    if reason := hostname_problem(home_name):
        read.problem("homeName", reason, read.fix("homeName", f"home.{zone}"))
    elif not in_zone(home_name, zone):
        read.problem("homeName", f"{home_name} is outside the zone {zone}", read.fix("homeName", f"home.{zone}"))
    elif uncovered := covered_problem(home_name, zone):
        read.problem("homeName", uncovered, read.fix("homeName", f"home.{zone}"))
    elif home_name == origin_name or any(s.host == home_name for s in services):
        taken = "the VPS's origin name" if home_name == origin_name else "an inventory host"
        read.problem("homeName", f"{home_name} is also {taken}: the home's name must be a name of its own", fix)
    return home_name


def _home(read: _Reader, settings: RecordSettings) -> Home | None:
    """homeAddress and homeAddress6, checked, and what the configured way needs of them."""
    parsed: dict[str, Parsed] = {}
    for key, parse in (("homeAddress", parse_home_ipv4), ("homeAddress6", parse_home_ipv6)):
        raw = read.optional(key)
        if raw is None:
            continue
        parsed[key] = parse(raw)
        if parsed[key].problem:
            hint = f"  ({parsed[key].fix_hint})" if parsed[key].fix_hint else ""
            read.problem(key, str(parsed[key].problem), read.fix(key, "<address>") + hint)
    ipv4 = parsed["homeAddress"].address if "homeAddress" in parsed else None
    ipv6 = parsed["homeAddress6"].address if "homeAddress6" in parsed else None
    via = settings.failover_via
    if via_home(via) and not parsed:
        read.problem(
            "homeAddress",
            f"is not set, nor homeAddress6: failoverVia {via} sends visitors to the home's own address",
            read.fix("homeAddress", "<the router's public IPv4>")
            + f"  and/or {read.fix('homeAddress6', '<the Mac Mini stable IPv6>')}",
        )
    elif via == "direct-dns" and "homeAddress" not in parsed:
        read.problem(
            "failoverVia",
            f"is direct-dns with homeAddress6 alone: {IPV6_ONLY_DNS}",
            read.fix("failoverVia", "direct") + "  (through the edge: Cloudflare serves IPv4 visitors from the "
            "IPv6 home), or set homeAddress",
        )
    return Home(settings.home_name, ipv4, ipv6) if (ipv4 or ipv6) else None


def _origin_name(read: _Reader, zone: str, services: tuple[Service, ...]) -> str:
    """originName, or the VPS's default name vps.<zone>: a name of its own inside the zone."""
    origin_name = (read.optional("originName") or (f"vps.{zone}" if zone else "")).lower().rstrip(".")
    if origin_name and zone:
        if reason := hostname_problem(origin_name):
            read.problem("originName", reason, read.fix("originName", f"vps.{zone}"))
        elif not in_zone(origin_name, zone):
            read.problem(
                "originName", f"{origin_name} is outside the zone {zone}", read.fix("originName", f"vps.{zone}")
            )
        elif uncovered := covered_problem(origin_name, zone):
            read.problem("originName", uncovered, read.fix("originName", f"vps.{zone}"))
    colliding = next((s for s in services if s.host == origin_name), None)
    if colliding and read.optional("originName"):
        read.problem(
            "originName",
            f"{origin_name} is also an inventory host: the origin name must be a name of its own",
            read.fix("originName", f"standby.{zone}"),
        )
    elif colliding:
        # The stack never named it: the inventory took the VPS's default name.
        source, number = read.values.get("services"), services.index(colliding) + 1
        read.problems.append(
            Problem(
                f"{source}:{colliding.line}: entry {number} ({origin_name})",
                f"{origin_name} is the VPS's own name (originName, by default vps.<zone>), not an app's",
                f"give the app another name, or the VPS another: {read.fix('originName', f'standby.{zone}')}",
            )
        )
    return origin_name


@dataclass(frozen=True)
class _Given:
    """What parse_stack_config read before the standby's own keys."""

    stack: str
    zone: str
    services: tuple[Service, ...]
    ssh_private_key: pulumi.Input[str]
    ssh_user: str
    failover_ttl: int
    provider_tokens: Mapping[str, pulumi.Input[str]]


def _standby(read: _Reader, given: _Given) -> StandbyConfig:
    """The standby's own keys; only returned when the reader found no problem."""
    zone, services = given.zone, given.services
    settings = _record_settings(read, zone, services, given.failover_ttl)
    tunnel_id = _tunnel_id(read)
    hetzner = _hetzner(read)
    ssh_public_key, macmini_public_key = _public_keys(read)
    health_path = read.text("healthPath", "/healthz")
    if health_path and (not health_path.startswith("/") or " " in health_path or "{" in health_path):
        read.problem("healthPath", f"{health_path!r} is not a plain path", read.fix("healthPath", "/healthz"))
    acme_email, acme_server = _acme(read)
    cloudflare_zone_id, cloudflare_reachable = _cloudflare(read, settings)
    ssh_allowed = _cidrs(read, "sshAllowedCidrs", "SSH")
    # Who may check the standby: by default, who may log in to it.
    check_allowed = _cidrs(read, "checkAllowedCidrs", "the inventory hosts", required=False) or ssh_allowed
    return StandbyConfig(
        stack=given.stack,
        mode=settings.mode,
        zone=zone,
        tunnel_id=tunnel_id,
        services=services,
        server_type=hetzner["serverType"],
        location=hetzner["location"],
        image=hetzner["image"],
        ssh_public_key=ssh_public_key,
        ssh_private_key=given.ssh_private_key,
        ssh_user=given.ssh_user,
        ssh_allowed_cidrs=ssh_allowed,
        check_allowed_cidrs=check_allowed,
        wireguard=_wireguard_network(read, {"sshAllowedCidrs": ssh_allowed, "checkAllowedCidrs": check_allowed}),
        macmini_public_key=macmini_public_key,
        macmini_private_key_path=read.text("macMiniPrivateKeyPath", "/etc/wireguard/client_private.key"),
        origin_name=settings.origin_name,
        health_path=health_path,
        failover_ttl=settings.failover_ttl,
        failover_via=settings.failover_via,
        acme_email=acme_email,
        acme_server=acme_server,
        cloudflare_token=given.provider_tokens.get("cloudflare:apiToken", ""),
        hcloud_token=given.provider_tokens.get("hcloud:token", ""),
        protect=read.boolean("protect"),
        adopt_records=_adopt_records(read, {s.host for s in services}),
        secondary_dns=read.boolean("secondaryDns"),
        cloudflare_zone_id=cloudflare_zone_id,
        cloudflare_reachable=cloudflare_reachable,
        home_name=settings.home_name,
        home=_home(read, settings),
        warnings=config_warnings(hetzner["location"], hetzner["serverType"], services, read.where),
    )


def _tunnel_id(read: _Reader) -> str:
    tunnel_id = read.text("tunnelId", "<uuid from `cloudflared tunnel list`>").lower()
    if tunnel_id and not TUNNEL_UUID.match(tunnel_id):
        read.problem(
            "tunnelId",
            f"{tunnel_id!r} is not a tunnel UUID",
            read.fix("tunnelId", "<uuid from `cloudflared tunnel list`>"),
        )
    return tunnel_id


def _hetzner(read: _Reader) -> dict[str, str]:
    """serverType, location, image: Hetzner's names."""
    hetzner: dict[str, str] = {}
    for key, example in (("serverType", "cx23"), ("location", "nbg1"), ("image", "ubuntu-24.04")):
        hetzner[key] = read.text(key, example)
        if hetzner[key] and not _SLUG.match(hetzner[key]):
            read.problem(
                key,
                f"{hetzner[key]!r} is not a Hetzner name (lower-case letters, digits, dots, hyphens)",
                read.fix(key, example),
            )
    return hetzner


def _public_keys(read: _Reader) -> tuple[str, str | None]:
    """sshPublicKey, and macMiniPublicKey when the Mac Mini's private key stays off the state."""
    ssh_public_key = read.text("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"').strip()
    if ssh_public_key and not (_SSH_PUBLIC_KEY.match(ssh_public_key) and _is_key_blob(ssh_public_key)):
        read.problem(
            "sshPublicKey",
            "is not an OpenSSH public key (expected e.g. `ssh-ed25519 AAAA... comment`)",
            read.fix("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"'),
        )
    macmini_public_key = read.optional("macMiniPublicKey")
    if macmini_public_key and not _is_wireguard_key(macmini_public_key):
        read.problem(
            "macMiniPublicKey",
            "is not a WireGuard key (44 characters of base64 for 32 bytes)",
            read.fix("macMiniPublicKey", '"$(wg pubkey < /etc/wireguard/client_private.key)"'),
        )
    return ssh_public_key, macmini_public_key


def _acme(read: _Reader) -> tuple[str | None, str]:
    """acmeEmail (optional) and acmeServer."""
    acme_email = read.optional("acmeEmail")
    if acme_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", acme_email):
        read.problem("acmeEmail", f"{acme_email!r} is not an e-mail address", read.fix("acmeEmail", "ops@example.org"))
    acme_server = read.text("acmeServer", "https://acme-v02.api.letsencrypt.org/directory")
    if acme_server and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", acme_server):
        read.problem(
            "acmeServer",
            f"{acme_server!r} is not an ACME directory URL",
            read.fix("acmeServer", "https://acme-v02.api.letsencrypt.org/directory"),
        )
    return acme_email, acme_server


def _cloudflare(read: _Reader, settings: RecordSettings) -> tuple[str | None, bool]:
    """cloudflareZoneId and cloudflareReachable, and what Cloudflare marked gone rules out."""
    zone_id_fix = (
        f"pulumi config set --stack {read.stack} cloudflareZoneId "
        f"$(pulumi stack output --stack {read.stack} cloudflareZoneId)"
    )
    cloudflare_zone_id = read.optional("cloudflareZoneId")
    if cloudflare_zone_id and not re.fullmatch(r"[0-9a-f]{32}", cloudflare_zone_id):
        read.problem(
            "cloudflareZoneId", f"{cloudflare_zone_id!r} is not a Cloudflare zone id (32 hex digits)", zone_id_fix
        )
    cloudflare_reachable = read.boolean("cloudflareReachable")
    via = settings.failover_via
    if not cloudflare_reachable and settings.mode == "failover" and via_proxied(via):
        dns_only = "direct-dns" if via_home(via) else "dns"
        read.problem(
            "failoverVia",
            f"is {via}, and Cloudflare is marked unreachable: the way through the edge is Cloudflare's",
            read.fix("failoverVia", dns_only) + "  (then the registrar's nameserver switch: see emergencyCutover)",
        )
    if not cloudflare_reachable and not cloudflare_zone_id:
        read.problem(
            "cloudflareZoneId",
            "is not set, and Cloudflare is marked unreachable: the zone cannot be looked up",
            zone_id_fix,
        )
    return cloudflare_zone_id, cloudflare_reachable


def _cidrs(read: _Reader, key: str, what: str, *, required: bool = True) -> tuple[str, ...]:
    """A list of the operator's networks: never the whole internet. Optional lists may be empty."""
    fix = f"pulumi config set --stack {read.stack} --path '{key}[0]' 198.51.100.7/32   (one index per network)"
    raw, entries = read.optional(key), read.json(key)
    if not raw or entries == []:
        if required:
            read.problem(key, f"is not set: name the networks allowed to reach {what} on the VPS", fix)
        return ()
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, str) for entry in entries):
        read.problem(key, f"{raw!r} is not a list of networks", fix)
        return ()
    cidrs: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            read.problem(key, f"{entry!r} is not a network (expected e.g. 198.51.100.7/32)", fix)
            continue
        if network.prefixlen == 0:
            read.problem(key, f"{entry} opens {what} to the whole internet", "name your own networks instead: " + fix)
            continue
        cidrs.append(str(network))
    return tuple(cidrs)


# Where a tunnel's own addresses belong (RFC 1918, and RFC 6598's shared space): any other network is
# somebody's on the internet, and the VPS would send its traffic for it into WireGuard instead.
PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _wireguard_network(read: _Reader, known: Mapping[str, Sequence[str]]) -> WireGuardNetwork:
    """The tunnel's subnet and both ends' addresses. The subnet must be private and apart from every
    network the stack names (``known``: the operator's networks): the VPS routes the whole subnet into
    WireGuard, so an overlap would send SSH's and check's answers into the tunnel."""
    fallback = WireGuardNetwork(
        ipaddress.IPv4Network("10.0.0.0/24"), ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")
    )
    port = read.integer("wireguardPort", 1, 65535, "51820")
    raw_subnet = read.text("wireguardSubnet", "10.0.0.0/24")
    try:
        subnet = ipaddress.IPv4Network(raw_subnet)
    except ValueError:
        if raw_subnet:
            read.problem(
                "wireguardSubnet",
                f"{raw_subnet!r} is not an IPv4 network",
                read.fix("wireguardSubnet", "10.0.0.0/24"),
            )
        return fallback
    # The addresses move with the subnet: one command sets all three.
    other = (
        f"pulumi config set-all --stack {read.stack} --plaintext wireguardSubnet=10.77.0.0/24 --plaintext "
        "wireguardVpsAddress=10.77.0.1 --plaintext wireguardMacMiniAddress=10.77.0.2   (or another private /24 "
        "apart from your networks)"
    )
    if not any(subnet.subnet_of(private) for private in PRIVATE_NETWORKS):
        read.problem(
            "wireguardSubnet",
            f"{subnet} is not a private network (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10): the "
            "VPS would send traffic for those internet addresses into WireGuard",
            other,
        )
    for key, cidrs in known.items():
        for index, cidr in enumerate(cidrs):
            network = ipaddress.ip_network(cidr)
            if network.version == 4 and subnet.overlaps(network):
                read.problem(
                    "wireguardSubnet",
                    f"{subnet} overlaps {key}[{index}] {cidr}: the VPS routes the subnet into WireGuard, so its "
                    f"answers to {cidr} would go into the tunnel instead of back to you",
                    other,
                )
    addresses: list[ipaddress.IPv4Address] = []
    for key, example in (("wireguardVpsAddress", subnet[1]), ("wireguardMacMiniAddress", subnet[2])):
        raw = read.text(key, str(example))
        try:
            address = ipaddress.IPv4Address(raw)
        except ValueError:
            if raw:
                read.problem(key, f"{raw!r} is not an IPv4 address", read.fix(key, str(example)))
            continue
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            read.problem(
                key, f"{address} is not a host address in wireguardSubnet {subnet}", read.fix(key, str(example))
            )
            continue
        addresses.append(address)
    if len(addresses) != 2:
        return fallback
    if addresses[0] == addresses[1]:
        read.problem(
            "wireguardMacMiniAddress",
            f"{addresses[1]} is also the VPS's address",
            read.fix("wireguardMacMiniAddress", str(subnet[2])),
        )
    return WireGuardNetwork(subnet, addresses[0], addresses[1], port)


def _adopt_records(read: _Reader, hosts: set[str]) -> dict[str, str]:
    fix = "mana-infra adopt --records <export.json>   (prints the commands that set it)"
    raw, mapping = read.optional("adoptRecords"), read.json("adoptRecords")
    if not raw or mapping == {}:
        return {}
    if not isinstance(mapping, dict):
        read.problem("adoptRecords", f"{raw!r} is not a mapping of host to `<zoneId>/<recordId>`", fix)
        return {}
    adopted: dict[str, str] = {}
    for host, import_id in mapping.items():
        if host not in hosts:
            read.problem("adoptRecords", f"{host} is not an inventory host", fix)
        elif not isinstance(import_id, str) or not _IMPORT_ID.match(import_id):
            read.problem(
                "adoptRecords", f"{host}: {import_id!r} is not `<zoneId>/<recordId>` (32 hex digits each)", fix
            )
        else:
            adopted[host] = import_id
    return adopted


def _rehearsal_hosts(read: _Reader, zone: str, services: tuple[Service, ...]) -> tuple[RehearsalHost, ...]:
    """The test hostnames; by default one, failover-test.<zone>, reaching the landing page (the apex)."""
    fix = (
        f"pulumi config set --stack {read.stack} --path 'rehearsalHosts[0].host' failover-test.<zone> && "
        f"pulumi config set --stack {read.stack} --path 'rehearsalHosts[0].service' <an inventory host>"
    )
    by_host = {service.host: service for service in services}
    entries = read.json("rehearsalHosts") or [{"host": rehearsal_host(zone), "service": zone}]
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        read.problem("rehearsalHosts", f"{read.optional('rehearsalHosts')!r} is not a list of {{host, service}}", fix)
        return ()
    hosts: list[RehearsalHost] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        key = f"rehearsalHosts[{index}]"
        host = str(entry.get("host", "")).lower().rstrip(".")
        service = by_host.get(str(entry.get("service", "")).lower())
        if unknown := sorted(set(entry) - {"host", "service"}):
            read.problem(key, f"unknown key {', '.join(unknown)}: the allowed keys are host, service", fix)
        reason = hostname_problem(host) if host else "has no host"
        if reason:
            read.problem(key, reason, fix)
            continue
        if not in_zone(host, zone):
            read.problem(key, f"{host} is outside the zone {zone}", fix)
        elif uncovered := covered_problem(host, zone):
            read.problem(key, uncovered, one_level_fix(host, zone))
        if host in by_host:
            read.problem(
                key,
                f"{host} collides with the inventory host {host}: a rehearsal must not move a production name",
                f"pick a name of its own, e.g. {_free_test_name(zone, {*by_host, *seen, host})}",
            )
        if host in seen:
            read.problem(key, f"duplicate rehearsal host {host}", "remove one of the two entries")
        seen.add(host)
        if service is None:
            read.problem(
                key,
                f"service {entry.get('service')!r} is not an inventory host",
                f"name the inventory host whose Mac Mini port it reaches, e.g. {zone}",
            )
            continue
        hosts.append(RehearsalHost(host, service))
    return tuple(hosts)


# Keys this project had, and what took their place: a stack file that still sets one is told so.
RENAMED_KEYS = {"failoverProxied": "failoverVia (edge keeps the records proxied, dns makes them DNS-only)"}


def _check_keys(read: _Reader, project: Project, config_keys: Mapping[str, bool]) -> None:
    """A key this project does not declare would be ignored (its default silently applies); a provider
    token in plaintext sits readable in the committed stack file."""
    declared = sorted(project.declared)
    for key, secret in sorted(config_keys.items()):
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name not in project.declared:
            if name in RENAMED_KEYS:
                message, fix = f"was renamed: use {RENAMED_KEYS[name]}", f"pulumi config rm --stack {read.stack} {name}"
            else:
                lowered = {known.lower(): known for known in declared}
                nearest = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
                guess = lowered[nearest[0]] if nearest else None
                message = "is not a key of this project: it would be ignored" + (
                    f" (did you mean `{guess}`?)" if guess else ""
                )
                fix = f"pulumi config rm --stack {read.stack} {name}" + (
                    f" && pulumi config set --stack {read.stack} {guess} <value>" if guess else ""
                )
            read.problems.append(Problem(f"{read.where}: {key}", message, fix))
        elif key in PROVIDER_TOKENS and not secret:
            read.problems.append(
                Problem(
                    f"{read.where}: {key}",
                    "is in plaintext: a provider token must be a secret (the stack file is committed)",
                    f"pulumi config rm --stack {read.stack} {key} && pulumi config set --stack {read.stack} --secret "
                    f"{key} <token>",
                )
            )


def _free_test_name(zone: str, taken: set[str]) -> str:
    """A test hostname that is nobody's yet."""
    candidates = (rehearsal_host(zone, n) for n in range(1, len(taken) + 2))
    return next(name for name in candidates if name not in taken)


def _is_key_blob(public_key: str) -> bool:
    """The key's base64 blob decodes, and names the key type the line starts with."""
    kind, blob = public_key.split()[:2]
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        return False
    return raw[4 : 4 + len(kind)] == kind.encode()


def _is_wireguard_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False
