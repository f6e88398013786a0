"""The human view of check's report: one row per host, the VPS, the way that fits, the budget, what
is wrong; progress while probing. The width is the terminal's, or in a pipe COLUMNS (else 100)."""

from __future__ import annotations

from typing import Any

from ..terminal import console_for, count
from .core import Endpoints, Options, run_check
from .decision import kinds_text
from .report import Diagnosis, HttpsCheck, PathName, PathState, Report, TunnelState


def _status_style(ok: bool | None) -> str:
    return "green" if ok else ("red" if ok is False else "yellow")


def _https_cell(part: HttpsCheck) -> str:
    from rich.markup import escape

    if part.ok or part.status is not None:
        bits = [f"{part.status}", f"{part.latency_ms:.0f} ms" if part.latency_ms is not None else ""]
        days = part.cert_days_left
        if days is not None:
            bits.append(f"cert {days:.0f} d" if days >= 1 else f"cert {days * 24:.0f} h")
        if part.cert_pinned:
            bits.append("(the stack's Origin CA cert)")
        text = " ".join(b for b in bits if b)
        error = part.error or ""
        if error.startswith(f"HTTP {part.status}"):  # the status is shown already: only what it means
            error = error[len(f"HTTP {part.status}") :].strip()
        if error:
            text += f" {error}"
    else:
        text = part.error or "-"
    return f"[{_status_style(part.ok)}]{escape(text)}[/]"


def shell_lines(command: str, width: int, indent: int = 4) -> list[str]:
    """``command`` indented, as lines of at most ``width`` where its words allow: one line when it fits,
    else a line per `&&` step, long steps broken between words; never inside quotes, each break a
    backslash-newline, so that pasted into a shell it is still the one command."""
    pad = " " * indent
    if len(pad) + len(command) <= width:
        return [pad + command]
    steps: list[list[str]] = [[]]
    for word in _shell_words(command):
        if word == "&&" and steps[-1]:
            steps.append([])
        steps[-1].append(word)
    lines: list[str] = []
    for step in steps:
        current = ""
        for word in step:
            if not current:
                current = pad + word
            elif len(current) + 1 + len(word) + len(" \\") > width:
                lines.append(current)
                current = pad + word
            else:
                current += " " + word
        lines.append(current)
    return [line + " \\" for line in lines[:-1]] + lines[-1:]


def _shell_words(command: str) -> list[str]:
    """The words of a command as written (quotes kept), split at spaces outside quotes."""
    words, word, quote = [], "", ""
    for char in command:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == " ":
            if word:
                words.append(word)
            word = ""
            continue
        word += char
    return [*words, word] if word else words


def print_command(console: Any, command: str, indent: int = 4) -> None:
    """A command to copy: never wrapped by rich in the middle of a word (see shell_lines)."""
    from rich.markup import escape

    for line in shell_lines(command, console.width, indent):
        console.print(f"[bold]{escape(line)}[/]", no_wrap=True, overflow="ignore", crop=False, soft_wrap=False)


def render(report: Report, console: Any) -> None:
    """The human view: one row per host, then the VPS, the way that fits, the budget, what is wrong."""
    from rich.markup import escape
    from rich.table import Table

    title = (
        f"mana-infra check - mode {report.mode}"
        + (f", stack {report.stack}" if report.stack else "")
        + f" - {count(len(report.hosts), 'host')} in {report.seconds:.2f} s"
    )
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("host")
    table.add_column("DNS now")
    table.add_column("HTTPS via DNS")
    table.add_column("standby (via VPS)")
    direct = bool(report.home)
    if direct:
        table.add_column("direct (home)")
    for host in report.hosts:
        dns = host.dns
        dns_ok = dns.path is dns.expected
        dns_text = dns.path + ("" if dns_ok else f": {dns.detail}")
        cells = [
            escape(host.host),
            f"[{_status_style(dns_ok)}]{escape(dns_text)}[/]",
            _https_cell(host.live),
            _https_cell(host.standby),
        ]
        if direct:
            cells.append(_https_cell(host.direct) if host.direct else "-")
        table.add_row(*cells)
    console.print(table)

    _parts(report, console)
    public = report.public_path
    if public.state is not PathState.UP:
        console.print(
            f"Public path: [red]{public.state}[/] ({public.failed} of {count(public.total, 'host')} fail: "
            f"{escape(kinds_text(public.failures, hosts=True))})"
        )
    _fits(report.diagnosis, console)
    text = report.budget.text
    console.print(escape(f"Budget: edge way {text.edge}; DNS-only {text.dns}; certificates: {text.certificates}"))
    for note in report.notes:
        _hanging(console, "[dim]note:[/]", f"[dim]{escape(note)}[/]")
    if report.problems:
        console.print(f"[bold red]DEGRADED[/] ({count(len(report.problems), 'problem')}):")
        for problem in report.problems:
            _hanging(console, "  [red]-[/]", escape(problem))
    else:
        console.print("[bold green]HEALTHY[/]: every path answers")


