"""What `mana-infra check` probes, and each probe's result as a typed check.

`run_check(endpoints, options)` probes everything in parallel and returns the typed `Report`
(.report); .assess judges the checks (paths, problems, the budget) and .decision gives the verdict
(the way to fail over that fits). No printing here.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from ..model import CLOUDFLARE_IP_RANGES, TUNNEL_DOMAIN, Service, refused_address, via_home
from ..outputs import Output
from .assess import evaluate
from .probes import (
    ApiResult,
    CloudflareApi,
    DnsAnswer,
    HttpsResult,
    Nameserver,
    VpsReport,
    VpsRunner,
    days_left,
    https_get,
    resolve,
    run_vps_script,
    tls_context,
    verify_token,
    vps_script,
)
from .report import (
    AnsweredBy,
    ApiCheck,
    ApiState,
    CertificateDate,
    CertificateKind,
    DnsCheck,
    DnsPath,
    EndpointsSeen,
    Failure,
    HealthCheck,
    HomeReach,
    HostReport,
    HttpsCheck,
    MirrorCheck,
    Observed,
    Report,
    SshCheck,
    StandbyCheck,
    TunnelProbe,
    TunnelState,
    VpsChecks,
    WireguardCheck,
)

# A proxied record resolves to Cloudflare's edge, so public DNS shows a tunnel-mode host as edge addresses.
CLOUDFLARE_EDGE = CLOUDFLARE_IP_RANGES[0] + CLOUDFLARE_IP_RANGES[1]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Certificate expiry dates the stack's outputs may carry: key -> (output, what it is).
CERTIFICATE_OUTPUTS: dict[CertificateKind, tuple[str, str]] = {
    CertificateKind.ORIGIN: (
        Output.ORIGIN_CERTIFICATE_EXPIRES_ON,
        "the Cloudflare Origin CA certificate (the edge way)",
    ),
    CertificateKind.PUBLIC: (
        Output.PUBLIC_CERTIFICATE_EXPIRES_ON,
        "the publicly trusted certificate (the DNS-only way)",
    ),
}


@dataclass(frozen=True)
class Endpoints:
    """Where the two paths are: from the stack's outputs, flags overriding."""

    mode: str
    origin_name: str
    tunnel_target: str | None
    services: tuple[Service, ...]
    origin_ips: tuple[str, ...] = ()
    health_url: str | None = None
    proxied: dict[str, bool] = field(default_factory=dict)  # host -> record proxied (from the outputs)
    edge_networks: tuple[Network, ...] = tuple(ipaddress.ip_network(cidr) for cidr in CLOUDFLARE_EDGE)
    stack: str | None = None
    # The stack whose VPS this is, when it is not this stack's own (a rehearsal's prodStack): its Caddy
    # serves that stack's mode, so the health path's mode is not compared with this stack's.
    vps_stack: str | None = None
    # The stack's emergencyCutover output: the command when Cloudflare's API cannot be used.
    emergency_command: str | None = None
    # Expiry of the certificates the outputs name (keys of CERTIFICATE_OUTPUTS).
    certificates: dict[CertificateKind, datetime] = field(default_factory=dict)
    # The public certificate's lifetime in days (publicCertificateIssuedOn to its expiry), when known.
    public_lifetime_days: float | None = None
    # The stack's cloudflareReachable (None: the outputs do not say): false, the renewal's DNS-01 is at Hetzner.
    cloudflare_reachable: bool | None = None
    # SHA-256 fingerprints the standby path takes without a CA: the stack's Origin CA certificate
    # (originCertificateSha256), which the VPS serves through the edge and only Cloudflare trusts.
    pinned_certificates: tuple[str, ...] = ()
    # Who the VPS serves the inventory hosts to while the tunnel has them (the checkAllowedCidrs output):
    # what a refused address is added to; None: not known (an older stack's outputs).
    check_allowed_cidrs: tuple[str, ...] | None = None
    # The name that stays on the tunnel in every mode (the tunnelProbe output): whether the tunnel
    # would serve, even while the inventory records point at the VPS.
    tunnel_probe: str | None = None
    # Hosts adoptRecords still names after the stack was deployed (the adoptRecordsLeft output).
    adoption_left: tuple[str, ...] = ()
    # Since when the stack is in its mode (the modeSince output): the watch's metrics carry it, so that a
    # failover left standing is alertable by its age.
    mode_since: str | None = None
    # The stack's way (the failoverVia output): a direct one puts the hosts on the home's name.
    via: str | None = None
    # The home's own name and addresses (homeName, homeIpv4, homeIpv6: Plan C); none, not configured.
    home_name: str | None = None
    home_ips: tuple[str, ...] = ()
    # The stack's emergencyCutoverDirect output: the mirror's records to the home (Cloudflare and VPS gone).
    direct_emergency_command: str | None = None

    @property
    def expected_path(self) -> DnsPath:
        if self.mode == "tunnel":
            return DnsPath.TUNNEL
        return DnsPath.HOME if self.via and via_home(self.via) else DnsPath.ORIGIN

    @property
    def vps_mode(self) -> str:
        """The mode the VPS's Caddy serves: the stack's, but a direct way's is tunnel (the VPS stays the
        standby while the home serves; program.vps_mode)."""
        return "tunnel" if self.via and via_home(self.via) else self.mode

    @property
    def health_path(self) -> str:
        return urlsplit(self.health_url).path or "/" if self.health_url else "/healthz"


