"""The offline plan: the real program, evaluated under Pulumi's mock engine with a stack's own config.

No Pulumi CLI and no cloud account: values only the clouds know get documentation placeholders, keys
are deterministic offline keys, and required values the operator has not set yet get labelled
placeholders (the real program stops with a clear error instead).
"""

from __future__ import annotations

import base64
import contextvars
import difflib
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from . import program
from .components.rehearsal import SITE_FILE
from .config import TOKENS_BY_ROLE
from .deployed import CHANGED_AT_VARIABLE, CHANGED_BY_VARIABLE
from .errors import InputError
from .model import CLOUDFLARE_IP_RANGES, PROVIDER_TOKENS, ROLES, SECRET
from .names import (
    CADDY_COMMAND,
    CADDYFILE,
    CLOUD_INIT,
    REHEARSAL_COMMAND,
    STANDBY_SERVER,
    WG_MACMINI,
    WG_SERVER,
    WIREGUARD_CONFIG_PATH,
)
from .outputs import Output
from .project import PROJECT, Project, qualified

OFFLINE_IPV4 = "203.0.113.10"
OFFLINE_IPV6 = "2001:db8::1"
OFFLINE_IPV6_NETWORK = "2001:db8::/64"
# The certificates' ends: Cloudflare's Origin CA signs for 15 years, Let's Encrypt for 90 days.
OFFLINE_ORIGIN_CA_EXPIRY = "2041-11-24T12:00:00Z"
OFFLINE_PUBLIC_ISSUED, OFFLINE_PUBLIC_EXPIRY = "2026-11-28T12:00:00Z", "2027-02-26T12:00:00Z"  # 90 days
# Hetzner's DNS nameservers, as its API assigns them to a primary zone.
OFFLINE_HETZNER_NAMESERVERS = ("hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de.")
OFFLINE_MARK = "OFFLINE PLAN: placeholder keys and documentation addresses (203.0.113.0/24, 2001:db8::/32); not for use"

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

# The remote commands whose stdin is an artifact (the others carry certificates, which are secrets).


@dataclass(frozen=True)
class Placeholder:
    key: str
    value: str
    secret: bool
    why: str
    roles: tuple[str, ...] = ("standby",)


