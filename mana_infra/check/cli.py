"""`mana-infra check` from the command line: the arguments (refusing those that cannot take effect), the
endpoints they, the stack's outputs and the environment give (a bad output is blamed on its file and
name), and the watch loop with its alert. The probing is in .core, the verdict in .decision, the view
in .view."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ExitCode, InputError, Problem
from ..files import read_text
from ..inventory import load_inventory
from ..model import CLOUDFLARE_API, MODES, Service, hostname_problem, mode_problem
from ..monitor.alerts import PUBLIC_PATH_DOWN, Alert
from ..outputs import Output
from ..project import selected_stack
from ..terminal import console_for, count
from . import decision
from .assess import renewal_due_days
from .core import CERTIFICATE_OUTPUTS, CLOUDFLARE_EDGE, Endpoints, Options
from .decision import cutover_command, kinds_text
from .probes import (
    CloudflareApi,
    Nameserver,
    VpsRunner,
    command_runner,
    parse_resolver,
    resolve,
    ssh_argv,
    system_nameservers,
)
from .report import CertificateKind, Report, Way
from .view import check_once, print_command, render

if TYPE_CHECKING:
    from ..monitor.setup import Monitor

__all__ = ["Reach", "add_arguments", "build", "cli", "cutover_command", "main", "parse_args"]

ALERT_AFTER = 3  # --alert-after's default
WEBHOOK_VARIABLE = "MANA_WATCH_WEBHOOK"
CERT_WARN_DAYS, WATCH_CERT_WARN_DAYS = 7.0, 21.0  # --cert-warn-days's default, once and with --watch
# The weekly deploy run renews within a week of the renewal point: --watch's default warns once one more
# run has gone by (and a day), when that comes before WATCH_CERT_WARN_DAYS (certificates under 87 days).
MISSED_RUN_DAYS = 8.0


def watch_cert_warn_days(endpoints: Endpoints | None) -> float:
    """--watch's default: 21 days, or fewer for a shorter-lived public certificate, which a healthy
    weekly renewal lets fall to a third of its lifetime less a week (64 days: about 14 left)."""
    lifetime = endpoints.public_lifetime_days if endpoints else None
    return min(WATCH_CERT_WARN_DAYS, round(renewal_due_days(lifetime) - MISSED_RUN_DAYS, 1))


SSH_FLAGS = ("ssh_host", "ssh_user", "ssh_key", "ssh_port", "ssh_option", "wg_interface", "handshake_max_age")

StackOutputsReader = Callable[[str | None], dict[str, Any]]


@dataclass(frozen=True)
class Reach:
    """How check reaches what it probes: HTTPS on port 443, the VPS over ssh. The one seam for
    servers that cannot sit there (the tests' stand-ins on loopback ports, a local shell as the
    VPS); the command line has no flag for it."""

    https_port: int = 443
    vps_runner: VpsRunner | None = None  # None: ssh to the stack's VPS


# ------------------------------------------------------------------------------------------ arguments


def add_arguments(parser: argparse.ArgumentParser, *, for_switch: bool = False) -> None:
    """check's flags; for_switch: those `cutover` and `failback` pass on to their checks (the endpoints
    come from the stack they switch, the output is theirs)."""
    _source_flags(parser, for_switch)
    _probe_flags(parser)
    _vps_flags(parser)
    if not for_switch:
        _output_flags(parser)


def _source_flags(parser: argparse.ArgumentParser, for_switch: bool) -> None:
    source = parser.add_argument_group(
        "check's flags, for the pre-flight and the checks after" if for_switch else "where the endpoints come from"
    )
    if not for_switch:
        source.add_argument("--stack", help="Pulumi stack whose outputs to read (default: the selected stack)")
        source.add_argument(
            "--outputs", metavar="FILE", help="the stack's outputs saved with `pulumi stack output --json`"
        )
        source.add_argument("--no-pulumi", action="store_true", help="never call the Pulumi CLI; flags only")
        source.add_argument("--mode", choices=MODES, help="the stack's mode (which path DNS should give)")
    source.add_argument("--origin-name", help="the VPS's permanent name, e.g. vps.mana.how")
    source.add_argument(
        "--origin-ip",
        action="append",
        default=[],
        metavar="IP",
        help="the VPS's address (repeatable; default: the outputs, else the origin name resolved)",
    )
    source.add_argument("--tunnel-target", help="<tunnelId>.cfargotunnel.com")
    source.add_argument(
        "--tunnel-probe", metavar="HOST", help="the name that stays on the tunnel (default: the outputs' tunnelProbe)"
    )
    source.add_argument(
        "--health-url", help="the VPS's health URL (default: outputs' healthUrl or https://<origin>/healthz)"
    )
    source.add_argument("--services", metavar="FILE", help="inventory file (default: the outputs' hosts)")
    source.add_argument(
        "--zone", help="the zone of the inventory hosts (default: the outputs' zone, or the origin name's parent)"
    )
    source.add_argument(
        "--edge-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="extra edge networks that count as the tunnel path when proxied (besides Cloudflare's)",
    )


def _probe_flags(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("how to probe")
    net.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="DNS server to ask (repeatable; default: /etc/resolv.conf's)",
    )
    net.add_argument(
        "--ca-file",
        help="trust only these CA certificates (PEM) instead of the system's (the Cloudflare API's too)",
    )
    net.add_argument(
        "--mirror-nameserver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="also ask the Hetzner mirror's nameserver directly (repeatable; the addresses of the stack's "
        "secondaryDnsNameservers): every host must get its failover answer there",
    )
    net.add_argument("--no-mirror", action="store_true", help="skip the Hetzner mirror, even when the stack has one")
    net.add_argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")
    net.add_argument(
        "--cert-warn-days",
        type=float,
        help=f"degraded when a certificate expires sooner (default {CERT_WARN_DAYS:g}, with --watch "
        f"{WATCH_CERT_WARN_DAYS:g}, or a week past the public certificate's renewal point when that comes "
        "first: a renewal missed; 0 turns it off)",
    )


def _vps_flags(parser: argparse.ArgumentParser) -> None:
    vps = parser.add_argument_group("the VPS over SSH (WireGuard's latest handshake)")
    vps.add_argument("--ssh-host", help="default: the outputs' originIpv4")
    vps.add_argument("--ssh-user", help="default: the outputs' sshUser, else root")
    vps.add_argument("--ssh-key", help="private key file for ssh -i")
    vps.add_argument("--ssh-port", type=int)
    vps.add_argument(
        "--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)"
    )
    vps.add_argument("--no-ssh", action="store_true", help="skip SSH (WireGuard's handshake goes unchecked)")
    # No longer used (the standby path is checked over HTTPS through the VPS): refused with the reason.
    vps.add_argument("--macmini-address", help=argparse.SUPPRESS)
    vps.add_argument("--wg-interface", help="WireGuard interface on the VPS (default wg0)")
    vps.add_argument("--handshake-max-age", type=int, help="seconds until a handshake is stale (default 180)")


def _output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("output and watching")
    out.add_argument("--json", action="store_true", help="one JSON report on stdout (one per line with --watch)")
    out.add_argument("--watch", type=float, metavar="N", help="check again every N seconds")
    out.add_argument(
        "--alert-after",
        type=int,
        metavar="K",
        help="with --watch: after K rounds in a row with the public path down, print what failed and the "
        f"cut-over command that fits (default {ALERT_AFTER})",
    )
    out.add_argument(
        "--webhook",
        metavar="URL",
        help=f"with --watch: POST the alert as JSON to this URL (default: ${WEBHOOK_VARIABLE}, if set)",
    )
    out.add_argument("--rounds", type=int, metavar="N", help="with --watch: stop after N checks")
    from ..monitor.setup import add_flags

    add_flags(parser.add_argument_group("with --watch: metrics and alerts"))


def parser(kind: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`mana-infra check`'s parser (of ``kind``: the dispatcher's keeps its flags)."""
    parser = kind(
        prog="mana-infra check",
        allow_abbrev=False,
        description="Check every inventory host through the path DNS gives today (the public path) and through "
        "the standby VPS, plus the VPS's health, WireGuard, the Hetzner mirror and the Cloudflare API (with "
        "CLOUDFLARE_API_TOKEN); say which way to fail over fits and what each takes. Exit 0 healthy, 1 "
        "degraded, 2 bad input. Endpoints come from `pulumi stack output` when the Pulumi CLI is there, flags "
        "override them.",
    )
    add_arguments(parser)
    return parser


