"""check's report as types: what was probed and what it adds up to, built once by .core.

The JSON report (`mana-infra check --json`, the watch's units, the webhook, scripts) is a view of these
types: `Report.to_json()` writes it, `Report.from_json()` reads it back (the lab's drill reads check's
output that way), and `JSON_SCHEMA` beside them describes it — a test holds the three together. The
kinds of things are enums whose values are the JSON's words; nothing here probes or decides.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cache
from typing import Any, ClassVar, TypeVar

from ..errors import ExitCode
from ..model import VIA_WORDS, via_home

REPORT_VERSION = 2


class PathState(StrEnum):
    """A path's state: up, degraded (some hosts fail), down (half or more), unused (no host on it),
    unchecked (nothing was proven either way)."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNUSED = "unused"
    UNCHECKED = "unchecked"

    @classmethod
    def of(cls, total: int, failed: int) -> PathState:
        if total == 0:
            return cls.UNUSED
        if failed == 0:
            return cls.UP
        return cls.DOWN if failed * 2 >= total else cls.DEGRADED


class DnsPath(StrEnum):
    """Which path a host's DNS answer is."""

    TUNNEL = "tunnel"
    ORIGIN = "origin"
    HOME = "home"  # the home's own name or address (Plan C, the direct ways)
    OTHER = "other"
    ERROR = "error"


class Failure(StrEnum):
    """What a failing host failed at (the probes' kinds, and the verdict's two for HTTP answers), in the
    order reports list them."""

    DNS_TIMEOUT = "dns_timeout"
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_ERROR = "dns_error"
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    CERT_UNTRUSTED = "cert_untrusted"
    HTTP_ERROR = "http_error"
    HTTP_5XX = "http_5xx"
    TUNNEL_ERROR = "tunnel_error"
    REFUSED_HERE = "refused_here"

    @property
    def label(self) -> str:
        """The words for people."""
        return _FAILURE_LABELS[self]

    @property
    def is_dns(self) -> bool:
        return self in (Failure.DNS_TIMEOUT, Failure.DNS_NXDOMAIN, Failure.DNS_ERROR)


_FAILURE_LABELS = {
    Failure.DNS_TIMEOUT: "DNS timeout",
    Failure.DNS_NXDOMAIN: "NXDOMAIN",
    Failure.DNS_ERROR: "DNS error",
    Failure.CONNECT_TIMEOUT: "connect timeout",
    Failure.CONNECT_REFUSED: "connection refused",
    Failure.CONNECT_ERROR: "cannot connect",
    Failure.TLS_ERROR: "TLS error",
    Failure.CERT_UNTRUSTED: "certificate not trusted",
    Failure.HTTP_ERROR: "no HTTP answer",
    Failure.HTTP_5XX: "HTTP 5xx",
    Failure.TUNNEL_ERROR: "tunnel error",
    Failure.REFUSED_HERE: "refused here (not among the networks the VPS serves)",
}


class AnsweredBy(StrEnum):
    """Who answered a request to the VPS: the Mac Mini's app, the VPS itself, or nobody."""

    MAC_MINI = "mac-mini"
    VPS = "vps"
    NOBODY = "nobody"


class ApiState(StrEnum):
    """Whether Cloudflare's API takes the token."""

    OK = "ok"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    ERROR = "error"
    NOT_CHECKED = "not_checked"

    @property
    def blocked(self) -> bool:
        """No record can change at Cloudflare."""
        return self in (ApiState.REFUSED, ApiState.UNREACHABLE)


class TunnelState(StrEnum):
    """Whether the tunnel serves, by its probe name."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not_checked"


class Way(StrEnum):
    """The ways to fail over (`mana-infra cutover --via edge|dns|direct|direct-dns`, the stack's
    emergencyCutover)."""

    EDGE = "edge"
    DNS = "dns"
    DIRECT = "direct"
    DIRECT_DNS = "direct-dns"
    EMERGENCY = "emergency"

    @property
    def words(self) -> str:
        words = {"edge": "through Cloudflare's edge", "emergency": "the emergency path"}
        return words.get(self.value) or VIA_WORDS[self.value]

    @property
    def home(self) -> bool:
        """A direct way: visitors go straight to the home (Plan C)."""
        return via_home(self.value)


class PathName(StrEnum):
    """The report's paths (its `paths` keys)."""

    DNS = "dns"
    LIVE_TUNNEL = "live_tunnel"
    LIVE_ORIGIN = "live_origin"
    LIVE_HOME = "live_home"
    LIVE_OTHER = "live_other"
    STANDBY = "standby"
    DIRECT = "direct"  # every host straight at the home's address (Plan C)
    MIRROR = "mirror"
    VPS = "vps"
    WIREGUARD = "wireguard"
    TUNNEL = "tunnel"

    @classmethod
    def live(cls, path: DnsPath) -> PathName:
        """The live path of the hosts whose DNS gives ``path``."""
        return cls(f"live_{path}")


