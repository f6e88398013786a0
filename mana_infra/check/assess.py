"""How one round's probes add up: each path's state, what is wrong (with what it is about) and worth a
note, the public path, the budget; then the verdict from .decision. No probing and no printing here.

`evaluate(observed, endpoints, options, started)` is .core's last step; each part of the stack has its
own function below, in the order the report lists their problems.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..records import EDGE_APPLIES_SECONDS, adoption_left_text
from ..render.home import CADDY_LABEL, CADDY_LOG, SYNC_INTERVAL, SYNC_LOG
from ..terminal import count
from .decision import Context, api_blocked_text, diagnose, names_text, stack_flag, tunnel_unknown_text
from .report import (
    REPORT_VERSION,
    AnsweredBy,
    ApiCheck,
    ApiState,
    Budget,
    BudgetText,
    CertificateDate,
    CertificateKind,
    Diagnosis,
    DnsPath,
    Failure,
    Finding,
    HomeReach,
    HostReport,
    Observed,
    PathName,
    PathState,
    PathSummary,
    PublicPath,
    Report,
    Subject,
    TunnelProbe,
    TunnelState,
    VpsChecks,
)

if TYPE_CHECKING:
    from .core import Endpoints, Options

EDGE_BUDGET = "within a minute (Cloudflare applies a record change that fast)"

# The program renews the public certificate once a third of its lifetime is left (Certificates,
# min_days_dynamic): 30 days of 90, about 21 of the 64 Let's Encrypt gives from February 2027, 15 of 45
# from 2028. A stack without publicCertificateIssuedOn (deployed before that output) had 90-day ones.
RENEWAL_SHARE = 1 / 3
PUBLIC_LIFETIME_DAYS_BEFORE_THE_OUTPUT = 90.0


def renewal_due_days(lifetime_days: float | None) -> float:
    """Days left at which `pulumi up` renews the public certificate."""
    return (lifetime_days or PUBLIC_LIFETIME_DAYS_BEFORE_THE_OUTPUT) * RENEWAL_SHARE


@dataclass
class _Verdicts:
    """What the parts below find, in the order they find it."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    paths: dict[PathName, PathSummary] = field(default_factory=dict)

    def problem(self, subject: Subject, text: str) -> None:
        self.findings.append(Finding(subject, text))


def evaluate(observed: Observed, endpoints: Endpoints, options: Options, started: float) -> Report:
    """The report: the paths, problems and notes of every part, the public path, the diagnosis, the budget."""
    found, hosts, warn_days = _Verdicts(), observed.hosts, options.cert_warn_days
    _dns(hosts, endpoints.mode, found)
    _live(hosts, warn_days, found)
    _standby(hosts, endpoints, warn_days, observed.vps, found)
    _mirror(hosts, options.mirror_skipped, found)
    _direct(hosts, observed.home, found)
    _vps(observed.vps, hosts, endpoints, found)
    _api(observed.cloudflare_api, found)
    public = public_path(hosts)
    _tunnel(observed.tunnel_probe, public, endpoints, found)
    if endpoints.adoption_left:
        found.notes.append(adoption_left_text(endpoints.adoption_left, endpoints.stack or "<stack>", deployed=True))
    _certificates(observed.certificates, observed.cloudflare_api, endpoints, warn_days, found)
    report = Report(
        **vars(observed),
        version=REPORT_VERSION,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        paths=found.paths,
        public_path=public,
        diagnosis=Diagnosis(None, "", None, None),  # the decision reads the report: asked below
        budget=budget(hosts),
        findings=found.findings,
        notes=found.notes,
        seconds=0.0,
    )
    context = Context(endpoints.stack, endpoints.emergency_command, endpoints.direct_emergency_command)
    report.diagnosis = diagnose(report, context)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _names(hosts: Sequence[HostReport], limit: int = 4) -> str:
    return names_text([h.host for h in hosts], limit)


