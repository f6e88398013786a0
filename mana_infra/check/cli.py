"""`mana-infra check` from the command line: the arguments, the endpoints they and the stack's outputs
give, and the watch loop with its alert. The probing is in .core, the view in .view."""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, Problem
from ..inventory import load_inventory
from ..model import MODES, Service, hostname_problem
from .core import CLOUDFLARE_EDGE, Endpoints, Options
from .probes import (
    Nameserver,
    VpsRunner,
    command_runner,
    parse_resolver,
    resolve,
    ssh_argv,
    system_nameservers,
)
from .view import check_once, console_for, render

EXIT_OK, EXIT_DEGRADED, EXIT_INPUT = 0, 1, 2

StackOutputsReader = Callable[[str | None], dict[str, Any]]


@dataclass(frozen=True)
class Reach:
    """How check reaches what it probes: HTTPS on port 443, the VPS over ssh. The one seam for
    servers that cannot sit there (the tests' stand-ins on loopback ports, a local shell as the
    VPS); the command line has no flag for it."""

    https_port: int = 443
    vps_runner: VpsRunner | None = None  # None: ssh to the stack's VPS


# ------------------------------------------------------------------------------------------ arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("where the endpoints come from")
    source.add_argument("--stack", help="Pulumi stack whose outputs to read (default: the selected stack)")
    source.add_argument("--outputs", metavar="FILE", help="the stack's outputs saved with `pulumi stack output --json`")
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

    net = parser.add_argument_group("how to probe")
    net.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="DNS server to ask (repeatable; default: /etc/resolv.conf's)",
    )
    net.add_argument("--ca-file", help="trust only these CA certificates (PEM) instead of the system's")
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
        default=7.0,
        help="degraded when a certificate expires sooner (default 7; 0 turns it off)",
    )

    vps = parser.add_argument_group("the VPS over SSH (WireGuard, and the standby path in tunnel mode)")
    vps.add_argument("--ssh-host", help="default: the outputs' originIpv4")
    vps.add_argument("--ssh-user", help="default: the outputs' sshUser, else root")
    vps.add_argument("--ssh-key", help="private key file for ssh -i")
    vps.add_argument("--ssh-port", type=int)
    vps.add_argument(
        "--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)"
    )
    vps.add_argument("--no-ssh", action="store_true", help="skip the SSH probes")
    vps.add_argument(
        "--macmini-address",
        help="the Mac Mini's WireGuard address (default: the outputs' macminiAddress, else 10.0.0.2)",
    )
    vps.add_argument("--wg-interface", default="wg0", help="WireGuard interface on the VPS (default wg0)")
    vps.add_argument(
        "--handshake-max-age", type=int, default=180, help="seconds until a handshake is stale (default 180)"
    )

    out = parser.add_argument_group("output and watching")
    out.add_argument("--json", action="store_true", help="one JSON report on stdout (one per line with --watch)")
    out.add_argument("--watch", type=float, metavar="N", help="check again every N seconds")
    out.add_argument(
        "--alert-after",
        type=int,
        default=3,
        metavar="K",
        help="with --watch: after K consecutive tunnel-path failures print the cut-over command (default 3)",
    )
    out.add_argument("--webhook", metavar="URL", help="with --watch: POST the alert as JSON to this URL")
    out.add_argument("--rounds", type=int, metavar="N", help="with --watch: stop after N checks")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mana-infra check",
        description="Check every inventory host through the path DNS gives today and through the standby path, "
        "plus the VPS's health and WireGuard. Exit 0 healthy, 1 degraded, 2 bad input. Endpoints come from "
        "`pulumi stack output` when the Pulumi CLI is there, flags override them.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


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
    args: argparse.Namespace, outputs_reader: StackOutputsReader = read_stack_outputs, reach: Reach = Reach()
) -> tuple[Endpoints, Options]:
    """Endpoints and options from the outputs and flags; InputError names every problem."""
    problems: list[Problem] = []
    outputs, source = _read_outputs(args, outputs_reader, problems)
    endpoints = _endpoints(args, outputs, source, problems)
    options = _options(args, outputs, endpoints, reach, problems)
    if problems or endpoints is None:
        raise InputError(problems)
    return endpoints, options