def with_environment(args: argparse.Namespace) -> argparse.Namespace:
    """What the environment adds to the flags: the watch's webhook from MANA_WATCH_WEBHOOK."""
    if args.watch is not None and args.webhook is None:
        # A webhook's URL is often a secret: from the environment it stays out of `ps`.
        args.webhook = os.environ.get(WEBHOOK_VARIABLE) or None
    return args


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return with_environment(parser().parse_args(argv))


# ------------------------------------------------------------------------------------------ endpoints


def read_stack_outputs(stack: str | None) -> dict[str, Any]:
    """`pulumi stack output --json [--stack S]`, where the operator stands (the CLI finds the project)."""
    argv = ["pulumi", "stack", "output", "--json"] + (["--stack", stack] if stack else [])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(
            [
                Problem(
                    "pulumi stack output",
                    f"cannot run the Pulumi CLI: {exc}",
                    "give the endpoints as flags, with --no-pulumi",
                )
            ]
        ) from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise InputError(
            [
                Problem(
                    shlex.join(argv),
                    detail,
                    "select the stack (`pulumi stack select prod`, or --stack), log in, "
                    "or give the endpoints as flags with --no-pulumi",
                )
            ]
        )
    return _outputs_json(done.stdout, shlex.join(argv))


def _outputs_json(text: str, where: str) -> dict[str, Any]:
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            [Problem(where, f"is not JSON: {exc}", "save it with `pulumi stack output --json > FILE`")]
        ) from None
    if not isinstance(outputs, dict):
        raise InputError(
            [Problem(where, "is not a JSON object of outputs", "save it with `pulumi stack output --json`")]
        )
    return outputs