def _parts(report: Report, console: Any) -> None:
    """The VPS, WireGuard, the mirror, the tunnel's probe, Cloudflare's API and the dated certificates."""
    from rich.markup import escape

    health = report.vps.health
    body = f" [dim]{escape(health.body[:40])}[/]" if health.body else ""
    console.print(f"VPS health {escape(str(health.url))}: " + _https_cell(health) + body)
    wireguard = report.vps.wireguard
    if wireguard.checked:
        if wireguard.ok:
            console.print(f"WireGuard {wireguard.interface}: [green]last handshake {wireguard.age_seconds} s ago[/]")
        else:
            console.print(f"WireGuard {wireguard.interface}: [red]{escape(wireguard.error or 'down')}[/]")
    elif report.vps.ssh.checked:
        console.print("WireGuard: [yellow]not checked[/] (the SSH session failed)")
    mirror = report.paths.get(PathName.MIRROR)
    if mirror is not None and mirror.total is not None and mirror.failed is not None:
        style = _status_style(mirror.failed == 0)
        console.print(
            f"Hetzner mirror: [{style}]{mirror.total - mirror.failed} of {count(mirror.total, 'host')} "
            "in failover form[/]"
        )
    for reach in report.home:
        text = "answers (the Mac Mini's Caddy)" if reach.ok else str(reach.error)
        console.print(f"Home IPv{reach.family} {escape(str(reach.url))}: [{_status_style(reach.ok)}]{escape(text)}[/]")
    probe = report.tunnel_probe
    if probe.state is not TunnelState.NOT_CHECKED:
        probe_ok = probe.state is TunnelState.UP
        text = f"answers HTTP {probe.status} (cloudflared)" if probe_ok else f"{probe.state}: {probe.error}"
        console.print(f"Tunnel probe {escape(str(probe.host))}: [{_status_style(probe_ok)}]{escape(text)}[/]")
    api = report.cloudflare_api
    if api.checked:
        text = "takes the token" if api.ok else f"{api.state}: {api.error}"
        console.print(f"Cloudflare API: [{_status_style(api.ok)}]{escape(text)}[/]")
    for certificate in report.certificates.values():
        ok = not certificate.expired and not certificate.expiring
        console.print(
            f"{certificate.output}: [{_status_style(ok)}]{certificate.days_left:.0f} days left[/] — "
            f"{escape(certificate.what)}"
        )


def _hanging(console: Any, label: str, text: str) -> None:
    """``label text``, the text's wrapped lines indented under its first."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(label, text)
    console.print(grid)


def _fits(diagnosis: Diagnosis, console: Any) -> None:
    """`Fits: <way> — <why>: <command>`, on one line when it fits; else the command below it."""
    from rich.markup import escape

    if diagnosis.way is None or diagnosis.command is None:
        console.print(escape(f"Fits: no cut-over — {diagnosis.why}"))
        return
    head = f"Fits: {diagnosis.way.words} — {diagnosis.why}:"
    command = diagnosis.command
    if len(head) + 1 + len(command) <= console.width:
        console.print(f"[bold]{escape(head)} {escape(command)}[/]", no_wrap=True, crop=False)
    else:
        console.print(f"[bold]{escape(head)}[/]")
        print_command(console, command)


def check_once(endpoints: Endpoints, options: Options, *, show_progress: bool) -> Report:
    if not show_progress:
        return run_check(endpoints, options)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    home = len(endpoints.services) + len(endpoints.home_ips) if endpoints.home_ips else 0
    total = len(endpoints.services) * 2 + 1 + (options.runner is not None) + (options.cloudflare is not None) + home
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
