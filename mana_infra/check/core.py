"""What `mana-infra check` checks, and how the results add up to healthy or degraded.

`run_check(endpoints, options)` probes everything in parallel and returns a plain dict (the JSON
report); `evaluate` turns the probe results into path states, problems, the public path's state, the
way to fail over that fits (`diagnose`) and the time each way takes (the budget). No printing here.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..model import CLOUDFLARE_IP_RANGES, MODES, TUNNEL_DOMAIN, Service, refused_address
from ..records import EDGE_APPLIES_SECONDS, adoption_left_text
from ..terminal import count
from .probes import (
    DNS_KINDS,
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

REPORT_VERSION = 2


# A proxied record resolves to Cloudflare's edge, so public DNS shows a tunnel-mode host as edge addresses.
CLOUDFLARE_EDGE = CLOUDFLARE_IP_RANGES[0] + CLOUDFLARE_IP_RANGES[1]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a failing host failed at (the probes' kinds, and the verdict's two for HTTP answers), in the
# order reports list them, with the words for people.
KIND_LABELS: dict[str, str] = {
    "dns_timeout": "DNS timeout",
    "dns_nxdomain": "NXDOMAIN",
    "dns_error": "DNS error",
    "connect_timeout": "connect timeout",
    "connect_refused": "connection refused",
    "connect_error": "cannot connect",
    "tls_error": "TLS error",
    "cert_untrusted": "certificate not trusted",
    "http_error": "no HTTP answer",
    "http_5xx": "HTTP 5xx",
    "tunnel_error": "tunnel error",
    "refused_here": "refused here (not among the networks the VPS serves)",
}
# The only kind that proves the edge works (it answered, over TLS) while the tunnel behind it fails.
EDGE_WAY_KINDS = frozenset({"tunnel_error"})
DNS_FAILURE_KINDS = frozenset(DNS_KINDS)

# The three ways to fail over (`mana-infra cutover --via edge|dns`, the stack's emergencyCutover).
WAYS: dict[str, str] = {"edge": "through Cloudflare's edge", "dns": "DNS-only", "emergency": "the emergency path"}
EDGE_BUDGET = "seconds (Cloudflare applies a record change within a minute)"

# The program renews the public certificate once a third of its lifetime is left (Certificates,
# min_days_dynamic): 30 days of 90, about 21 of the 64 Let's Encrypt gives from February 2027, 15 of 45
# from 2028. A stack without publicCertificateIssuedOn (deployed before that output) had 90-day ones.
RENEWAL_SHARE = 1 / 3
PUBLIC_LIFETIME_DAYS_BEFORE_THE_OUTPUT = 90.0


def renewal_due_days(lifetime_days: float | None) -> float:
    """Days left at which `pulumi up` renews the public certificate."""
    return (lifetime_days or PUBLIC_LIFETIME_DAYS_BEFORE_THE_OUTPUT) * RENEWAL_SHARE


# Certificate expiry dates the stack's outputs may carry: key -> (output, what it is).
CERTIFICATE_OUTPUTS: dict[str, tuple[str, str]] = {
    "origin": ("originCertificateExpiresOn", "the Cloudflare Origin CA certificate (the edge way)"),
    "public": ("publicCertificateExpiresOn", "the publicly trusted certificate (the DNS-only way)"),
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
    certificates: dict[str, datetime] = field(default_factory=dict)
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

    @property
    def expected_path(self) -> str:
        return "tunnel" if self.mode == "tunnel" else "origin"


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


def run_check(endpoints: Endpoints, options: Options, progress: Progress | None = None) -> dict[str, Any]:
    """Probe the public path, the standby path through the VPS, the VPS and the Cloudflare API, all
    at once; return the report (see JSON_SCHEMA)."""
    started = time.monotonic()
    context = tls_context(options.ca_file)
    timeout = options.timeout
    done = progress or (lambda _label: None)

    def host_live(service: Service) -> tuple[DnsAnswer, HttpsResult | None]:
        answer = resolve(service.host, options.resolvers, timeout)
        live = None
        if answer.addresses:
            live = https_get(service.host, answer.addresses[0], options.https_port, service.health, context, timeout)
        done(service.host)
        return answer, live

    def standby_https(service: Service) -> HttpsResult | None:
        address = _origin_address(endpoints, origin_answer_future)
        result = (
            None
            if address is None
            else https_get(
                service.host,
                address,
                options.https_port,
                service.health,
                context,
                timeout,
                pinned=endpoints.pinned_certificates,
            )
        )
        done(f"{service.host} via VPS")
        return result

    def vps_health() -> tuple[str | None, HttpsResult | None]:
        url = endpoints.health_url or f"https://{endpoints.origin_name}/healthz"
        parts = urlsplit(url)
        host = parts.hostname or endpoints.origin_name
        address = _origin_address(endpoints, origin_answer_future)
        result = None
        if address is not None:
            port = parts.port or options.https_port
            result = https_get(host, address, port, parts.path or "/", context, timeout)
        done("VPS health")
        return url, result

    def vps_ssh() -> VpsReport | None:
        if options.runner is None:
            return None
        # The session itself gets more time: ssh's connect, then `wg show`.
        report = run_vps_script(options.runner, vps_script(options.wg_interface), timeout * 2 + 2)
        done("VPS over SSH")
        return report

    def probe_tunnel() -> tuple[DnsAnswer, HttpsResult | None] | None:
        if not endpoints.tunnel_probe:
            return None
        answer = resolve(endpoints.tunnel_probe, options.resolvers, timeout)
        result = None
        if answer.addresses:
            result = https_get(endpoints.tunnel_probe, answer.addresses[0], options.https_port, "/", context, timeout)
        done("tunnel probe")
        return answer, result

    def cloudflare_api() -> ApiResult | None:
        if options.cloudflare is None:
            return None
        result = verify_token(options.cloudflare, context, timeout)
        done("Cloudflare API")
        return result

    workers = max(4, min(options.workers, 3 * len(endpoints.services) + 6))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
        origin_answer_future: Future[DnsAnswer] | None = None
        if not endpoints.origin_ips:
            origin_answer_future = pool.submit(resolve, endpoints.origin_name, options.resolvers, timeout)
        tunnel_future = (
            pool.submit(resolve, endpoints.tunnel_target, options.resolvers, timeout)
            if endpoints.tunnel_target
            else None
        )
        ssh_future = pool.submit(vps_ssh)
        api_future = pool.submit(cloudflare_api)
        probe_future = pool.submit(probe_tunnel)
        health_future = pool.submit(vps_health)
        live_futures = [pool.submit(host_live, s) for s in endpoints.services]
        standby_futures = [pool.submit(standby_https, s) for s in endpoints.services]
        mirror_futures = [pool.submit(resolve, s.host, options.mirror, timeout) for s in endpoints.services]
        mirror_futures = mirror_futures if options.mirror else []
        tunnel_addresses = tunnel_future.result().addresses if tunnel_future else []
        origin_answer = origin_answer_future.result() if origin_answer_future else None
        lives = [f.result() for f in live_futures]
        standbys = [f.result() for f in standby_futures]
        mirrors = [f.result() for f in mirror_futures]
        health_url, health = health_future.result()
        ssh = ssh_future.result()
        api = api_future.result()
        probe = probe_future.result()

    origin_ips = set(endpoints.origin_ips) | set(origin_answer.addresses if origin_answer else [])
    warn_days = options.cert_warn_days
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": endpoints.mode,
        "stack": endpoints.stack,
        "endpoints": {
            "origin_name": endpoints.origin_name,
            "origin_ips": sorted(origin_ips),
            "tunnel_target": endpoints.tunnel_target,
            "tunnel_addresses": tunnel_addresses,
            "health_url": health_url,
            "https_port": options.https_port,
            "resolvers": [str(r) for r in options.resolvers],
        },
        "hosts": [],
    }
    for index, service in enumerate(endpoints.services):
        answer, live = lives[index]
        path, detail = classify(answer, endpoints, set(tunnel_addresses), origin_ips)
        host: dict[str, Any] = {
            "host": service.host,
            "name": service.name,
            "port": service.port,
            "health": service.health,
            "dns": {
                "path": path,
                "expected": endpoints.expected_path,
                "detail": detail,
                "chain": answer.chain,
                "addresses": answer.addresses,
                "ttl": answer.ttl,
                "error": answer.error,
                "failure": (answer.error_kind or "dns_error") if path == "error" else None,
                "ms": round(answer.seconds * 1000, 1),
            },
            "live": _https_json(
                live,
                path,
                warn_days,
                "no address to connect to" if live is None else None,
                failure=answer.error_kind,
                behind_edge=path == "tunnel",
            ),
            "standby": _standby_json(standbys[index], endpoints.mode, warn_days),
        }
        if mirrors:
            # What the mirror answers must be the failover form: the origin, whatever the stack's mode.
            mirror_path, mirror_detail = classify(mirrors[index], endpoints, set(), origin_ips)
            host["mirror"] = {"path": mirror_path, "detail": mirror_detail, "ok": mirror_path == "origin"}
        report["hosts"].append(host)
    report["vps"] = {
        "health": _health_json(health_url, health, None if endpoints.vps_stack else endpoints.mode, warn_days),
        "wireguard": _wireguard_json(ssh, options),
        "ssh": _ssh_json(ssh, options),
    }
    report["cloudflare_api"] = _api_json(api, options)
    report["tunnel_probe"] = tunnel_probe_json(endpoints.tunnel_probe, probe)
    report["certificates"] = _certificates_json(endpoints, warn_days)
    evaluate(report, endpoints, options)
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def stack_flag(stack: str | None) -> str:
    """` --stack S` for a command check prints, or nothing when no stack was named."""
    return f" --stack {stack}" if stack else ""


def allow_command(addresses: Sequence[str], allowed: Sequence[str] | None, stack: str | None) -> str:
    """The command that lets these addresses check the standby: checkAllowedCidrs with them added."""
    s = stack_flag(stack)
    added = [f"{a}/128" if ":" in a else f"{a}/32" for a in addresses]
    if allowed is None:
        shown = f"`pulumi config get checkAllowedCidrs{s}`"
        return f"add {', '.join(added)} to checkAllowedCidrs ({shown} lists it), then pulumi up{s}"
    wanted = [*allowed, *(cidr for cidr in added if cidr not in allowed)]
    pairs = " ".join(f"--plaintext 'checkAllowedCidrs[{i}]={cidr}'" for i, cidr in enumerate(wanted))
    return f"pulumi config set-all{s} --path {pairs} && pulumi up{s}"


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
) -> tuple[str, str]:
    """Which path a host's DNS answer is: tunnel, origin, other, or error; and why."""
    if answer.error and not answer.addresses:
        return "error", answer.error
    targets = answer.chain[1:]
    if endpoints.tunnel_target and endpoints.tunnel_target in targets:
        return "tunnel", f"CNAME to {endpoints.tunnel_target}"
    other_tunnel = next((t for t in targets if t.endswith("." + TUNNEL_DOMAIN)), None)
    if other_tunnel:
        return "other", f"CNAME to another tunnel: {other_tunnel} (the stack's is {endpoints.tunnel_target})"
    if endpoints.origin_name in targets:
        return "origin", f"CNAME to {endpoints.origin_name}"
    addresses = set(answer.addresses)
    shown = ", ".join(answer.addresses)
    if addresses <= origin_ips:
        return "origin", f"the origin's address {shown}"
    if addresses <= tunnel_addresses:
        return "tunnel", f"the tunnel's address {shown}"
    if all(_in_networks(a, endpoints.edge_networks) for a in addresses):
        # A proxied record: only the record's own settings tell which path is behind the edge.
        path = (
            endpoints.expected_path if endpoints.proxied.get(answer.chain[0], endpoints.mode == "tunnel") else "tunnel"
        )
        return path, f"Cloudflare edge {shown} (proxied)"
    via = f"CNAME to {targets[-1]} -> " if targets else ""
    return "other", f"{via}{shown}: neither the tunnel nor the origin"


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