def _read_outputs(
    args: argparse.Namespace, outputs_reader: StackOutputsReader, problems: list[Problem]
) -> tuple[dict[str, Any], str]:
    """The stack's outputs (from --outputs, or the Pulumi CLI unless the flags say everything) and
    where they came from."""
    if args.outputs:
        try:
            text = Path(args.outputs).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                [
                    Problem(
                        args.outputs,
                        f"cannot read: {exc.strerror}",
                        "save the outputs with `pulumi stack output --json > FILE`",
                    )
                ]
            ) from None
        return _outputs_json(text, args.outputs), args.outputs
    flags_say_everything = args.mode and args.origin_name and args.tunnel_target and args.services
    if args.no_pulumi or (flags_say_everything and not args.stack):
        return {}, "flags"
    if shutil.which("pulumi"):
        return outputs_reader(args.stack), f"pulumi stack output{' --stack ' + args.stack if args.stack else ''}"
    if args.stack:
        problems.append(
            Problem(
                "--stack",
                "the Pulumi CLI is not installed, so the stack's outputs cannot be read",
                "install Pulumi, or give --mode, --origin-name, --tunnel-target and --services",
            )
        )
    return {}, "flags"


def _endpoints(
    args: argparse.Namespace, outputs: dict[str, Any], source: str, problems: list[Problem]
) -> Endpoints | None:
    """Where the two paths are: flags first, then the outputs."""

    def bad(flag: str, message: str, fix: str) -> None:
        problems.append(Problem(flag, message, fix))

    unknown = (
        f"is not known (not in the outputs from {source})"
        if outputs
        else "is not known (no stack outputs were read: "
        + ("--no-pulumi" if args.no_pulumi else "the Pulumi CLI is not installed")
        + ")"
    )
    mode = args.mode or _text(outputs.get("mode"))
    if not mode:
        bad("--mode", unknown, "give --mode tunnel or --mode failover")
    elif mode not in MODES:
        bad("--mode", f"{mode!r} is not a mode", "use tunnel or failover")

    origin_name = (args.origin_name or _text(outputs.get("originName")) or "").lower().rstrip(".")
    if not origin_name:
        bad("--origin-name", unknown, "give --origin-name vps.<zone>")
    elif reason := hostname_problem(origin_name):
        bad("--origin-name", reason, "give the VPS's DNS name, e.g. vps.mana.how")

    tunnel_target = (args.tunnel_target or _text(outputs.get("tunnelTarget")) or "").lower().rstrip(".")
    if not tunnel_target and mode != "failover":
        # Only the tunnel path needs it; the rehearsal stack (always failover) has no tunnel.
        bad("--tunnel-target", unknown, "give --tunnel-target <tunnelId>.cfargotunnel.com")
    elif tunnel_target and (reason := hostname_problem(tunnel_target)):
        bad("--tunnel-target", reason, "give <tunnelId>.cfargotunnel.com")

    origin_ips = list(args.origin_ip) or [
        ip for ip in (_text(outputs.get("originIpv4")), _text(outputs.get("originIpv6"))) if ip
    ]
    for ip in origin_ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            bad("--origin-ip", f"{ip!r} is not an IP address", "give the VPS's IPv4 or IPv6 address")

    health_url = args.health_url or _text(outputs.get("healthUrl"))
    if health_url and (urlsplit(health_url).scheme != "https" or not urlsplit(health_url).hostname):
        bad("--health-url", f"{health_url!r} is not an https:// URL", "e.g. https://vps.mana.how/healthz")

    parent = origin_name.split(".", 1)[1] if "." in origin_name else ""
    zone = (args.zone or _text(outputs.get("zone")) or parent).lower().rstrip(".")
    services, proxied = _services(args, outputs, zone, source, problems)

    edge_networks: list[Any] = [ipaddress.ip_network(cidr) for cidr in CLOUDFLARE_EDGE]
    for cidr in args.edge_cidr:
        try:
            edge_networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            bad("--edge-cidr", f"{cidr!r} is not a network", "e.g. --edge-cidr 198.51.100.0/24")
    if not mode:
        return None
    return Endpoints(
        mode=mode,
        origin_name=origin_name,
        tunnel_target=tunnel_target or None,
        services=services,
        origin_ips=tuple(origin_ips),
        health_url=health_url,
        proxied=proxied,
        edge_networks=tuple(edge_networks),
        stack=args.stack,
        vps_stack=_text(outputs.get("prodStack")),
    )


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
    outputs: dict[str, Any],
    endpoints: Endpoints | None,
    reach: Reach,
    problems: list[Problem],
) -> Options:
    """How to probe: resolvers, the mirror, trust, timing, the VPS over SSH."""

    def bad(flag: str, message: str, fix: str) -> None:
        problems.append(Problem(flag, message, fix))

    resolvers = _nameservers("--resolver", args.resolver, "192.0.2.53 (or 127.0.0.1:5353)", problems)
    if not args.resolver:
        resolvers = system_nameservers()
        if not resolvers:
            bad("--resolver", "no DNS server: /etc/resolv.conf names none", "give --resolver IP[:port]")
    mirror = _nameservers("--mirror-nameserver", args.mirror_nameserver, "192.0.2.54", problems)
    if not args.mirror_nameserver and not args.no_mirror and resolvers:
        # The stack's own mirror: its nameservers by name, resolved the ordinary way.
        for name in outputs.get("secondaryDnsNameservers") or []:
            answer = resolve(str(name), resolvers, args.timeout)
            mirror.extend(Nameserver(address) for address in answer.addresses[:1])

    if args.ca_file and not Path(args.ca_file).is_file():
        bad("--ca-file", f"{args.ca_file} is not a file", "give a PEM file of CA certificates")
    if not 0 < args.timeout <= 120:
        bad("--timeout", f"{args.timeout:g} is not in (0, 120] seconds", "e.g. --timeout 3")
    if args.watch is not None and args.watch <= 0:
        bad("--watch", f"{args.watch:g} is not a positive number of seconds", "e.g. --watch 30")
    if args.alert_after < 1:
        bad("--alert-after", f"{args.alert_after} is less than 1", "e.g. --alert-after 3")
    if args.webhook and (urlsplit(args.webhook).scheme not in ("http", "https") or not urlsplit(args.webhook).hostname):
        bad("--webhook", f"{args.webhook!r} is not an http(s) URL", "e.g. --webhook https://hooks.example/alert")
    if args.rounds is not None and args.rounds < 1:
        bad("--rounds", f"{args.rounds} is less than 1", "e.g. --rounds 10")

    macmini_address = args.macmini_address or _text(outputs.get("macminiAddress")) or "10.0.0.2"
    try:
        ipaddress.ip_address(macmini_address)
    except ValueError:
        bad("--macmini-address", f"{macmini_address!r} is not an IP address", "e.g. --macmini-address 10.0.0.2")
    if args.ssh_key and not Path(args.ssh_key).is_file():
        bad("--ssh-key", f"{args.ssh_key} is not a file", "give the private key matching the stack's sshPublicKey")

    runner, runner_note = reach.vps_runner, "the given VPS runner"
    if args.no_ssh:
        runner, runner_note = None, ""
    elif runner is None:
        ssh_host = args.ssh_host
        if not ssh_host and outputs and endpoints:  # the stack's VPS, when the endpoints come from its outputs
            ssh_host = next((ip for ip in endpoints.origin_ips if ":" not in ip), None)
        if ssh_host:
            user = args.ssh_user or _text(outputs.get("sshUser")) or "root"
            argv = ssh_argv(ssh_host, user, args.ssh_key, args.ssh_port, args.timeout, args.ssh_option)
            runner, runner_note = command_runner(argv), f"ssh {user}@{ssh_host}"
        else:
            runner_note = ""
    return Options(
        resolvers=resolvers,
        timeout=args.timeout,
        https_port=reach.https_port,
        ca_file=args.ca_file,
        runner=runner,
        runner_note=runner_note,
        macmini_address=macmini_address,
        wg_interface=args.wg_interface,
        handshake_max_age=args.handshake_max_age,
        cert_warn_days=args.cert_warn_days,
        mirror=tuple(mirror),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "[secret]" else None


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
    hosts = outputs.get("hosts")
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


def cutover_command(stack: str | None) -> str:
    suffix = f" --stack {stack}" if stack else ""
    return f"pulumi config set mode failover{suffix} && pulumi up{suffix}"


# ------------------------------------------------------------------------------------ watch and alert


def post_webhook(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    """POST the JSON; return an error text, or None when it was accepted (2xx)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mana-infra-check"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                return f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def alert_payload(report: dict[str, Any], failures: int) -> dict[str, Any]:
    return {
        "event": "tunnel_path_down",
        "consecutive_failures": failures,
        "command": cutover_command(report["stack"]),
        "standby_ready": report["paths"]["standby"]["state"] in ("up", "unchecked")
        and report["paths"]["vps"]["state"] == "up",
        "mode": report["mode"],
        "stack": report["stack"],
        "checked_at": report["checked_at"],
        "problems": report["problems"],
        "paths": report["paths"],
    }


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
        return EXIT_INPUT
    show_progress = not args.json and sys.stderr.isatty()
    console = console_for()
    failures = 0
    rounds = 0
    code = EXIT_OK
    try:
        while True:
            started = time.monotonic()
            report = check_once(endpoints, options, show_progress=show_progress)
            rounds += 1
            code = int(report["exit_code"])
            if args.json:
                print(
                    json.dumps(report, separators=(",", ":") if args.watch else None, indent=None if args.watch else 2),
                    flush=True,
                )
            else:
                if args.watch:
                    console.rule(f"check {rounds} at {report['checked_at']}", style="dim")
                render(report, console)
            if not args.watch:
                return code
            failures = failures + 1 if report["tunnel_down"] else 0
            if failures == args.alert_after:
                _alert(report, failures, args, options, console)
            if args.rounds is not None and rounds >= args.rounds:
                return code
            sleep(max(0.0, args.watch - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return code if rounds else 130


def _alert(report: dict[str, Any], failures: int, args: argparse.Namespace, options: Options, console: Any) -> None:
    payload = alert_payload(report, failures)
    stream = sys.stderr if args.json else None
    lines = [
        f"ALERT: the tunnel path failed {failures} checks in a row. Cut over to the standby VPS:",
        f"    {payload['command']}",
    ]
    if not payload["standby_ready"]:
        lines.append("    warning: the standby path is not healthy either; see the problems above")
    if stream is not None:
        print("\n".join(lines), file=stream, flush=True)
    else:
        from rich.markup import escape

        console.print("[bold red]" + escape(lines[0]) + "[/]\n" + "\n".join(escape(line) for line in lines[1:]))
    if args.webhook:
        error = post_webhook(args.webhook, payload, options.timeout)
        if error:
            print(f"mana-infra check: the webhook {args.webhook} failed: {error}", file=sys.stderr, flush=True)


def cli(argv: Sequence[str] | None = None) -> int:
    """`mana-infra check …` (and `python -m mana_infra.check …`)."""
    return main(parse_args(sys.argv[1:] if argv is None else argv))