@dataclass
class Options:
    resolvers: Sequence[Nameserver]
    timeout: float = 3.0
    https_port: int = 443
    ca_file: str | None = None
    runner: VpsRunner | None = None
    runner_note: str = ""
    ssh_skipped: str = "no SSH to the VPS was given"  # why, when runner is None
    wg_interface: str = "wg0"
    handshake_max_age: int = 180
    cert_warn_days: float = 7.0
    workers: int = 64
    # The Hetzner mirror's authoritative nameservers: asked directly, each host must get its failover answer.
    mirror: Sequence[Nameserver] = ()
    mirror_skipped: str | None = None  # why the mirror is not (or only partly) asked
    cloudflare: CloudflareApi | None = None  # ask whether the API takes the token
    cloudflare_skipped: str = "no Cloudflare API token was given"  # why, when cloudflare is None


Progress = Callable[[str], None]


@dataclass
class Probed:
    """Every probe's raw result, as the probes return them."""

    tunnel_addresses: list[str]
    origin_answer: DnsAnswer | None
    lives: list[tuple[DnsAnswer, HttpsResult | None]]
    standbys: list[HttpsResult | None]
    directs: list[HttpsResult | None]
    homes: list[tuple[str, HttpsResult | None]]
    mirrors: list[DnsAnswer]
    health_url: str
    health: HttpsResult | None
    ssh: VpsReport | None
    api: ApiResult | None
    probe: tuple[DnsAnswer, HttpsResult | None] | None