def _grouped(hosts: Sequence[HostReport], part: str) -> str:
    """`a, b (HTTP 530); c (certificate not trusted: ...)`: the failing hosts, grouped by their error."""
    groups: dict[str, list[HostReport]] = {}
    for host in hosts:
        groups.setdefault(getattr(host, part).error or "failed", []).append(host)
    return "; ".join(f"{_names(members)} ({error})" for error, members in groups.items())


def days_text(days: float) -> str:
    """14.99 -> "15 days", 0.5 -> "12 hours"."""
    if abs(days) < 1:
        return count(round(days * 24), "hour")
    return count(round(days), "day")


def _dns(hosts: Sequence[HostReport], mode: str, found: _Verdicts) -> None:
    """DNS: every host should resolve to the path of the stack's mode."""
    failed = [h for h in hosts if h.dns.path is DnsPath.ERROR]
    misplaced = [h for h in hosts if h.dns.path not in (DnsPath.ERROR, h.dns.expected)]
    if failed:
        error = failed[0].dns.error
        found.problem(
            Subject.DNS,
            f"DNS fails for {count(len(failed), 'host')}: {_names(failed)}{' (' + error + ')' if error else ''}",
        )
    for path in (DnsPath.OTHER, DnsPath.TUNNEL, DnsPath.ORIGIN):
        wrong = [h for h in misplaced if h.dns.path is path]
        if wrong:
            where = "neither path (other)" if path is DnsPath.OTHER else f"the {path} path"
            found.problem(
                Subject.DNS,
                f"DNS: {count(len(wrong), 'host')} resolve{'s' * (len(wrong) == 1)} to {where} while the "
                f"stack's mode is {mode}: {_names(wrong)} ({wrong[0].dns.detail})",
            )
    state = PathState.UP if not failed and not misplaced else PathState.DEGRADED
    found.paths[PathName.DNS] = PathSummary(state, len(hosts), len(failed) + len(misplaced))


_LIVE_LABELS = {
    DnsPath.TUNNEL: "tunnel path",
    DnsPath.ORIGIN: "origin path (the VPS, live)",
    DnsPath.HOME: "home path (the Mac Mini direct, live)",
    DnsPath.OTHER: "path of the misplaced hosts",
}


def _live(hosts: Sequence[HostReport], warn_days: float, found: _Verdicts) -> None:
    """The live path(s): HTTPS through whatever DNS gives today, grouped by that path."""
    for path, label in _LIVE_LABELS.items():
        on_path = [h for h in hosts if h.dns.path is path]
        failed = [h for h in on_path if not h.live.ok]
        state = PathState.of(len(on_path), len(failed))
        found.paths[PathName.live(path)] = PathSummary(state, len(on_path), len(failed))
        if failed:
            found.problem(
                Subject.PUBLIC,
                f"{label} {state}: {len(failed)} of {count(len(on_path), 'host')} fail: {_grouped(failed, 'live')}",
            )
    expiring = [h for h in hosts if h.live.cert_expiring]
    if expiring:
        days = min(h.live.cert_days_left or 0.0 for h in expiring)
        found.problem(
            Subject.PUBLIC, f"certificate expires within {warn_days:g} days ({days:g} left): {_names(expiring)}"
        )


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


_UNREACHED = frozenset({Failure.CONNECT_TIMEOUT, Failure.CONNECT_REFUSED, Failure.CONNECT_ERROR, Failure.TLS_ERROR})


