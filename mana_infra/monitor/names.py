"""Every metric the watch exposes, once: its name, kind, help and labels. The collector (metrics.py),
the alert rules and the dashboard all name metrics through this table; it imports nothing heavy, so the
Pulumi program renders the rules and the dashboard without loading check or prometheus_client."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

PREFIX = "mana_"


@dataclass(frozen=True)
class Family:
    suffix: str
    kind: str  # "gauge" or "counter" (a counter's exposed name gains `_total`)
    help: str
    labels: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name as PromQL sees it."""
        return PREFIX + self.suffix + ("_total" if self.kind == "counter" else "")


class M(Enum):
    """Every metric the watch exposes. Each carries the labels `stack` and `watcher` (check or watchdog)
    besides its own."""

    PROBE_SUCCESS = Family("probe_success", "gauge", "1 if the host answered right on the path", ("host", "path"))
    PROBE_DURATION = Family("probe_duration_seconds", "gauge", "how long the probe took", ("host", "path"))
    PROBE_STATUS = Family("probe_http_status_code", "gauge", "the HTTP status (0: no answer)", ("host", "path"))
    PROBE_CERT_EXPIRY = Family(
        "probe_ssl_earliest_cert_expiry", "gauge", "when the served certificate expires (Unix time)", ("host", "path")
    )
    CERT_EXPIRY = Family(
        "certificate_expiry_timestamp_seconds", "gauge", "when the stack's certificate expires", ("certificate",)
    )
    PATH_UP = Family("path_up", "gauge", "1 if every host answers on the path (unused paths are left out)", ("path",))
    PUBLIC_FAILED = Family("public_path_failed_hosts", "gauge", "hosts that fail for visitors")
    PUBLIC_HOSTS = Family("public_path_hosts", "gauge", "hosts in the inventory")
    PUBLIC_UP = Family("public_path_up", "gauge", "0 when the public path is down (half the hosts or more fail)")
    STANDBY_READY = Family("standby_ready", "gauge", "1 if the standby is ready to take over")
    DIAGNOSIS = Family("diagnosis_info", "gauge", "the verdict: its case, the way that fits, its command",
                       ("case", "way", "command"))  # fmt: skip
    CLOUDFLARE_API_UP = Family("cloudflare_api_up", "gauge", "1 if Cloudflare's API takes the token")
    MODE = Family("mode", "gauge", "1 for the mode the stack is in (tunnel or failover)", ("mode",))
    MODE_SINCE = Family("mode_since_timestamp_seconds", "gauge", "since when the stack is in its mode")
    LAST_ROUND = Family("watch_last_round_timestamp_seconds", "gauge", "when the last round reached a verdict")
    ROUND_DURATION = Family("watch_round_duration_seconds", "gauge", "how long the last round took")
    INTERVAL = Family("watch_interval_seconds", "gauge", "the time between rounds")
    ROUNDS = Family("watch_rounds", "counter", "rounds since start")
    ROUND_ERRORS = Family("watch_round_errors", "counter", "rounds that failed before a verdict")
    VOTE = Family("watchdog_vote", "gauge", "1 for each vantage point's vote", ("vantage", "vote"))
    DOWN_ROUNDS = Family("watchdog_down_rounds", "gauge", "rounds in a row every voter saw the path down")
    PAUSED = Family("watchdog_paused", "gauge", "1 while a person has paused it")
    LATCHED = Family("watchdog_latched", "gauge", "1 while latched (acts no more until resumed)")
    SITUATION = Family("watchdog_situation", "gauge", "1 for the situation it pages about", ("situation",))
    LAST_ACTION = Family("watchdog_last_action_timestamp_seconds", "gauge", "when it last cut over or failed back")
    ACTIONS = Family("watchdog_actions", "counter", "automatic cut-overs and fail-backs on record", ("what",))
    DELIVERIES = Family("alert_deliveries", "counter", "alerts delivered", ("destination",))
    DELIVERY_FAILURES = Family("alert_delivery_failures", "counter", "alert deliveries that failed (retried)",
                               ("destination",))  # fmt: skip