class CertificateKind(StrEnum):
    """The two certificates the standby serves (the report's `certificates` keys)."""

    ORIGIN = "origin"  # Cloudflare's Origin CA certificate: the way through the edge
    PUBLIC = "public"  # the publicly trusted one: the DNS-only way


class Subject(StrEnum):
    """What a problem is about: the decision asks for the standby's by subject, never by its words."""

    DNS = "dns"
    PUBLIC = "public"
    STANDBY = "standby"
    VPS = "vps"
    WIREGUARD = "wireguard"
    API = "api"
    MIRROR = "mirror"
    TUNNEL = "tunnel"
    CERTIFICATE = "certificate"
    HOME = "home"  # the direct way: the home's line, router and the Mac Mini's Caddy


# ------------------------------------------------------------------------------------ JSON both ways

T = TypeVar("T")


class Json:
    """A dataclass whose JSON is its fields by name (enums as their values). A field whose metadata says
    `omit_none` is left out while None; a subclass may override `to_json`/`from_json`."""

    def to_json(self) -> Any:
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if value is None and item.metadata.get("omit_none"):
                continue
            out[item.name] = to_json(value)
        return out

    @classmethod
    def from_json(cls: type[T], data: Any) -> T:
        hints = _hints(cls)  # type: ignore[arg-type]
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{name: from_json(hints[name], data[name]) for name in names if name in data})


OMIT_NONE: dict[str, Any] = {"omit_none": True}


def to_json(value: Any) -> Any:
    if isinstance(value, Json):
        return value.to_json()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k.value if isinstance(k, Enum) else k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(kind: Any, data: Any) -> Any:
    """`data` read as `kind` (a type hint): Json classes, enums, unions with None, lists, tuples, dicts."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return None if data is None else from_json(options[0], data)
    if origin in (list, tuple):
        item = typing.get_args(kind)[0]
        items = [from_json(item, v) for v in data]
        return items if origin is list else tuple(items)
    if origin is dict:
        key, value = typing.get_args(kind)
        return {from_json(key, k): from_json(value, v) for k, v in data.items()}
    if isinstance(kind, type) and issubclass(kind, Json):
        return kind.from_json(data)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    return data


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# ------------------------------------------------------------------------------------------- probes


@dataclass
class HttpsCheck(Json):
    """One HTTPS request: through whatever DNS gives (live), or straight to the VPS (standby, health)."""

    path: DnsPath
    ok: bool
    address: str | None
    status: int | None
    latency_ms: float | None
    cert_days_left: float | None
    cert_trusted: bool | None
    cert_pinned: bool
    cert_expiring: bool
    error: str | None
    failure: Failure | None
    refused: str | None  # the address the VPS refused (its 403 names it)


@dataclass
class StandbyCheck(HttpsCheck):
    """The standby path for one host: HTTPS to the VPS's address with the host's name."""

    kind: str = "https-via-vps"
    answered_by: AnsweredBy = AnsweredBy.NOBODY
    proven: str = ""
    unproven: str = ""


@dataclass
class HealthCheck(HttpsCheck):
    """The VPS's health path: `ok mode=<mode>` from its Caddy."""

    url: str | None = None
    body: str = ""
    served_mode: str | None = None
    mode_matches: bool | None = None


@dataclass
class HomeReach(HttpsCheck):
    """The home's own name at one of its addresses (the direct way): `ok home` from the Mac Mini's Caddy."""

    family: int = 4
    url: str = ""
    body: str = ""
    serving: bool = False  # the Mac Mini's Caddy answered, not something else at that address


@dataclass
class DnsCheck(Json):
    path: DnsPath
    expected: DnsPath
    detail: str
    chain: list[str]
    addresses: list[str]
    ttl: int | None
    error: str | None
    failure: Failure | None
    ms: float


@dataclass
class MirrorCheck(Json):
    """What the Hetzner mirror answers for a host: it must be the failover form, the origin."""

    path: DnsPath
    detail: str
    ok: bool


@dataclass
class HostReport(Json):
    host: str
    name: str
    port: int
    health: str
    dns: DnsCheck
    live: HttpsCheck
    standby: StandbyCheck
    mirror: MirrorCheck | None = field(default=None, metadata=OMIT_NONE)
    direct: HttpsCheck | None = field(default=None, metadata=OMIT_NONE)
    """Straight at the home's address with the host's name (Plan C configured)."""


