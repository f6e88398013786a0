"""`mana-infra check`: the operator's health view of both paths (the tunnel and the standby VPS).

API for cli.py: ``cli(argv) -> int`` parses the arguments after ``check`` and runs it.
Everything else: ``run_check(endpoints, options)`` in .core, the probes in .probes.
"""

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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, Problem
from ..inventory import load_inventory
from ..model import MODES, Service, hostname_problem
from .core import CLOUDFLARE_EDGE, JSON_SCHEMA, Endpoints, Options, run_check
from .probes import (
    Nameserver,
    RunResult,
    VpsRunner,
    command_runner,
    parse_resolver,
    resolve,
    ssh_argv,
    system_nameservers,
)

__all__ = [
    "JSON_SCHEMA",
    "Endpoints",
    "Options",
    "RunResult",
    "VpsRunner",
    "build",
    "cli",
    "command_runner",
    "cutover_command",
    "main",
    "run_check",
]

EXIT_OK, EXIT_DEGRADED, EXIT_INPUT = 0, 1, 2

StackOutputsReader = Callable[[str | None], dict[str, Any]]


# ------------------------------------------------------------------------------------------ argparse


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
        "--https-port", type=int, default=443, help="HTTPS port of every path (default 443; the lab's may differ)"
    )
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
    vps.add_argument(
        "--vps-shell",
        metavar="CMD",
        help="run the VPS script with this command instead of ssh (it gets the script on stdin), "
        "e.g. 'ip netns exec mlab-vps bash'",
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


# ------------------------------------------------------------------------------------------ building


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
    args: argparse.Namespace, outputs_reader: StackOutputsReader = read_stack_outputs
) -> tuple[Endpoints, Options]:
    """Endpoints and options from the outputs and flags; InputError names every problem."""
    problems: list[Problem] = []

    def bad(flag: str, message: str, fix: str) -> None:
        problems.append(Problem(flag, message, fix))

    outputs: dict[str, Any] = {}
    source = "flags"
    if args.outputs:
        try:
            outputs = _outputs_json(Path(args.outputs).read_text(encoding="utf-8"), args.outputs)
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
        source = args.outputs
    elif not args.no_pulumi and (
        args.stack or not (args.mode and args.origin_name and args.tunnel_target and args.services)
    ):
        if shutil.which("pulumi"):
            outputs = outputs_reader(args.stack)
            source = f"pulumi stack output{' --stack ' + args.stack if args.stack else ''}"
        elif args.stack:
            bad(
                "--stack",
                "the Pulumi CLI is not installed, so the stack's outputs cannot be read",
                "install Pulumi, or give --mode, --origin-name, --tunnel-target and --services",
            )
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

    zone = (
        (args.zone or _text(outputs.get("zone")) or (origin_name.split(".", 1)[1] if "." in origin_name else ""))
        .lower()
        .rstrip(".")
    )
    services, proxied = _services(args, outputs, zone, source, problems)

    resolvers: list[Nameserver] = []
    for text in args.resolver:
        try:
            resolvers.append(parse_resolver(text))
        except ValueError as exc:
            bad("--resolver", str(exc), "e.g. --resolver 192.0.2.53 or --resolver 127.0.0.1:5353")
    if not args.resolver:
        resolvers = system_nameservers()
        if not resolvers:
            bad("--resolver", "no DNS server: /etc/resolv.conf names none", "give --resolver IP[:port]")

    mirror: list[Nameserver] = []
    for text in args.mirror_nameserver:
        try:
            mirror.append(parse_resolver(text))
        except ValueError as exc:
            bad("--mirror-nameserver", str(exc), "e.g. --mirror-nameserver 192.0.2.54")
    if not args.mirror_nameserver and not args.no_mirror and resolvers:
        # The stack's own mirror: its nameservers by name, resolved the ordinary way.
        for name in outputs.get("secondaryDnsNameservers") or []:
            answer = resolve(str(name), resolvers, args.timeout)
            mirror.extend(Nameserver(address) for address in answer.addresses[:1])

    if args.ca_file and not Path(args.ca_file).is_file():
        bad("--ca-file", f"{args.ca_file} is not a file", "give a PEM file of CA certificates")
    if not 0 < args.timeout <= 120:
        bad("--timeout", f"{args.timeout:g} is not in (0, 120] seconds", "e.g. --timeout 3")
    if not 1 <= args.https_port <= 65535:
        bad("--https-port", f"{args.https_port} is not a port", "e.g. --https-port 443")
    if args.watch is not None and args.watch <= 0:
        bad("--watch", f"{args.watch:g} is not a positive number of seconds", "e.g. --watch 30")
    if args.alert_after < 1:
        bad("--alert-after", f"{args.alert_after} is less than 1", "e.g. --alert-after 3")
    if args.webhook and (urlsplit(args.webhook).scheme not in ("http", "https") or not urlsplit(args.webhook).hostname):
        bad("--webhook", f"{args.webhook!r} is not an http(s) URL", "e.g. --webhook https://hooks.example/alert")
    if args.rounds is not None and args.rounds < 1:
        bad("--rounds", f"{args.rounds} is less than 1", "e.g. --rounds 10")
    edge_networks: list[Any] = [ipaddress.ip_network(cidr) for cidr in CLOUDFLARE_EDGE]
    for cidr in args.edge_cidr:
        try:
            edge_networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            bad("--edge-cidr", f"{cidr!r} is not a network", "e.g. --edge-cidr 198.51.100.0/24")

    macmini_address = args.macmini_address or _text(outputs.get("macminiAddress")) or "10.0.0.2"
    try:
        ipaddress.ip_address(macmini_address)
    except ValueError:
        bad("--macmini-address", f"{macmini_address!r} is not an IP address", "e.g. --macmini-address 10.0.0.2")
    if args.ssh_key and not Path(args.ssh_key).is_file():
        bad("--ssh-key", f"{args.ssh_key} is not a file", "give the private key matching the stack's sshPublicKey")

    runner, runner_note = None, ""
    if not args.no_ssh:
        if args.vps_shell:
            try:
                argv = shlex.split(args.vps_shell)
            except ValueError as exc:
                argv = []
                bad("--vps-shell", str(exc), "quote the command like a shell would")
            if argv:
                runner, runner_note = command_runner(argv), args.vps_shell
            elif not problems or problems[-1].where != "--vps-shell":
                bad("--vps-shell", "is empty", "e.g. --vps-shell 'ip netns exec mlab-vps bash'")
        else:
            ssh_host = args.ssh_host
            if not ssh_host and outputs:  # the stack's VPS, when the endpoints come from its outputs
                ssh_host = next((ip for ip in origin_ips if ":" not in ip), None)
            if ssh_host:
                user = args.ssh_user or _text(outputs.get("sshUser")) or "root"
                argv = ssh_argv(ssh_host, user, args.ssh_key, args.ssh_port, args.timeout, args.ssh_option)
                runner, runner_note = command_runner(argv), f"ssh {user}@{ssh_host}"

    if problems or not mode:
        raise InputError(problems)
    endpoints = Endpoints(
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
    options = Options(
        resolvers=resolvers,
        timeout=args.timeout,
        https_port=args.https_port,
        ca_file=args.ca_file,
        runner=runner,
        runner_note=runner_note,
        macmini_address=macmini_address,
        wg_interface=args.wg_interface,
        handshake_max_age=args.handshake_max_age,
        cert_warn_days=args.cert_warn_days,
        mirror=tuple(mirror),
    )
    return endpoints, options


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


# ------------------------------------------------------------------------------------------- output


def cutover_command(stack: str | None) -> str:
    suffix = f" --stack {stack}" if stack else ""
    return f"pulumi config set mode failover{suffix} && pulumi up{suffix}"


def _status_style(ok: bool | None) -> str:
    return "green" if ok else ("red" if ok is False else "yellow")


def _https_cell(part: dict[str, Any]) -> str:
    from rich.markup import escape

    if part["ok"] or part["status"] is not None:
        bits = [f"{part['status']}", f"{part['latency_ms']:.0f} ms" if part["latency_ms"] is not None else ""]
        if part["cert_days_left"] is not None:
            bits.append(
                f"cert {part['cert_days_left']:.0f} d"
                if part["cert_days_left"] >= 1
                else f"cert {part['cert_days_left'] * 24:.0f} h"
            )
        text = " ".join(b for b in bits if b)
        if part["error"] and part["error"] != f"HTTP {part['status']}":
            text += f" {part['error']}"
    else:
        text = part["error"] or "-"
    return f"[{_status_style(part['ok'])}]{escape(text)}[/]"


def render(report: dict[str, Any], console: Any) -> None:
    """The human view: one row per host, then the VPS, then what is wrong."""
    from rich.markup import escape
    from rich.table import Table

    title = (
        f"mana-infra check - mode {report['mode']}"
        + (f", stack {report['stack']}" if report["stack"] else "")
        + f" - {len(report['hosts'])} hosts in {report['seconds']:.2f} s"
    )
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("host")
    table.add_column("DNS now")
    table.add_column("HTTPS via DNS")
    table.add_column("standby" + (" (via VPS)" if report["mode"] == "failover" else " (VPS->WG->Mac Mini)"))
    for host in report["hosts"]:
        dns = host["dns"]
        dns_ok = dns["path"] == dns["expected"]
        dns_text = dns["path"] + ("" if dns_ok else f": {dns['detail']}")
        standby = host["standby"]
        if standby["kind"] == "https-via-vps":
            standby_text = _https_cell(standby)
        else:
            result = standby["result"]
            text = (
                f"{standby['target']} " + (f"HTTP {result}" if result and result.isdigit() else (result or ""))
                if standby["ok"]
                else (standby["error"] or "-")
            )
            standby_text = f"[{_status_style(standby['ok'])}]{escape(text)}[/]"
        table.add_row(
            escape(host["host"]),
            f"[{_status_style(dns_ok)}]{escape(dns_text)}[/]",
            _https_cell(host["live"]),
            standby_text,
        )
    console.print(table)

    health = report["vps"]["health"]
    console.print(
        f"VPS health {escape(str(health['url']))}: "
        + _https_cell(health)
        + (f" [dim]{escape(health['body'][:40])}[/]" if health["body"] else "")
    )
    wireguard = report["vps"]["wireguard"]
    if not wireguard["checked"]:
        reason = "the SSH session failed" if report["vps"]["ssh"]["checked"] else "no SSH to the VPS"
        console.print(f"WireGuard: [yellow]not checked[/] ({reason})")
    elif wireguard["ok"]:
        console.print(f"WireGuard {wireguard['interface']}: [green]last handshake {wireguard['age_seconds']} s ago[/]")
    else:
        console.print(f"WireGuard {wireguard['interface']}: [red]{escape(wireguard['error'] or 'down')}[/]")
    if "mirror" in report["paths"]:
        mirror = report["paths"]["mirror"]
        style = _status_style(mirror["failed"] == 0)
        console.print(
            f"Hetzner mirror: [{style}]{mirror['total'] - mirror['failed']}/{mirror['total']} hosts in failover form[/]"
        )
    for note in report["notes"]:
        console.print(f"[dim]note: {escape(note)}[/]")
    if report["problems"]:
        console.print(
            f"[bold red]DEGRADED[/] ({len(report['problems'])} problem{'s' * (len(report['problems']) != 1)}):"
        )
        for problem in report["problems"]:
            console.print(f"  [red]-[/] {escape(problem)}")
    else:
        console.print("[bold green]HEALTHY[/]: every path answers")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, highlight=False)


def check_once(endpoints: Endpoints, options: Options, *, show_progress: bool) -> dict[str, Any]:
    if not show_progress:
        return run_check(endpoints, options)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = len(endpoints.services) * (2 if endpoints.mode == "failover" else 1) + 1 + (options.runner is not None)
    with Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total)
        return run_check(endpoints, options, progress=lambda label: progress.update(task, advance=1, description=label))


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


# --------------------------------------------------------------------------------------------- main


def main(
    args: argparse.Namespace,
    outputs_reader: StackOutputsReader = read_stack_outputs,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    try:
        endpoints, options = build(args, outputs_reader)
    except InputError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INPUT
    show_progress = not args.json and sys.stderr.isatty()
    console = _console()
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