def build(
    args: argparse.Namespace,
    outputs_reader: StackOutputsReader = read_stack_outputs,
    reach: Reach = Reach(),
    environ: Mapping[str, str] | None = None,
) -> tuple[Endpoints, Options]:
    """Endpoints and options from the outputs, flags and environment (CLOUDFLARE_API_TOKEN,
    CLOUDFLARE_BASE_URL); InputError names every problem."""
    problems: list[Problem] = []
    _refuse_idle_flags(args, problems)
    outputs, source = _read_outputs(args, outputs_reader, problems)
    values = _Outputs(outputs, source, args.outputs is not None, problems)
    endpoints = _endpoints(args, values, problems)
    options = _options(args, values, endpoints, reach, os.environ if environ is None else environ, problems)
    if problems or endpoints is None:
        raise InputError(problems)
    return endpoints, options


def _refuse_idle_flags(args: argparse.Namespace, problems: list[Problem]) -> None:
    """Flags that cannot take effect with the others given: refused, so nothing is silently ignored."""
    if args.watch is None:
        for flag, given, why in (
            ("--rounds", args.rounds is not None, "a single check runs once"),
            ("--alert-after", args.alert_after is not None, "the alert counts rounds of the watch loop"),
            ("--webhook", args.webhook is not None, "only the watch loop alerts"),
            ("--alert", bool(args.alert), "only the watch loop alerts"),
            ("--metrics-listen", args.metrics_listen is not None, "only the watch loop has rounds to expose"),
            ("--textfile", args.textfile is not None, "only the watch loop has rounds to expose"),
        ):
            if given:
                problems.append(
                    Problem(
                        flag,
                        f"has no effect without --watch ({why})",
                        f"add --watch N (e.g. --watch 60), or drop {flag}",
                    )
                )
    if args.no_mirror and args.mirror_nameserver:
        problems.append(
            Problem(
                "--mirror-nameserver",
                "cannot take effect with --no-mirror (the mirror is skipped)",
                "drop --mirror-nameserver or --no-mirror",
            )
        )
    if args.no_ssh:
        for name in SSH_FLAGS:
            if getattr(args, name) not in (None, []):
                flag = "--" + name.replace("_", "-")
                problems.append(
                    Problem(
                        flag, "cannot take effect with --no-ssh (nothing is asked over SSH)", f"drop {flag} or --no-ssh"
                    )
                )
    if args.macmini_address is not None:
        problems.append(
            Problem(
                "--macmini-address",
                "no longer has an effect: the standby path is checked over HTTPS through the VPS (its Caddy "
                "reaches the Mac Mini across WireGuard), and SSH only reads WireGuard's handshake",
                "drop --macmini-address",
            )
        )


class _Outputs:
    """The stack's outputs, each value with the place to blame when it is bad: `<source>: <output>`
    (the file given with --outputs, or the Pulumi CLI's command), the fix being fresh outputs or the flag."""

    def __init__(self, outputs: dict[str, Any], source: str, from_file: bool, problems: list[Problem]) -> None:
        self.outputs, self.source, self.from_file, self.problems = outputs, source, from_file, problems

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def get(self, key: str) -> Any:
        return self.outputs.get(key)

    def where(self, key: str) -> str:
        return f"{self.source}: {key}"

    def refresh(self, flag: str | None) -> str:
        fresh = (
            f"save fresh outputs (`pulumi stack output --json > {self.source}`)"
            if self.from_file
            else "refresh the outputs (`pulumi up`)"
        )
        return f"{fresh}, or give {flag}" if flag else fresh

    def text(self, key: str, flag: str | None) -> str | None:
        """A string output; absent, empty or "[secret]" is None; another type is blamed."""
        value = self.outputs.get(key)
        if value is None or value == "" or value == "[secret]":
            return None
        if not isinstance(value, str):
            self.problems.append(Problem(self.where(key), f"{value!r} is not a string", self.refresh(flag)))
            return None
        return value


def _read_outputs(
    args: argparse.Namespace, outputs_reader: StackOutputsReader, problems: list[Problem]
) -> tuple[dict[str, Any], str]:
    """The stack's outputs (from --outputs, or the Pulumi CLI unless the flags say everything) and
    where they came from."""
    if args.outputs:
        fix = "save the outputs with `pulumi stack output --json > FILE`"
        text = read_text(args.outputs, "the stack's outputs", fix)
        return _outputs_json(text, args.outputs), args.outputs
    flags_say_everything = args.mode and args.origin_name and args.tunnel_target and args.services
    if args.no_pulumi or (flags_say_everything and not args.stack):
        return {}, "flags"
    if shutil.which("pulumi"):
        outputs = outputs_reader(args.stack)
        if not args.stack:
            # The selected stack, by name: the report's first line and every command it prints name it.
            with contextlib.suppress(InputError):
                args.stack = selected_stack(Path.cwd())
        return outputs, f"pulumi stack output{' --stack ' + args.stack if args.stack else ''}"
    if args.stack:
        problems.append(
            Problem(
                "--stack",
                "the Pulumi CLI is not installed, so the stack's outputs cannot be read",
                "install Pulumi, or give --mode, --origin-name, --tunnel-target and --services",
            )
        )
    return {}, "flags"