def _standby(
    hosts: Sequence[HostReport], endpoints: Endpoints, warn_days: float, vps: VpsChecks, found: _Verdicts
) -> None:
    """The standby path: HTTPS straight to the VPS with each host's name, in both modes."""
    refused = [h for h in hosts if h.standby.failure is Failure.REFUSED_HERE]
    failed = [h for h in hosts if not h.standby.ok and h not in refused]
    state = PathState.of(len(hosts), len(failed) + len(refused))
    if refused and len(refused) == len(hosts):
        state = PathState.UNCHECKED  # nothing was proven: not up, and not down either
    found.paths[PathName.STANDBY] = PathSummary(state, len(hosts), len(failed), len(refused), "https-via-vps")
    if refused:
        addresses = sorted({str(h.standby.refused) for h in refused})
        found.problem(
            Subject.STANDBY,
            f"standby not checked from here: the VPS refuses {', '.join(addresses)} for "
            f"{count(len(refused), 'host')} ({_names(refused)}), outside the networks it serves them to in "
            f"mode {endpoints.mode}; nothing about them is proven. To check from here: "
            f"{allow_command(addresses, endpoints.check_allowed_cidrs, endpoints.stack)}",
        )
    if failed:
        _standby_failures(failed, hosts, endpoints.mode, state, vps, found)
    soon = [h for h in hosts if h.standby.cert_expiring]
    if soon:
        days = min(h.standby.cert_days_left or 0.0 for h in soon)
        found.problem(
            Subject.VPS,
            f"the VPS's certificate expires within {warn_days:g} days ({days_text(days)} left) for "
            f"{count(len(soon), 'host')}: {_names(soon)}",
        )


def _standby_failures(
    failed: Sequence[HostReport],
    hosts: Sequence[HostReport],
    mode: str,
    state: PathState,
    vps: VpsChecks,
    found: _Verdicts,
) -> None:
    everything_unreached = len(failed) == len(hosts) and all(h.standby.failure in _UNREACHED for h in failed)
    hint = (
        " (in tunnel mode the VPS serves the inventory hosts only to the networks allowed to check it: "
        "is this machine in them?)"
        if mode == "tunnel" and everything_unreached
        else ""
    )
    found.problem(
        Subject.STANDBY,
        f"standby path (HTTPS straight to the VPS) {state}: {len(failed)} of {len(hosts)} fail: "
        f"{_grouped(failed, 'standby')}{hint}",
    )
    wireguard = vps.wireguard
    behind = [h for h in failed if h.standby.answered_by is AnsweredBy.VPS and h.standby.status in (502, 504)]
    if behind and len(behind) < len(hosts) and not (wireguard.checked and not wireguard.ok):
        # Some apps answer through WireGuard and these do not: not the tunnel, the app's listen address.
        ports = ", ".join(f"{h.host} (port {h.port})" for h in behind)
        found.problem(
            Subject.VPS,
            f"Caddy on the VPS gets no answer from the app behind WireGuard for {count(len(behind), 'host')} "
            f"while others answer: {ports}. An app that listens on 127.0.0.1 only (common behind cloudflared) "
            "must listen on the Mac Mini's WireGuard address too (wireguardMacMiniAddress, 10.0.0.2 by default), "
            "or on 0.0.0.0",
        )


def _mirror(hosts: Sequence[HostReport], skipped: str | None, found: _Verdicts) -> None:
    """The Hetzner mirror, when asked: every host in failover form there, ready for the nameserver switch."""
    mirrored = [h for h in hosts if h.mirror is not None]
    if not mirrored:
        found.notes.append(f"Hetzner mirror not checked: {skipped or 'no nameserver of it was given'}")
        return
    differ = [h for h in mirrored if h.mirror is not None and not h.mirror.ok]
    found.paths[PathName.MIRROR] = PathSummary(PathState.of(len(mirrored), len(differ)), len(mirrored), len(differ))
    if differ and differ[0].mirror is not None:
        found.problem(
            Subject.MIRROR,
            f"the Hetzner mirror differs from failover for {count(len(differ), 'host')}: "
            f"{_names(differ)} ({differ[0].mirror.detail}); `pulumi up` rewrites it",
        )
    if skipped:
        found.notes.append(f"Hetzner mirror partly checked: {skipped}")


