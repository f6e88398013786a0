"""What `mana-infra check` checks, and how the results add up to healthy or degraded.

`run_check(endpoints, options)` probes everything in parallel and returns a plain dict (the JSON
report); `evaluate` turns the probe results into path states and problems. No printing here.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..model import MODES, TUNNEL_DOMAIN, Service
from .probes import (
    DnsAnswer,
    HttpsResult,
    Nameserver,
    VpsReport,
    VpsRunner,
    https_get,
    resolve,
    run_vps_script,
    tls_context,
    vps_script,
)

REPORT_VERSION = 1


# Cloudflare's published edge ranges (cloudflare.com/ips): a proxied record resolves to these, never to
# its CNAME target, so public DNS shows a tunnel-mode host as edge addresses.
CLOUDFLARE_EDGE = (
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    macmini_address: str = "10.0.0.2"
    wg_interface: str = "wg0"
    handshake_max_age: int = 180
    cert_warn_days: float = 7.0
    workers: int = 64
    # The Hetzner mirror's authoritative nameservers: asked directly, each host must get its failover answer.
    mirror: Sequence[Nameserver] = ()


Progress = Callable[[str], None]


def run_check(endpoints: Endpoints, options: Options, progress: Progress | None = None) -> dict[str, Any]:
    """Probe both paths and the VPS, all at once; return the report (see JSON_SCHEMA)."""
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
            else https_get(service.host, address, options.https_port, service.health, context, timeout)
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
        probes = sorted({(s.port, s.health) for s in endpoints.services}) if endpoints.mode == "tunnel" else []
        script = vps_script(options.macmini_address, probes, options.wg_interface, timeout)
        # The session itself gets more time: ssh's connect, then the parallel probes.
        report = run_vps_script(options.runner, script, timeout * 2 + 2)
        done("VPS over SSH")
        return report

    workers = max(4, min(options.workers, 3 * len(endpoints.services) + 4))
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
        health_future = pool.submit(vps_health)
        live_futures = [pool.submit(host_live, s) for s in endpoints.services]
        standby_futures = (
            [pool.submit(standby_https, s) for s in endpoints.services] if endpoints.mode == "failover" else []
        )
        mirror_futures = [pool.submit(resolve, s.host, options.mirror, timeout) for s in endpoints.services]
        mirror_futures = mirror_futures if options.mirror else []
        tunnel_addresses = tunnel_future.result().addresses if tunnel_future else []
        origin_answer = origin_answer_future.result() if origin_answer_future else None
        lives = [f.result() for f in live_futures]
        standbys = [f.result() for f in standby_futures]
        mirrors = [f.result() for f in mirror_futures]
        health_url, health = health_future.result()
        ssh = ssh_future.result()

    origin_ips = set(endpoints.origin_ips) | set(origin_answer.addresses if origin_answer else [])
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
                "ms": round(answer.seconds * 1000, 1),
            },
            "live": _https_json(
                live, path, options.cert_warn_days, "no address to connect to" if live is None else None
            ),
        }
        if endpoints.mode == "failover":
            standby = standbys[index]
            host["standby"] = {
                "kind": "https-via-vps",
                **_https_json(
                    standby,
                    "origin",
                    options.cert_warn_days,
                    "the VPS's address is unknown" if standby is None else None,
                ),
                "proven": "the VPS serves this host over HTTPS (Caddy site, certificate, WireGuard, Mac Mini)",
                "unproven": "",
            }
        else:
            host["standby"] = _wireguard_port(service, ssh, options)
        if mirrors:
            # What the mirror answers must be the failover form: the origin, whatever the stack's mode.
            mirror_path, mirror_detail = classify(mirrors[index], endpoints, set(), origin_ips)
            host["mirror"] = {"path": mirror_path, "detail": mirror_detail, "ok": mirror_path == "origin"}
        report["hosts"].append(host)
    report["vps"] = {
        "health": _health_json(
            health_url, health, None if endpoints.vps_stack else endpoints.mode, options.cert_warn_days
        ),
        "wireguard": _wireguard_json(ssh, options),
        "ssh": _ssh_json(ssh, options),
    }
    evaluate(report, endpoints, options)
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


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


def _https_json(result: HttpsResult | None, path: str, warn_days: float, missing: str | None) -> dict[str, Any]:
    if result is None:
        return {
            "path": path,
            "ok": False,
            "address": None,
            "status": None,
            "latency_ms": None,
            "cert_days_left": None,
            "cert_trusted": None,
            "cert_expiring": False,
            "error": missing,
        }
    error = result.error
    if error is None and not status_ok(result.status):
        error = f"HTTP {result.status}"
    expiring = result.cert_days_left is not None and result.cert_days_left < warn_days
    return {
        "path": path,
        "ok": error is None,
        "address": result.address,
        "status": result.status,
        "latency_ms": result.latency_ms,
        "cert_days_left": result.cert_days_left,
        "cert_trusted": result.cert_trusted,
        "cert_expiring": expiring,
        "error": error,
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
        expected = f"ok mode={mode}" if mode else "ok mode=<the VPS's mode>"
        base["error"] = f"HTTP {result.status if result else None} {body[:60]!r}, expected 200 '{expected}'"
    base["mode_matches"] = served_mode == mode if served_mode is not None and mode is not None else None
    return base


def _ssh_json(ssh: VpsReport | None, options: Options) -> dict[str, Any]:
    if ssh is None:
        return {"checked": False, "ok": None, "error": None, "via": options.runner_note, "seconds": None}
    return {
        "checked": True,
        "ok": ssh.error is None,
        "error": ssh.error,
        "via": options.runner_note,
        "seconds": ssh.seconds,
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


def _wireguard_port(service: Service, ssh: VpsReport | None, options: Options) -> dict[str, Any]:
    unproven = "the Caddy site and certificate for this host (they come at cut-over: mode failover)"
    base: dict[str, Any] = {
        "kind": "wireguard-port",
        "ok": None,
        "target": f"{options.macmini_address}:{service.port}",
        "result": None,
        "error": None,
        "proven": "",
        "unproven": unproven,
    }
    if ssh is None:
        base["error"] = "not checked (no SSH to the VPS: give --ssh-host, or the stack's originIpv4)"
        base["unproven"] = "the whole standby path: " + unproven
        return base
    if ssh.error:  # reported once, as the SSH problem
        base.update(error=f"not checked: {ssh.error}")
        return base
    outcome = ssh.ports.get(service.port)
    base["result"] = outcome
    if outcome is None:
        base.update(ok=False, error="the probe gave no answer")
    elif outcome == "open":
        base.update(ok=True, proven="VPS -> WireGuard -> Mac Mini port accepts TCP")
    elif outcome.isdigit() and outcome != "000":
        code = int(outcome)
        ok = code < 500
        base.update(
            ok=ok,
            proven=f"VPS -> WireGuard -> Mac Mini answers HTTP {code} on {service.health}" if ok else "",
            error=None if ok else f"the Mac Mini answers HTTP {code} across WireGuard",
        )
    else:
        base.update(ok=False, error=f"{options.macmini_address}:{service.port} unreachable from the VPS")
    return base


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _names(hosts: Sequence[dict[str, Any]], limit: int = 4) -> str:
    names = [h["host"] for h in hosts]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _grouped(hosts: Sequence[dict[str, Any]], part: str) -> str:
    """`a, b (HTTP 530); c (certificate not trusted: ...)`: the failing hosts, grouped by their error."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for host in hosts:
        groups.setdefault(host[part].get("error") or "failed", []).append(host)
    return "; ".join(f"{_names(members)} ({error})" for error, members in groups.items())