def _offline_ssh_public_key() -> str:
    seed = hashlib.sha256(b"mana-infra offline plan ssh key").digest()
    public = (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    return public.decode() + " mana-infra-offline-placeholder"


# Values the operator sets by hand (README); the plan stands in for them when they are missing.
PLACEHOLDERS = (
    Placeholder(f"{PROJECT}:tunnelId", "00000000-0000-4000-8000-000000000000", False, "the Cloudflare Tunnel's UUID"),
    Placeholder(f"{PROJECT}:sshPublicKey", _offline_ssh_public_key(), False, "the operator's SSH public key"),
    Placeholder(f"{PROJECT}:sshAllowedCidrs", json.dumps(["192.0.2.0/24"]), False, "the networks allowed to SSH"),
    Placeholder(f"{PROJECT}:sshPrivateKey", "offline-placeholder-ssh-private-key", True, "the SSH private key", ROLES),
    *(
        Placeholder(
            key,
            f"offline-placeholder-{key.split(':')[0]}-token",  # one per provider: a test can tell which went where
            True,
            what,
            tuple(r for r in ROLES if key in TOKENS_BY_ROLE[r]),
        )
        for key, (_, what) in PROVIDER_TOKENS.items()
    ),
)


@dataclass
class Recorded:
    """One RegisterResource request as the engine receives it."""

    type: str
    name: str
    inputs: dict[str, Any]
    """As the engine receives them, every secret shown as "[secret]"."""
    revealed: dict[str, Any] | None
    """The same with the secrets' values (for the artifacts, never printed); None in a saved plan."""
    options: dict[str, Any]
    parent_type: str
    urn: str = ""
    id: str = ""
    """The id the (offline) cloud gave the resource: what other resources' inputs refer to."""


@dataclass
class PlanResult:
    stack: str
    mode: str
    resources: list[Recorded]
    outputs: dict[str, Any]
    placeholders: list[Placeholder]
    artifacts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> PlanResult:
        """A plan saved with `--json` (secrets only as "[secret]"), e.g. the base branch's."""
        resources = [
            Recorded(type=r["type"], name=r["name"], inputs=r["inputs"], revealed=None, options={}, parent_type="")
            for r in document["resources"]
        ]
        return cls(
            document["stack"], document["mode"], resources, document.get("outputs") or {}, [], document["artifacts"]
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "mode": self.mode,
            "resources": [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in self.resources],
            # As the engine would show them: secrets as "[secret]".
            "outputs": self.outputs,
            "placeholders": [
                {"key": p.key, "value": SECRET if p.secret else p.value, "why": p.why} for p in self.placeholders
            ],
            "artifacts": self.artifacts,
        }


def stack_config(
    project: Project, stack: str, overrides: Mapping[str, str | None]
) -> tuple[dict[str, str], list[str], list[Placeholder]]:
    """The config the Pulumi CLI would hand the program (the project's merge of Pulumi.yaml defaults
    and the stack file), then the plan's overrides (None: as if never set, no placeholder either);
    placeholders for what is still missing."""
    config = project.stack_config(stack)
    values = dict(config.values)
    # Encrypted with the stack's key: the plan cannot read them, only knows they are set.
    values.update(dict.fromkeys(config.secure, "offline-placeholder-encrypted-secret"))
    secret_keys = list(config.secure)
    unset = {qualified(key) for key, value in overrides.items() if value is None}
    values.update({qualified(key): value for key, value in overrides.items() if value is not None})
    for key in unset:
        values.pop(key, None)
    used: list[Placeholder] = []
    role = values.get(f"{PROJECT}:role", "standby")
    for placeholder in PLACEHOLDERS:
        if role not in placeholder.roles or placeholder.key in unset:
            continue
        if values.get(placeholder.key) in (None, "", "[]"):
            values[placeholder.key] = placeholder.value
            used.append(placeholder)
        if placeholder.secret:
            secret_keys.append(placeholder.key)
    if missing := project.missing(config, values):
        raise InputError([missing])
    return values, sorted(set(secret_keys)), used


def _secret(value: str) -> dict[str, Any]:
    """A value the provider marks secret (additionalSecretOutputs), which the mock engine would not."""
    return {_SIG_KEY: _SECRET_SIG, "value": value}


def _offline_pem(kind: str, name: str) -> str:
    body = base64.b64encode(f"{OFFLINE_MARK} ({name})".encode()).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def _stable_number(name: str) -> str:
    return str(int(hashlib.sha256(name.encode()).hexdigest()[:7], 16))


# What a stack's first `pulumi up` records as the time and the author of its mode.
OFFLINE_CHANGED_AT = "<the time of the pulumi up>"
OFFLINE_CHANGED_BY = "<who runs the pulumi up>"


class OfflineClouds(pulumi_mocks.Mocks):
    """What Hetzner, Cloudflare and the random provider would answer, with offline placeholders; a
    StackReference answers with the referenced stack's own offline outputs."""

    def __init__(
        self,
        referenced_outputs: Mapping[str, Any] | None = None,
        secret_outputs: Sequence[str] = (),
        zone_records: Sequence[Mapping[str, Any]] = (),
        ssh_keys: Sequence[Mapping[str, Any]] = (),
        zone_rrsets: Sequence[Mapping[str, Any]] = (),
        ssl_mode: str = "strict",
        ip_ranges: tuple[Sequence[str], Sequence[str]] = CLOUDFLARE_IP_RANGES,
    ) -> None:
        self.referenced_outputs = dict(referenced_outputs or {})
        self.secret_outputs = list(secret_outputs)
        # The zone's other records are unknown offline: none, unless a test gives some.
        self.zone_records = [dict(record) for record in zone_records]
        # The Hetzner project's SSH keys: none offline, unless a test uploads some.
        self.ssh_keys = [dict(key) for key in ssh_keys]
        # The Hetzner zone's RRSets as its API lists them: none offline, unless a test has some.
        self.zone_rrsets = [dict(rrset) for rrset in zone_rrsets]
        # The zone's SSL/TLS mode and Cloudflare's published networks, as the provider would read them.
        self.ssl_mode = ssl_mode
        self.ip_ranges = ip_ranges
        self.calls: list[str] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        resource_id = args.resource_id or _stable_number(args.name)
        if args.typ == "pulumi:pulumi:StackReference":
            state.update(outputs=self.referenced_outputs, secretOutputNames=self.secret_outputs)
            resource_id = str(args.inputs["name"])
        elif args.typ == "hcloud:index/primaryIp:PrimaryIp":
            state["ipAddress"] = OFFLINE_IPV4 if args.inputs.get("type") == "ipv4" else OFFLINE_IPV6_NETWORK
        elif args.typ == "hcloud:index/server:Server":
            state.update(ipv4Address=OFFLINE_IPV4, ipv6Address=OFFLINE_IPV6, status="running")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            # As the provider does it: the result a secret, the id "none" (terraform-provider-random's
            # random_password; pulumi-random computes no other id for it, where it makes a RandomBytes'
            # id its base64 value).
            seed = hashlib.sha256(f"mana-infra offline key {args.name}".encode()).hexdigest()
            state["result"] = _secret(seed[: int(args.inputs["length"])])
            resource_id = "none"
        elif args.typ == "random:index/randomBytes:RandomBytes":
            # pulumi-random's computeRandomBytesID: the id is the base64 value itself, never a secret.
            raw = hashlib.sha256(f"mana-infra offline key {args.name}".encode()).digest()[: int(args.inputs["length"])]
            state.update(base64=_secret(base64.b64encode(raw).decode()), hex=_secret(raw.hex()))
            resource_id = base64.b64encode(raw).decode()
        elif args.typ == "command:remote:Command":
            state.update(stdout="(offline plan: not run)", stderr="")
        elif args.typ == "hcloud:index/zone:Zone":
            state["authoritativeNameservers"] = {"assigneds": list(OFFLINE_HETZNER_NAMESERVERS)}
        elif args.typ == "tls:index/privateKey:PrivateKey":
            state["privateKeyPem"] = _secret(_offline_pem("PRIVATE KEY", args.name))
        elif args.typ == "tls:index/certRequest:CertRequest":
            state["certRequestPem"] = _offline_pem("CERTIFICATE REQUEST", args.name)
        elif args.typ == "cloudflare:index/originCaCertificate:OriginCaCertificate":
            state.update(certificate=_offline_pem("CERTIFICATE", args.name), expiresOn=OFFLINE_ORIGIN_CA_EXPIRY)
        elif args.typ == "acme:index/registration:Registration":
            state["accountKeyPem"] = _secret(_offline_pem("PRIVATE KEY", args.name))
        elif args.typ == "acme:index/certificate:Certificate":
            state.update(
                certificatePem=_offline_pem("CERTIFICATE", args.name),
                issuerPem=_offline_pem("CERTIFICATE", f"{args.name} issuer"),
                privateKeyPem=_secret(_offline_pem("PRIVATE KEY", args.name)),
                certificateNotBefore=OFFLINE_PUBLIC_ISSUED,
                certificateNotAfter=OFFLINE_PUBLIC_EXPIRY,
            )
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # the mock engine wants a plain dict
        self.calls.append(args.token)
        if args.token == "cloudflare:index/getZone:getZone":
            name = args.args["filter"]["name"]
            zone_id = hashlib.md5(f"offline zone {name}".encode()).hexdigest()
            return {"id": zone_id, "zoneId": zone_id, "name": name, "nameServers": []}
        if args.token == "cloudflare:index/getDnsRecords:getDnsRecords":
            return {"results": self.zone_records}
        if args.token == "hcloud:index/getSshKeys:getSshKeys":
            return {"sshKeys": self.ssh_keys}
        if args.token == "hcloud:index/getZoneRrsets:getZoneRrsets":
            return {"rrsets": self.zone_rrsets}
        if args.token == "cloudflare:index/getZoneSetting:getZoneSetting":
            return {"id": args.args["settingId"], "settingId": args.args["settingId"], "value": self.ssl_mode}
        if args.token == "cloudflare:index/getIpRanges:getIpRanges":
            return {"ipv4Cidrs": list(self.ip_ranges[0]), "ipv6Cidrs": list(self.ip_ranges[1])}
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, keeping every request as the engine would receive it (secrets still marked)."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[tuple[Any, Any]] = []
        self.types_by_urn: dict[str, str] = {}
        self.stack_outputs: dict[str, Any] = {}
        self.revealed_stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's MockMonitor is untyped
        self.requests.append((request, response))
        self.types_by_urn[response.urn] = request.type
        return response

    def recorded(self) -> list[Recorded]:
        """Every resource, sorted by name: component and children names share a prefix, so they stay together."""
        recorded = [
            Recorded(
                type=request.type,
                name=request.name,
                inputs=_plain(json_format.MessageToDict(request.object)),
                revealed=_plain(json_format.MessageToDict(request.object), reveal=True),
                options={
                    "protect": request.protect,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "ignoreChanges": list(request.ignoreChanges),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "replacementTrigger": (
                        json_format.MessageToDict(request.replacement_trigger)
                        if request.HasField("replacement_trigger")
                        else None
                    ),
                    "importId": request.importId,
                    "dependsOn": list(request.dependencies),
                },
                parent_type=self.types_by_urn.get(request.parent, ""),
                urn=response.urn,
                id=response.id,
            )
            for request, response in self.requests
            if request.type != "pulumi:pulumi:Stack"
        ]
        return sorted(recorded, key=lambda resource: resource.name)


def _plain(value: Any, reveal: bool = False) -> Any:
    """Engine values to plain JSON: secrets become "[secret]" (or their value), whole floats ints."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _plain(value["value"], reveal) if reveal else SECRET
        return {key: _plain(item, reveal) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, reveal) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def evaluate(
    stack: str = "prod",
    *,
    project: Project | None = None,
    overrides: Mapping[str, str | None] | None = None,
    program_fn: Callable[[Project], Awaitable[None] | None] = program.run,
    clouds: OfflineClouds | None = None,
) -> Evaluation:
    """Run the program once under the mock engine, in a context of its own, so nothing leaks from one
    run into the next. Tests pass their own `program_fn` to await the program's Outputs, or their own
    `clouds` to change what the clouds answer. The project: the one around the working directory."""
    project = project or Project.find()
    values, secret_keys, placeholders = stack_config(project, stack, overrides or {})
    if clouds is None and values.get(f"{PROJECT}:role") == "rehearsal":
        # The rehearsal reads the prod stack: evaluate that stack offline too, from its own file
        # (`org/project/prod` is the local `prod`).
        prod = evaluate(values[f"{PROJECT}:prodStack"].split("/")[-1], project=project).monitor
        secret = [name for name, value in prod.stack_outputs.items() if value == SECRET]
        clouds = OfflineClouds(prod.revealed_stack_outputs, secret)
    monitor = RecordingMonitor(clouds or OfflineClouds())

    def run() -> None:
        # Who runs the real `pulumi up`, and when, only it knows: placeholders (deployed.py).
        os.environ[CHANGED_AT_VARIABLE], os.environ[CHANGED_BY_VARIABLE] = OFFLINE_CHANGED_AT, OFFLINE_CHANGED_BY
        pulumi.runtime.set_all_config(values, secret_keys)
        pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        # The SDK keeps pending outputs in a set that every context shares by default: a run that
        # failed would leave its failed tasks there for the next run to trip over.
        SETTINGS.outputs = set()
        _sync_await(run_pulumi_func(lambda: program_fn(project)))
        # The stack outputs, serialized as the engine would receive them (secrets still marked).
        root = get_root_resource()
        assert isinstance(root, Stack)
        outputs = json_format.MessageToDict(_sync_await(rpc.serialize_properties(root.outputs, {})))
        monitor.stack_outputs, monitor.revealed_stack_outputs = _plain(outputs), _plain(outputs, reveal=True)

    saved = {name: os.environ.get(name) for name in (CHANGED_AT_VARIABLE, CHANGED_BY_VARIABLE)}
    try:
        contextvars.Context().run(run)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Evaluation(monitor, placeholders, values)


@dataclass(frozen=True)
class Evaluation:
    monitor: RecordingMonitor
    placeholders: list[Placeholder]
    config: dict[str, str]


def plan(
    stack: str = "prod",
    *,
    mode: str | None = None,
    services: str | None = None,
    overrides: Mapping[str, str] | None = None,
    project: Project | None = None,
    clouds: OfflineClouds | None = None,
) -> PlanResult:
    """The plan of a stack; `mode` and `services` override the stack's, `overrides` any config key;
    `clouds` what the clouds answer (the lab's, for one: its edge stands in for Cloudflare's)."""
    overrides = dict(overrides or {})
    if mode is not None:
        overrides["mode"] = mode
    if services is not None:
        overrides["services"] = services
    evaluation = evaluate(stack, project=project, overrides=overrides, clouds=clouds)
    resources = evaluation.monitor.recorded()
    return PlanResult(
        stack=stack,
        # The rehearsal's own outputs say its mode (always failover), not the project's default.
        mode=str(evaluation.monitor.stack_outputs.get(Output.MODE) or evaluation.config[f"{PROJECT}:mode"]),
        resources=resources,
        outputs=evaluation.monitor.stack_outputs,
        placeholders=evaluation.placeholders,
        artifacts=_artifacts(resources, evaluation.monitor.revealed_stack_outputs),
    )


def _artifacts(resources: list[Recorded], revealed_outputs: Mapping[str, Any]) -> dict[str, str]:
    """The files the program renders, taken from what it hands the engine, each marked as offline.
    The rehearsal stack renders one: its site file."""
    by_type = {resource.type: resource.revealed or {} for resource in resources}
    stdin = {resource.name: (resource.revealed or {}).get("stdin", "") for resource in resources}
    if "hcloud:index/server:Server" not in by_type:
        return {SITE_FILE: _mark(stdin[REHEARSAL_COMMAND])}
    user_data = by_type["hcloud:index/server:Server"]["userData"]
    wireguard_server = next(
        item["content"] for item in yaml.safe_load(user_data)["write_files"] if item["path"] == WIREGUARD_CONFIG_PATH
    )
    return {
        CADDYFILE: _mark(stdin[CADDY_COMMAND]),
        CLOUD_INIT: _mark(user_data),
        WG_SERVER: _mark(wireguard_server),
        WG_MACMINI: _mark(revealed_outputs[Output.MACMINI_WIREGUARD_CONFIG]),
    }


def _mark(text: str) -> str:
    """Add the offline marker as a comment; cloud-init's first line must stay `#cloud-config`."""
    first, _, rest = text.partition("\n")
    if first == "#cloud-config":
        return f"{first}\n# {OFFLINE_MARK}\n{rest}"
    return f"# {OFFLINE_MARK}\n{text}"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as `field.sub[0]` paths, for field-by-field comparison."""
    if isinstance(value, dict) and value:
        return {
            path: leaf
            for key, item in value.items()
            for path, leaf in flatten(item, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list) and value:
        return {
            path: leaf for index, item in enumerate(value) for path, leaf in flatten(item, f"{prefix}[{index}]").items()
        }
    return {prefix: value}


def diff(before: PlanResult, after: PlanResult) -> list[dict[str, Any]]:
    """Every input field that differs between two plans: resource, field, before, after.

    Two evaluated plans are compared on the secrets' values, so a changed secret shows up (as
    "[secret]" on both sides); a saved plan has only "[secret]", so there secrets compare equal."""
    changes: list[dict[str, Any]] = []
    old = {resource.name: resource for resource in before.resources}
    new = {resource.name: resource for resource in after.resources}
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            changes.append({"resource": name, "field": "(resource)", "before": "exists", "after": "deleted"})
            continue
        if name not in old:
            changes.append({"resource": name, "field": "(resource)", "before": "absent", "after": "created"})
            continue
        old_shown, new_shown = flatten(old[name].inputs), flatten(new[name].inputs)
        old_revealed, new_revealed = old_shown, new_shown
        if old[name].revealed is not None and new[name].revealed is not None:
            old_revealed, new_revealed = flatten(old[name].revealed), flatten(new[name].revealed)
        for field_path in sorted(old_revealed.keys() | new_revealed.keys()):
            if old_revealed.get(field_path) != new_revealed.get(field_path):
                changes.append(
                    {
                        "resource": name,
                        "field": field_path,
                        "before": old_shown.get(field_path),
                        "after": new_shown.get(field_path),
                    }
                )
    return changes


# The inputs that carry a whole rendered file: the comparison shows them as that file's unified diff.
FILE_FIELDS = {
    (CADDY_COMMAND, "stdin"): CADDYFILE,
    (STANDBY_SERVER, "userData"): CLOUD_INIT,
    (REHEARSAL_COMMAND, "stdin"): SITE_FILE,
}
_PRIVATE_KEY_LINE = re.compile(r"^(\s*PrivateKey\s*=\s*)\S+", re.M)


def redacted(text: str) -> str:
    """A rendered file as it may be printed: its WireGuard private keys as [secret]."""
    return _PRIVATE_KEY_LINE.sub(lambda match: match.group(1) + SECRET, text)


def compare(before: PlanResult, after: PlanResult, before_label: str, after_label: str) -> dict[str, Any]:
    """What ``after`` changes against ``before``, as an operator reviews it: the field changes (diff),
    resources created and deleted with their inputs, a unified diff of each rendered file that differs
    (private keys redacted), the outputs that differ, and a count in Pulumi's summary form."""
    changes = diff(before, after)
    old = {resource.name: resource for resource in before.resources}
    new = {resource.name: resource for resource in after.resources}
    created = [{"resource": n, "type": new[n].type, "inputs": new[n].inputs} for n in sorted(new.keys() - old.keys())]
    deleted = [{"resource": n, "type": old[n].type, "inputs": old[n].inputs} for n in sorted(old.keys() - new.keys())]
    updated = {change["resource"] for change in changes if change["field"] != "(resource)"}
    files = {}
    for name in sorted(before.artifacts.keys() | after.artifacts.keys()):
        old_text, new_text = (redacted(plan.artifacts.get(name, "")) for plan in (before, after))
        if old_text != new_text:
            lines = difflib.unified_diff(
                old_text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                f"{name} ({before_label})",
                f"{name} ({after_label})",
            )
            files[name] = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    outputs = [
        {"output": key, "before": before.outputs.get(key), "after": after.outputs.get(key)}
        for key in sorted(before.outputs.keys() | after.outputs.keys())
        if before.outputs.get(key) != after.outputs.get(key)
    ]
    summary = {
        "create": len(created),
        "update": len(updated),
        "delete": len(deleted),
        "same": len((old.keys() & new.keys()) - updated),
    }
    return {
        "summary": summary,
        "changes": changes,
        "created": created,
        "deleted": deleted,
        "files": files,
        "outputs": outputs,
    }
