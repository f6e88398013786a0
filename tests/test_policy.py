"""The policy pack (policy/): every policy on the real inputs the offline plan records for each stack and
mode (they pass), and on those inputs changed to break it (they fail, with a message that says how to fix it).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib
import random
import runpy
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mana_infra import names
from mana_infra import plan as offline

from .support import PROJECT_DIR, plan_in, plan_of, unavailable

POLICY_DIR = PROJECT_DIR / "policy"
sys.path.insert(0, str(POLICY_DIR))
policies = importlib.import_module("mana_policies")

STACKS = sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in PROJECT_DIR.glob("Pulumi.*.yaml"))
MODES = ("tunnel", "failover")
CASES = [(stack, mode) for stack in STACKS for mode in MODES]
PLACEHOLDER_TOKENS = tuple(p.value for p in offline.PLACEHOLDERS if p.key in ("hcloud:token", "cloudflare:apiToken"))
# Shaped like real tokens, made up here: 64 alphanumerics (Hetzner), 40 of [A-Za-z0-9_-] (Cloudflare).
FAKE_HCLOUD_TOKEN = "Hz7kQ2mN9pR4sT6vW8xY1aB3cD5eF7gH9jK2lM4nP6qR8sT1uV3wX5yZ7aB9cD2e"
FAKE_CLOUDFLARE_TOKEN = "Cf_9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT-uVwXyZ"
assert len(FAKE_HCLOUD_TOKEN) == 64 and len(FAKE_CLOUDFLARE_TOKEN) == 40


def origin_name_of(stack: str) -> str:
    """As policy/__main__.py finds it in the stack's config: `originName`, else `vps.<zone>`."""
    config = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))["config"]
    return config.get("mana-infra:originName") or f"vps.{config['mana-infra:zone']}"


@functools.cache
def recorded(stack: str, mode: str) -> tuple[offline.Recorded, ...]:
    """The plan's resources in a state of the standby (support.STATES: "failover-dns" is failover with
    the DNS-only way)."""
    return tuple(plan_in(mode, stack).resources)


# Each stack's Caddy command: what "the remote command" means below (prod has its certificates' too).
CADDY_COMMAND = {"prod": names.CADDY_COMMAND, "failover": names.REHEARSAL_COMMAND}


def one(stack: str, mode: str, resource_type: str, name: str | None = None) -> offline.Recorded:
    if resource_type == policies.REMOTE_COMMAND and name is None:
        name = CADDY_COMMAND[stack]
    matches = [r for r in recorded(stack, mode) if r.type == resource_type and (name is None or r.name == name)]
    assert len(matches) == 1, (resource_type, name, [r.name for r in matches])
    return copy.deepcopy(matches[0])


def run(
    validate: Callable[..., None],
    resource: offline.Recorded,
    stack: str = "prod",
    *,
    props: dict[str, Any] | None = None,
    protect: bool | None = None,
    **context: Any,
) -> list[str]:
    """A policy on one recorded resource: its revealed inputs (what a policy sees) unless `props` is given."""
    messages: list[str] = []
    options = policies.Options(protect=resource.options["protect"] if protect is None else protect)
    validate(
        resource.type, props if props is not None else resource.revealed, options, stack, messages.append, **context
    )
    return messages


def run_on_plan(validate: Callable[..., None], stack: str, mode: str, **context: Any) -> tuple[list[str], int]:
    messages: list[str] = []
    for resource in recorded(stack, mode):
        messages += run(validate, resource, stack, **context)
    return messages, len(recorded(stack, mode))


def test_the_stack_files_give_cases() -> None:
    assert "prod" in STACKS and len(CASES) >= 2


# --- every policy passes on the real plans -----------------------------------------------------------