def _direct(hosts: Sequence[HostReport], home: Sequence[HomeReach], found: _Verdicts) -> None:
    """The direct way (Plan C), when configured: the home's name at each address, and every host there."""
    if not home:
        return
    probed = [h for h in hosts if h.direct is not None]
    failed = [h for h in probed if h.direct is not None and not h.direct.ok]
    found.paths[PathName.DIRECT] = PathSummary(PathState.of(len(probed), len(failed)), len(probed), len(failed))
    for reach in home:
        if not reach.ok:
            found.problem(Subject.HOME, home_unreached(reach, home))
    if failed and all(r.ok for r in home):
        found.problem(
            Subject.HOME,
            f"the direct way (straight at the home) fails for {count(len(failed), 'host')} while the Mac Mini's "
            f"Caddy answers: {_grouped(failed, 'direct')}. Its Caddy reaches each app at 127.0.0.1:<port>: is the "
            "app running there?",
        )


def home_unreached(reach: HomeReach, home: Sequence[HomeReach]) -> str:
    """Why the home's address does not serve, in the words of the line, the router and the Mac Mini."""
    address, failure = str(reach.address or reach.url.rsplit(" ", 1)[-1]), reach.failure
    where = f"the home's IPv{reach.family} {address}"
    other_ok = any(r.ok and r.family != reach.family for r in home)
    if failure in (Failure.CONNECT_TIMEOUT, Failure.CONNECT_ERROR, Failure.CONNECT_REFUSED) and reach.family == 4:
        also = " (IPv6 answers, so the Mac Mini's Caddy runs)" if other_ok else ""
        return (
            f"{where} does not answer on tcp/443 ({reach.error}){also}: port 443 is not forwarded to the Mac Mini "
            "(FRITZ!Box: Internet -> Permit Access -> Port Sharing -> the Mac Mini -> HTTPS), or the line has no "
            "public IPv4 of its own (carrier-grade NAT or DS-Lite: the address is the provider's, shared); then "
            "drop homeAddress and fail over --via direct on IPv6"
        )
    if failure is Failure.CONNECT_TIMEOUT:
        return (
            f"{where} does not answer on tcp/443 ({reach.error}): the router's IPv6 firewall does not open it to "
            "the Mac Mini's stable address (FRITZ!Box: Internet -> Permit Access -> Port Sharing -> the Mac Mini "
            "-> 'Permit independent port sharing' / IPv6 -> HTTPS)"
        )
    if failure in (Failure.CONNECT_REFUSED, Failure.CONNECT_ERROR):
        return (
            f"{where} refuses tcp/443 ({reach.error}): the Mac Mini's Caddy does not run "
            f"(sudo launchctl kickstart -k system/{CADDY_LABEL}; its log is {CADDY_LOG}), "
            "or the address is not the Mac Mini's"
        )
    if failure in (Failure.TLS_ERROR, Failure.CERT_UNTRUSTED):
        return (
            f"{where} serves no valid certificate ({reach.error}): the Mac Mini fetches the public one from the "
            f"VPS through WireGuard every {SYNC_INTERVAL // 60} minutes ({SYNC_LOG})"
        )
    return f"{where} does not serve the Mac Mini's Caddy: {reach.error}"