class _Sources:
    """Flags first, then the outputs; a bad value blamed where it came from: the flag, or the outputs'
    file and output (the fix then is fresh outputs, or the flag)."""

    def __init__(self, args: argparse.Namespace, outputs: _Outputs, problems: list[Problem]) -> None:
        self.args, self.outputs, self.problems = args, outputs, problems
        if outputs:
            self.unknown = f"is not known (not in the outputs from {outputs.source})"
        elif outputs.source != "flags":
            self.unknown = (
                f"is not known: {outputs.source} holds no outputs (a stack never deployed: `pulumi up` first)"
            )
        else:
            why = "--no-pulumi" if args.no_pulumi else "the Pulumi CLI is not installed"
            self.unknown = f"is not known (no stack outputs were read: {why})"

    def pick(self, flag_value: str | None, key: str, flag: str) -> tuple[str | None, str]:
        if flag_value:
            return flag_value, flag
        return self.outputs.text(key, flag), self.outputs.where(key)

    def bad(self, where: str, flag: str, message: str, fix: str) -> None:
        self.problems.append(Problem(where, message, fix if where == flag else self.outputs.refresh(flag)))

    def name(self, flag_value: str | None, key: str, flag: str, fix: str) -> tuple[str, str]:
        """A DNS name from its flag or output, lower-case without the root's dot; a bad one said."""
        value, where = self.pick(flag_value, key, flag)
        value = (value or "").lower().rstrip(".")
        if value and (reason := hostname_problem(value)):
            self.bad(where, flag, reason, fix)
        return value, where

    def timestamp(self, output: str) -> datetime | None:
        text = self.outputs.text(output, None)
        if text is None:
            return None
        parsed = parse_timestamp(text)
        if parsed is None:
            self.bad(self.outputs.where(output), "", f"{text!r} is not an RFC 3339 timestamp", "")
        return parsed


def _endpoints(args: argparse.Namespace, outputs: _Outputs, problems: list[Problem]) -> Endpoints | None:
    """Where the two paths are: flags first, then the outputs (see _Sources)."""
    src = _Sources(args, outputs, problems)
    mode = _mode(src)
    origin_name, _ = src.name(
        args.origin_name, Output.ORIGIN_NAME, "--origin-name", "give the VPS's DNS name, e.g. vps.mana.how"
    )
    if not origin_name:
        src.bad("--origin-name", "--origin-name", src.unknown, "give --origin-name vps.<zone>")
    tunnel_target, _ = src.name(
        args.tunnel_target, Output.TUNNEL_TARGET, "--tunnel-target", "give <tunnelId>.cfargotunnel.com"
    )
    if not tunnel_target and mode != "failover":
        # Only the tunnel path needs it; the rehearsal stack (always failover) has no tunnel.
        src.bad("--tunnel-target", "--tunnel-target", src.unknown, "give --tunnel-target <tunnelId>.cfargotunnel.com")
    health_url, where = src.pick(args.health_url, Output.HEALTH_URL, "--health-url")
    if health_url and (urlsplit(health_url).scheme != "https" or not urlsplit(health_url).hostname):
        src.bad(where, "--health-url", f"{health_url!r} is not an https:// URL", "e.g. https://vps.mana.how/healthz")
    parent = origin_name.split(".", 1)[1] if "." in origin_name else ""
    zone, _ = src.pick(args.zone, Output.ZONE, "--zone")
    services, proxied = _services(args, outputs.outputs, (zone or parent).lower().rstrip("."), outputs.source, problems)
    certificates, public_lifetime_days = _certificate_dates(src)
    tunnel_probe, _ = src.name(
        args.tunnel_probe, Output.TUNNEL_PROBE, "--tunnel-probe", "give the probe's name, e.g. tunnel-probe.mana.how"
    )
    reachable, allowed, left = (
        outputs.get(o) for o in (Output.CLOUDFLARE_REACHABLE, Output.CHECK_ALLOWED_CIDRS, Output.ADOPT_RECORDS_LEFT)
    )
    pinned = _pinned(src)
    origin_ips, edge_networks = _origin_ips(src), _edge_networks(src)
    if not mode:
        return None
    return Endpoints(
        mode=mode,
        origin_name=origin_name,
        tunnel_target=tunnel_target or None,
        services=services,
        origin_ips=origin_ips,
        health_url=health_url,
        proxied=proxied,
        edge_networks=edge_networks,
        stack=args.stack,
        vps_stack=outputs.text(Output.PROD_STACK, None),
        emergency_command=outputs.text(Output.EMERGENCY_CUTOVER, None),
        certificates=certificates,
        public_lifetime_days=public_lifetime_days,
        cloudflare_reachable=reachable if isinstance(reachable, bool) else None,
        pinned_certificates=(pinned,) if pinned else (),
        check_allowed_cidrs=tuple(str(c) for c in allowed) if isinstance(allowed, list) else None,
        tunnel_probe=tunnel_probe or None,
        adoption_left=tuple(str(h) for h in left) if isinstance(left, list) else (),
        mode_since=outputs.text(Output.MODE_SINCE, None),
        via=outputs.text(Output.FAILOVER_VIA, None),
        home_name=outputs.text(Output.HOME_NAME, None),
        direct_emergency_command=outputs.text(Output.EMERGENCY_CUTOVER_DIRECT, None),
        home_ips=tuple(a for a in (outputs.text(o, None) for o in (Output.HOME_IPV4, Output.HOME_IPV6)) if a),
    )