@pytest.mark.parametrize(("stack", "mode"), CASES)
@pytest.mark.parametrize("spec", policies.POLICIES, ids=lambda spec: spec.name)
def test_every_policy_passes_on_the_offline_plan(spec: Any, stack: str, mode: str) -> None:
    context: dict[str, Any] = {}
    if spec.validate is policies.no_tokens_on_server:
        context["known_tokens"] = PLACEHOLDER_TOKENS
    if spec.validate is policies.inventory_records_flip_in_place:
        context["origin_name"] = origin_name_of(stack)
    messages, count = run_on_plan(spec.validate, stack, mode, **context)
    assert messages == [] and count > 0


def test_the_policies_see_what_they_check() -> None:
    """The passing cases are not vacuous: the plans hold every resource type the policies look at (a stack
    need not have all: the rehearsal stack builds no server), with the fields they read."""
    seen: set[str] = set()
    for stack, mode in CASES:
        types = {r.type for r in recorded(stack, mode)}
        seen |= types
        assert {policies.REMOTE_COMMAND, policies.DNS_RECORD} <= types, stack
        if policies.SERVER in types:
            assert "userData" in one(stack, mode, policies.SERVER).revealed
        assert {"create", "stdin"} <= one(stack, mode, policies.REMOTE_COMMAND).revealed.keys()
    assert {
        policies.FIREWALL,
        policies.SERVER,
        policies.PRIMARY_IP,
        policies.REMOTE_COMMAND,
        policies.DNS_RECORD,
    } <= seen


# --- 1. SSH ----------------------------------------------------------------------------------------------


def ssh_rule(firewall: offline.Recorded) -> dict[str, Any]:
    (rule,) = [r for r in firewall.revealed["rules"] if r.get("port") == "22"]
    return rule


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"sourceIps": ["0.0.0.0/0"]}, "0.0.0.0/0"),
        ({"sourceIps": ["192.0.2.0/24", "::/0"]}, "::/0"),
        ({"sourceIps": ["0::0/0"]}, "0::0/0"),
        ({"sourceIps": ["0.0.0.0/0"], "port": "any"}, "0.0.0.0/0"),
        ({"sourceIps": ["0.0.0.0/0"], "port": "20-30"}, "0.0.0.0/0"),
        ({"sourceIps": ["0.0.0.0/0"], "protocol": "TCP", "direction": "IN"}, "0.0.0.0/0"),
    ],
)
def test_ssh_open_to_the_world_fails(mode: str, change: dict[str, Any], shown: str) -> None:
    firewall = one("prod", mode, policies.FIREWALL)
    ssh_rule(firewall).update(change)
    (message,) = run(policies.ssh_not_open_to_world, firewall)
    assert f"opens SSH (22/tcp) to {shown}" in message
    assert "pulumi config set --path 'sshAllowedCidrs[0]'" in message


def test_ssh_rule_without_a_port_counts_as_every_port() -> None:
    firewall = one("prod", "tunnel", policies.FIREWALL)
    rule = ssh_rule(firewall)
    del rule["port"]
    rule["sourceIps"] = ["::/0"]
    assert len(run(policies.ssh_not_open_to_world, firewall)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"port": "2222"},  # another port
        {"port": "23-443"},  # a range without 22
        {"protocol": "udp"},  # not SSH
        {"direction": "out"},  # outbound rules have no sources to open
    ],
)
def test_world_open_rules_that_are_not_ssh_pass(change: dict[str, Any]) -> None:
    firewall = one("prod", "tunnel", policies.FIREWALL)
    ssh_rule(firewall).update({"sourceIps": ["0.0.0.0/0", "::/0"], **change})
    assert run(policies.ssh_not_open_to_world, firewall) == []


# --- 2. protection ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("resource_type", "name", "kind"),
    [
        (policies.PRIMARY_IP, "standby-ipv4", "primary IP"),
        (policies.PRIMARY_IP, "standby-ipv6", "primary IP"),
        (policies.ZONE, "secondary-dns-zone", "Hetzner DNS zone"),
    ],
)
def test_unprotected_prod_resources_fail(mode: str, resource_type: str, name: str, kind: str) -> None:
    resource = one("prod", mode, resource_type, name)
    assert resource.options["protect"] is True and resource.revealed["deleteProtection"] is True

    (message,) = run(policies.prod_protected, resource, protect=False)
    assert f"the {kind} of stack 'prod' lacks Pulumi's `protect` option." in message
    assert "pulumi config set protect true" in message

    resource.revealed["deleteProtection"] = False
    (message,) = run(policies.prod_protected, resource)
    assert "lacks Hetzner's `deleteProtection`" in message

    (message,) = run(policies.prod_protected, resource, protect=False)
    assert "lacks Pulumi's `protect` option and Hetzner's `deleteProtection`" in message


