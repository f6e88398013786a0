"""The mana-infra policies as plain functions: no Pulumi engine, no pulumi_policy import.

Every validate function has the same shape, so `__main__.py` wraps them all alike and the tests call
them directly on the offline plan's inputs:

    validate(resource_type, props, opts, stack, report, **context) -> None

- `resource_type`: the engine's type token, e.g. "hcloud:index/server:Server";
- `props`: the resource's inputs as the engine sends them (camelCase; a policy sees secrets' values);
- `opts`: anything with a `protect` attribute (pulumi_policy's PolicyResourceOptions, or `Options` below);
- `stack`: the stack's name (`stack_of_urn` reads it from the resource's URN);
- `report`: called once per violation with a message that says how to fix it;
- `**context`: what a policy needs beyond the resource (known token values, protected stacks, the origin
  name), with defaults that match the program.

A violation message never repeats a secret's value: it names where the problem is and what to do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Report = Callable[[str], None]

FIREWALL = "hcloud:index/firewall:Firewall"
SERVER = "hcloud:index/server:Server"
PRIMARY_IP = "hcloud:index/primaryIp:PrimaryIp"
ZONE = "hcloud:index/zone:Zone"
REMOTE_COMMAND = "command:remote:Command"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


def _limits() -> Any:
    """mana_infra/limits.py, the bounds the config check enforces too (this pack's virtualenv has no
    mana_infra to import it from)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "mana_infra" / "limits.py"
    spec = importlib.util.spec_from_file_location("mana_infra_limits", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROTECTED_STACKS = ("prod",)
MAX_FAILOVER_TTL: int = _limits().FAILOVER_TTL_MAX
SSH_PORT = 22
# Where a remote command's text lives; `environment` too, since it is sent along with the command.
COMMAND_TEXT_FIELDS = ("create", "update", "delete", "stdin")


class HasProtect(Protocol):
    @property
    def protect(self) -> bool: ...


@dataclass(frozen=True)
class Options:
    """The resource options a policy looks at, for callers without pulumi_policy (tests, tools)."""

    protect: bool = False


def stack_of_urn(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`; "" when it is not such a URN."""
    if not urn.startswith("urn:pulumi:"):
        return ""
    return urn[len("urn:pulumi:") :].split("::", 1)[0]


# --- 1. SSH never open to the world ----------------------------------------------------------------


def _covers_port(port: Any, wanted: int) -> bool:
    """Hetzner's `port`: "22", a range "20-30", or "any"; none at all for TCP means every port."""
    if port is None:
        return True
    text = str(port).strip().lower()
    if text in ("", "any"):
        return True
    low, _, high = text.partition("-")
    try:
        return int(low) <= wanted <= int(high or low)
    except ValueError:
        return True  # unreadable: assume the worst, the message shows the value


def _is_world(cidr: Any) -> bool:
    """0.0.0.0/0, ::/0 and their spellings (0::0/0, 0.0.0.0/0.0.0.0): any network with prefix length 0."""
    try:
        return ipaddress.ip_network(str(cidr).strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def ssh_not_open_to_world(
    resource_type: str, props: Mapping[str, Any], opts: HasProtect, stack: str, report: Report
) -> None:
    """An inbound TCP rule that reaches port 22 must not allow 0.0.0.0/0 or ::/0."""
    if resource_type != FIREWALL:
        return
    for index, rule in enumerate(props.get("rules") or []):
        if str(rule.get("direction", "")).lower() != "in" or str(rule.get("protocol", "")).lower() != "tcp":
            continue
        if not _covers_port(rule.get("port"), SSH_PORT):
            continue
        world = [str(cidr) for cidr in rule.get("sourceIps") or [] if _is_world(cidr)]
        if world:
            report(
                f"rules[{index}] (port {rule.get('port', 'any')}) opens SSH (22/tcp) to {', '.join(world)}. "
                "Allow only your own networks: `pulumi config set --path 'sshAllowedCidrs[0]' <your address>/32` "
                "(and the CI runner's address if it runs the Caddy command), never 0.0.0.0/0 or ::/0."
            )


# --- 2. The prod stack's primary IPs and Hetzner zone are protected against deletion ---------------


def prod_protected(
    resource_type: str,
    props: Mapping[str, Any],
    opts: HasProtect,
    stack: str,
    report: Report,
    *,
    protected_stacks: Collection[str] = PROTECTED_STACKS,
) -> None:
    """In a protected stack, the primary IPs and the Hetzner zone carry Pulumi's `protect` and Hetzner's
    `deleteProtection`: a deleted primary IP is gone for good, and DNS and the Mac Mini's WireGuard
    endpoint point at it; the zone is the one the registrar's nameservers may point at. (The server is
    replaceable on purpose: its image, keys and user data change by replacing it, the IPs stay.)"""
    if resource_type not in (PRIMARY_IP, ZONE) or stack not in protected_stacks:
        return
    kind = "primary IP" if resource_type == PRIMARY_IP else "Hetzner DNS zone"
    missing = []
    if not getattr(opts, "protect", False):
        missing.append("Pulumi's `protect` option")
    if props.get("deleteProtection") is not True:
        missing.append("Hetzner's `deleteProtection`")
    if missing:
        report(
            f"the {kind} of stack {stack!r} lacks {' and '.join(missing)}. Fix: `pulumi config set protect true` "
            f"on stack {stack} (the program sets both from it). To delete it on purpose, first unprotect it "
            "(`pulumi state unprotect <urn>`, and remove Hetzner's delete protection) in a reviewed change."
        )


# --- 3. No Cloudflare or Hetzner token on the server ------------------------------------------------

# Names a token travels under: environment variables (any case, any prefix such as MY_HCLOUD_TOKEN; lego's
# CF_DNS_API_TOKEN and HETZNER_API_TOKEN, the ACME provider's DNS-01 settings), Pulumi config keys, the
# provider argument.
_TOKEN_NAMES = re.compile(
    r"(?<![A-Za-z0-9])(?:(?i:HCLOUD_TOKEN|CLOUDFLARE_API_TOKEN|CLOUDFLARE_API_KEY|CF_API_TOKEN|CF_API_KEY"
    r"|CF_DNS_API_TOKEN|HETZNER_API_TOKEN))"
    r"(?![A-Za-z0-9])"
    r"|hcloud:token|cloudflare:api(?:Token|Key)|(?<![A-Za-z0-9])apiToken(?![A-Za-z0-9])"
)
# Token shapes. A WireGuard key is base64 (44 characters, `+`, `/`, ending in `=`); the boundaries
# below reject any run that touches `+` or `/`, or is followed by `=`, so no part of a key can match
# (a `=` before a run is fine: `KEY=<token>`). Each shape must mix upper case, lower case and digits:
# hex digests (SHA-256 is 64 hex characters, SHA-1 40) and words never do.
_BOUNDARY_BEFORE = r"(?<![A-Za-z0-9_+/-])"
_BOUNDARY_AFTER = r"(?![A-Za-z0-9_+/=-])"
_TOKEN_SHAPES = (
    ("a 64-character Hetzner-token-shaped string", re.compile(_BOUNDARY_BEFORE + r"[A-Za-z0-9]{64}" + _BOUNDARY_AFTER)),
    (
        "a 40-character Cloudflare-token-shaped string",
        re.compile(_BOUNDARY_BEFORE + r"[A-Za-z0-9_-]{40}" + _BOUNDARY_AFTER),
    ),
)
# Certificates and their keys go to the server on purpose (the standby's TLS), as PEM: base64 lines of
# 64 characters, which often look like a Hetzner token. Their blocks are not searched for shapes.
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)


def _without_pem(text: str) -> str:
    """The text with every PEM block blanked out, its lines kept (line numbers stay right)."""
    return _PEM_BLOCK.sub(lambda block: "\n" * block.group(0).count("\n"), text)


# Known token values shorter than this are not searched for (an empty or placeholder value would match
# everywhere); real Hetzner and Cloudflare tokens are 64 and 40 characters.
MIN_KNOWN_TOKEN_LENGTH = 20


def _mixed(text: str) -> bool:
    return any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def token_findings(text: str, known_tokens: Iterable[str] = ()) -> Iterator[str]:
    """What in `text` is, names or looks like a provider token: `<what> at line <n>`, never the value."""
    for token in {t for t in known_tokens if isinstance(t, str) and len(t) >= MIN_KNOWN_TOKEN_LENGTH}:
        offset = text.find(token)
        if offset >= 0:
            yield f"the value of a configured provider token at line {_line_of(text, offset)}"
    for match in _TOKEN_NAMES.finditer(text):
        yield f"the token name {match.group(0)!r} at line {_line_of(text, match.start())}"
    outside_pem = _without_pem(text)
    for what, shape in _TOKEN_SHAPES:
        for match in shape.finditer(outside_pem):
            if _mixed(match.group(0)):
                yield f"{what} at line {_line_of(outside_pem, match.start())}"


def _texts(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if resource_type == SERVER:
        if isinstance(props.get("userData"), str):
            yield "userData", props["userData"]
    elif resource_type == REMOTE_COMMAND:
        for field in COMMAND_TEXT_FIELDS:
            if isinstance(props.get(field), str):
                yield field, props[field]
        for key, value in (props.get("environment") or {}).items():
            yield f"environment.{key}", f"{key}={value}"


def no_tokens_on_server(
    resource_type: str,
    props: Mapping[str, Any],
    opts: HasProtect,
    stack: str,
    report: Report,
    *,
    known_tokens: Iterable[str] = (),
) -> None:
    """Neither the server's cloud-init nor the remote command may carry a Hetzner or Cloudflare token:
    the VPS needs neither, and whoever gets root there would get the whole Hetzner project or DNS zone."""
    known = tuple(known_tokens)
    for field, text in _texts(resource_type, props):
        findings = list(dict.fromkeys(token_findings(text, known)))
        if findings:
            report(
                f"{field} contains {'; '.join(findings)}. The VPS needs no Hetzner or Cloudflare token: remove it "
                "from the rendered file (mana_infra/render/, mana_infra/scripts/); keep tokens only in the stack "
                "config as secrets (`pulumi config set --secret hcloud:token ...`, `... cloudflare:apiToken ...`), "
                "and rotate any token that was ever written there."
            )


# --- 4. Inventory records flip in place ---------------------------------------------------------------


def is_origin_record(props: Mapping[str, Any], origin_name: str | None, home_name: str | None = None) -> bool:
    """An address record of a name of its own: the VPS's origin name (`vps.<zone>` unless `originName` is
    set) or the home's (Plan C: `home.<zone>` unless `homeName` is set)."""
    name = str(props.get("name", "")).rstrip(".").lower()
    vps = name == origin_name.rstrip(".").lower() if origin_name else name.startswith("vps.")
    home = name == home_name.rstrip(".").lower() if home_name else name.startswith("home.")
    return vps or home


def inventory_records_flip_in_place(
    resource_type: str,
    props: Mapping[str, Any],
    opts: HasProtect,
    stack: str,
    report: Report,
    *,
    origin_name: str | None = None,
    home_name: str | None = None,
    max_ttl: int = MAX_FAILOVER_TTL,
) -> None:
    """An inventory record stays a CNAME, so a flip only changes its content, proxied and TTL in place
    (a type change is a delete and a create: a moment without a record). A DNS-only (failover) record's
    TTL is at most `max_ttl`, so resolvers follow a flip within minutes."""
    if resource_type != DNS_RECORD or is_origin_record(props, origin_name, home_name):
        return
    name = props.get("name", "?")
    record_type = props.get("type")
    if record_type != "CNAME":
        report(
            f"record {name} has type {record_type!r}: inventory records must stay CNAME, so a flip between tunnel "
            "and failover changes them in place. Point it at the tunnel or the origin name through "
            "mana_infra/records.py (the program's one place for record specs) instead of a type of its own."
        )
    if not props.get("proxied", False):
        ttl = props.get("ttl", 1)
        if isinstance(ttl, (int, float)) and ttl > max_ttl:
            report(
                f"record {name} is DNS-only with TTL {ttl:g}: failover records need TTL <= {max_ttl} so resolvers "
                f"follow a flip quickly. Fix: `pulumi config set failoverTtl 60` (at most {max_ttl})."
            )


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    validate: Callable[..., None]


POLICIES = (
    PolicySpec(
        "ssh-not-open-to-the-world",
        "SSH (22/tcp) in the Hetzner firewall is never open to 0.0.0.0/0 or ::/0.",
        ssh_not_open_to_world,
    ),
    PolicySpec(
        "prod-ips-and-zone-protected",
        "The prod stack's primary IPs and Hetzner DNS zone are protected against deletion (Pulumi protect and "
        "Hetzner delete protection).",
        prod_protected,
    ),
    PolicySpec(
        "no-provider-tokens-on-the-server",
        "No Hetzner or Cloudflare token in the server's user data or in a remote command's text.",
        no_tokens_on_server,
    ),
    PolicySpec(
        "inventory-records-flip-in-place",
        "Inventory DNS records stay CNAME, and DNS-only (failover) records have TTL at most 300.",
        inventory_records_flip_in_place,
    ),
)