class _Prober:
    """The probes of one round, each a task for the pool; `done` is told as each ends."""

    def __init__(self, endpoints: Endpoints, options: Options, done: Progress) -> None:
        self.endpoints, self.options, self.done = endpoints, options, done
        self.context = tls_context(options.ca_file)
        self.origin_answer: Future[DnsAnswer] | None = None

    def host_live(self, service: Service) -> tuple[DnsAnswer, HttpsResult | None]:
        o = self.options
        answer = resolve(service.host, o.resolvers, o.timeout)
        live = None
        if answer.addresses:
            live = https_get(service.host, answer.addresses[0], o.https_port, service.health, self.context, o.timeout)
        self.done(service.host)
        return answer, live

    def standby_https(self, service: Service) -> HttpsResult | None:
        o, address = self.options, _origin_address(self.endpoints, self.origin_answer)
        result = None
        if address is not None:
            pinned = self.endpoints.pinned_certificates
            result = https_get(
                service.host, address, o.https_port, service.health, self.context, o.timeout, pinned=pinned
            )
        self.done(f"{service.host} via VPS")
        return result

    def direct_https(self, service: Service) -> HttpsResult | None:
        """The host straight at the home's first address (IPv4 when it has one), as a DNS-only visitor."""
        o, address = self.options, self.endpoints.home_ips[0]
        result = https_get(service.host, address, o.https_port, service.health, self.context, o.timeout)
        self.done(f"{service.host} via home")
        return result

    def home_health(self, address: str) -> tuple[str, HttpsResult | None]:
        o, name = self.options, str(self.endpoints.home_name)
        result = https_get(name, address, o.https_port, self.endpoints.health_path, self.context, o.timeout)
        self.done(f"home at {address}")
        return address, result

    def vps_health(self) -> tuple[str, HttpsResult | None]:
        url = self.endpoints.health_url or f"https://{self.endpoints.origin_name}/healthz"
        parts = urlsplit(url)
        host = parts.hostname or self.endpoints.origin_name
        address = _origin_address(self.endpoints, self.origin_answer)
        result = None
        if address is not None:
            port = parts.port or self.options.https_port
            result = https_get(host, address, port, parts.path or "/", self.context, self.options.timeout)
        self.done("VPS health")
        return url, result

    def vps_ssh(self) -> VpsReport | None:
        if self.options.runner is None:
            return None
        # The session itself gets more time: ssh's connect, then `wg show`.
        script = vps_script(self.options.wg_interface)
        report = run_vps_script(self.options.runner, script, self.options.timeout * 2 + 2)
        self.done("VPS over SSH")
        return report

    def tunnel(self) -> tuple[DnsAnswer, HttpsResult | None] | None:
        probe, o = self.endpoints.tunnel_probe, self.options
        if not probe:
            return None
        answer = resolve(probe, o.resolvers, o.timeout)
        result = None
        if answer.addresses:
            result = https_get(probe, answer.addresses[0], o.https_port, "/", self.context, o.timeout)
        self.done("tunnel probe")
        return answer, result

    def cloudflare_api(self) -> ApiResult | None:
        if self.options.cloudflare is None:
            return None
        result = verify_token(self.options.cloudflare, self.context, self.options.timeout)
        self.done("Cloudflare API")
        return result

    def run(self) -> Probed:
        endpoints, options, services = self.endpoints, self.options, self.endpoints.services
        workers = max(4, min(options.workers, 3 * len(services) + 6))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
            if not endpoints.origin_ips:
                self.origin_answer = pool.submit(resolve, endpoints.origin_name, options.resolvers, options.timeout)
            tunnel = endpoints.tunnel_target
            tunnel_future = pool.submit(resolve, tunnel, options.resolvers, options.timeout) if tunnel else None
            ssh, api, probe = pool.submit(self.vps_ssh), pool.submit(self.cloudflare_api), pool.submit(self.tunnel)
            health = pool.submit(self.vps_health)
            lives = [pool.submit(self.host_live, s) for s in services]
            standbys = [pool.submit(self.standby_https, s) for s in services]
            home = bool(endpoints.home_ips and endpoints.home_name)
            directs = [pool.submit(self.direct_https, s) for s in services] if home else []
            homes = [pool.submit(self.home_health, a) for a in endpoints.home_ips] if home else []
            mirror = options.mirror
            mirrors = [pool.submit(resolve, s.host, mirror, options.timeout) for s in services] if mirror else []
            health_url, health_result = health.result()
            return Probed(
                tunnel_addresses=tunnel_future.result().addresses if tunnel_future else [],
                origin_answer=self.origin_answer.result() if self.origin_answer else None,
                lives=[f.result() for f in lives],
                standbys=[f.result() for f in standbys],
                directs=[f.result() for f in directs],
                homes=[f.result() for f in homes],
                mirrors=[f.result() for f in mirrors],
                health_url=health_url,
                health=health_result,
                ssh=ssh.result(),
                api=api.result(),
                probe=probe.result(),
            )