def _mode(src: _Sources) -> str | None:
    mode, where = src.pick(src.args.mode, Output.MODE, "--mode")
    if not mode:
        src.bad("--mode", "--mode", src.unknown, "give --mode tunnel or --mode failover")
    elif reason := mode_problem(mode):
        src.bad(where, "--mode", reason, "use tunnel or failover")
        return None
    return mode or None


def _origin_ips(src: _Sources) -> tuple[str, ...]:
    outputs = src.outputs
    given = [(ip, "--origin-ip") for ip in src.args.origin_ip] or [
        (ip, outputs.where(key))
        for key in (Output.ORIGIN_IPV4, Output.ORIGIN_IPV6)
        if (ip := outputs.text(key, "--origin-ip"))
    ]
    origin_ips = []
    for ip, where in given:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            src.bad(where, "--origin-ip", f"{ip!r} is not an IP address", "give the VPS's IPv4 or IPv6 address")
        else:
            origin_ips.append(ip)
    return tuple(origin_ips)


def _edge_networks(src: _Sources) -> tuple[Any, ...]:
    edge_networks: list[Any] = [ipaddress.ip_network(cidr) for cidr in CLOUDFLARE_EDGE]
    for cidr in src.args.edge_cidr:
        try:
            edge_networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            src.bad("--edge-cidr", "--edge-cidr", f"{cidr!r} is not a network", "e.g. --edge-cidr 198.51.100.0/24")
    return tuple(edge_networks)


def _certificate_dates(src: _Sources) -> tuple[dict[CertificateKind, datetime], float | None]:
    """The certificates' expiry the outputs date, and the public one's lifetime when its issue is dated too."""
    certificates: dict[CertificateKind, datetime] = {}
    for key, (output, _what) in CERTIFICATE_OUTPUTS.items():
        if (expires := src.timestamp(output)) is not None:
            certificates[key] = expires
    issued = src.timestamp(Output.PUBLIC_CERTIFICATE_ISSUED_ON)
    if issued is None or CertificateKind.PUBLIC not in certificates:
        return certificates, None
    return certificates, (certificates[CertificateKind.PUBLIC] - issued).total_seconds() / 86400