def test_the_plan_with_protect_false_fails_in_prod_only() -> None:
    """The real program with `protect: false`: both guards go, and the policy says so for prod only."""
    resources = [
        r for r in plan_of("prod", protect="false").resources if r.type in (policies.PRIMARY_IP, policies.ZONE)
    ]
    assert len(resources) == 3
    for resource in resources:
        assert len(run(policies.prod_protected, resource)) == 1
        assert run(policies.prod_protected, resource, stack="staging") == []
        assert len(run(policies.prod_protected, resource, stack="staging", protected_stacks=("staging",))) == 1


def test_other_resources_need_no_protection() -> None:
    """The server above all: replacing it is how its image, keys and user data change."""
    assert one("prod", "tunnel", policies.SERVER).options["protect"] is False
    for resource in recorded("prod", "tunnel"):
        if resource.type not in (policies.PRIMARY_IP, policies.ZONE):
            assert run(policies.prod_protected, resource, protect=False) == []


def test_the_stack_comes_from_the_urn() -> None:
    urn = "urn:pulumi:prod::mana-infra::mana-infra:index:StandbyServer$hcloud:index/server:Server::standby-server"
    assert policies.stack_of_urn(urn) == "prod"
    assert policies.stack_of_urn("urn:pulumi:org/staging::p::t::n") == "org/staging"
    assert policies.stack_of_urn("not-a-urn") == ""


# --- 3. tokens ----------------------------------------------------------------------------------------------


def with_text(resource: offline.Recorded, field: str, extra: str) -> dict[str, Any]:
    props = copy.deepcopy(resource.revealed)
    props[field] = props[field] + extra
    return props