def _https_json(
    result: HttpsResult | None,
    path: str,
    warn_days: float,
    missing: str | None,
    *,
    failure: str | None = None,
    behind_edge: bool = False,
) -> dict[str, Any]:
    """One HTTPS probe as JSON. failure: the kind when there is no result (the DNS failure that
    left no address); behind_edge: the host was reached through Cloudflare's edge, so its 5xx can
    be a tunnel error."""
    if result is None:
        return {
            "path": path,
            "ok": False,
            "address": None,
            "status": None,
            "latency_ms": None,
            "cert_days_left": None,
            "cert_trusted": None,
            "cert_pinned": False,
            "cert_expiring": False,
            "error": missing,
            "failure": failure or "connect_error",
            "refused": None,
        }
    error, kind = result.error, result.error_kind
    refused = refused_address(result.status, result.body) if error is None else None
    if refused:
        error, kind = f"HTTP 403: the VPS refuses {refused} here", "refused_here"
    elif error is None and not status_ok(result.status):
        detail = tunnel_error(result.status, result.body) if behind_edge else None
        error = f"HTTP {result.status}" + (f" ({detail})" if detail else "")
        kind = "tunnel_error" if detail else ("http_5xx" if (result.status or 0) >= 500 else "http_error")
    expiring = result.cert_days_left is not None and result.cert_days_left < warn_days
    return {
        "path": path,
        "ok": error is None,
        "address": result.address,
        "status": result.status,
        "latency_ms": result.latency_ms,
        "cert_days_left": result.cert_days_left,
        "cert_trusted": result.cert_trusted,
        "cert_pinned": result.cert_pinned,
        "cert_expiring": expiring,
        "error": error,
        "failure": None if error is None else (kind or "http_error"),
        "refused": refused,
    }