def run_check(endpoints: Endpoints, options: Options, progress: Progress | None = None) -> Report:
    """Probe the public path, the standby path through the VPS, the VPS and the Cloudflare API, all
    at once; return the report."""
    started = time.monotonic()
    probed = _Prober(endpoints, options, progress or (lambda _label: None)).run()
    origin_ips = set(endpoints.origin_ips) | set(probed.origin_answer.addresses if probed.origin_answer else [])
    seen = EndpointsSeen(
        origin_name=endpoints.origin_name,
        origin_ips=sorted(origin_ips),
        tunnel_target=endpoints.tunnel_target,
        tunnel_addresses=probed.tunnel_addresses,
        health_url=probed.health_url,
        https_port=options.https_port,
        resolvers=[str(r) for r in options.resolvers],
    )
    warn_days = options.cert_warn_days
    health_mode = None if endpoints.vps_stack else endpoints.vps_mode
    observed = Observed(
        mode=endpoints.mode,
        stack=endpoints.stack,
        endpoints=seen,
        hosts=[_host(endpoints, probed, index, origin_ips, warn_days) for index in range(len(endpoints.services))],
        vps=VpsChecks(
            health=health_check(probed.health_url, probed.health, health_mode, warn_days),
            wireguard=wireguard_check(probed.ssh, options),
            ssh=ssh_check(probed.ssh, options),
        ),
        cloudflare_api=api_check(probed.api, options),
        tunnel_probe=tunnel_probe(endpoints.tunnel_probe, probed.probe),
        certificates=certificate_dates(endpoints, warn_days),
        home=[home_reach(endpoints, address, result, warn_days) for address, result in probed.homes],
    )
    return evaluate(observed, endpoints, options, started)


def home_reach(endpoints: Endpoints, address: str, result: HttpsResult | None, warn_days: float) -> HomeReach:
    """The home's name at one address: the Mac Mini's Caddy says `ok home` there (its health path)."""
    base = https_check(result, DnsPath.HOME, warn_days, None)
    body = (result.body.strip() if result else "")[:200]
    url = f"https://{endpoints.home_name}{endpoints.health_path} at {address}"
    reach = HomeReach(**vars(base), family=6 if ":" in address else 4, url=url, body=body)
    reach.serving = bool(result and result.status == 200 and body.startswith("ok home"))
    if base.ok and not reach.serving:
        reach.ok, reach.failure = False, Failure.HTTP_ERROR
        reach.error = f"HTTP {result.status if result else None} {body[:60]!r}: not the Mac Mini's Caddy ('ok home')"
    return reach


def _host(endpoints: Endpoints, probed: Probed, index: int, origin_ips: set[str], warn_days: float) -> HostReport:
    service = endpoints.services[index]
    answer, live = probed.lives[index]
    path, detail = classify(answer, endpoints, set(probed.tunnel_addresses), origin_ips)
    dns = DnsCheck(
        path=path,
        expected=endpoints.expected_path,
        detail=detail,
        chain=answer.chain,
        addresses=answer.addresses,
        ttl=answer.ttl,
        error=answer.error,
        failure=(answer.error_kind or Failure.DNS_ERROR) if path is DnsPath.ERROR else None,
        ms=round(answer.seconds * 1000, 1),
    )
    missing = "no address to connect to" if live is None else None
    failure = answer.error_kind
    host = HostReport(
        host=service.host,
        name=service.name,
        port=service.port,
        health=service.health,
        dns=dns,
        live=https_check(live, path, warn_days, missing, failure=failure, behind_edge=path is DnsPath.TUNNEL),
        standby=standby_check(probed.standbys[index], endpoints.mode, warn_days),
    )
    if probed.mirrors:
        # What the mirror answers must be the failover form, whatever the stack's mode: the origin, or the
        # home's name while a direct way has the hosts.
        mirror_path, mirror_detail = classify(probed.mirrors[index], endpoints, set(), origin_ips)
        wanted = DnsPath.HOME if endpoints.expected_path is DnsPath.HOME else DnsPath.ORIGIN
        host.mirror = MirrorCheck(mirror_path, mirror_detail, mirror_path is wanted)
    if probed.directs:
        direct = probed.directs[index]
        host.direct = https_check(direct, DnsPath.HOME, warn_days, None)
    return host


def _origin_address(endpoints: Endpoints, future: Future[DnsAnswer] | None) -> str | None:
    if endpoints.origin_ips:
        ipv4 = [ip for ip in endpoints.origin_ips if ":" not in ip]
        return (ipv4 or list(endpoints.origin_ips))[0]
    if future is None:
        return None
    answer = future.result()
    return answer.addresses[0] if answer.addresses else None