TOKEN_LEAKS = [
    pytest.param(
        f"    HCLOUD_TOKEN={FAKE_HCLOUD_TOKEN}\n", ["'HCLOUD_TOKEN'", "64-character Hetzner"], id="hcloud-env"
    ),
    pytest.param(
        f"export CLOUDFLARE_API_TOKEN='{FAKE_CLOUDFLARE_TOKEN}'\n",
        ["'CLOUDFLARE_API_TOKEN'", "40-character Cloudflare"],
        id="cloudflare-env",
    ),
    pytest.param(f"token: {FAKE_HCLOUD_TOKEN}\n", ["64-character Hetzner"], id="bare-hetzner-token"),
    pytest.param(f"auth {FAKE_CLOUDFLARE_TOKEN}\n", ["40-character Cloudflare"], id="bare-cloudflare-token"),
    pytest.param("# pulumi config get hcloud:token\n", ["'hcloud:token'"], id="config-key"),
    pytest.param("cfg = {apiToken: x}\n", ["'apiToken'"], id="provider-argument"),
    pytest.param("dns cloudflare {env.CF_API_TOKEN}\n", ["'CF_API_TOKEN'"], id="caddy-dns-module"),
    pytest.param("MY_HCLOUD_TOKEN=x\n", ["'HCLOUD_TOKEN'"], id="prefixed-name"),
    pytest.param("HETZNER_API_TOKEN=x\n", ["'HETZNER_API_TOKEN'"], id="lego-hetzner-env"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("extra", "expected"), TOKEN_LEAKS)
def test_a_token_in_user_data_fails(mode: str, extra: str, expected: list[str]) -> None:
    server = one("prod", mode, policies.SERVER)
    (message,) = run(policies.no_tokens_on_server, server, props=with_text(server, "userData", extra))
    assert message.startswith("userData contains ")
    for part in expected:
        assert part in message
    assert "line " in message and "pulumi config set --secret hcloud:token" in message
    assert FAKE_HCLOUD_TOKEN not in message and FAKE_CLOUDFLARE_TOKEN not in message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("field", ["create", "stdin", "update", "delete"])
def test_a_token_in_the_remote_command_fails(mode: str, field: str) -> None:
    command = one("prod", mode, policies.REMOTE_COMMAND)
    props = copy.deepcopy(command.revealed)
    props[field] = props.get(field, "") + f"\ncurl -H 'Authorization: Bearer {FAKE_CLOUDFLARE_TOKEN}' ...\n"
    (message,) = run(policies.no_tokens_on_server, command, props=props)
    assert message.startswith(f"{field} contains a 40-character Cloudflare-token-shaped string at line ")
    assert FAKE_CLOUDFLARE_TOKEN not in message


def test_a_token_in_the_remote_commands_environment_fails() -> None:
    command = one("prod", "failover", policies.REMOTE_COMMAND)
    props = {**command.revealed, "environment": {"HCLOUD_TOKEN": "x"}}
    (message,) = run(policies.no_tokens_on_server, command, props=props)
    assert message.startswith("environment.HCLOUD_TOKEN contains the token name 'HCLOUD_TOKEN'")


def test_a_configured_token_value_is_found_whatever_its_shape() -> None:
    """The provider's own token (from the stack config, the provider or the environment) is found verbatim."""
    token = "not-shaped-like-any-token-0123456789"
    server = one("prod", "tunnel", policies.SERVER)
    props = with_text(server, "userData", f"write: {token}\n")
    assert run(policies.no_tokens_on_server, server, props=props) == []
    (message,) = run(policies.no_tokens_on_server, server, props=props, known_tokens=(token,))
    assert "the value of a configured provider token at line " in message and token not in message


def test_a_leak_is_reported_once_per_field_with_every_finding() -> None:
    server = one("prod", "tunnel", policies.SERVER)
    props = with_text(server, "userData", f"HCLOUD_TOKEN={FAKE_HCLOUD_TOKEN}\nCF_API_TOKEN={FAKE_CLOUDFLARE_TOKEN}\n")
    (message,) = run(policies.no_tokens_on_server, server, props=props)
    findings = message.split(". The VPS needs", 1)[0].removeprefix("userData contains ").split("; ")
    assert [finding.split(" at line ")[0] for finding in findings] == [
        "the token name 'HCLOUD_TOKEN'",
        "the token name 'CF_API_TOKEN'",
        "a 64-character Hetzner-token-shaped string",
        "a 40-character Cloudflare-token-shaped string",
    ]


def random_wireguard_keys(count: int) -> Iterator[str]:
    generator = random.Random(20240601)
    for _ in range(count):
        yield base64.b64encode(generator.randbytes(32)).decode()
    # The case a boundary-less 40-character pattern would match: no `+` or `/` in the whole key.
    yield "kTsYWxMeQyWeupcvqAL0vYLBxi3OZs435CBu0wPmPWk="
    yield "A" * 8 + "b3" * 17 + "c="


def test_certificates_and_their_keys_are_not_tokens() -> None:
    """The standby's certificates go to the server on purpose; their base64 lines often have a token's
    shape, and must never block a deploy (a token's name or value in the same text still does)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = "".join(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
        for _ in range(20)
    )
    assert any(policies._TOKEN_SHAPES[0][1].search(line) for line in pem.splitlines())  # the shape is there
    assert list(policies.token_findings(pem)) == []
    last = pem.count("\n") + 1
    findings = list(policies.token_findings(pem + f"export HCLOUD_TOKEN={FAKE_HCLOUD_TOKEN}\n"))
    assert findings == [
        f"the token name 'HCLOUD_TOKEN' at line {last}",
        f"a 64-character Hetzner-token-shaped string at line {last}",
    ]


def test_wireguard_keys_and_digests_are_not_tokens() -> None:
    keys = list(random_wireguard_keys(3000))
    assert all(len(key) == 44 and key.endswith("=") for key in keys)
    text = "\n".join(f"PrivateKey = {key}\nPublicKey={key}\n# {key}" for key in keys)
    text += "\n" + "\n".join(hashlib.sha256(key.encode()).hexdigest() for key in keys[:100])  # 64 hex characters
    text += "\n" + "\n".join(hashlib.sha1(key.encode()).hexdigest() for key in keys[:100])  # 40 hex characters
    text += "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIABiZJ6szYEdqi+nfpuzcWi7hP1qsB56lUx6pxz3HN1l operator\n"
    assert list(policies.token_findings(text)) == []


def test_only_the_server_and_the_command_are_searched() -> None:
    firewall = one("prod", "tunnel", policies.FIREWALL)
    props = {**firewall.revealed, "userData": f"HCLOUD_TOKEN={FAKE_HCLOUD_TOKEN}"}
    assert run(policies.no_tokens_on_server, firewall, props=props) == []


# --- 4. inventory records --------------------------------------------------------------------------------


def inventory_record(mode: str) -> offline.Recorded:
    return one("prod", mode, policies.DNS_RECORD, "dns-auth.mana.how")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("origin_name", ["vps.mana.how", None])
def test_an_inventory_record_that_changes_type_fails(mode: str, origin_name: str | None) -> None:
    record = inventory_record(mode)
    record.revealed.update(type="A", content="203.0.113.10")
    (message,) = run(policies.inventory_records_flip_in_place, record, origin_name=origin_name)
    assert message.startswith("record auth.mana.how has type 'A': inventory records must stay CNAME")
    assert "mana_infra/records.py" in message


@pytest.mark.parametrize(("ttl", "fails"), [(60, False), (300, False), (301, True), (3600, True)])
def test_a_dns_only_record_needs_a_short_ttl(ttl: int, fails: bool) -> None:
    record = inventory_record("failover-dns")
    assert record.revealed["proxied"] is False
    record.revealed["ttl"] = ttl
    messages = run(policies.inventory_records_flip_in_place, record, origin_name="vps.mana.how")
    if fails:
        (message,) = messages
        assert f"record auth.mana.how is DNS-only with TTL {ttl}: failover records need TTL <= 300" in message
        assert "pulumi config set failoverTtl 60" in message
    else:
        assert messages == []


def test_the_ttl_bound_is_one_rule_for_the_config_and_the_pack() -> None:
    """`failoverTtl: 600` was accepted by the plan and blocked only by the pack in a preview with
    secrets: both read mana_infra/limits.py now, so the plan refuses it first, with the same bound."""
    from mana_infra.errors import InputError
    from mana_infra.limits import FAILOVER_TTL_MAX

    assert policies.MAX_FAILOVER_TTL == FAILOVER_TTL_MAX
    with pytest.raises(InputError, match=f"failoverTtl: '600' is not an integer in 60-{FAILOVER_TTL_MAX}"):
        offline.plan("prod", mode="failover", overrides={"failoverTtl": "600", "failoverVia": "dns"})
    # At the bound, the program's records pass the pack: the origin's and the probe's too.
    resources = [
        r
        for r in offline.plan(
            "prod", mode="failover", overrides={"failoverTtl": str(FAILOVER_TTL_MAX), "failoverVia": "dns"}
        ).resources
        if r.type == policies.DNS_RECORD
    ]
    assert not [r for r in resources if run(policies.inventory_records_flip_in_place, r, origin_name="vps.mana.how")]


def test_proxied_records_and_the_origin_are_not_held_to_the_ttl() -> None:
    proxied = inventory_record("tunnel")
    proxied.revealed["ttl"] = 3600
    assert proxied.revealed["proxied"] is True
    assert run(policies.inventory_records_flip_in_place, proxied) == []
    for name in ("dns-origin-a", "dns-origin-aaaa"):
        origin = one("prod", "failover", policies.DNS_RECORD, name)
        origin.revealed["ttl"] = 3600
        assert run(policies.inventory_records_flip_in_place, origin, origin_name="vps.mana.how") == []
        assert run(policies.inventory_records_flip_in_place, origin) == []  # the vps.<zone> default
        # With another origin name set, vps.mana.how is an inventory host like any other.
        assert len(run(policies.inventory_records_flip_in_place, origin, origin_name="edge.mana.how")) == 2
    # The home's name (Plan C) is a name of its own as the origin's is, by default and as configured.
    home = {"homeAddress": "198.51.100.40", "homeAddress6": "2001:db8:1a::20"}
    for record in offline.plan("prod", overrides=home).resources:
        if record.type == policies.DNS_RECORD and record.inputs["name"] == "home.mana.how":
            assert run(policies.inventory_records_flip_in_place, record) == []
            assert run(policies.inventory_records_flip_in_place, record, home_name="home.mana.how") == []
            assert len(run(policies.inventory_records_flip_in_place, record, home_name="plan-c.mana.how")) == 1


# --- the pack, as the CLI runs it --------------------------------------------------------------------------


def require_pulumi_policy() -> Any:
    try:
        return importlib.import_module("pulumi_policy")
    except ImportError:
        unavailable("needs pulumi-policy (requirements-dev.txt)")


def load_pack() -> dict[str, Any]:
    require_pulumi_policy()
    return runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="mana_policy_pack")


class _StartedServingError(Exception):
    """Raised where PolicyPack would start serving: everything before it (checks, servicer) ran for real."""


def serve_pack(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run policy/__main__.py as the CLI does, with PolicyPack's gRPC server swapped for a stand-in,
    and return the analyzer servicer the CLI would talk to."""
    pulumi_policy = require_pulumi_policy()
    policy_module = sys.modules[pulumi_policy.PolicyPack.__module__]
    captured: dict[str, Any] = {}

    class Server:
        def add_insecure_port(self, address: str) -> int:
            return 0

        def start(self) -> None:
            raise _StartedServingError

    monkeypatch.setattr(policy_module.grpc, "server", lambda *args, **kwargs: Server())
    monkeypatch.setattr(
        policy_module.analyzer_pb2_grpc,
        "add_AnalyzerServicer_to_server",
        lambda servicer, server: captured.setdefault("servicer", servicer),
    )
    with pytest.raises(_StartedServingError):
        runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    return captured["servicer"]


def test_the_pack_has_the_four_mandatory_policies() -> None:
    pulumi_policy = require_pulumi_policy()
    pack = load_pack()
    built = pack["policies"]()
    assert [p.name for p in built] == [spec.name for spec in policies.POLICIES]
    assert len(built) == 4
    assert all(p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in built)
    assert all(p.description for p in built)
    assert (POLICY_DIR / "PulumiPolicy.yaml").read_text().count("runtime") == 1
    # Each configurable policy gets its schema (a schema under another name would be dropped silently).
    assert set(pack["CONFIG_SCHEMAS"]) <= {p.name for p in built}
    assert all(p.config_schema is not None for p in built if p.name in pack["CONFIG_SCHEMAS"])


def analyze_request(
    resource: offline.Recorded, stack: str, props: dict[str, Any] | None = None, provider_token: str | None = None
) -> Any:
    from google.protobuf import json_format, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2

    properties = struct_pb2.Struct()
    json_format.ParseDict(props if props is not None else resource.revealed, properties)
    urn = f"urn:pulumi:{stack}::mana-infra::{resource.parent_type}${resource.type}::{resource.name}"
    request = analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        name=resource.name,
        urn=urn,
        properties=properties,
        options=analyzer_pb2.AnalyzerResourceOptions(protect=resource.options["protect"]),
    )
    if provider_token is not None:
        provider_props = struct_pb2.Struct()
        provider_props.update({"token": provider_token})
        request.provider.CopyFrom(
            analyzer_pb2.AnalyzerProviderResource(
                type="pulumi:providers:hcloud",
                name="default",
                urn=f"urn:pulumi:{stack}::mana-infra::pulumi:providers:hcloud::default",
                properties=provider_props,
            )
        )
    return request


