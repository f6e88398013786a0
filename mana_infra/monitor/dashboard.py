"""The Grafana dashboard the stack renders (output `watchDashboard`), built with Grafana's own typed
builders (grafana-foundation-sdk) on the metrics the watch exposes — every panel names its metrics
through metrics.M, and a test holds each query's names against what a watch really serves."""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from .names import M

UID = "mana-infra-watch"
SOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# One stack, one watcher (the watch and the watchdog report the same things: shown both, they would count
# twice).
STACK = 'stack="$stack",watcher="$watcher"'


def _n(metric: M, *matchers: str) -> str:
    return f"{metric.value.name}{{{','.join([STACK, *matchers])}}}"


def _query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _stat(title: str, expr: str, unit: str = "none", description: str = "") -> stat.Panel:
    return stat.Panel().title(title).description(description).datasource(SOURCE).with_target(_query(expr)) \
        .unit(unit).height(4).span(4)  # fmt: skip


def _series(title: str, expr: str, legend: str, unit: str = "none") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(SOURCE).with_target(_query(expr, legend))
    return panel.unit(unit).height(8).span(12)


def dashboard_json() -> str:
    """The dashboard as Grafana imports it (Dashboards → New → Import)."""
    last = M.LAST_ROUND.value.name
    stacks = board.QueryVariable("stack").label("stack").datasource(SOURCE).query(f"label_values({last}, stack)")
    watchers = board.QueryVariable("watcher").label("watcher").datasource(SOURCE) \
        .query(f'label_values({last}{{stack="$stack"}}, watcher)')  # fmt: skip
    built = (
        board.Dashboard("Mana: both ways onto the internet")
        .uid(UID)
        .tags(["mana-infra"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(board.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(stacks)
        .with_variable(watchers)
        .with_row(board.Row("Now"))
        .with_panel(_stat("Public path up", _n(M.PUBLIC_UP), description="0: half the hosts or more fail"))
        .with_panel(_stat("Hosts failing", _n(M.PUBLIC_FAILED)))
        .with_panel(_stat("Standby ready", _n(M.STANDBY_READY)))
        .with_panel(_stat("In failover", _n(M.MODE, 'mode="failover"')))
        .with_panel(_stat("Since the last round", f"time() - {_n(M.LAST_ROUND)}", "s"))
        .with_panel(_stat("Watchdog down rounds", _n(M.DOWN_ROUNDS)))
        .with_row(board.Row("Paths"))
        .with_panel(_series("Hosts answering, per path", f"sum by (path) ({_n(M.PROBE_SUCCESS)})", "{{path}}"))
        .with_panel(_series("Probe time, slowest per path", f"max by (path) ({_n(M.PROBE_DURATION)})", "{{path}}", "s"))
        .with_panel(_series("Paths up", _n(M.PATH_UP), "{{path}}"))
        .with_panel(_series("Certificates: time left", f"{_n(M.CERT_EXPIRY)} - time()", "{{certificate}}", "s"))
        .with_row(board.Row("Watchdog and alerts"))
        .with_panel(
            statetimeline.Panel()
            .title("Watchdog situation")
            .datasource(SOURCE)
            .height(6)
            .span(24)
            .with_target(_query(f"{_n(M.SITUATION)} == 1", "{{situation}}"))
        )
        .with_panel(_series("Votes", f"{_n(M.VOTE)} == 1", "{{vantage}}: {{vote}}"))
        .with_panel(_series("Alert deliveries failing", f"increase({_n(M.DELIVERY_FAILURES)}[5m])", "{{destination}}"))
        .build()
    )
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True)