def classify(
    answer: DnsAnswer, endpoints: Endpoints, tunnel_addresses: set[str], origin_ips: set[str]
) -> tuple[DnsPath, str]:
    """Which path a host's DNS answer is: tunnel, origin, other, or error; and why."""
    if answer.error and not answer.addresses:
        return DnsPath.ERROR, answer.error
    targets = answer.chain[1:]
    if endpoints.tunnel_target and endpoints.tunnel_target in targets:
        return DnsPath.TUNNEL, f"CNAME to {endpoints.tunnel_target}"
    other_tunnel = next((t for t in targets if t.endswith("." + TUNNEL_DOMAIN)), None)
    if other_tunnel:
        return DnsPath.OTHER, f"CNAME to another tunnel: {other_tunnel} (the stack's is {endpoints.tunnel_target})"
    if endpoints.origin_name in targets:
        return DnsPath.ORIGIN, f"CNAME to {endpoints.origin_name}"
    if endpoints.home_name and endpoints.home_name in targets:
        return DnsPath.HOME, f"CNAME to {endpoints.home_name}"
    addresses = set(answer.addresses)
    shown = ", ".join(answer.addresses)
    if addresses <= origin_ips:
        return DnsPath.ORIGIN, f"the origin's address {shown}"
    if endpoints.home_ips and addresses <= set(endpoints.home_ips):
        return DnsPath.HOME, f"the home's address {shown}"
    if addresses <= tunnel_addresses:
        return DnsPath.TUNNEL, f"the tunnel's address {shown}"
    if all(_in_networks(a, endpoints.edge_networks) for a in addresses):
        # A proxied record: only the record's own settings tell which path is behind the edge.
        proxied = endpoints.proxied.get(answer.chain[0], endpoints.mode == "tunnel")
        path = endpoints.expected_path if proxied else DnsPath.TUNNEL
        return path, f"Cloudflare edge {shown} (proxied)"
    via = f"CNAME to {targets[-1]} -> " if targets else ""
    return DnsPath.OTHER, f"{via}{shown}: neither the tunnel nor the origin"


def _in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


def status_ok(status: int | None) -> bool:
    """An answer from the application: 2xx-4xx (401/403/404 are the app talking). 5xx is the path or
    the app failing (Cloudflare answers 502/530 when the tunnel is down)."""
    return status is not None and 200 <= status < 500


_TUNNEL_CODE = re.compile(r"(?:error code:?|error|cf-error-code\">)\s*(1033|1016)\b", re.IGNORECASE)
_TUNNEL_WORDS = re.compile(r"\b(?:argo|cloudflare) tunnel error\b", re.IGNORECASE)


def tunnel_error(status: int | None, body: str) -> str | None:
    """What Cloudflare's edge says when the tunnel behind it fails (the edge itself works: it answered
    over TLS), or None: error 1033 (no cloudflared connected; "Argo/Cloudflare Tunnel error"), 1016
    (origin DNS error), any 530, and the 502/504 of cloudflared."""
    if status is None or status < 500:
        return None
    code = _TUNNEL_CODE.search(body)
    if code and code.group(1) == "1016":
        return "Cloudflare error 1016: origin DNS error"
    if code:
        return "Cloudflare error 1033: the tunnel has no cloudflared connection"
    if _TUNNEL_WORDS.search(body):
        return "Cloudflare Tunnel error"
    if status == 530:
        return "Cloudflare's origin error"
    if status == 502:
        return "bad gateway behind the edge (cloudflared)"
    if status == 504:
        return "gateway timeout behind the edge (cloudflared)"
    return None


