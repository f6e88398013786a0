"""The alert rules the stack renders for the operator's Prometheus (output `watchAlertRules`), on the
metrics the watch exposes (metrics.py names them). A pure function; `promtool check rules` and
`promtool test rules` hold it in the tests, each rule made to fire and not to fire.

The rules fire in Prometheus, so they reach the home's Alertmanager — which is down with the home in
the outage that matters: the watch's own alerts (alerts.py, to a phone) are the ones that arrive then.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .names import M

GROUP = "mana-infra"


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    duration: str  # `for:` in Prometheus's own duration words
    severity: str
    summary: str
    description: str


def _n(metric: M) -> str:
    return metric.value.name


# The verdict of the same watcher, read when the alert is written: in the annotations, not the labels, so
# that a verdict changing mid-outage changes the words and not the alert (a new label set would be a new
# alert, its `for` started again).
VERDICT = (
    '{{ with printf "mana_diagnosis_info{stack=%q,watcher=%q}" $labels.stack $labels.watcher | query }}'
    "{{ with . | first }}{{ if .Labels.way }}The way that fits: {{ .Labels.way }}, run: {{ .Labels.command }}"
    "{{ else }}No cut-over fits (mana-infra check says why){{ end }}{{ end }}{{ end }}"
)


def rules(
    certificate_days: int = 14, failover_hours: int = 24, scrape_slack: int = 60, job: str = "mana-watch"
) -> list[Rule]:
    """The watch's alerts. `scrape_slack`: seconds a scrape may lag behind the last round before the
    watch counts as silent (three of its intervals, plus this); `job`: the scrape job of the watch's
    listener (README: `mana-watch`), whose failing scrape is the silence too."""
    last_round, interval = _n(M.LAST_ROUND), _n(M.INTERVAL)
    # A textfile keeps its last sample; a listener that stopped answering leaves none — max_over_time
    # still sees its last hour, `up` says the rest.
    silent = (
        f"time() - max_over_time({last_round}[1h]) > 3 * max_over_time({interval}[1h]) + {scrape_slack}"
        f' or up{{job="{job}"}} == 0'
    )
    failover = f'{_n(M.MODE)}{{mode="failover"}} == 1'
    return [
        Rule(
            "ManaPublicPathDown",
            f"{_n(M.PUBLIC_UP)} == 0",
            "1m",
            "critical",
            "The public path of {{ $labels.stack }} is down",
            f"Half the hosts or more fail for visitors. {VERDICT}",
        ),
        Rule(
            "ManaStandbyNotReady",
            f"{_n(M.STANDBY_READY)} == 0",
            "10m",
            "warning",
            "The standby of {{ $labels.stack }} is not ready to take over",
            "A cut-over would not be green now: run mana-infra check for what the standby lacks.",
        ),
        Rule(
            "ManaCertificateDue",
            f"{_n(M.CERT_EXPIRY)} - time() < {certificate_days} * 86400",
            "1h",
            "warning",
            "The {{ $labels.certificate }} certificate of {{ $labels.stack }} expires in "
            "{{ $value | humanizeDuration }}",
            f"Less than {certificate_days} days left: renewal is overdue; `pulumi up` renews it.",
        ),
        Rule(
            "ManaWatchSilent",
            silent,
            "2m",
            "critical",
            "The {{ or $labels.watcher $labels.job }} of {{ or $labels.stack $labels.instance }} has fallen silent",
            "No round with a verdict for three of its intervals, or its metrics do not answer: it is down or"
            " fails every round, and nothing watches.",
        ),
        Rule(
            "ManaFailoverLong",
            f"({failover}) and on(stack) (time() - {_n(M.MODE_SINCE)} > {failover_hours} * 3600)"
            f" or (({failover}) unless on(stack) {_n(M.MODE_SINCE)})"
            f' and on(stack) (min_over_time({_n(M.MODE)}{{mode="failover"}}[{failover_hours}h]) == 1)',
            "0m",
            "warning",
            "{{ $labels.stack }} has run in failover for more than a day",
            "The VPS serves everything: when the tunnel answers again, `mana-infra failback`.",
        ),
    ]


def alert_rules_yaml(rule_list: list[Rule] | None = None) -> str:
    """The rule file, as Prometheus loads it (`rule_files:` in prometheus.yml)."""
    group = {
        "name": GROUP,
        "rules": [
            {
                "alert": rule.alert,
                "expr": rule.expr,
                "for": rule.duration,
                "labels": {"severity": rule.severity},
                "annotations": {"summary": rule.summary, "description": rule.description},
            }
            for rule in (rules() if rule_list is None else rule_list)
        ],
    }
    return yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1000)