def test_the_pack_serves_the_policies_to_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through pulumi_policy's own analyzer: the info the CLI reads, and the real plan analyzed clean."""
    servicer = serve_pack(monkeypatch)
    from pulumi.runtime.proto import analyzer_pb2

    info = servicer.GetAnalyzerInfo(None, None)
    assert info.name == "mana-infra-guard-rails"
    assert [(p.name, p.enforcementLevel) for p in info.policies] == [
        (spec.name, analyzer_pb2.MANDATORY) for spec in policies.POLICIES
    ]

    for stack, mode in CASES:
        for resource in recorded(stack, mode):
            response = servicer.Analyze(analyze_request(resource, stack), None)
            assert list(response.diagnostics) == [], (resource.name, response.diagnostics)


def test_the_pack_reports_violations_as_mandatory(monkeypatch: pytest.MonkeyPatch) -> None:
    servicer = serve_pack(monkeypatch)
    from pulumi.runtime.proto import analyzer_pb2

    server = one("prod", "tunnel", policies.SERVER)
    props = with_text(server, "userData", "write: provider-token-from-the-stack-config\n")
    response = servicer.Analyze(
        analyze_request(server, "prod", props, provider_token="provider-token-from-the-stack-config"), None
    )
    (leak,) = response.diagnostics
    assert leak.policyName == "no-provider-tokens-on-the-server" and leak.enforcementLevel == analyzer_pb2.MANDATORY
    assert "the value of a configured provider token" in leak.message
    assert "provider-token-from-the-stack-config" not in leak.message

    address = one("prod", "tunnel", policies.PRIMARY_IP, "standby-ipv4")
    (unprotected,) = servicer.Analyze(
        analyze_request(address, "prod", {**address.revealed, "deleteProtection": False}), None
    ).diagnostics
    assert unprotected.policyName == "prod-ips-and-zone-protected"
    assert unprotected.enforcementLevel == analyzer_pb2.MANDATORY
    assert "pulumi config set protect true" in unprotected.message
    # The stack comes from the URN: the same address in another stack need not be protected.
    response = servicer.Analyze(
        analyze_request(address, "staging", {**address.revealed, "deleteProtection": False}), None
    )
    assert list(response.diagnostics) == []

    firewall = one("prod", "failover", policies.FIREWALL)
    ssh_rule(firewall)["sourceIps"] = ["0.0.0.0/0"]
    record = inventory_record("failover-dns")
    record.revealed["ttl"] = 3600
    for resource, policy_name in ((firewall, "ssh-not-open-to-the-world"), (record, "inventory-records-flip-in-place")):
        (diagnostic,) = servicer.Analyze(analyze_request(resource, "prod"), None).diagnostics
        assert diagnostic.policyName == policy_name and diagnostic.enforcementLevel == analyzer_pb2.MANDATORY


def test_the_policy_requirements_are_pinned() -> None:
    lines = [
        line.strip()
        for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all("==" in line for line in lines)
    pins = dict(line.split("==") for line in lines)
    assert "pulumi-policy" in pins
    program_pins = dict(
        line.strip().split("==")
        for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["pulumi"] == program_pins["pulumi"]


def test_path_import_is_clean() -> None:
    assert Path(policies.__file__).parent == POLICY_DIR


def test_the_pack_runs_under_pulumis_policy_launcher() -> None:
    """As the CLI starts it: `python -m pulumi.policy <engine> policy/` serves on a loopback port, and a
    gRPC client gets the four policies and a violation from it."""
    require_pulumi_policy()
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the policy pack did not start within 30 s"
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert [p.name for p in info.policies] == [spec.name for spec in policies.POLICIES]
            firewall = one("prod", "tunnel", policies.FIREWALL)
            ssh_rule(firewall)["sourceIps"] = ["::/0"]
            (diagnostic,) = stub.Analyze(analyze_request(firewall, "prod"), timeout=10).diagnostics
            assert diagnostic.policyName == "ssh-not-open-to-the-world"
            assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    finally:
        process.kill()
        process.communicate(timeout=10)