# Who answered a request to the VPS, by what failed: nobody (no connection), the VPS itself (its TLS, its
# refusal, Caddy's own 502/504 when WireGuard or the app behind it does not answer), else the Mac Mini's app.
NOBODY_KINDS = frozenset({"connect_timeout", "connect_refused", "connect_error", "dns_timeout", "dns_error"})
VPS_KINDS = frozenset({"tls_error", "cert_untrusted", "refused_here"})


def answered_by(result: HttpsResult | None, json: dict[str, Any]) -> str:
    """ "mac-mini", "vps" or "nobody" for one answer through the VPS (see NOBODY_KINDS, VPS_KINDS)."""
    failure = json["failure"]
    if result is None or failure in NOBODY_KINDS:
        return "nobody"
    if failure in VPS_KINDS:
        return "vps"
    # TLS done, no HTTP answer in time: Caddy on the VPS holds the request while it dials the Mac Mini
    # (its dial timeout is as long as check's default timeout).
    if failure == "http_error" and result.status is None:
        return "vps"
    # Caddy's reverse proxy answers 502/504 with an empty body when its upstream does not; an app's own
    # 5xx comes with what the app wrote.
    if failure == "http_5xx" and result.status in (502, 503, 504) and not result.body.strip():
        return "vps"
    return "mac-mini"


def _standby_json(result: HttpsResult | None, mode: str, warn_days: float) -> dict[str, Any]:
    """The standby path for one host: HTTPS to the VPS's address with the host's name (SNI, Host,
    verification), in both modes; in tunnel mode the VPS serves the hosts to the operator's networks."""
    base = _https_json(result, "origin", warn_days, "the VPS's address is unknown" if result is None else None)
    return {
        "kind": "https-via-vps",
        **base,
        "answered_by": answered_by(result, base),
        "proven": "the VPS serves this host over HTTPS: its Caddy site, certificate, WireGuard, the Mac Mini"
        if base["ok"]
        else "",
        "unproven": "DNS to the VPS (it comes with the cut-over)" if mode == "tunnel" else "",
    }


def _health_json(url: str | None, result: HttpsResult | None, mode: str | None, warn_days: float) -> dict[str, Any]:
    """mode: the mode the VPS's Caddy must serve; None: any (the VPS is another stack's)."""
    base = _https_json(
        result, "origin", warn_days, "the VPS's address is unknown (no --origin-ip, and its name does not resolve)"
    )
    base["url"] = url
    body = (result.body.strip() if result else "")[:200]
    base["body"] = body
    served_mode = next((word.split("=", 1)[1] for word in body.split() if word.startswith("mode=")), None)
    base["served_mode"] = served_mode
    if base["ok"] and (result is None or result.status != 200 or not body.startswith("ok")):
        base["ok"] = False
        base["failure"] = "http_error"
        expected = f"ok mode={mode}" if mode else "ok mode=<the VPS's mode>"
        base["error"] = f"HTTP {result.status if result else None} {body[:60]!r}, expected 200 '{expected}'"
    base["mode_matches"] = served_mode == mode if served_mode is not None and mode is not None else None
    return base


def tunnel_probe_json(host: str | None, probe: tuple[DnsAnswer, HttpsResult | None] | None) -> dict[str, Any]:
    """Whether the tunnel serves, from the probe name: "up" when cloudflared answered (its catch-all
    404 included), "down" on the edge's tunnel error, "unknown" when the edge or DNS failed (which says
    nothing about the tunnel), "not_checked" without a probe name (a stack from before it)."""
    out: dict[str, Any] = {"host": host, "state": "not_checked", "status": None, "error": None}
    if probe is None:
        out["error"] = "no tunnelProbe output was read (a stack's first `pulumi up` since it came exports it)"
        return out
    answer, result = probe
    if result is None:
        return {**out, "state": "unknown", "error": answer.error or "no address"}
    if result.error:
        return {**out, "state": "unknown", "error": result.error}
    down = tunnel_error(result.status, result.body)
    if down:
        return {**out, "state": "down", "status": result.status, "error": f"HTTP {result.status} ({down})"}
    return {**out, "state": "up", "status": result.status}


def _ssh_json(ssh: VpsReport | None, options: Options) -> dict[str, Any]:
    if ssh is None:
        return {
            "checked": False,
            "ok": None,
            "error": None,
            "via": options.runner_note,
            "seconds": None,
            "why_not_checked": options.ssh_skipped,
        }
    return {
        "checked": True,
        "ok": ssh.error is None,
        "error": ssh.error,
        "via": options.runner_note,
        "seconds": ssh.seconds,
        "why_not_checked": None,
    }


def _wireguard_json(ssh: VpsReport | None, options: Options) -> dict[str, Any]:
    base: dict[str, Any] = {
        "checked": ssh is not None,
        "ok": None,
        "interface": options.wg_interface,
        "latest_handshake": None,
        "age_seconds": None,
        "max_age_seconds": options.handshake_max_age,
        "error": None,
    }
    if ssh is None:
        return base
    if ssh.error:  # reported once, as the SSH problem
        base.update(checked=False, error=f"not checked: {ssh.error}")
        return base
    if ssh.wg_error:
        base.update(ok=False, error=f"`wg show {options.wg_interface}` failed: {ssh.wg_error}")
        return base
    latest = max(ssh.handshakes.values(), default=0)
    if not ssh.handshakes:
        base.update(ok=False, error=f"{options.wg_interface} has no peer")
    elif latest == 0:
        base.update(ok=False, error="no handshake with the Mac Mini yet")
    else:
        age = max(0, (ssh.now or int(time.time())) - latest)
        base.update(
            latest_handshake=latest,
            age_seconds=age,
            ok=age <= options.handshake_max_age,
            error=None
            if age <= options.handshake_max_age
            else f"last handshake {_age(age)} ago (stale after {options.handshake_max_age} s)",
        )
    return base