def _pinned(src: _Sources) -> str | None:
    pinned = src.outputs.text(Output.ORIGIN_CERTIFICATE_SHA256, None)
    if pinned is not None and not re.fullmatch(r"[0-9a-f]{64}", pinned):
        where = src.outputs.where(Output.ORIGIN_CERTIFICATE_SHA256)
        src.bad(where, "", f"{pinned!r} is not a SHA-256 fingerprint in hex", "")
        return None
    return pinned


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 (`2026-08-01T12:00:00Z`), or the form Cloudflare's Origin CA API gives its expires_on in
    (Go's `2041-02-03 04:05:06 +0000 UTC`); None when it is neither or has no time zone."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            stamp = datetime.strptime(text.strip().removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            return None
    return stamp if stamp.tzinfo is not None else None


def _nameservers(flag: str, texts: Sequence[str], example: str, problems: list[Problem]) -> list[Nameserver]:
    nameservers = []
    for text in texts:
        try:
            nameservers.append(parse_resolver(text))
        except ValueError as exc:
            problems.append(Problem(flag, str(exc), f"e.g. {flag} {example}"))
    return nameservers


def _options(
    args: argparse.Namespace,
    outputs: _Outputs,
    endpoints: Endpoints | None,
    reach: Reach,
    environ: Mapping[str, str],
    problems: list[Problem],
) -> Options:
    """How to probe: resolvers, the mirror, trust, timing, the VPS over SSH, the Cloudflare API."""

    def bad(flag: str, message: str, fix: str) -> None:
        problems.append(Problem(flag, message, fix))

    resolvers = _nameservers("--resolver", args.resolver, "192.0.2.53 (or 127.0.0.1:5353)", problems)
    if not args.resolver:
        resolvers = system_nameservers()
        if not resolvers:
            bad("--resolver", "no DNS server: /etc/resolv.conf names none", "give --resolver IP[:port]")

    if args.ca_file and not Path(args.ca_file).is_file():
        bad("--ca-file", f"{args.ca_file} is not a file", "give a PEM file of CA certificates")
    if not 0 < args.timeout <= 120:
        bad("--timeout", f"{args.timeout:g} is not in (0, 120] seconds", "e.g. --timeout 3")
    if args.watch is not None and args.watch <= 0:
        bad("--watch", f"{args.watch:g} is not a positive number of seconds", "e.g. --watch 30")
    if args.alert_after is not None and args.alert_after < 1:
        bad("--alert-after", f"{args.alert_after} is less than 1", "e.g. --alert-after 3")
    if args.watch is not None:  # the destinations and the metrics' flags, named with the rest
        from ..monitor.setup import problems_of

        problems += problems_of(args, environ)[1]
    if args.rounds is not None and args.rounds < 1:
        bad("--rounds", f"{args.rounds} is less than 1", "e.g. --rounds 10")
    cert_warn_days = args.cert_warn_days
    if cert_warn_days is None:
        cert_warn_days = CERT_WARN_DAYS if args.watch is None else watch_cert_warn_days(endpoints)
    elif cert_warn_days < 0:
        bad("--cert-warn-days", f"{cert_warn_days:g} is negative", "e.g. --cert-warn-days 21 (0 turns it off)")
    if args.ssh_key and not Path(args.ssh_key).is_file():
        bad("--ssh-key", f"{args.ssh_key} is not a file", "give the private key matching the stack's sshPublicKey")

    mirror, mirror_skipped = _mirror(args, outputs, resolvers, problems)
    runner, runner_note, ssh_skipped = _ssh(args, outputs, endpoints, reach)
    cloudflare, cloudflare_skipped = _cloudflare(environ, problems)
    return Options(
        resolvers=resolvers,
        timeout=args.timeout,
        https_port=reach.https_port,
        ca_file=args.ca_file,
        runner=runner,
        runner_note=runner_note,
        ssh_skipped=ssh_skipped,
        wg_interface=args.wg_interface or "wg0",
        handshake_max_age=180 if args.handshake_max_age is None else args.handshake_max_age,
        cert_warn_days=cert_warn_days,
        mirror=tuple(mirror),
        mirror_skipped=mirror_skipped,
        cloudflare=cloudflare,
        cloudflare_skipped=cloudflare_skipped,
    )


def _mirror(
    args: argparse.Namespace, outputs: _Outputs, resolvers: Sequence[Nameserver], problems: list[Problem]
) -> tuple[list[Nameserver], str | None]:
    """The Hetzner mirror's nameservers to ask (the flags', else the stack's secondaryDnsNameservers
    resolved the ordinary way), and why it is not (or only partly) asked."""
    if args.no_mirror:
        return [], "skipped: --no-mirror"
    if args.mirror_nameserver:
        return _nameservers("--mirror-nameserver", args.mirror_nameserver, "192.0.2.54", problems), None
    if not outputs:
        return [], "no stack outputs were read, so no secondaryDnsNameservers (give --mirror-nameserver IP)"
    names = outputs.get(Output.SECONDARY_DNS_NAMESERVERS)
    if names is None:
        return [], "the outputs have no secondaryDnsNameservers (the stack's secondaryDns is off)"
    if not isinstance(names, list) or not all(
        isinstance(n, str) and not hostname_problem(n.rstrip(".")) for n in names
    ):
        problems.append(
            Problem(
                outputs.where(Output.SECONDARY_DNS_NAMESERVERS),
                f"{names!r} is not a list of nameserver names",
                outputs.refresh("--mirror-nameserver"),
            )
        )
        return [], None
    if not resolvers:
        return [], "no DNS resolver to resolve its nameservers' names"
    mirror, failed = [], []
    for name in names:
        answer = resolve(name, resolvers, args.timeout)
        if answer.addresses:
            mirror.append(Nameserver(answer.addresses[0]))
        else:
            failed.append(f"{name.rstrip('.')} ({answer.error})")
    if not failed:
        return mirror, None
    what = "its nameservers' names did not resolve" if not mirror else "some nameservers' names did not resolve"
    return mirror, f"{what}: {'; '.join(failed)}"


def _ssh(
    args: argparse.Namespace, outputs: _Outputs, endpoints: Endpoints | None, reach: Reach
) -> tuple[VpsRunner | None, str, str]:
    """The VPS runner for WireGuard's handshake, what it is, and why there is none."""
    if args.no_ssh:
        return None, "", "skipped: --no-ssh"
    if reach.vps_runner is not None:
        return reach.vps_runner, "the given VPS runner", ""
    ssh_host = args.ssh_host
    if not ssh_host and outputs and endpoints:  # the stack's VPS, when the endpoints come from its outputs
        ssh_host = next((ip for ip in endpoints.origin_ips if ":" not in ip), None)
    if not ssh_host:
        why = (
            "no address to SSH to (the outputs have no originIpv4; give --ssh-host)"
            if outputs
            else "no address to SSH to (give --ssh-host, or read the stack's outputs)"
        )
        return None, "", why
    user = args.ssh_user or outputs.text(Output.SSH_USER, "--ssh-user") or "root"
    argv = ssh_argv(ssh_host, user, args.ssh_key, args.ssh_port, args.timeout, args.ssh_option)
    return command_runner(argv), f"ssh {user}@{ssh_host}", ""


def _cloudflare(environ: Mapping[str, str], problems: list[Problem]) -> tuple[CloudflareApi | None, str]:
    """Whether to ask Cloudflare's API if it takes the token: only with CLOUDFLARE_API_TOKEN set, at
    CLOUDFLARE_BASE_URL (what the Pulumi provider reads) or the public API."""
    token = environ.get("CLOUDFLARE_API_TOKEN", "").strip()
    if not token:
        return None, "CLOUDFLARE_API_TOKEN is not set (the edge and DNS-only ways need the API to take it)"
    base = environ.get("CLOUDFLARE_BASE_URL", "").strip() or CLOUDFLARE_API
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            Problem(
                "CLOUDFLARE_BASE_URL",
                f"{base!r} is not an http(s) URL",
                f"unset it (the API is {CLOUDFLARE_API}), or give the stand-in's http://HOST:PORT/client/v4",
            )
        )
        return None, "CLOUDFLARE_BASE_URL is not a URL"
    return CloudflareApi(base, token), ""


