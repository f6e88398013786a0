"""The mana-infra policy pack: `pulumi preview --policy-pack policy` (and `pulumi up --policy-pack policy`).

The policies themselves are plain functions in mana_policies.py (tested in tests/test_policy.py on
the offline plan's inputs); this file only hands them to pulumi_policy, with what each needs to know:
the stack (from the resource's URN), the provider tokens' values (to find them verbatim) and the
origin name (from the program's own stack config).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

# The CLI runs this folder as a script, so its own modules import as top-level ones.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mana_policies
from mana_policies import PolicySpec

PACK_NAME = "mana-infra-guard-rails"
PROJECT = "mana-infra"
# Where the tokens live: the providers' config keys and the environment variables they also read.
PROVIDER_TOKEN_CONFIG = ("hcloud:token", "cloudflare:apiToken", "cloudflare:apiKey")
PROVIDER_TOKEN_ENV = ("HCLOUD_TOKEN", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY")
PROVIDER_TOKEN_PROPS = ("token", "apiToken", "apiKey")


def _config(key: str) -> str | None:
    """A config value of the stack being previewed (the CLI hands a policy pack the stack's config)."""
    try:
        value = pulumi.runtime.get_config(key)
    except Exception:  # no config reachable is not an error: the token shapes still apply
        return None
    return value if isinstance(value, str) else None


def known_tokens(args: ResourceValidationArgs) -> Iterator[str]:
    """Every provider token value this process can see: the resource's provider, the stack config, the
    environment. The token-shape checks apply whether or not any is found."""
    provider = args.provider
    if provider is not None:
        for key in PROVIDER_TOKEN_PROPS:
            try:
                value = provider.props.get(key)
            except Exception:  # an unknown value during preview
                continue
            if isinstance(value, str):
                yield value
    for key in PROVIDER_TOKEN_CONFIG:
        if value := _config(key):
            yield value
    for name in PROVIDER_TOKEN_ENV:
        if value := os.environ.get(name):
            yield value


def own_name(key: str, label: str) -> str | None:
    """A name of the program's own: the config's ``key``, else ``<label>.<zone>`` (the origin name
    `vps.<zone>`, the home's `home.<zone>`); None when the config is out of reach."""
    if name := _config(f"{PROJECT}:{key}"):
        return name
    if zone := _config(f"{PROJECT}:zone"):
        return f"{label}.{zone.rstrip('.')}"
    return None


def stack_of(args: ResourceValidationArgs) -> str:
    return mana_policies.stack_of_urn(args.urn) or pulumi.get_stack()


def _context(spec: PolicySpec, args: ResourceValidationArgs) -> dict[str, Any]:
    config: Mapping[str, Any] = args.get_config() or {}
    if spec.validate is mana_policies.prod_protected:
        return {"protected_stacks": tuple(config.get("protectedStacks", mana_policies.PROTECTED_STACKS))}
    if spec.validate is mana_policies.no_tokens_on_server:
        return {"known_tokens": tuple(known_tokens(args))}
    if spec.validate is mana_policies.inventory_records_flip_in_place:
        return {
            "origin_name": config.get("originName") or own_name("originName", "vps"),
            "home_name": config.get("homeName") or own_name("homeName", "home"),
            "max_ttl": int(config.get("maxTtl", mana_policies.MAX_FAILOVER_TTL)),
        }
    return {}


def _validate(spec: PolicySpec) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        spec.validate(
            args.resource_type,
            args.props,
            args.opts,
            stack_of(args),
            lambda message: report_violation(message, None),
            **_context(spec, args),
        )

    validate.__name__ = spec.name.replace("-", "_")
    return validate


CONFIG_SCHEMAS = {
    "prod-ips-and-zone-protected": PolicyConfigSchema(
        properties={
            "protectedStacks": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(mana_policies.PROTECTED_STACKS),
            },
        }
    ),
    "inventory-records-flip-in-place": PolicyConfigSchema(
        properties={
            "originName": {"type": "string", "default": ""},
            "homeName": {"type": "string", "default": ""},
            "maxTtl": {"type": "integer", "default": mana_policies.MAX_FAILOVER_TTL},
        }
    ),
}


def policies() -> list[Policy]:
    return [
        ResourceValidationPolicy(
            name=spec.name,
            description=spec.description,
            enforcement_level=EnforcementLevel.MANDATORY,
            validate=_validate(spec),
            config_schema=CONFIG_SCHEMAS.get(spec.name),
        )
        for spec in mana_policies.POLICIES
    ]


# Serves the policies to the CLI until it stops this process: only when run as the pack, so tests can
# import this file and look at `policies()`.
if __name__ == "__main__":
    PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