def _vps(vps: VpsChecks, hosts: Sequence[HostReport], endpoints: Endpoints, found: _Verdicts) -> None:
    """The VPS itself: its health path, WireGuard behind it, SSH to it."""
    health = vps.health
    found.paths[PathName.VPS] = PathSummary(PathState.UP if health.ok else PathState.DOWN)
    if not health.ok:
        found.problem(Subject.VPS, f"VPS health {health.url} fails: {health.error}")
    elif health.mode_matches is False:
        found.problem(
            Subject.VPS,
            f"the VPS's Caddy runs mode={health.served_mode} but the stack's mode is {endpoints.mode} "
            "(a `pulumi up` not finished, or not run?)",
        )
    if health.cert_expiring:
        found.problem(Subject.VPS, f"the VPS's certificate expires in {health.cert_days_left:g} days")
    wireguard = vps.wireguard
    checked = PathState.UP if wireguard.ok else PathState.DOWN
    found.paths[PathName.WIREGUARD] = PathSummary(checked if wireguard.checked else PathState.UNCHECKED)
    if wireguard.checked and not wireguard.ok:
        found.problem(Subject.WIREGUARD, f"WireGuard down: {wireguard.error}")
    if vps.ssh.checked and not vps.ssh.ok:
        found.problem(Subject.VPS, _ssh_problem(vps, hosts, endpoints.stack))
    if not vps.ssh.checked:
        found.notes.append(f"WireGuard not checked: {vps.ssh.why_not_checked}")


def _ssh_problem(vps: VpsChecks, hosts: Sequence[HostReport], stack: str | None) -> str:
    problem = f"SSH to the VPS failed, so WireGuard went unchecked: {vps.ssh.error}"
    if not (vps.health.ok and "timed out" in str(vps.ssh.error).lower()):
        return problem
    # The VPS answers HTTPS: a silent SSH port is its firewall, which opens 22 to sshAllowedCidrs only.
    seen = sorted({str(h.standby.refused) for h in hosts if h.standby.refused})
    here = f" (the VPS sees this machine as {', '.join(seen)})" if seen else ""
    s = stack_flag(stack)
    return problem + (
        f". The VPS answers HTTPS but not SSH: its firewall lets SSH in from sshAllowedCidrs only; if this "
        f"machine's address changed{here}, add it from an address still allowed (or Hetzner's console): "
        f"pulumi config set{s} --path 'sshAllowedCidrs[N]' <address>/32 && pulumi up{s} (/128 for IPv6; "
        "the Caddy command of every `pulumi up` needs SSH)"
    )


def _api(api: ApiCheck, found: _Verdicts) -> None:
    """Cloudflare's API: the edge and DNS-only ways change records through it."""
    if api.state.blocked:
        found.problem(
            Subject.API,
            f"{api_blocked_text(api)}: no record can change at Cloudflare, a cut-over would have to take the "
            "emergency path",
        )
    elif api.state is ApiState.ERROR:
        found.problem(Subject.API, f"the Cloudflare API's token check failed: {api.error}")
    elif not api.checked:
        found.notes.append(f"Cloudflare API not asked: {api.why_not_checked}")


def _tunnel(probe: TunnelProbe, public: PublicPath, endpoints: Endpoints, found: _Verdicts) -> None:
    """The tunnel, by its probe name: what a fail-back needs to know while the hosts are on the VPS."""
    states = {TunnelState.UP: PathState.UP, TunnelState.DOWN: PathState.DOWN}
    found.paths[PathName.TUNNEL] = PathSummary(states.get(probe.state, PathState.UNCHECKED))
    stack = stack_flag(endpoints.stack)
    if endpoints.mode == "failover" and not endpoints.vps_stack:
        if probe.state is TunnelState.UP:
            found.notes.append(
                f"the tunnel serves again ({probe.host} answers HTTP {probe.status} through it): "
                f"`mana-infra failback{stack}` when you are ready"
            )
        elif probe.state is TunnelState.DOWN:
            found.notes.append(f"the tunnel is still down ({probe.host}: {probe.error}): do not fail back yet")
        else:
            found.notes.append(tunnel_unknown_text(probe.host, probe.error))
    elif probe.state is TunnelState.DOWN and public.state is PathState.UP:
        found.problem(Subject.TUNNEL, f"the tunnel's probe {probe.host} fails ({probe.error}) while the hosts answer")
    elif probe.state in (TunnelState.NOT_CHECKED, TunnelState.UNKNOWN) and not endpoints.vps_stack:
        found.notes.append(f"tunnel probe not checked: {probe.error}")