def _api_json(result: ApiResult | None, options: Options) -> dict[str, Any]:
    """Whether Cloudflare's API takes the token (it must, for the edge and DNS-only ways)."""
    if options.cloudflare is None or result is None:
        return {
            "checked": False,
            "ok": None,
            "state": "not_checked",
            "error": None,
            "why_not_checked": options.cloudflare_skipped,
            "url": None,
            "seconds": None,
        }
    return {
        "checked": True,
        "ok": result.state == "ok",
        "state": result.state,
        "error": result.error,
        "why_not_checked": None,
        "url": options.cloudflare.verify_url,
        "seconds": result.seconds,
    }


def _certificates_json(endpoints: Endpoints, warn_days: float) -> dict[str, Any]:
    """The certificates the outputs date (originCertificateExpiresOn, publicCertificateExpiresOn)."""
    certificates: dict[str, Any] = {}
    for key, (output, what) in CERTIFICATE_OUTPUTS.items():
        expires = endpoints.certificates.get(key)
        if expires is None:
            continue
        days = days_left(expires)
        certificates[key] = {
            "output": output,
            "what": what,
            "expires_on": expires.isoformat(),
            "days_left": days,
            "expired": days <= 0,
            "expiring": 0 < days < warn_days,
        }
    return certificates


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def days_text(days: float) -> str:
    """14.99 -> "15 days", 0.5 -> "12 hours"."""
    if abs(days) < 1:
        return count(round(days * 24), "hour")
    return count(round(days), "day")


