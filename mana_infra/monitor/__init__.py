"""The watch in the operator's monitoring stack: Prometheus metrics of every round (metrics.py), alerts
to Alertmanager, ntfy, Slack-compatible hooks and plain webhooks (alerts.py), and the alert rules and
Grafana dashboard the stack renders for them (rules.py, dashboard.py)."""