def _path_state(total: int, failed: int) -> str:
    if total == 0:
        return "unused"
    if failed == 0:
        return "up"
    return "down" if failed * 2 >= total else "degraded"


def evaluate(report: dict[str, Any], endpoints: Endpoints, options: Options) -> None:
    """Fill in report["paths"], ["problems"], ["notes"], ["healthy"] and ["exit_code"]."""
    hosts = report["hosts"]
    problems: list[str] = []
    notes: list[str] = []
    paths: dict[str, dict[str, Any]] = {}

    # DNS: every host should resolve to the path of the stack's mode.
    dns_failed = [h for h in hosts if h["dns"]["path"] == "error"]
    misplaced = [h for h in hosts if h["dns"]["path"] not in ("error", h["dns"]["expected"])]
    if dns_failed:
        problems.append(
            f"DNS fails for {len(dns_failed)} host{'s' * (len(dns_failed) != 1)}: {_names(dns_failed)}"
            f"{' (' + dns_failed[0]['dns']['error'] + ')' if dns_failed[0]['dns']['error'] else ''}"
        )
    for path in ("other", "tunnel", "origin"):
        wrong = [h for h in misplaced if h["dns"]["path"] == path]
        if wrong:
            problems.append(
                f"DNS: {len(wrong)} host{'s' * (len(wrong) != 1)} resolve{'s' * (len(wrong) == 1)} to "
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
            problems.append(f"{label} {state}: {len(failed)} of {len(on_path)} hosts fail: {_grouped(failed, 'live')}")
    expiring = [h for h in hosts if h["live"]["cert_expiring"]]
    if expiring:
        days = min(h["live"]["cert_days_left"] for h in expiring)
        problems.append(
            f"certificate expires within {options.cert_warn_days:g} days ({days:g} left): {_names(expiring)}"
        )

    # The standby path.
    standby = [h["standby"] for h in hosts]
    checked = [s for s in standby if s["ok"] is not None]
    failed_standby = [h for h in hosts if h["standby"]["ok"] is False]
    state = _path_state(len(checked), len(failed_standby)) if checked else "unchecked"
    paths["standby"] = {
        "state": state,
        "total": len(checked),
        "failed": len(failed_standby),
        "kind": "https-via-vps" if endpoints.mode == "failover" else "wireguard-port",
    }
    if failed_standby:
        what = (
            "standby path (HTTPS straight to the VPS)"
            if endpoints.mode == "failover"
            else "standby path (VPS -> WireGuard -> Mac Mini)"
        )
        problems.append(
            f"{what} {state}: {len(failed_standby)} of {len(checked)} fail: {_grouped(failed_standby, 'standby')}"
        )
    if endpoints.mode == "tunnel":
        if not checked and not report["vps"]["ssh"]["checked"]:
            notes.append("standby path not checked: no SSH to the VPS (give --ssh-host, or --vps-shell)")
        elif not checked:
            notes.append("standby path not checked: the SSH session failed")
        else:
            notes.append(
                "standby path in tunnel mode: proven up to the Mac Mini's ports across WireGuard; not proven: "
                "the VPS's Caddy sites and certificates for the inventory hosts (they come at cut-over)"
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
                f"the Hetzner mirror differs from failover for {len(differ)} host{'s' * (len(differ) != 1)}: "
                f"{_names(differ)} ({differ[0]['mirror']['detail']}); `pulumi up` rewrites it"
            )

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
        problems.append(
            f"SSH to the VPS failed, so WireGuard{' and the standby path' * (endpoints.mode == 'tunnel')} "
            f"went unchecked: {vps['ssh']['error']}"
        )

    report["paths"] = paths
    report["problems"] = problems
    report["notes"] = notes
    report["healthy"] = not problems
    report["exit_code"] = 0 if not problems else 1
    # What --watch counts towards the cut-over: at least half of the tunnel-path hosts fail.
    report["tunnel_down"] = endpoints.mode == "tunnel" and paths["live_tunnel"]["state"] == "down"


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
        "paths",
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
        "stack": {"type": ["string", "null"]},
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
                        "required": ["path", "expected", "detail", "chain", "addresses", "ttl", "error", "ms"],
                        "properties": {
                            "path": {"enum": ["tunnel", "origin", "other", "error"]},
                            "expected": {"enum": ["tunnel", "origin"]},
                            "chain": {"type": "array", "items": {"type": "string"}},
                            "addresses": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "live": {"$ref": "#/$defs/https"},
                    "standby": {
                        "type": "object",
                        "required": ["kind", "ok", "error", "proven", "unproven"],
                        "properties": {
                            "kind": {"enum": ["https-via-vps", "wireguard-port"]},
                            "ok": {"type": ["boolean", "null"]},
                        },
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
                "ssh": {"type": "object", "required": ["checked", "ok", "error", "via", "seconds"]},
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
                "cert_expiring",
                "error",
            ],
            "properties": {
                "ok": {"type": "boolean"},
                "status": {"type": ["integer", "null"]},
                "latency_ms": {"type": ["number", "null"]},
                "cert_days_left": {"type": ["number", "null"]},
                "cert_trusted": {"type": ["boolean", "null"]},
                "error": {"type": ["string", "null"]},
            },
        },
    },
}