def _certificates(
    dates: dict[CertificateKind, CertificateDate],
    api: ApiCheck,
    endpoints: Endpoints,
    warn_days: float,
    found: _Verdicts,
) -> None:
    """The certificates the outputs date, and the public one's renewal."""
    for date in dates.values():
        if date.expired:
            found.problem(Subject.CERTIFICATE, f"{date.output}: {date.what} expired on {date.expires_on}")
        elif date.expiring:
            found.problem(
                Subject.CERTIFICATE,
                f"{date.output}: {date.what} expires within {warn_days:g} days "
                f"({days_text(date.days_left)} left, on {date.expires_on})",
            )
    # The public certificate renews by DNS-01 at Cloudflare while the stack counts on Cloudflare: due while
    # the API does not answer, it will not until the stack says Cloudflare is gone (then at Hetzner's zone).
    public = dates.get(CertificateKind.PUBLIC)
    if not public or public.expired or public.days_left >= renewal_due_days(endpoints.public_lifetime_days):
        return
    stack = endpoints.stack or "<stack>"
    due = f"{public.output}: its renewal is due ({days_text(public.days_left)} left, on {public.expires_on})"
    if endpoints.cloudflare_reachable is False:
        found.notes.append(
            f"{due}: with cloudflareReachable false its DNS-01 challenge goes to the Hetzner "
            "zone, which Let's Encrypt asks once the registrar lists the stack's secondaryDnsNameservers; until "
            f"then pulumi up --stack {stack} fails at certificates-public and the certificate on the VPS stays"
        )
    elif api.state.blocked:
        found.problem(
            Subject.CERTIFICATE,
            f"{due} and {api_blocked_text(api)}: the DNS-01 challenge at Cloudflare cannot run, "
            "and the DNS-only way goes when it expires; renew while Cloudflare answers (pulumi up), or, with "
            "Cloudflare gone, the emergency (pulumi stack output emergencyCutover) and the registrar's switch, "
            f"then pulumi up --stack {stack}: with cloudflareReachable false the challenge goes to the Hetzner zone",
        )


def public_path(hosts: Sequence[HostReport]) -> PublicPath:
    """Whatever DNS gives today, for every host: does it answer? A host fails for any reason (DNS,
    connect, TLS, a 5xx, a tunnel error); down when at least half of the hosts fail."""
    by_kind: dict[Failure, list[str]] = {}
    for host in hosts:
        if host.dns.path is DnsPath.ERROR:
            kind = host.dns.failure or Failure.DNS_ERROR
        elif not host.live.ok:
            kind = host.live.failure or Failure.HTTP_ERROR
        else:
            continue
        by_kind.setdefault(kind, []).append(host.host)
    order = list(Failure)
    failures = {k: by_kind[k] for k in sorted(by_kind, key=order.index)}
    failed = sum(len(names) for names in failures.values())
    return PublicPath(PathState.of(len(hosts), failed), len(hosts), failed, failures)


def budget(hosts: Sequence[HostReport]) -> Budget:
    """What each way takes in the real world, from today's answers: the edge way seconds; DNS-only
    the longest TTL the answers carry (resolvers keep the old records that long); certificates the
    VPS would still have to obtain (hosts it serves no valid one for)."""
    ttls = [h.dns.ttl for h in hosts if h.dns.ttl is not None]
    dns_seconds: int | None = max(ttls) if ttls else None
    acme = [h.host for h in hosts if not (h.standby.cert_trusted and (h.standby.cert_days_left or 0) > 0)]
    dns_text = f"up to {dns_seconds} s (the old records' TTL)" if dns_seconds is not None else None
    text = BudgetText(
        edge=EDGE_BUDGET,
        dns=dns_text or "unknown (no DNS answer carried a TTL)",
        certificates=f"to obtain for {names_text(acme)}" if acme else "none to obtain",
    )
    return Budget(EDGE_APPLIES_SECONDS, dns_seconds, acme, text)