def https_check(
    result: HttpsResult | None,
    path: DnsPath,
    warn_days: float,
    missing: str | None,
    *,
    failure: Failure | None = None,
    behind_edge: bool = False,
) -> HttpsCheck:
    """One HTTPS probe. failure: the kind when there is no result (the DNS failure that left no
    address); behind_edge: the host was reached through Cloudflare's edge, so its 5xx can be a tunnel
    error."""
    if result is None:
        return HttpsCheck(path, False, None, None, None, None, None, False, False, missing,
                          failure or Failure.CONNECT_ERROR, None)  # fmt: skip
    error, kind = result.error, result.error_kind
    refused = refused_address(result.status, result.body) if error is None else None
    if refused:
        error, kind = f"HTTP 403: the VPS refuses {refused} here", Failure.REFUSED_HERE
    elif error is None and not status_ok(result.status):
        detail = tunnel_error(result.status, result.body) if behind_edge else None
        error = f"HTTP {result.status}" + (f" ({detail})" if detail else "")
        server_error = (result.status or 0) >= 500
        kind = Failure.TUNNEL_ERROR if detail else (Failure.HTTP_5XX if server_error else Failure.HTTP_ERROR)
    expiring = result.cert_days_left is not None and result.cert_days_left < warn_days
    return HttpsCheck(
        path=path,
        ok=error is None,
        address=result.address,
        status=result.status,
        latency_ms=result.latency_ms,
        cert_days_left=result.cert_days_left,
        cert_trusted=result.cert_trusted,
        cert_pinned=result.cert_pinned,
        cert_expiring=expiring,
        error=error,
        failure=None if error is None else (kind or Failure.HTTP_ERROR),
        refused=refused,
    )


# Who answered a request to the VPS, by what failed: nobody (no connection), the VPS itself (its TLS, its
# refusal, Caddy's own 502/504 when WireGuard or the app behind it does not answer), else the Mac Mini's app.
NOBODY_KINDS = frozenset(
    {Failure.CONNECT_TIMEOUT, Failure.CONNECT_REFUSED, Failure.CONNECT_ERROR, Failure.DNS_TIMEOUT, Failure.DNS_ERROR}
)
VPS_KINDS = frozenset({Failure.TLS_ERROR, Failure.CERT_UNTRUSTED, Failure.REFUSED_HERE})


def answered_by(result: HttpsResult | None, check: HttpsCheck) -> AnsweredBy:
    """Who answered one request through the VPS (see NOBODY_KINDS, VPS_KINDS)."""
    failure = check.failure
    if result is None or failure in NOBODY_KINDS:
        return AnsweredBy.NOBODY
    if failure in VPS_KINDS:
        return AnsweredBy.VPS
    # TLS done, no HTTP answer in time: Caddy on the VPS holds the request while it dials the Mac Mini
    # (its dial timeout is as long as check's default timeout).
    if failure is Failure.HTTP_ERROR and result.status is None:
        return AnsweredBy.VPS
    # Caddy's reverse proxy answers 502/504 with an empty body when its upstream does not; an app's own
    # 5xx comes with what the app wrote.
    if failure is Failure.HTTP_5XX and result.status in (502, 503, 504) and not result.body.strip():
        return AnsweredBy.VPS
    return AnsweredBy.MAC_MINI


def standby_check(result: HttpsResult | None, mode: str, warn_days: float) -> StandbyCheck:
    """The standby path for one host: HTTPS to the VPS's address with the host's name (SNI, Host,
    verification), in both modes; in tunnel mode the VPS serves the hosts to the operator's networks."""
    base = https_check(result, DnsPath.ORIGIN, warn_days, "the VPS's address is unknown" if result is None else None)
    return StandbyCheck(
        **vars(base),
        answered_by=answered_by(result, base),
        proven="the VPS serves this host over HTTPS: its Caddy site, certificate, WireGuard, the Mac Mini"
        if base.ok
        else "",
        unproven="DNS to the VPS (it comes with the cut-over)" if mode == "tunnel" else "",
    )