@dataclass
class WireguardCheck(Json):
    checked: bool
    ok: bool | None
    interface: str
    latest_handshake: int | None
    age_seconds: int | None
    max_age_seconds: int
    error: str | None


@dataclass
class SshCheck(Json):
    checked: bool
    ok: bool | None
    error: str | None
    via: str
    seconds: float | None
    why_not_checked: str | None


@dataclass
class VpsChecks(Json):
    health: HealthCheck
    wireguard: WireguardCheck
    ssh: SshCheck


@dataclass
class ApiCheck(Json):
    checked: bool
    ok: bool | None
    state: ApiState
    error: str | None
    why_not_checked: str | None
    url: str | None
    seconds: float | None


@dataclass
class TunnelProbe(Json):
    host: str | None
    state: TunnelState
    status: int | None
    error: str | None


@dataclass
class CertificateDate(Json):
    """A certificate the stack's outputs date (originCertificateExpiresOn, publicCertificateExpiresOn)."""

    output: str
    what: str
    expires_on: str
    days_left: float
    expired: bool
    expiring: bool


@dataclass
class EndpointsSeen(Json):
    origin_name: str
    origin_ips: list[str]
    tunnel_target: str | None
    tunnel_addresses: list[str]
    health_url: str | None
    https_port: int
    resolvers: list[str]


# ---------------------------------------------------------------------------------- what it adds up to


@dataclass
class PathSummary(Json):
    """One path's state; the counts where the path has hosts."""

    state: PathState
    total: int | None = field(default=None, metadata=OMIT_NONE)
    failed: int | None = field(default=None, metadata=OMIT_NONE)
    refused: int | None = field(default=None, metadata=OMIT_NONE)
    kind: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass
class PublicPath(Json):
    """Whatever DNS gives today, for every host: down when at least half of the hosts fail."""

    state: PathState
    total: int
    failed: int
    failures: dict[Failure, list[str]]


@dataclass
class Diagnosis(Json):
    """The way to fail over that fits, or why none does; `case` is the decision table's cell."""

    way: Way | None
    why: str
    command: str | None
    case: str | None


@dataclass
class BudgetText(Json):
    """The budget in words, per way."""

    edge: str
    dns: str
    certificates: str


@dataclass
class Budget(Json):
    """What each way takes in the real world, from today's answers."""

    edge_seconds: int
    dns_seconds: int | None
    acme: list[str]  # hosts the VPS would still need a certificate for; "none" in JSON when empty
    text: BudgetText

    def to_json(self) -> Any:
        out = super().to_json()
        out["acme"] = self.acme or "none"
        return out

    @classmethod
    def from_json(cls, data: Any) -> Budget:
        acme = data["acme"]
        acme_hosts = [] if acme == "none" else list(acme)
        return cls(data["edge_seconds"], data["dns_seconds"], acme_hosts, BudgetText.from_json(data["text"]))


@dataclass(frozen=True)
class Finding(Json):
    """A problem, with what it is about (JSON `findings`; `problems` lists their texts)."""

    subject: Subject
    text: str


@dataclass
class Observed(Json):
    """What one round probed, before it is judged."""

    mode: str
    stack: str | None
    endpoints: EndpointsSeen
    hosts: list[HostReport]
    vps: VpsChecks
    cloudflare_api: ApiCheck
    tunnel_probe: TunnelProbe
    certificates: dict[CertificateKind, CertificateDate]
    home: list[HomeReach]
    """The home's name at each of its addresses (empty: Plan C is not configured)."""


@dataclass
class Report(Observed):
    """The whole report: what was probed, and what it adds up to. `healthy`, `exit_code` and
    `tunnel_down` follow from it (JSON only)."""

    version: int
    checked_at: str
    paths: dict[PathName, PathSummary]
    public_path: PublicPath
    diagnosis: Diagnosis
    budget: Budget
    findings: list[Finding]
    notes: list[str]
    seconds: float

    DERIVED: ClassVar[tuple[str, ...]] = ("problems", "healthy", "exit_code", "tunnel_down")

    @property
    def public_path_down(self) -> bool:
        """The public path down while the stack is on the tunnel: what the watch counts towards its alert."""
        return self.mode == "tunnel" and self.public_path.state is PathState.DOWN

    @property
    def problems(self) -> list[str]:
        return [finding.text for finding in self.findings]

    @property
    def healthy(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.healthy else ExitCode.NOT_OK

    def to_json(self) -> Any:
        out = super().to_json()
        out.update(problems=self.problems, healthy=self.healthy, exit_code=self.exit_code)
        # Kept for scripts that read it: the public path down in tunnel mode. The code asks the decision.
        out["tunnel_down"] = self.public_path_down
        return out
