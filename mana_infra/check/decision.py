"""The verdict, in one place: what failure the public path shows, what state the standby is in, whether
it is ready, which way fits or why none does, and the command to run.

Every caller asks here: check (its `diagnosis`), cutover's and failback's pre-flights
(`switch_blockers`), the watch's alert. The way comes from `TABLE` — the public failure (row) against
the standby's state (column) — looked up, not re-derived in branches; the two cases before it (the
hosts on the VPS already, nothing failing) are no failure and so no row. Two questions, one rule each:
the column says which way *could* help (the VPS serves every host); `standby_blockers` says whether to
*act* (the standby path, the VPS's health, WireGuard), and a diagnosis whose way the blockers would stop
says so in its words. Nothing here probes or prints; it reads a typed `Report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..model import VIAS, via_home, via_proxied
from ..outputs import Output
from ..records import adoption_left_text
from ..terminal import count
from .report import (
    AnsweredBy,
    ApiCheck,
    ApiState,
    Diagnosis,
    DnsPath,
    Failure,
    PathName,
    PathState,
    PublicPath,
    Report,
    Subject,
    TunnelState,
    Way,
)


class PublicFailure(StrEnum):
    """The table's rows: what failed on the public path (in tunnel mode)."""

    TUNNEL = "tunnel"  # the edge answers over TLS, the tunnel behind it fails (1033, 530, cloudflared's 502)
    EDGE = "edge"  # the edge itself or Cloudflare's DNS fails
    API = "api"  # either, and Cloudflare's API refuses the token or does not answer


class StandbyState(StrEnum):
    """The table's columns: what the standby shows."""

    SERVING = "serving"  # the VPS serves every host from the Mac Mini (through WireGuard)
    UNPROVEN = "unproven"  # the VPS refuses this machine (or some hosts fail): not shown to help
    MAC_MINI_DOWN = "mac-mini-down"  # the VPS answers, the Mac Mini behind WireGuard does not
    VPS_DOWN = "vps-down"  # the VPS does not answer


class NoWay(StrEnum):
    """Why no cut-over helps, as the table says it; `reason` takes the standby's words and the stack flag."""

    MAC_MINI = "none:mac-mini"
    MAC_MINI_BEHIND_VPS = "none:mac-mini-behind-vps"
    VPS = "none:vps"

    def reason(self, standby: str, stack: str) -> str:
        return _NO_WAY_REASONS[self].format(standby=standby, stack=stack)


_NO_WAY_REASONS = {
    NoWay.MAC_MINI: "the Mac Mini or its line is down: the tunnel fails at it and so does WireGuard from the VPS "
    "({standby}); no cut-over helps. Check the Mac Mini's power, its line and cloudflared",
    NoWay.MAC_MINI_BEHIND_VPS: "the VPS answers but the Mac Mini behind WireGuard does not ({standby}): a "
    "cut-over would move visitors onto it and serve them the same failure. Check the Mac Mini and its WireGuard",
    NoWay.VPS: "the VPS does not answer either ({standby}): no cut-over helps before `pulumi up{stack}` restores it",
}

P, S = PublicFailure, StandbyState
TABLE: dict[tuple[PublicFailure, StandbyState], Way | NoWay] = {
    (P.TUNNEL, S.SERVING): Way.EDGE,
    (P.EDGE, S.SERVING): Way.DNS,
    (P.API, S.SERVING): Way.EMERGENCY,
    (P.TUNNEL, S.UNPROVEN): Way.EDGE,
    (P.EDGE, S.UNPROVEN): Way.DNS,
    (P.API, S.UNPROVEN): Way.EMERGENCY,
    # Both paths fail at the Mac Mini: home power or the home line. The VPS reaches it no better.
    (P.TUNNEL, S.MAC_MINI_DOWN): NoWay.MAC_MINI,
    (P.EDGE, S.MAC_MINI_DOWN): NoWay.MAC_MINI_BEHIND_VPS,
    (P.API, S.MAC_MINI_DOWN): NoWay.MAC_MINI,
    (P.TUNNEL, S.VPS_DOWN): NoWay.VPS,
    (P.EDGE, S.VPS_DOWN): NoWay.VPS,
    (P.API, S.VPS_DOWN): NoWay.VPS,
}
del P, S

# When no way through the VPS helps (the table says none) and the home serves straight from its own
# address, the direct way for the same public failure (Plan C). The VPS comes first whenever it serves:
# it hides the home's address and is proven every day.
DIRECT: dict[PublicFailure, Way] = {
    PublicFailure.TUNNEL: Way.DIRECT,
    PublicFailure.EDGE: Way.DIRECT_DNS,
    PublicFailure.API: Way.EMERGENCY,
}