def names_text(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _names(hosts: Sequence[dict[str, Any]], limit: int = 4) -> str:
    return names_text([h["host"] for h in hosts], limit)


def _grouped(hosts: Sequence[dict[str, Any]], part: str) -> str:
    """`a, b (HTTP 530); c (certificate not trusted: ...)`: the failing hosts, grouped by their error."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for host in hosts:
        groups.setdefault(host[part].get("error") or "failed", []).append(host)
    return "; ".join(f"{_names(members)} ({error})" for error, members in groups.items())


def kinds_text(failures: dict[str, list[str]], *, hosts: bool = False) -> str:
    """`DNS timeout: 3 hosts; tunnel error: 1 host` (with hosts: `... (a, b, c)`)."""
    return "; ".join(
        f"{KIND_LABELS.get(kind, kind)}: {count(len(names), 'host')}" + (f" ({names_text(names)})" if hosts else "")
        for kind, names in failures.items()
    )


def _path_state(total: int, failed: int) -> str:
    if total == 0:
        return "unused"
    if failed == 0:
        return "up"
    return "down" if failed * 2 >= total else "degraded"


def public_path(hosts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whatever DNS gives today, for every host: does it answer? A host fails for any reason (DNS,
    connect, TLS, a 5xx, a tunnel error); down when at least half of the hosts fail."""
    by_kind: dict[str, list[str]] = {}
    for host in hosts:
        if host["dns"]["path"] == "error":
            kind = host["dns"]["failure"] or "dns_error"
        elif not host["live"]["ok"]:
            kind = host["live"]["failure"] or "http_error"
        else:
            continue
        by_kind.setdefault(kind, []).append(host["host"])
    order = list(KIND_LABELS)
    failures = {k: by_kind[k] for k in sorted(by_kind, key=lambda k: order.index(k) if k in order else len(order))}
    failed = sum(len(names) for names in failures.values())
    return {"state": _path_state(len(hosts), failed), "total": len(hosts), "failed": failed, "failures": failures}


def cutover_command(way: str, stack: str | None, emergency: str | None = None) -> str:
    """The command for a way: `mana-infra cutover --via edge|dns`, or the stack's emergencyCutover."""
    suffix = stack_flag(stack)
    if way == "emergency":
        return emergency or f"pulumi stack output emergencyCutover{suffix}"
    return f"mana-infra cutover --via {way}{suffix}"


# The API's states in which no record can change at Cloudflare.
API_BLOCKED = ("refused", "unreachable")


def api_blocked_text(api: dict[str, Any]) -> str:
    """`the Cloudflare API refuses the token (...)` / `... is unreachable (...)`."""
    blocked = "refuses the token" if api["state"] == "refused" else "is unreachable"
    return f"the Cloudflare API {blocked} ({api['error']})"


# What failed on the public path (rows) against what the standby shows (columns) -> the way that helps,
# or the reason none does. Every diagnosis comes from this one table; its cases are in the tests and the
# lab's drill.
#   public:  "tunnel" - the edge answers, the tunnel behind it fails (1033, 530, cloudflared's 502);
#            "edge"   - the edge itself or Cloudflare's DNS fails;
#            "api"    - either, and Cloudflare's API refuses the token or does not answer.
#   standby: "serving"       - the VPS serves every host from the Mac Mini (through WireGuard);
#            "unproven"      - the VPS refuses this machine (or some hosts fail): not shown to help;
#            "mac-mini-down" - the VPS answers, the Mac Mini behind WireGuard does not;
#            "vps-down"      - the VPS does not answer.
DIAGNOSIS_TABLE: dict[tuple[str, str], str] = {
    ("tunnel", "serving"): "edge",
    ("edge", "serving"): "dns",
    ("api", "serving"): "emergency",
    ("tunnel", "unproven"): "edge",
    ("edge", "unproven"): "dns",
    ("api", "unproven"): "emergency",
    # Both paths fail at the Mac Mini: home power or the home line. The VPS reaches it no better.
    ("tunnel", "mac-mini-down"): "none:mac-mini",
    ("edge", "mac-mini-down"): "none:mac-mini-behind-vps",
    ("api", "mac-mini-down"): "none:mac-mini",
    ("tunnel", "vps-down"): "none:vps",
    ("edge", "vps-down"): "none:vps",
    ("api", "vps-down"): "none:vps",
}
NO_WAY_REASONS = {
    "none:mac-mini": "the Mac Mini or its line is down: the tunnel fails at it and so does WireGuard from the VPS "
    "({standby}); no cut-over helps. Check the Mac Mini's power, its line and cloudflared",
    "none:mac-mini-behind-vps": "the VPS answers but the Mac Mini behind WireGuard does not ({standby}): a "
    "cut-over would move visitors onto it and serve them the same failure. Check the Mac Mini and its WireGuard",
    "none:vps": "the VPS does not answer either ({standby}): no cut-over helps before `pulumi up{stack}` restores it",
}


def standby_condition(report: dict[str, Any]) -> tuple[str, str]:
    """The standby's column of DIAGNOSIS_TABLE, and the words for it."""
    hosts = report["hosts"]
    wireguard = report["paths"]["wireguard"]["state"]
    failing = [h for h in hosts if not h["standby"]["ok"]]
    by = {who: [h for h in failing if h["standby"]["answered_by"] == who] for who in ("vps", "nobody", "mac-mini")}
    upstream = [h for h in by["vps"] if h["standby"]["failure"] in ("http_5xx", "http_error")]
    if not failing:
        return "serving", "the VPS serves every host"  # through WireGuard: whatever a handshake's age says
    if wireguard == "down":
        return "mac-mini-down", "WireGuard down: " + str(report["vps"]["wireguard"]["error"])
    if hosts and len(upstream) == len(hosts):
        first = upstream[0]["standby"]
        answer = f"answers {first['status']}" if first["status"] else "gets no answer behind it"
        return "mac-mini-down", f"Caddy on the VPS {answer} for every host"
    if hosts and len(by["nobody"]) == len(hosts) and not report["vps"]["health"]["ok"]:
        return "vps-down", f"{kinds_text(_kinds(by['nobody']))}"
    refused = [h for h in failing if h["standby"]["failure"] == "refused_here"]
    if refused:
        return "unproven", f"the standby is not proven: the VPS refuses this machine for {count(len(refused), 'host')}"
    return "unproven", f"the standby fails for {count(len(failing), 'host')} too"


def _kinds(hosts: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for h in hosts:
        kinds.setdefault(str(h["standby"]["failure"]), []).append(h["host"])
    return kinds


def diagnose(report: dict[str, Any], endpoints: Endpoints) -> dict[str, Any]:
    """Which way to fail over fits what failed (DIAGNOSIS_TABLE); none when every host answers, when
    the hosts are on the VPS already (mode failover), or when no cut-over can help."""
    failures: dict[str, list[str]] = report["public_path"]["failures"]
    api = report["cloudflare_api"]
    api_blocked = api["state"] in API_BLOCKED

    def fits(way: str | None, why: str, case: str | None = None) -> dict[str, Any]:
        command = cutover_command(way, endpoints.stack, endpoints.emergency_command) if way else None
        return {"way": way, "why": why, "command": command, "case": case}

    if endpoints.mode != "tunnel":
        failing = f" (the public path fails: {kinds_text(failures)})" if failures else ""
        return fits(None, f"mode {endpoints.mode}: the hosts are on the VPS already, no cut-over applies{failing}")
    if not failures:
        later = f"; should it fail, only the emergency path fits: {api_blocked_text(api)}" if api_blocked else ""
        return fits(None, f"every host answers through the tunnel: nothing to cut over{later}")
    # NXDOMAIN is Cloudflare's DNS answering (a record is missing, and either way writes it): it does
    # not speak against the edge when tunnel errors show the edge answering for the other hosts.
    tunnel_side = set(failures) & EDGE_WAY_KINDS and set(failures) <= EDGE_WAY_KINDS | {"dns_nxdomain"}
    public = "api" if api_blocked else ("tunnel" if tunnel_side else "edge")
    standby, standby_words = standby_condition(report)
    case = (public, standby)
    outcome = DIAGNOSIS_TABLE[case]
    if outcome.startswith("none:"):
        stack = stack_flag(endpoints.stack)
        return fits(None, NO_WAY_REASONS[outcome].format(standby=standby_words, stack=stack), f"{public}/{standby}")
    caveat = f"; but {standby_words}" if standby == "unproven" else ""
    if outcome == "emergency":
        why = (
            f"{api_blocked_text(api)}, so no record can change at Cloudflare; "
            f"the public path fails ({kinds_text(failures)})"
        )
    elif outcome == "edge":
        why = f"the edge answers over TLS, the tunnel behind it fails ({kinds_text(failures)})"
    else:
        edge_side = {k: v for k, v in failures.items() if k not in EDGE_WAY_KINDS}
        what = "DNS for the names fails" if set(edge_side) <= DNS_FAILURE_KINDS else "the edge itself fails"
        tunnel = {k: v for k, v in failures.items() if k in EDGE_WAY_KINDS}
        also = f"; also {kinds_text(tunnel)}" if tunnel else ""
        why = f"{what} ({kinds_text(edge_side)}{also})"
    return fits(outcome, why + caveat, f"{public}/{standby}")


def budget(hosts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What each way takes in the real world, from today's answers: the edge way seconds; DNS-only
    the longest TTL the answers carry (resolvers keep the old records that long); certificates the
    VPS would still have to obtain (hosts it serves no valid one for)."""
    ttls = [h["dns"]["ttl"] for h in hosts if h["dns"]["ttl"] is not None]
    dns_seconds: int | None = max(ttls) if ttls else None
    acme = [
        h["host"] for h in hosts if not (h["standby"]["cert_trusted"] and (h["standby"]["cert_days_left"] or 0) > 0)
    ]
    return {
        "edge_seconds": EDGE_APPLIES_SECONDS,
        "dns_seconds": dns_seconds,
        "acme": acme or "none",
        "text": {
            "edge": EDGE_BUDGET,
            "dns": f"up to {dns_seconds} s (the old records' TTL)"
            if dns_seconds is not None
            else "unknown (no DNS answer carried a TTL)",
            "certificates": f"to obtain for {names_text(acme)}" if acme else "none to obtain",
        },
    }


def evaluate(report: dict[str, Any], endpoints: Endpoints, options: Options) -> None:
    """Fill in report["paths"], ["problems"], ["notes"], ["public_path"], ["diagnosis"], ["budget"],
    ["healthy"], ["exit_code"] and ["tunnel_down"]."""
    hosts = report["hosts"]
    problems: list[str] = []
    notes: list[str] = []
    paths: dict[str, dict[str, Any]] = {}
    warn_days = options.cert_warn_days

    # DNS: every host should resolve to the path of the stack's mode.
    dns_failed = [h for h in hosts if h["dns"]["path"] == "error"]
    misplaced = [h for h in hosts if h["dns"]["path"] not in ("error", h["dns"]["expected"])]
    if dns_failed:
        problems.append(
            f"DNS fails for {count(len(dns_failed), 'host')}: {_names(dns_failed)}"
            f"{' (' + dns_failed[0]['dns']['error'] + ')' if dns_failed[0]['dns']['error'] else ''}"
        )
    for path in ("other", "tunnel", "origin"):
        wrong = [h for h in misplaced if h["dns"]["path"] == path]
        if wrong:
            problems.append(
                f"DNS: {count(len(wrong), 'host')} resolve{'s' * (len(wrong) == 1)} to "
                f"{'neither path (other)' if path == 'other' else 'the ' + path + ' path'} while the "
                f"stack's mode is {endpoints.mode}: {_names(wrong)} ({wrong[0]['dns']['detail']})"
            )
    paths["dns"] = {
        "state": "up" if not dns_failed and not misplaced else "degraded",
        "total": len(hosts),
        "failed": len(dns_failed) + len(misplaced),
    }

    # The live path(s): HTTPS through whatever DNS gives today, grouped by that path.
    for path in ("tunnel", "origin", "other"):
        on_path = [h for h in hosts if h["dns"]["path"] == path]
        failed = [h for h in on_path if not h["live"]["ok"]]
        state = _path_state(len(on_path), len(failed))
        paths[f"live_{path}"] = {"state": state, "total": len(on_path), "failed": len(failed)}
        if failed:
            label = (
                "tunnel path"
                if path == "tunnel"
                else ("origin path (the VPS, live)" if path == "origin" else "path of the misplaced hosts")
            )
            problems.append(
                f"{label} {state}: {len(failed)} of {count(len(on_path), 'host')} fail: {_grouped(failed, 'live')}"
            )
    expiring = [h for h in hosts if h["live"]["cert_expiring"]]
    if expiring:
        days = min(h["live"]["cert_days_left"] for h in expiring)
        problems.append(f"certificate expires within {warn_days:g} days ({days:g} left): {_names(expiring)}")

    # The standby path: HTTPS straight to the VPS with each host's name, in both modes.
    refused = [h for h in hosts if h["standby"]["failure"] == "refused_here"]
    failed_standby = [h for h in hosts if not h["standby"]["ok"] and h not in refused]
    state = _path_state(len(hosts), len(failed_standby) + len(refused))
    if refused and len(refused) == len(hosts):
        state = "unchecked"  # nothing was proven: not up, and not down either
    paths["standby"] = {
        "state": state,
        "total": len(hosts),
        "failed": len(failed_standby),
        "refused": len(refused),
        "kind": "https-via-vps",
    }
    if refused:
        addresses = sorted({str(h["standby"]["refused"]) for h in refused})
        problems.append(
            f"standby not checked from here: the VPS refuses {', '.join(addresses)} for "
            f"{count(len(refused), 'host')} ({_names(refused)}), outside the networks it serves them to in "
            f"mode {endpoints.mode}; nothing about them is proven. To check from here: "
            f"{allow_command(addresses, endpoints.check_allowed_cidrs, endpoints.stack)}"
        )
    if failed_standby:
        unreached = {"connect_timeout", "connect_refused", "connect_error", "tls_error"}
        hint = (
            " (in tunnel mode the VPS serves the inventory hosts only to the networks allowed to check it: "
            "is this machine in them?)"
            if endpoints.mode == "tunnel"
            and len(failed_standby) == len(hosts)
            and all(h["standby"]["failure"] in unreached for h in failed_standby)
            else ""
        )
        problems.append(
            f"standby path (HTTPS straight to the VPS) {state}: {len(failed_standby)} of {len(hosts)} fail: "
            f"{_grouped(failed_standby, 'standby')}{hint}"
        )
        wireguard = report["vps"]["wireguard"]
        behind = [
            h for h in failed_standby if h["standby"]["answered_by"] == "vps" and h["standby"]["status"] in (502, 504)
        ]
        if behind and len(behind) < len(hosts) and not (wireguard["checked"] and not wireguard["ok"]):
            # Some apps answer through WireGuard and these do not: not the tunnel, the app's listen address.
            ports = ", ".join(f"{h['host']} (port {h['port']})" for h in behind)
            problems.append(
                f"Caddy on the VPS gets no answer from the app behind WireGuard for {count(len(behind), 'host')} "
                f"while others answer: {ports}. An app that listens on 127.0.0.1 only (common behind cloudflared) "
                "must listen on the Mac Mini's WireGuard address too (wireguardMacMiniAddress, 10.0.0.2 by default), "
                "or on 0.0.0.0"
            )
    soon = [h for h in hosts if h["standby"]["cert_expiring"]]
    if soon:
        days = min(h["standby"]["cert_days_left"] for h in soon)
        problems.append(
            f"the VPS's certificate expires within {warn_days:g} days ({days_text(days)} left) for "
            f"{count(len(soon), 'host')}: {_names(soon)}"
        )

    # The Hetzner mirror, when asked: every host in failover form there, ready for the nameserver switch.
    mirrored = [h for h in hosts if "mirror" in h]
    if mirrored:
        differ = [h for h in mirrored if not h["mirror"]["ok"]]
        paths["mirror"] = {
            "state": _path_state(len(mirrored), len(differ)),
            "total": len(mirrored),
            "failed": len(differ),
        }
        if differ:
            problems.append(
                f"the Hetzner mirror differs from failover for {count(len(differ), 'host')}: "
                f"{_names(differ)} ({differ[0]['mirror']['detail']}); `pulumi up` rewrites it"
            )
        if options.mirror_skipped:
            notes.append(f"Hetzner mirror partly checked: {options.mirror_skipped}")
    else:
        notes.append(f"Hetzner mirror not checked: {options.mirror_skipped or 'no nameserver of it was given'}")

    # The VPS itself.
    vps = report["vps"]
    health = vps["health"]
    paths["vps"] = {"state": "up" if health["ok"] else "down"}
    if not health["ok"]:
        problems.append(f"VPS health {health['url']} fails: {health['error']}")
    elif health["mode_matches"] is False:
        problems.append(
            f"the VPS's Caddy runs mode={health['served_mode']} but the stack's mode is {endpoints.mode} "
            "(a `pulumi up` not finished, or not run?)"
        )
    if health["cert_expiring"]:
        problems.append(f"the VPS's certificate expires in {health['cert_days_left']:g} days")
    wireguard = vps["wireguard"]
    paths["wireguard"] = {"state": "unchecked" if not wireguard["checked"] else ("up" if wireguard["ok"] else "down")}
    if wireguard["checked"] and not wireguard["ok"]:
        problems.append(f"WireGuard down: {wireguard['error']}")
    if vps["ssh"]["checked"] and not vps["ssh"]["ok"]:
        ssh_problem = f"SSH to the VPS failed, so WireGuard went unchecked: {vps['ssh']['error']}"
        if health["ok"] and "timed out" in str(vps["ssh"]["error"]).lower():
            # The VPS answers HTTPS: a silent SSH port is its firewall, which opens 22 to sshAllowedCidrs only.
            seen = sorted({str(h["standby"]["refused"]) for h in hosts if h["standby"].get("refused")})
            here = f" (the VPS sees this machine as {', '.join(seen)})" if seen else ""
            s = stack_flag(endpoints.stack)
            ssh_problem += (
                f". The VPS answers HTTPS but not SSH: its firewall lets SSH in from sshAllowedCidrs only; if this "
                f"machine's address changed{here}, add it from an address still allowed (or Hetzner's console): "
                f"pulumi config set{s} --path 'sshAllowedCidrs[N]' <address>/32 && pulumi up{s} (/128 for IPv6; "
                "the Caddy command of every `pulumi up` needs SSH)"
            )
        problems.append(ssh_problem)
    if not vps["ssh"]["checked"]:
        notes.append(f"WireGuard not checked: {vps['ssh']['why_not_checked']}")

    # Cloudflare's API: the edge and DNS-only ways change records through it.
    api = report["cloudflare_api"]
    if api["state"] in API_BLOCKED:
        problems.append(
            f"{api_blocked_text(api)}: no record can change at Cloudflare, "
            "a cut-over would have to take the emergency path"
        )
    elif api["state"] == "error":
        problems.append(f"the Cloudflare API's token check failed: {api['error']}")
    elif not api["checked"]:
        notes.append(f"Cloudflare API not asked: {api['why_not_checked']}")

    report["public_path"] = public_path(hosts)
    # The tunnel, by its probe name: what a fail-back needs to know while the hosts are on the VPS.
    probe = report["tunnel_probe"]
    paths["tunnel"] = {"state": {"up": "up", "down": "down"}.get(probe["state"], "unchecked")}
    stack = stack_flag(endpoints.stack)
    if endpoints.mode == "failover" and not endpoints.vps_stack:
        if probe["state"] == "up":
            notes.append(
                f"the tunnel serves again ({probe['host']} answers HTTP {probe['status']} through it): "
                f"`mana-infra failback{stack}` when you are ready"
            )
        elif probe["state"] == "down":
            notes.append(f"the tunnel is still down ({probe['host']}: {probe['error']}): do not fail back yet")
        else:
            notes.append(f"whether the tunnel serves is not known ({probe['host'] or 'no probe'}: {probe['error']})")
    elif probe["state"] == "down" and report["public_path"]["state"] == "up":
        problems.append(f"the tunnel's probe {probe['host']} fails ({probe['error']}) while the hosts answer")
    elif probe["state"] in ("not_checked", "unknown") and not endpoints.vps_stack:
        notes.append(f"tunnel probe not checked: {probe['error']}")

    if endpoints.adoption_left:
        notes.append(adoption_left_text(endpoints.adoption_left, endpoints.stack or "<stack>", deployed=True))

    # The certificates the outputs date.
    for certificate in report["certificates"].values():
        if certificate["expired"]:
            problems.append(f"{certificate['output']}: {certificate['what']} expired on {certificate['expires_on']}")
        elif certificate["expiring"]:
            problems.append(
                f"{certificate['output']}: {certificate['what']} expires within {warn_days:g} days "
                f"({days_text(certificate['days_left'])} left, on {certificate['expires_on']})"
            )
    # The public certificate renews by DNS-01 at Cloudflare while the stack counts on Cloudflare: due while
    # the API does not answer, it will not until the stack says Cloudflare is gone (then at Hetzner's zone).
    public = report["certificates"].get("public")
    due = public and not public["expired"] and public["days_left"] < renewal_due_days(endpoints.public_lifetime_days)
    stack = endpoints.stack or "<stack>"
    if due and endpoints.cloudflare_reachable is False:
        notes.append(
            f"{public['output']}: its renewal is due ({days_text(public['days_left'])} left, on "
            f"{public['expires_on']}): with cloudflareReachable false its DNS-01 challenge goes to the Hetzner "
            "zone, which Let's Encrypt asks once the registrar lists the stack's secondaryDnsNameservers; until "
            f"then pulumi up --stack {stack} fails at certificates-public and the certificate on the VPS stays"
        )
    elif due and api["state"] in API_BLOCKED:
        problems.append(
            f"{public['output']}: its renewal is due ({days_text(public['days_left'])} left, on "
            f"{public['expires_on']}) and {api_blocked_text(api)}: the DNS-01 challenge at Cloudflare cannot run, "
            "and the DNS-only way goes when it expires; renew while Cloudflare answers (pulumi up), or, with "
            "Cloudflare gone, the emergency (pulumi stack output emergencyCutover) and the registrar's switch, "
            f"then pulumi up --stack {stack}: with cloudflareReachable false the challenge goes to the Hetzner zone"
        )

    report["paths"] = paths
    report["diagnosis"] = diagnose(report, endpoints)
    report["budget"] = budget(hosts)
    report["problems"] = problems
    report["notes"] = notes
    report["healthy"] = not problems
    report["exit_code"] = 0 if not problems else 1
    # Kept for compatibility: what --watch counts towards the alert, the public path down in tunnel mode.
    report["tunnel_down"] = endpoints.mode == "tunnel" and report["public_path"]["state"] == "down"


_NULLABLE_STRING = {"type": ["string", "null"]}
_KINDS = list(KIND_LABELS)

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mana-infra check report",
    "type": "object",
    "required": [
        "version",
        "checked_at",
        "seconds",
        "mode",
        "stack",
        "endpoints",
        "hosts",
        "vps",
        "cloudflare_api",
        "certificates",
        "tunnel_probe",
        "paths",
        "public_path",
        "diagnosis",
        "budget",
        "problems",
        "notes",
        "healthy",
        "exit_code",
        "tunnel_down",
    ],
    "properties": {
        "version": {"const": REPORT_VERSION},
        "checked_at": {"type": "string"},
        "seconds": {"type": "number"},
        "mode": {"enum": list(MODES)},
        "stack": _NULLABLE_STRING,
        "endpoints": {
            "type": "object",
            "required": [
                "origin_name",
                "origin_ips",
                "tunnel_target",
                "tunnel_addresses",
                "health_url",
                "https_port",
                "resolvers",
            ],
        },
        "hosts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["host", "name", "port", "health", "dns", "live", "standby"],
                "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer"},
                    "dns": {
                        "type": "object",
                        "required": [
                            "path",
                            "expected",
                            "detail",
                            "chain",
                            "addresses",
                            "ttl",
                            "error",
                            "failure",
                            "ms",
                        ],
                        "properties": {
                            "path": {"enum": ["tunnel", "origin", "other", "error"]},
                            "expected": {"enum": ["tunnel", "origin"]},
                            "chain": {"type": "array", "items": {"type": "string"}},
                            "addresses": {"type": "array", "items": {"type": "string"}},
                            "ttl": {"type": ["integer", "null"]},
                            "failure": {"enum": [*_KINDS, None]},
                        },
                    },
                    "live": {"$ref": "#/$defs/https"},
                    "standby": {
                        "allOf": [
                            {"$ref": "#/$defs/https"},
                            {
                                "type": "object",
                                "required": ["kind", "proven", "unproven", "answered_by"],
                                "properties": {
                                    "kind": {"const": "https-via-vps"},
                                    "answered_by": {"enum": ["mac-mini", "vps", "nobody"]},
                                },
                            },
                        ]
                    },
                    "mirror": {
                        "type": "object",
                        "required": ["path", "detail", "ok"],
                        "properties": {"ok": {"type": "boolean"}},
                    },
                },
            },
        },
        "vps": {
            "type": "object",
            "required": ["health", "wireguard", "ssh"],
            "properties": {
                "health": {
                    "allOf": [
                        {"$ref": "#/$defs/https"},
                        {"type": "object", "required": ["url", "body", "served_mode", "mode_matches"]},
                    ]
                },
                "wireguard": {
                    "type": "object",
                    "required": [
                        "checked",
                        "ok",
                        "interface",
                        "latest_handshake",
                        "age_seconds",
                        "max_age_seconds",
                        "error",
                    ],
                },
                "ssh": {
                    "type": "object",
                    "required": ["checked", "ok", "error", "via", "seconds", "why_not_checked"],
                    "properties": {"why_not_checked": _NULLABLE_STRING},
                },
            },
        },
        "cloudflare_api": {
            "type": "object",
            "required": ["checked", "ok", "state", "error", "why_not_checked", "url", "seconds"],
            "properties": {
                "checked": {"type": "boolean"},
                "ok": {"type": ["boolean", "null"]},
                "state": {"enum": ["ok", "refused", "unreachable", "error", "not_checked"]},
                "error": _NULLABLE_STRING,
                "why_not_checked": _NULLABLE_STRING,
            },
        },
        "tunnel_probe": {
            "type": "object",
            "required": ["host", "state", "status", "error"],
            "properties": {
                "host": _NULLABLE_STRING,
                "state": {"enum": ["up", "down", "unknown", "not_checked"]},
                "status": {"type": ["integer", "null"]},
                "error": _NULLABLE_STRING,
            },
        },
        "certificates": {
            "type": "object",
            "propertyNames": {"enum": list(CERTIFICATE_OUTPUTS)},
            "additionalProperties": {
                "type": "object",
                "required": ["output", "what", "expires_on", "days_left", "expired", "expiring"],
                "properties": {
                    "output": {"enum": [output for output, _ in CERTIFICATE_OUTPUTS.values()]},
                    "days_left": {"type": "number"},
                    "expired": {"type": "boolean"},
                    "expiring": {"type": "boolean"},
                },
            },
        },
        "paths": {
            "type": "object",
            "required": ["dns", "live_tunnel", "live_origin", "live_other", "standby", "vps", "wireguard"],
            "additionalProperties": {
                "type": "object",
                "required": ["state"],
                "properties": {"state": {"enum": ["up", "degraded", "down", "unused", "unchecked"]}},
            },
        },
        "public_path": {
            "type": "object",
            "required": ["state", "total", "failed", "failures"],
            "properties": {
                "state": {"enum": ["up", "degraded", "down", "unused"]},
                "failures": {
                    "type": "object",
                    "propertyNames": {"enum": _KINDS},
                    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
            },
        },
        "diagnosis": {
            "type": "object",
            "required": ["way", "why", "command", "case"],
            "properties": {
                "way": {"enum": [*WAYS, None]},
                "why": {"type": "string"},
                "command": _NULLABLE_STRING,
                # DIAGNOSIS_TABLE's row/column when the public path fails in tunnel mode.
                "case": {"enum": [*(f"{p}/{s}" for p, s in DIAGNOSIS_TABLE), None]},
            },
        },
        "budget": {
            "type": "object",
            "required": ["edge_seconds", "dns_seconds", "acme", "text"],
            "properties": {
                "edge_seconds": {"type": "integer"},
                "dns_seconds": {"type": ["integer", "null"]},
                "acme": {"oneOf": [{"const": "none"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
                "text": {"type": "object", "required": ["edge", "dns", "certificates"]},
            },
        },
        "problems": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "healthy": {"type": "boolean"},
        "exit_code": {"enum": [0, 1]},
        "tunnel_down": {"type": "boolean"},
    },
    "$defs": {
        "https": {
            "type": "object",
            "required": [
                "path",
                "ok",
                "address",
                "status",
                "latency_ms",
                "cert_days_left",
                "cert_trusted",
                "cert_pinned",
                "cert_expiring",
                "error",
                "failure",
                "refused",
            ],
            "properties": {
                "ok": {"type": "boolean"},
                "refused": _NULLABLE_STRING,
                "status": {"type": ["integer", "null"]},
                "latency_ms": {"type": ["number", "null"]},
                "cert_days_left": {"type": ["number", "null"]},
                "cert_trusted": {"type": ["boolean", "null"]},
                # Trusted by the stack's pinned Origin CA certificate (the standby path through the edge).
                "cert_pinned": {"type": "boolean"},
                "error": _NULLABLE_STRING,
                "failure": {"enum": [*_KINDS, None]},
            },
        },
    },
}
