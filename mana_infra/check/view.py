"""The human view of check's report: one row per host, the VPS, what is wrong; progress while probing."""

from __future__ import annotations

import sys
from typing import Any

from .core import Endpoints, Options, run_check


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


def console_for(stderr: bool = False) -> Any:
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
        console=console_for(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total)
        return run_check(endpoints, options, progress=lambda label: progress.update(task, advance=1, description=label))