def _services(
    args: argparse.Namespace, outputs: dict[str, Any], zone: str, source: str, problems: list[Problem]
) -> tuple[tuple[Service, ...], dict[str, bool]]:
    if args.services:
        if not zone or hostname_problem(zone):
            problems.append(Problem("--zone", "is not known", "give --zone mana.how"))
            return (), {}
        try:
            return load_inventory(Path(args.services), zone), {}
        except InputError as error:
            problems.extend(error.problems)
            return (), {}
    hosts = outputs.get(Output.HOSTS)
    if not isinstance(hosts, list) or not hosts:
        problems.append(
            Problem(
                "--services",
                f"no inventory (no `hosts` in the outputs from {source})"
                if outputs
                else "no inventory (give --services, or read the stack's outputs)",
                "give --services services.yaml (with --zone)",
            )
        )
        return (), {}
    services, proxied = [], {}
    for index, entry in enumerate(hosts):
        host = entry.get("host") if isinstance(entry, dict) else None
        port = entry.get("port") if isinstance(entry, dict) else None
        if not isinstance(host, str) or hostname_problem(host) or isinstance(port, bool) or not isinstance(port, int):
            problems.append(
                Problem(
                    f"{source}: hosts[{index}]",
                    f"{entry!r} is not {{host, port}}",
                    "run `pulumi up` to refresh the outputs, or give --services",
                )
            )
            continue
        health = entry.get("health", "/")
        if not isinstance(health, str) or not health.startswith("/"):
            problems.append(
                Problem(f"{source}: hosts[{index}]", f"health {health!r} is not a path", "run `pulumi up` again")
            )
            continue
        services.append(Service(host=host, port=port, name=host, health=health))
        if isinstance(entry.get("proxied"), bool):
            proxied[host] = entry["proxied"]
    return tuple(services), proxied


# ------------------------------------------------------------------------------------ watch and alert


def alert_payload(report: Report, rounds: int) -> dict[str, Any]:
    """What the webhook gets: what failed (by kind), the way that fits and its command, the standby."""
    public = report.public_path
    failures = public.failures
    diagnosis = report.diagnosis
    return {
        "event": "public_path_down",
        "kind": max(failures, key=lambda kind: len(failures[kind])).value if failures else None,
        "way": diagnosis.way.value if diagnosis.way else None,
        "command": diagnosis.command,
        "why": diagnosis.why,
        "failures": {kind.value: hosts for kind, hosts in failures.items()},
        "counts": {kind.value: len(hosts) for kind, hosts in failures.items()},
        "failed": public.failed,
        "total": public.total,
        "consecutive_failures": rounds,
        "standby_ready": not decision.standby_blockers(report),
        "cloudflare_api": report.cloudflare_api.state.value,
        "budget": report.budget.to_json(),
        "mode": report.mode,
        "stack": report.stack,
        "checked_at": report.checked_at,
        "problems": report.problems,
        "paths": {name: path.to_json() for name, path in report.paths.items()},
    }


# As the alert says it: "Cut over <way>".
ALERT_WAYS = {**{way.value: way.words for way in Way}, "emergency": "by " + Way.EMERGENCY.words}