# The problems that speak of the standby: what keeps it from taking over.
STANDBY_SUBJECTS = frozenset({Subject.STANDBY, Subject.VPS, Subject.WIREGUARD})


# ----------------------------------------------------------------------------------------- words


def stack_flag(stack: str | None) -> str:
    """` --stack S` for a command check prints, or nothing when no stack was named."""
    return f" --stack {stack}" if stack else ""


def names_text(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def kinds_text(failures: Mapping[Failure, Sequence[str]], *, hosts: bool = False) -> str:
    """`DNS timeout: 3 hosts; tunnel error: 1 host` (with hosts: `... (a, b, c)`)."""
    return "; ".join(
        f"{Failure(kind).label}: {count(len(names), 'host')}" + (f" ({names_text(names)})" if hosts else "")
        for kind, names in failures.items()
    )


def api_blocked_text(api: ApiCheck) -> str:
    """`the Cloudflare API refuses the token (...)` / `... is unreachable (...)`."""
    blocked = "refuses the token" if api.state is ApiState.REFUSED else "is unreachable"
    return f"the Cloudflare API {blocked} ({api.error})"


def cutover_command(way: Way | str, stack: str | None, emergency: str | None = None) -> str:
    """The command for a way: `mana-infra cutover --via edge|dns`, or the stack's emergencyCutover."""
    suffix = stack_flag(stack)
    if Way(way) is Way.EMERGENCY:
        return emergency or f"pulumi stack output emergencyCutover{suffix}"
    return f"mana-infra cutover --via {way}{suffix}"


def tunnel_unknown_text(host: str | None, error: str | None) -> str:
    return f"whether the tunnel serves is not known ({host or 'no probe'}: {error})"


# ------------------------------------------------------------------------------------------ the verdict


def public_failure(public: PublicPath, api: ApiCheck) -> PublicFailure | None:
    """The table's row, or None when every host answers."""
    if not public.failures:
        return None
    if api.state.blocked:
        return PublicFailure.API
    # NXDOMAIN is Cloudflare's DNS answering (a record is missing, and either way writes it): it does not
    # speak against the edge when tunnel errors show the edge answering for the other hosts.
    kinds = set(public.failures)
    tunnel_side = Failure.TUNNEL_ERROR in kinds and kinds <= {Failure.TUNNEL_ERROR, Failure.DNS_NXDOMAIN}
    return PublicFailure.TUNNEL if tunnel_side else PublicFailure.EDGE


def standby_state(report: Report) -> tuple[StandbyState, str]:
    """The table's column, and the words for it."""
    hosts = report.hosts
    failing = [h for h in hosts if not h.standby.ok]
    by = {who: [h for h in failing if h.standby.answered_by is who] for who in AnsweredBy}
    upstream = [h for h in by[AnsweredBy.VPS] if h.standby.failure in (Failure.HTTP_5XX, Failure.HTTP_ERROR)]
    if not failing:
        return StandbyState.SERVING, "the VPS serves every host"  # through WireGuard: whatever a handshake says
    if report.paths[PathName.WIREGUARD].state is PathState.DOWN:
        return StandbyState.MAC_MINI_DOWN, f"WireGuard down: {report.vps.wireguard.error}"
    if hosts and len(upstream) == len(hosts):
        first = upstream[0].standby
        answer = f"answers {first.status}" if first.status else "gets no answer behind it"
        return StandbyState.MAC_MINI_DOWN, f"Caddy on the VPS {answer} for every host"
    nobody = by[AnsweredBy.NOBODY]
    if hosts and len(nobody) == len(hosts) and not report.vps.health.ok:
        kinds: dict[Failure, list[str]] = {}
        for h in nobody:
            kinds.setdefault(h.standby.failure or Failure.CONNECT_ERROR, []).append(h.host)
        return StandbyState.VPS_DOWN, kinds_text(kinds)
    refused = [h for h in failing if h.standby.failure is Failure.REFUSED_HERE]
    if refused:
        return (
            StandbyState.UNPROVEN,
            f"the standby is not proven: the VPS refuses this machine for {count(len(refused), 'host')}",
        )
    return StandbyState.UNPROVEN, f"the standby fails for {count(len(failing), 'host')} too"


def standby_blockers(report: Report) -> list[str]:
    """What keeps the standby from taking over (empty: it is ready): its path through the VPS proven up
    for every host, the VPS's health up, WireGuard not known to be down; then what check said of them."""
    states = {name: report.paths[name].state for name in (PathName.STANDBY, PathName.VPS, PathName.WIREGUARD)}
    broken = [
        f"{name}: {state}"
        for name, state in states.items()
        # The standby path must be proven: refused from here ("unchecked") is no pre-flight.
        if (state is not PathState.UP if name is PathName.STANDBY else state is PathState.DOWN)
    ]
    said = [finding.text for finding in report.findings if finding.subject in STANDBY_SUBJECTS]
    return broken + said if broken else []


def home_families(report: Report) -> frozenset[int]:
    """The address families of the home, when it serves every host on every address it publishes (the
    direct way proven); else none: a dead address in the records fails its visitors, and so the switch."""
    if not report.home or any(h.direct is None or not h.direct.ok for h in report.hosts):
        return frozenset()
    if not all(reach.ok for reach in report.home):
        return frozenset()
    return frozenset(reach.family for reach in report.home)


def direct_blockers(report: Report, way: str) -> list[str]:
    """What keeps a direct way from serving: every host proven straight at the home, and DNS-only over
    IPv4 (a visitor without IPv6 has nothing else)."""
    if not report.home:
        return ["the home's addresses are not in the stack's outputs (set homeAddress or homeAddress6, pulumi up)"]
    said = [finding.text for finding in report.findings if finding.subject is Subject.HOME]
    families = home_families(report)
    if not families:
        return said or ["the direct way is not proven: not every host answers straight at the home"]
    if way == Way.DIRECT_DNS and 4 not in families:
        return [*said, "DNS-only needs the home's IPv4 to serve: visitors without IPv6 would get nothing"]
    return []


def failback_blockers(report: Report) -> list[str]:
    """What keeps a fail-back from serving: the tunnel not shown to serve by its probe name. Failed back
    too early, every host is down until the tunnel returns."""
    probe = report.tunnel_probe
    if probe.state is TunnelState.UP:
        return []
    risk = "every host would be down until the tunnel is back"
    if probe.state is TunnelState.DOWN:
        return [f"the tunnel is down ({probe.host}: {probe.error}): {risk}"]
    return [f"{tunnel_unknown_text(probe.host, probe.error)}: {risk}"]


def adoption_blocker(outputs: Mapping[str, Any], mode: str, via: str | None, stack: str) -> str | None:
    """adoptRecords left set after the first run stops a switch that moves the records' TTL (nothing
    forces past it: the records would keep their TTL)."""
    left = outputs.get(Output.ADOPT_RECORDS_LEFT) or []
    deployed_via = outputs.get(Output.FAILOVER_VIA)
    ttl_moves = (via is not None and not via_proxied(via)) or (
        mode == "tunnel" and deployed_via in VIAS and not via_proxied(deployed_via)
    )
    if left and ttl_moves:
        return adoption_left_text(left, stack, deployed=True) + ": this switch changes their TTL"
    return None


def switch_blockers(report: Report, outputs: Mapping[str, Any], mode: str, via: str | None) -> list[str]:
    """What keeps a switch of the stack to ``mode`` (by ``via``) from helping, from check's report on the
    stack as it is and its outputs (empty: go): a cut-over needs the standby ready, and through the edge
    the zone in Full (strict); a fail-back needs the tunnel shown to serve."""
    if mode != "failover":
        blockers = failback_blockers(report)
    elif via is not None and via_home(via):
        blockers = direct_blockers(report, via)
    else:
        blockers = standby_blockers(report)
    ssl_mode = outputs.get(Output.ZONE_SSL_MODE)
    if mode == "failover" and via in VIAS and via_proxied(via) and ssl_mode not in (None, "strict"):
        blockers.append(
            f"the zone's SSL/TLS mode is {ssl_mode!r}: the way through the edge needs Full (strict) "
            "(set it in the dashboard: SSL/TLS -> Overview), or cut over --via "
            + ("direct-dns" if via_home(via) else "dns")
        )
    return blockers


def switched_problems(report: Report, via: str | None) -> list[str]:
    """What keeps a switched stack from being green (with every host through its new path): every
    problem, but after a direct cut-over the standby's own, which may be the very reason for it."""
    exempt = STANDBY_SUBJECTS if via is not None and via_home(via) else frozenset()
    return [finding.text for finding in report.findings if finding.subject not in exempt]


def public_path_down(report: Report) -> bool:
    """What the watch counts towards its alert (the report's rule, also its JSON `tunnel_down`)."""
    return report.public_path_down


@dataclass(frozen=True)
class Context:
    """What the advice names: the stack, and its emergencyCutover command."""

    stack: str | None
    emergency_command: str | None = None
    # The stack's emergencyCutoverDirect: the mirror's records to the home, with Cloudflare and the VPS gone.
    direct_emergency_command: str | None = None


def diagnose(report: Report, context: Context) -> Diagnosis:
    """Which way to fail over fits what failed (TABLE); none when every host answers, when the hosts are
    on the VPS already (mode failover), or when no cut-over can help."""
    failures = report.public_path.failures
    api = report.cloudflare_api
    if report.mode != "tunnel":
        failing = f" (the public path fails: {kinds_text(failures)})" if failures else ""
        where = "the home" if any(h.dns.expected is DnsPath.HOME for h in report.hosts) else "the VPS"
        return Diagnosis(
            None, f"mode {report.mode}: the hosts are on {where} already, no cut-over applies{failing}", None, None
        )
    public = public_failure(report.public_path, api)
    if public is None:
        later = f"; should it fail, only the emergency path fits: {api_blocked_text(api)}" if api.state.blocked else ""
        return Diagnosis(None, f"every host answers through the tunnel: nothing to cut over{later}", None, None)
    standby, standby_words = standby_state(report)
    case = f"{public}/{standby}"
    outcome = TABLE[(public, standby)]
    if isinstance(outcome, NoWay):
        direct = _direct(report, public, context)
        if direct is not None:
            way, command = direct
            why = f"{_why(DIRECT_WAY_FOR.get(way, way), failures, api)}, and the VPS cannot serve ({standby_words})"
            return Diagnosis(way, f"{why}; the home answers straight from its own address", command, f"{case}/home")
        return Diagnosis(
            None, outcome.reason(standby_words, stack_flag(context.stack)) + _home_words(report), None, case
        )
    blockers = standby_blockers(report)
    if standby is StandbyState.UNPROVEN:
        caveat = f"; but {standby_words}"
    elif blockers and outcome is not Way.EMERGENCY:
        caveat = f"; but the standby is not ready ({blockers[0]}): a cut-over's pre-flight refuses it"
    else:
        caveat = ""
    command = cutover_command(outcome, context.stack, context.emergency_command)
    return Diagnosis(outcome, _why(outcome, failures, api) + caveat, command, case)


# The way through the VPS whose words a direct way shares (what failed on the public path is the same).
DIRECT_WAY_FOR = {Way.DIRECT: Way.EDGE, Way.DIRECT_DNS: Way.DNS}


def _direct(report: Report, public: PublicFailure, context: Context) -> tuple[Way, str] | None:
    """The direct way and its command, when the home serves what this failure needs."""
    families = home_families(report)
    way = DIRECT[public]
    if not families or (way is not Way.DIRECT and 4 not in families):
        return None
    if way is Way.EMERGENCY:
        return (way, context.direct_emergency_command) if context.direct_emergency_command else None
    return way, cutover_command(way, context.stack)


def _home_words(report: Report) -> str:
    """Why the direct way does not help either, when the home is configured."""
    if not report.home:
        return ""
    families = home_families(report)
    if families == {6}:
        return "; the home serves over IPv6 only, which DNS-only leaves visitors without IPv6 nothing"
    if families:
        return "; the home serves, but the emergency path to it needs the Hetzner mirror (secondaryDns)"
    said = next((f.text for f in report.findings if f.subject is Subject.HOME), "not every host answers there")
    return f"; nor does the home straight from its own address: {said}"


def _why(way: Way, failures: Mapping[Failure, list[str]], api: ApiCheck) -> str:
    if way is Way.EMERGENCY:
        blocked = f"{api_blocked_text(api)}, so no record can change at Cloudflare"
        return f"{blocked}; the public path fails ({kinds_text(failures)})"
    if way is Way.EDGE:
        return f"the edge answers over TLS, the tunnel behind it fails ({kinds_text(failures)})"
    edge_side: dict[Failure, list[str]] = {k: v for k, v in failures.items() if k is not Failure.TUNNEL_ERROR}
    what = "DNS for the names fails" if all(k.is_dns for k in edge_side) else "the edge itself fails"
    tunnel: dict[Failure, list[str]] = {k: v for k, v in failures.items() if k is Failure.TUNNEL_ERROR}
    also = f"; also {kinds_text(tunnel)}" if tunnel else ""
    return f"{what} ({kinds_text(edge_side)}{also})"
