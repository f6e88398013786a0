"""The monitoring flags both loops share (`check --watch` and `watch`), read once into a Monitor: the
metrics it exposes and the destinations it alerts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..check.cli import WEBHOOK_VARIABLE
from ..errors import InputError, Problem
from .alerts import ALERTS_VARIABLE, Alert, Destination, Notifier, destinations_from
from .metrics import WatchMetrics, split_address


def add_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--alert",
        action="append",
        default=[],
        metavar="KIND=URL",
        help="alert here too (repeatable): alertmanager=http://host:9093, ntfy=https://ntfy.sh/TOPIC, "
        f"slack=https://hooks.slack.com/… (Discord's …/slack, Mattermost), webhook=URL; ${ALERTS_VARIABLE} "
        "takes the same, space-separated, and keeps tokens out of `ps`",
    )
    group.add_argument(
        "--metrics-listen", metavar="ADDR", help="serve Prometheus metrics at http://ADDR/metrics (e.g. :9817)"
    )
    group.add_argument(
        "--textfile", metavar="PATH", type=Path, help="write the metrics to PATH each round (node_exporter's textfile)"
    )


@dataclass
class Monitor:
    metrics: WatchMetrics
    notifier: Notifier
    listen: str | None = None

    def start(self) -> None:
        if self.listen is not None:
            self.metrics.serve(self.listen)

    def alert(self, alert: Alert, quietly: bool = False) -> None:
        self.notifier.update(alert, quietly)

    def close(self) -> None:
        """Before the process ends: what is still on its way gets a few seconds; what is left is said."""
        if not self.notifier.flush(5.0):
            left = ", ".join(f"{count} to {name}" for name, count in self.notifier.left().items())
            print(f"mana-infra: stopping with alerts undelivered: {left}", file=sys.stderr, flush=True)


def problems_of(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[list[Destination], list[Problem]]:
    """The destinations from the flags and the environment, and every problem with them or with the
    metrics' flags."""
    problems: list[Problem] = []
    flagged, bad = destinations_from(args.alert)
    problems += [Problem("--alert", text, "e.g. --alert ntfy=https://ntfy.sh/mana-alerts-x7k2") for text in bad]
    from_env, bad = destinations_from(environ.get(ALERTS_VARIABLE, "").split())
    problems += [Problem(f"${ALERTS_VARIABLE}", text, "KIND=URL entries separated by spaces") for text in bad]
    webhook = getattr(args, "webhook", None) or environ.get(WEBHOOK_VARIABLE) or None
    plain, bad = destinations_from([f"webhook={webhook}"] if webhook else [])
    problems += [Problem("--webhook", text, "e.g. --webhook https://hooks.example/alert") for text in bad]
    if args.metrics_listen is not None:
        try:
            split_address(args.metrics_listen)
        except ValueError as exc:
            problems.append(Problem("--metrics-listen", str(exc), "give a port, with an address to bind if you like"))
    if args.textfile is not None and not args.textfile.parent.is_dir():
        where = args.textfile.parent
        problems.append(Problem("--textfile", f"its folder {where} does not exist", f"create it (mkdir -p {where})"))
    return [*flagged, *from_env, *plain], problems


def monitor_for(
    args: argparse.Namespace, stack: str, watcher: str, interval: float, environ: Mapping[str, str] | None = None
) -> Monitor:
    """The Monitor the flags ask for (`watcher`: "check" or "watchdog", a label on every metric, so two
    on one box or one Prometheus never collide); InputError names every problem before anything starts."""
    destinations, problems = problems_of(args, os.environ if environ is None else environ)
    if problems:
        raise InputError(problems)
    metrics = WatchMetrics(stack, watcher, interval, textfile=args.textfile)
    notifier = Notifier(destinations, metrics, log=_say, interval=interval)
    return Monitor(metrics, notifier, args.metrics_listen)


@contextmanager
def sigterm_ends_the_loop() -> Iterator[None]:
    """Within: SIGTERM (systemd's stop) ends the loop as Ctrl-C would, through its `finally`, so the
    alerts still on their way get their moment and what is left undelivered is said."""
    before = signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(0))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