def alert_lines(payload: dict[str, Any]) -> tuple[str, list[str], str, str | None, str | None]:
    """(heading, one line per failure kind, the way's line, its command, a warning or None)."""
    heading = (
        f"ALERT: the public path failed {count(payload['consecutive_failures'], 'check')} in a row "
        f"({payload['failed']} of {count(payload['total'], 'host')} fail):"
    )
    kinds = [kinds_text({kind: hosts}, hosts=True) for kind, hosts in payload["failures"].items()]
    way = payload["way"]
    fits = f"Cut over {ALERT_WAYS.get(way, way)}: {payload['why']}" if way else f"No cut-over fits: {payload['why']}"
    warning = None if payload["standby_ready"] else "warning: the standby is not ready either (see the problems above)"
    return heading, kinds, fits, payload["command"], warning


def main(
    args: argparse.Namespace,
    outputs_reader: StackOutputsReader = read_stack_outputs,
    sleep: Callable[[float], None] = time.sleep,
    reach: Reach = Reach(),
) -> int:
    try:
        endpoints, options = build(args, outputs_reader, reach)
    except InputError as error:
        print(str(error), file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.watch is None:
        report = check_once(endpoints, options, show_progress=not args.json and sys.stderr.isatty())
        _print_report(report, args, console_for(), 1)
        return report.exit_code
    from ..monitor.setup import monitor_for, sigterm_ends_the_loop

    monitor = monitor_for(args, args.stack or "", "check", args.watch)
    monitor.start()
    with sigterm_ends_the_loop():
        try:
            return _watch(args, endpoints, options, sleep, monitor)
        finally:
            monitor.close()  # alerts on their way get a moment before the process ends


def _watch(args: argparse.Namespace, endpoints: Endpoints, options: Options, sleep: Callable[[float], None],
           monitor: Monitor) -> int:  # fmt: skip
    """The watch loop: a check each round, its metrics, one alert per outage and its all-clear."""
    from ..monitor.metrics import report_samples

    console = console_for()
    alert_after = ALERT_AFTER if args.alert_after is None else args.alert_after
    failures = rounds = 0
    code = ExitCode.OK
    try:
        while True:
            started = time.monotonic()
            report = check_once(endpoints, options, show_progress=not args.json and sys.stderr.isatty())
            rounds += 1
            code = report.exit_code
            _print_report(report, args, console, rounds)
            samples = report_samples(report, endpoints.mode_since)
            monitor.metrics.round_done(samples, time.time(), time.monotonic() - started)
            # Once per outage: the count restarts only after a round with the public path not down.
            alerted = failures >= alert_after
            failures = failures + 1 if decision.public_path_down(report) else 0
            if failures == alert_after:
                _alert(report, failures, args, console, monitor)
            elif alerted and failures == 0:
                monitor.alert(_all_clear(report, args.stack))
            if args.rounds is not None and rounds >= args.rounds:
                return code
            sleep(max(0.0, args.watch - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return code if rounds else ExitCode.INTERRUPTED


def _print_report(report: Report, args: argparse.Namespace, console: Any, rounds: int) -> None:
    if args.json:
        compact = args.watch is not None
        text = json.dumps(report.to_json(), separators=(",", ":") if compact else None, indent=None if compact else 2)
        print(text, flush=True)
        return
    if args.watch:
        console.rule(f"check {rounds} at {report.checked_at}", style="dim")
    render(report, console)


def _alert(report: Report, failures: int, args: argparse.Namespace, console: Any, monitor: Monitor) -> None:
    payload = alert_payload(report, failures)
    heading, kinds, fits, command, warning = alert_lines(payload)
    if args.json:  # stdout is for the reports; the alert goes to stderr, one line each
        lines = [heading, *(f"    {k}" for k in kinds), fits, *([f"    {command}"] if command else [])]
        lines += [f"    {warning}"] if warning else []
        print("\n".join(lines), file=sys.stderr, flush=True)
    else:
        from rich.markup import escape

        console.print(f"[bold red]{escape(heading)}[/]")
        for kind in kinds:
            console.print(f"    {escape(kind)}")
        console.print(f"[bold]{escape(fits)}[/]")
        if command:
            print_command(console, command)
        if warning:
            console.print(f"    [yellow]{escape(warning)}[/]")
    details = (*kinds, fits, *([warning] if warning else []))
    monitor.alert(Alert(PUBLIC_PATH_DOWN, args.stack or report.stack or "", "check", True, time.time(),
                        heading.removeprefix("ALERT: ").rstrip(":"), details, command, payload))  # fmt: skip


def _all_clear(report: Report, stack: str | None) -> Alert:
    public = report.public_path
    words = f"the public path answers again ({public.total - public.failed} of {count(public.total, 'host')})"
    payload = {"event": "public_path_down", "stack": report.stack, "checked_at": report.checked_at, "why": words}
    return Alert(PUBLIC_PATH_DOWN, stack or report.stack or "", "check", False, time.time(), words, payload=payload)


def cli(argv: Sequence[str] | None = None) -> int:
    """`mana-infra check …` (and `python -m mana_infra.check …`)."""
    return main(parse_args(sys.argv[1:] if argv is None else argv))
