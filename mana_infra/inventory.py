"""The inventory (services.yaml): every public hostname and the Mac Mini port behind it."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, Problem, raise_if_any
from .files import LINE_KEY, load_yaml, read_text
from .model import Service, hostname_problem, in_zone
from .records import rehearsal_host, tunnel_probe_host

ALLOWED_KEYS = ("host", "port", "name", "health")


def load_inventory(path: Path, zone: str) -> tuple[Service, ...]:
    """Read and validate the inventory; raise InputError listing every problem found."""
    fix = "create it, or point `pulumi config set services <file>` at an existing one"
    return parse_inventory(read_text(path, "the inventory", fix), str(path), zone)


def parse_inventory(text: str, source: str, zone: str) -> tuple[Service, ...]:
    document = load_yaml(text, source, lines=True)
    entries = document.get("services") if isinstance(document, dict) else None
    if isinstance(document, list):
        raise InputError(
            [
                Problem(
                    source,
                    "its top level is a list: the entries belong under `services:`",
                    "add a first line `services:` and indent the entries beneath it",
                )
            ]
        )
    if not isinstance(entries, list) or not entries:
        raise InputError(
            [
                Problem(
                    source,
                    "no services: the file needs a non-empty list under `services:`",
                    "add entries like `- host: mana.how` / `  port: 5000` under `services:`",
                )
            ]
        )
    problems: list[Problem] = []
    services: list[Service] = []
    first_line_of_host: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        service = _parse_entry(entry, index, source, zone, problems, first_line_of_host)
        if service is not None:
            services.append(service)
    raise_if_any(problems)
    return tuple(services)


def covered_problem(host: str, zone: str) -> str | None:
    """Why no certificate the standby serves covers ``host``, if none does: both of its certificates
    (and Cloudflare's edge certificate of a proxied zone) are for the zone and *.zone, and a wildcard
    covers one label (RFC 6125 6.4.3)."""
    if host == zone or "." not in host.removesuffix("." + zone):
        return None
    return (
        f"host {host} is two or more levels below {zone}: the standby's certificates (and Cloudflare's "
        f"edge certificate) are for {zone} and *.{zone}, and a wildcard covers one level, so every "
        "visitor would get a TLS error"
    )


def one_level_fix(host: str, zone: str) -> str:
    return f"use a name one level below the zone, e.g. {host.removesuffix('.' + zone).replace('.', '-')}.{zone}"


def _parse_entry(
    entry: object, index: int, source: str, zone: str, problems: list[Problem], first_line_of_host: dict[str, int]
) -> Service | None:
    if not isinstance(entry, dict):
        problems.append(
            Problem(
                f"{source}: entry {index}",
                "is not a mapping",
                "write it as `- host: <name>` with `port: <number>` beneath",
            )
        )
        return None
    line = entry.pop(LINE_KEY, None)
    host = entry.get("host")
    label = f"{source}:{line}: entry {index}" + (f" ({host})" if isinstance(host, str) else "")
    before = len(problems)
    unknown = sorted(str(key) for key in entry if key not in ALLOWED_KEYS)
    if unknown:
        problems.append(
            Problem(
                label,
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                f"use only the allowed keys: {', '.join(ALLOWED_KEYS)}",
            )
        )
    host = _host(entry.get("host"), zone, label, problems)
    if host is not None:
        if host in first_line_of_host:
            problems.append(
                Problem(
                    label,
                    f"duplicate host {host} (first at line {first_line_of_host[host]})",
                    "remove one of the two entries",
                )
            )
        else:
            first_line_of_host[host] = line or 0
    port, name, health = _port(entry.get("port"), label, problems), entry.get("name"), entry.get("health", "/")
    if name is not None and (not isinstance(name, str) or not name):
        problems.append(Problem(label, f"name {name!r} is not text", "write the name as text, or leave it out"))
    if not isinstance(health, str) or not health.startswith("/"):
        problems.append(
            Problem(label, f"health {health!r} is not a path", "write a path starting with /, e.g. /health")
        )
    if len(problems) > before or host is None or port is None or not isinstance(health, str):
        return None
    return Service(host=host, port=port, name=name or host, health=health, line=line or 0)


def _host(host: object, zone: str, label: str, problems: list[Problem]) -> str | None:
    """The entry's host, lower-case without the root's dot; None when missing or not text. A name it may
    not take (outside the zone, uncovered by the certificates, one of the program's own) is said."""
    if host is None:
        problems.append(Problem(label, "has no `host`", "add `host: <name>.<zone>`"))
        return None
    if not isinstance(host, str):
        problems.append(Problem(label, f"host {host!r} is not a hostname", "write the host as text"))
        return None
    host = host.lower().rstrip(".")
    if reason := hostname_problem(host):
        fix = f"write it as {host.encode('idna').decode()}" if not host.isascii() and "xn--" in reason else None
        problems.append(Problem(label, reason, fix or "correct the hostname"))
    elif not in_zone(host, zone):
        problems.append(
            Problem(
                label, f"host {host} is outside the zone {zone}", f"use a name ending in .{zone} (or {zone} itself)"
            )
        )
    elif uncovered := covered_problem(host, zone):
        problems.append(Problem(label, uncovered, one_level_fix(host, zone)))
    elif host == tunnel_probe_host(zone):
        problems.append(
            Problem(
                label,
                f"{host} is the tunnel's probe name: mana-infra keeps it on the tunnel in every mode, so "
                "that check and failback can tell whether the tunnel serves",
                "give the app another name",
            )
        )
    elif host == rehearsal_host(zone):
        problems.append(
            Problem(
                label,
                f"{host} is the rehearsal's test hostname (stack failover, `pulumi up -s failover`): a "
                "rehearsal must never move a production name, so its plan would refuse this one",
                "give the app another name",
            )
        )
    return host


def _port(port: object, label: str, problems: list[Problem]) -> int | None:
    if port is None:
        problems.append(Problem(label, "has no `port`", "add `port: <1-65535>`, the Mac Mini port"))
    elif isinstance(port, bool):
        # YAML reads yes/no/on/off/true as booleans: say what the file says, not Python's True.
        problems.append(Problem(label, "port is a yes/no value, not a port number", "set a port from 1 to 65535"))
    elif not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(Problem(label, f"port {port!r} is not an integer in 1-65535", "set a port from 1 to 65535"))
    else:
        return port
    return None
