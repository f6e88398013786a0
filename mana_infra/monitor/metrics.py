"""What every round of the watch (`check --watch`) and the watchdog (`watch`) saw, as Prometheus metrics.

One prefix (`mana_`), base units, `_total` for counters and `_timestamp_seconds` for points in time
(Prometheus's naming rules, prometheus.io/docs/practices/naming); blackbox_exporter's names where it has
one for the thing (`probe_success`, `probe_duration_seconds`, `probe_http_status_code`,
`probe_ssl_earliest_cert_expiry`). The table of names is names.M: the collector writes only what it
names, and the alert rules and the dashboard name metrics through it.

Two ways out, both of prometheus_client: an HTTP listener (`--metrics-listen ADDR`) and a file for
node_exporter's textfile collector (`--textfile PATH`, written to a temporary file and renamed).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..check import decision
from ..check.report import ApiState, PathState, Report
from ..model import MODES
from ..watchdog.decide import Act, Situation, WatchState
from ..watchdog.votes import Vote, VoteKind
from .names import PREFIX, M

Sample = tuple[M, tuple[str, ...], float]  # the metric, its label values (without stack), the value


def report_samples(report: Report, mode_since: str | None = None) -> list[Sample]:
    """What one check report says, as samples (and since when the stack is in its mode: the outputs'
    modeSince, which the report does not carry)."""
    checked = _timestamp(report.checked_at)
    samples: list[Sample] = []
    for host in report.hosts:
        for path, probe in (("public", host.live), ("standby", host.standby)):
            labels = (host.host, path)
            samples += [(M.PROBE_SUCCESS, labels, float(probe.ok)), (M.PROBE_STATUS, labels, float(probe.status or 0))]
            if probe.latency_ms is not None:
                samples.append((M.PROBE_DURATION, labels, probe.latency_ms / 1000))
            if probe.cert_days_left is not None and checked is not None:
                samples.append((M.PROBE_CERT_EXPIRY, labels, checked + probe.cert_days_left * 86400))
    for kind, certificate in report.certificates.items():
        if (expires := _timestamp(certificate.expires_on)) is not None:
            samples.append((M.CERT_EXPIRY, (kind.value,), expires))
    samples += [
        (M.PATH_UP, (name.value,), float(path.state is PathState.UP))
        for name, path in report.paths.items()
        if path.state not in (PathState.UNUSED, PathState.UNCHECKED)
    ]
    diagnosis = report.diagnosis
    samples += [
        (M.PUBLIC_FAILED, (), float(report.public_path.failed)),
        (M.PUBLIC_HOSTS, (), float(report.public_path.total)),
        (M.PUBLIC_UP, (), float(not decision.public_path_down(report))),
        (M.STANDBY_READY, (), float(not decision.standby_blockers(report))),
        (M.DIAGNOSIS, (diagnosis.case or "", diagnosis.way.value if diagnosis.way else "", diagnosis.command or ""), 1),
        (M.CLOUDFLARE_API_UP, (), float(report.cloudflare_api.state is ApiState.OK)),
        *((M.MODE, (mode,), float(report.mode == mode)) for mode in MODES),
    ]
    since = _timestamp(mode_since or "")
    return samples + ([(M.MODE_SINCE, (), since)] if since is not None else [])


def watchdog_samples(state: WatchState, votes: Iterable[Vote], situation: Situation, paused: bool) -> list[Sample]:
    """What the watchdog adds: the votes, its counters, pause and latch, the situation, what it did."""
    samples: list[Sample] = [(M.VOTE, (vote.vantage, kind.value), float(vote.kind is kind)) for vote in votes
                             for kind in VoteKind]  # fmt: skip
    samples += [(M.SITUATION, (each.value,), float(each is situation)) for each in Situation]
    samples += [
        (M.DOWN_ROUNDS, (), float(state.down_rounds)),
        (M.PAUSED, (), float(paused)),
        (M.LATCHED, (), float(state.latched is not None)),
    ]
    samples += [(M.ACTIONS, (what.value,), float(sum(a.what is what for a in state.actions))) for what in Act
                if what is not Act.NOTHING]  # fmt: skip
    if state.actions:
        samples.append((M.LAST_ACTION, (), max(action.at for action in state.actions)))
    return samples


def _timestamp(text: str) -> float | None:
    from ..check.cli import parse_timestamp  # here: check's watch loop imports this module

    stamp = parse_timestamp(text)
    return stamp.timestamp() if stamp else None


@dataclass(eq=False)  # the registry keys its collectors by identity
class WatchMetrics(Collector):
    """The registry the listener and the textfile read: the last round's samples (swapped whole, so a
    scrape never sees half a round) and the counters that grow across rounds."""

    stack: str
    watcher: str  # "check" (the watch) or "watchdog": a label on every metric
    interval: float
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=False))
    _samples: list[Sample] = field(default_factory=list)
    _counts: dict[tuple[M, tuple[str, ...]], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    textfile: Path | None = None

    def __post_init__(self) -> None:
        self.registry.register(self)
        self.count(M.ROUNDS, by=0)  # from zero: the first error shows in increase()
        self.count(M.ROUND_ERRORS, by=0)
        # Silent since its start until a round reaches a verdict: one that never does is alertable too.
        self._samples = [(M.LAST_ROUND, (), time.time()), (M.INTERVAL, (), self.interval)]

    def round_done(self, samples: Iterable[Sample], ended: float, seconds: float) -> None:
        """A round's samples replace the last round's; then the textfile, if any, is written."""
        timing = [(M.LAST_ROUND, (), ended), (M.ROUND_DURATION, (), seconds), (M.INTERVAL, (), self.interval)]
        with self._lock:
            self._samples = [*samples, *timing]
        self.count(M.ROUNDS)
        self.write()

    def round_failed(self) -> None:
        """A round that ended in an error: counted, and nothing else moves — the last round's time stays,
        so a watch that fails every round falls silent for the rules, however busy it is."""
        self.count(M.ROUNDS)
        self.count(M.ROUND_ERRORS)
        self.write()

    def count(self, metric: M, labels: tuple[str, ...] = (), by: float = 1.0) -> None:
        with self._lock:
            self._counts[(metric, labels)] = self._counts.get((metric, labels), 0.0) + by

    def serve(self, address: str) -> None:
        """The HTTP listener (`host:port`, `[v6]:port` or `:port` for every address) in a daemon thread."""
        host, port = split_address(address)
        start_http_server(port, addr=host, registry=self.registry)

    def write(self) -> None:
        if self.textfile is None:
            return
        try:
            write_to_textfile(str(self.textfile), self.registry)  # a temporary file, then a rename
        except OSError as exc:  # said, never the loop's end: the next round tries again
            print(f"mana-infra: cannot write the metrics to {self.textfile}: {exc.strerror}", file=sys.stderr)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples, counts = list(self._samples), dict(self._counts)
        families: dict[M, GaugeMetricFamily | CounterMetricFamily] = {}
        for metric, labels, value in [*samples, *((m, lv, v) for (m, lv), v in counts.items())]:
            family = families.get(metric) or families.setdefault(metric, _family(metric))
            family.add_metric([self.stack, self.watcher, *labels], value)
        yield from families.values()


def _family(metric: M) -> GaugeMetricFamily | CounterMetricFamily:
    spec = metric.value
    labels = ["stack", "watcher", *spec.labels]
    if spec.kind == "counter":
        return CounterMetricFamily(PREFIX + spec.suffix, spec.help, labels=labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=labels)


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every address) → (host, port); ValueError names the form."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:9817, [::1]:9817 or :9817)")
    return host.strip("[]") or "0.0.0.0", int(port)