def health_check(url: str, result: HttpsResult | None, mode: str | None, warn_days: float) -> HealthCheck:
    """mode: the mode the VPS's Caddy must serve; None: any (the VPS is another stack's)."""
    missing = "the VPS's address is unknown (no --origin-ip, and its name does not resolve)"
    health = HealthCheck(**vars(https_check(result, DnsPath.ORIGIN, warn_days, missing)), url=url)
    body = (result.body.strip() if result else "")[:200]
    health.body = body
    served_mode = next((word.split("=", 1)[1] for word in body.split() if word.startswith("mode=")), None)
    health.served_mode = served_mode
    if health.ok and (result is None or result.status != 200 or not body.startswith("ok")):
        health.ok, health.failure = False, Failure.HTTP_ERROR
        expected = f"ok mode={mode}" if mode else "ok mode=<the VPS's mode>"
        health.error = f"HTTP {result.status if result else None} {body[:60]!r}, expected 200 '{expected}'"
    health.mode_matches = served_mode == mode if served_mode is not None and mode is not None else None
    return health


def tunnel_probe(host: str | None, probe: tuple[DnsAnswer, HttpsResult | None] | None) -> TunnelProbe:
    """Whether the tunnel serves, from the probe name: up when cloudflared answered (its catch-all 404
    included), down on the edge's tunnel error, unknown when the edge or DNS failed (which says nothing
    about the tunnel), not checked without a probe name (a stack from before it)."""
    if probe is None:
        why = "no tunnelProbe output was read (a stack's first `pulumi up` since it came exports it)"
        return TunnelProbe(host, TunnelState.NOT_CHECKED, None, why)
    answer, result = probe
    if result is None:
        return TunnelProbe(host, TunnelState.UNKNOWN, None, answer.error or "no address")
    if result.error:
        return TunnelProbe(host, TunnelState.UNKNOWN, None, result.error)
    down = tunnel_error(result.status, result.body)
    if down:
        return TunnelProbe(host, TunnelState.DOWN, result.status, f"HTTP {result.status} ({down})")
    return TunnelProbe(host, TunnelState.UP, result.status, None)


def ssh_check(ssh: VpsReport | None, options: Options) -> SshCheck:
    if ssh is None:
        return SshCheck(False, None, None, options.runner_note, None, options.ssh_skipped)
    return SshCheck(True, ssh.error is None, ssh.error, options.runner_note, ssh.seconds, None)


def wireguard_check(ssh: VpsReport | None, options: Options) -> WireguardCheck:
    interface, max_age = options.wg_interface, options.handshake_max_age
    check = WireguardCheck(ssh is not None, None, interface, None, None, max_age, None)
    if ssh is None:
        return check
    if ssh.error:  # reported once, as the SSH problem
        check.checked, check.error = False, f"not checked: {ssh.error}"
        return check
    if ssh.wg_error:
        check.ok, check.error = False, f"`wg show {interface}` failed: {ssh.wg_error}"
        return check
    latest = max(ssh.handshakes.values(), default=0)
    if not ssh.handshakes:
        check.ok, check.error = False, f"{interface} has no peer"
    elif latest == 0:
        check.ok, check.error = False, "no handshake with the Mac Mini yet"
    else:
        age = max(0, (ssh.now or int(time.time())) - latest)
        check.latest_handshake, check.age_seconds, check.ok = latest, age, age <= max_age
        check.error = None if check.ok else f"last handshake {_age(age)} ago (stale after {max_age} s)"
    return check


def api_check(result: ApiResult | None, options: Options) -> ApiCheck:
    """Whether Cloudflare's API takes the token (it must, for the edge and DNS-only ways)."""
    if options.cloudflare is None or result is None:
        return ApiCheck(False, None, ApiState.NOT_CHECKED, None, options.cloudflare_skipped, None, None)
    state = ApiState(result.state)
    return ApiCheck(
        True, state is ApiState.OK, state, result.error, None, options.cloudflare.verify_url, result.seconds
    )


def certificate_dates(endpoints: Endpoints, warn_days: float) -> dict[CertificateKind, CertificateDate]:
    """The certificates the outputs date (originCertificateExpiresOn, publicCertificateExpiresOn)."""
    dates: dict[CertificateKind, CertificateDate] = {}
    for key, (output, what) in CERTIFICATE_OUTPUTS.items():
        expires = endpoints.certificates.get(key)
        if expires is None:
            continue
        days = days_left(expires)
        dates[key] = CertificateDate(output, what, expires.isoformat(), days, days <= 0, 0 < days < warn_days)
    return dates


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
