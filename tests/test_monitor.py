"""The watch in the operator's monitoring stack: metrics as Prometheus reads them, alert rules as
promtool evaluates them, the dashboard on names the watch really serves, and alerts as a real
Alertmanager, ntfy and Slack-compatible hooks take them."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mana_infra.check.cli import main, parse_args
from mana_infra.check.report import CertificateDate, CertificateKind
from mana_infra.monitor.alerts import Alert, Destination, Kind, Notifier, Request, parse_destination, send
from mana_infra.monitor.dashboard import dashboard_json
from mana_infra.monitor.metrics import M, WatchMetrics, report_samples, watchdog_samples
from mana_infra.monitor.rules import alert_rules_yaml
from mana_infra.watchdog.decide import Act, Action, Situation, WatchState
from mana_infra.watchdog.votes import Vote, VoteKind

from .support import check_report, require_tools

HOSTS = [f"h{i}.mana.how" for i in range(3)]


def served(metrics: WatchMetrics) -> dict[str, list[Any]]:
    """The exposition as Prometheus parses it: sample name -> samples."""
    from prometheus_client import generate_latest

    names: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            names.setdefault(sample.name, []).append(sample)
    return names


def a_watchdogs_round() -> WatchMetrics:
    """Every metric a watchdog serves after a round that cut over, and one failed alert delivery."""
    report = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS})
    report.hosts[0].live.latency_ms, report.hosts[0].live.cert_days_left = 12.5, 30.0
    report.certificates = {
        CertificateKind.PUBLIC: CertificateDate(
            "publicCertificateExpiresOn", "", "2027-02-01T00:00:00+00:00", 56, False, False
        )
    }
    state = WatchState(round=3, down_rounds=3, actions=[Action(100.0, Act.CUT_OVER, None, True, "green")])
    votes = [Vote("watch", VoteKind.DOWN, True, None, ""), Vote("vps", VoteKind.DOWN, True, None, "")]
    metrics = WatchMetrics("prod", "watchdog", 10.0)
    metrics.round_done(
        report_samples(report, "2026-12-07T03:00:00Z") + watchdog_samples(state, votes, Situation.GREEN, False),
        1.0,
        0.5,
    )
    metrics.count(M.DELIVERY_FAILURES, ("ntfy:ntfy.example",))
    metrics.count(M.DELIVERIES, ("ntfy:ntfy.example",))
    return metrics


def test_a_round_is_served_with_prometheus_names_and_blackbox_meanings() -> None:
    names = served(a_watchdogs_round())
    [down] = names["mana_public_path_up"]
    assert down.value == 0 and down.labels == {"stack": "prod", "watcher": "watchdog"}
    success = {(s.labels["host"], s.labels["path"]): s.value for s in names["mana_probe_success"]}
    assert success == {**{(h, "public"): 0.0 for h in HOSTS}, **{(h, "standby"): 1.0 for h in HOSTS}}
    assert {s.labels["vote"]: s.value for s in names["mana_watchdog_vote"] if s.labels["vantage"] == "vps"} == {
        "down": 1.0, "up": 0.0, "abstain": 0.0}  # fmt: skip
    situation = {s.labels["situation"]: s.value for s in names["mana_watchdog_situation"]}
    assert situation["acted-green"] == 1 and sum(situation.values()) == 1
    assert [s.value for s in names["mana_watchdog_actions_total"] if s.labels["what"] == "cut-over"] == [1.0]
    assert names["mana_mode_since_timestamp_seconds"][0].value == 1796612400.0  # 2026-12-07T03:00:00Z
    assert names["mana_watch_rounds_total"][0].value == 1 and names["mana_watch_interval_seconds"][0].value == 10
    assert names["mana_alert_delivery_failures_total"][0].labels == {
        "stack": "prod",
        "watcher": "watchdog",
        "destination": "ntfy:ntfy.example",
    }
    # Every name carries the one prefix; counters end in _total, points in time in _timestamp_seconds.
    assert all(name.startswith("mana_") for name in names)
    assert [(s.labels["host"], s.value) for s in names["mana_probe_duration_seconds"]] == [("h0.mana.how", 0.0125)]
    [expiry] = names["mana_certificate_expiry_timestamp_seconds"]
    assert expiry.labels["certificate"] == "public" and expiry.value == 1801440000.0  # 2027-02-01
    assert {m.value.name for m in M} <= set(names)  # counters from zero: the first error shows in increase()
    assert names["mana_watch_round_errors_total"][0].value == 0


def test_a_watch_whose_rounds_all_fail_falls_silent_for_the_rules() -> None:
    """Failed rounds are counted and move nothing else: the last round with a verdict stays where it was
    (at the start, when none ever reached one), so ManaWatchSilent sees a busy but blind watch."""
    before = time.time()
    metrics = WatchMetrics("prod", "check", 60.0)
    metrics.round_failed()
    metrics.round_failed()
    names = served(metrics)
    [last] = names["mana_watch_last_round_timestamp_seconds"]
    assert before <= last.value <= time.time() and names["mana_watch_interval_seconds"][0].value == 60
    assert names["mana_watch_rounds_total"][0].value == 2 and names["mana_watch_round_errors_total"][0].value == 2
    assert "mana_public_path_up" not in names  # no verdict, none shown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_listener_and_the_textfile_serve_the_same_round(tmp_path: Path) -> None:
    metrics = a_watchdogs_round()
    metrics.textfile = tmp_path / "mana-watch.prom"
    metrics.write()
    port = free_port()
    metrics.serve(f"127.0.0.1:{port}")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    written = metrics.textfile.read_text()
    assert 'mana_public_path_up{stack="prod",watcher="watchdog"} 0.0' in scraped and scraped == written
    assert not list(tmp_path.glob("*.tmp*"))  # written aside, then renamed
    require_tools("promtool")  # Prometheus's own linter of names, units, help and types: nothing to say
    linted = subprocess.run(["promtool", "check", "metrics"], input=written, capture_output=True, text=True)
    assert linted.returncode == 0 and not linted.stdout.strip() and not linted.stderr.strip(), linted


def promql_names(text: str) -> set[str]:
    return set(re.findall(r"\bmana_[a-z_]+", text))


def test_the_dashboard_and_the_rules_name_only_what_a_watch_serves() -> None:
    names = set(served(a_watchdogs_round())) | {m.value.name for m in M}
    board = json.loads(dashboard_json())
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 12 and all(promql_names(expr) for expr in exprs)
    assert set().union(*map(promql_names, exprs)) <= names
    assert promql_names(alert_rules_yaml()) <= names
    templating = {v["name"]: v for v in board["templating"]["list"]}
    assert templating["stack"]["query"] == "label_values(mana_watch_last_round_timestamp_seconds, stack)"


def test_promtool_checks_the_rules_and_makes_each_fire_and_stay_quiet(tmp_path: Path) -> None:
    """Each rule fires on the series that mean it and not before: the public path down for a minute (the
    way that fits in its labels), the standby not ready for ten, a certificate inside 14 days (the public
    one 14 days and 2 h ahead: inside at 3 h, fired an hour later), the watch silent past three
    intervals and a scrape's slack (its last round at 2 min, then nothing: the listener gone), failover
    for more than a day (by its modeSince, and without one by a day of failover in the series)."""
    require_tools("promtool")
    (tmp_path / "rules.yml").write_text(alert_rules_yaml())
    (tmp_path / "tests.yml").write_text((Path(__file__).parent / "fixtures" / "promtool-tests.yml").read_text())
    checked = subprocess.run(["promtool", "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load(alert_rules_yaml())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["ManaPublicPathDown", "ManaStandbyNotReady", "ManaCertificateDue",
                                           "ManaWatchSilent", "ManaFailoverLong"]  # fmt: skip


# ------------------------------------------------------------------------------------------ alerts


class Receiver(BaseHTTPRequestHandler):
    """Takes any POST: what arrived, in order (path, headers, JSON body)."""

    got: list[tuple[str, dict[str, str], Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.got.append((self.path, dict(self.headers), json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.got = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def outage(firing: bool = True) -> Alert:
    return Alert("ManaPublicPathDown", "prod", "check", firing, 1_796_612_400.0,
                 "the public path failed 3 checks in a row (3 of 3 hosts fail)", ("tunnel error: 3 hosts",),
                 "mana-infra cutover --via edge", {"event": "public_path_down"})  # fmt: skip


def test_ntfy_and_slack_compatible_hooks_get_their_published_formats(receiver: ThreadingHTTPServer) -> None:
    """ntfy: JSON to the server's root, the topic inside, priority 1..5, tags a list (docs.ntfy.sh/publish,
    "Publish as JSON"); credentials in the URL become a header. Slack (and Discord's /slack, Mattermost):
    `{"text": ...}`. The log names the destination by kind and host only."""
    base = f"127.0.0.1:{receiver.server_address[1]}"
    logged: list[str] = []
    ntfy = parse_destination(f"ntfy=http://phone:s3cret@{base}/mana-alerts-x7k2")
    slack = parse_destination(f"slack=http://{base}/services/T000/B000/XXXXSECRET")
    notifier = Notifier([ntfy, slack], log=logged.append)
    notifier.update(outage())
    notifier.update(outage(firing=False))
    assert notifier.flush(10)
    got: list[tuple[str, dict[str, str], Any]] = receiver.got  # type: ignore[attr-defined]
    to_ntfy = [body for path, _, body in got if path == "/"]
    assert [(b["topic"], b["priority"], b["tags"]) for b in to_ntfy] == [
        ("mana-alerts-x7k2", 5, ["rotating_light"]), ("mana-alerts-x7k2", 3, ["white_check_mark"])]  # fmt: skip
    assert set(to_ntfy[0]) == {"topic", "title", "message", "priority", "tags"}
    assert to_ntfy[0]["message"].endswith("run: mana-infra cutover --via edge")
    assert to_ntfy[1]["message"].startswith("RESOLVED: ")
    assert {h["Authorization"] for path, h, _ in got if path == "/"} == {"Basic cGhvbmU6czNjcmV0"}  # phone:s3cret
    to_slack = [body for path, _, body in got if path == "/services/T000/B000/XXXXSECRET"]
    assert [set(b) for b in to_slack] == [{"text"}, {"text"}] and to_slack[1]["text"].startswith("*RESOLVED*")
    assert (ntfy.name, slack.name) == (f"ntfy:{base}", f"slack:{base}") and not logged


def test_a_failed_delivery_is_retried_with_back_off_counted_and_logged_without_its_secret() -> None:
    attempts: list[Request] = []
    answers = iter(["HTTP 503", "connection refused", None])

    def flaky(request: Request, _timeout: float) -> str | None:
        attempts.append(request)
        return next(answers)

    logged: list[str] = []
    metrics = WatchMetrics("prod", "watchdog", 10.0)
    destination = parse_destination("slack=https://hooks.example/services/T0/B0/SECRETTOKEN")
    notifier = Notifier([destination], metrics, log=logged.append, sender=flaky, backoff=0.01)
    notifier.update(outage())
    assert notifier.flush(10) and len(attempts) == 3
    said = "mana-infra: the alert to slack:hooks.example failed"
    assert logged == [f"{said} (HTTP 503); again in 0.01 s", f"{said} (connection refused); again in 0.02 s"]
    names = served(metrics)
    assert [s.value for s in names["mana_alert_delivery_failures_total"]] == [2.0]
    assert [s.value for s in names["mana_alert_deliveries_total"]] == [1.0]
    gives_up = Notifier([destination], log=logged.append, sender=lambda _r, _t: "HTTP 500", give_up=0)
    gives_up.update(outage())
    assert gives_up.flush(10) and logged[-1].endswith("failed (HTTP 500); given up after 1")
    assert not any("SECRET" in line for line in logged)


def test_the_back_off_holds_though_new_alerts_arrive_and_a_redirect_is_a_failure() -> None:
    """A destination that fails waits out its back-off even when new alerts arrive meanwhile (they queue
    behind it). A redirect is refused, not followed (urllib would turn the POST into a GET that carries
    the credentials elsewhere and call its 200 delivered)."""
    attempts: list[Request] = []

    def down(request: Request, _timeout: float) -> str | None:
        attempts.append(request)
        return "HTTP 503"

    notifier = Notifier([Destination(Kind.NTFY, "http://ntfy.example/t")], sender=down, backoff=30, log=lambda _: None)
    notifier.update(outage())
    wait_for(lambda: len(attempts) == 1)
    notifier.update(outage(firing=False))
    notifier.update(outage())
    time.sleep(0.3)
    assert len(attempts) == 1 and notifier.left() == {"ntfy:ntfy.example": 3}

    class Moved(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = Request(f"http://127.0.0.1:{server.server_address[1]}/hook", b"{}", {"Authorization": "Basic x"})
        assert send(request, 5) == "HTTP 302"
    finally:
        server.shutdown()


def test_alertmanager_hears_a_firing_alert_again_and_its_end_for_a_while() -> None:
    """While firing, re-sent every `resend` seconds (its own thread: a long round never lets it lapse),
    each valid for four times the larger of that and the interval; resolved, re-sent for `resolved_for`
    and then no more. A chat destination hears each change once."""
    to_am: list[tuple[float, dict[str, Any]]] = []  # (when sent, the alert)
    to_chat: list[str] = []

    def sender(request: Request, _timeout: float) -> None:
        body = json.loads(request.body)
        if request.url.endswith("/api/v2/alerts"):
            to_am.append((time.time(), body[0]))
        else:
            to_chat.append(body["text"].split("*")[1])

    destinations = [
        Destination(Kind.ALERTMANAGER, "http://am.example:9093"),
        Destination(Kind.SLACK, "http://c.example/h"),
    ]
    notifier = Notifier(destinations, sender=sender, resend=0.05, resolved_for=0.3, interval=10.0)  # type: ignore[arg-type]
    notifier.update(outage())
    wait_for(lambda: len(to_am) >= 3)
    assert all(39 < parse_time(alert["endsAt"]) - at <= 41 for at, alert in to_am)  # 4 x max(0.05, 10)
    notifier.update(outage(firing=False))
    wait_for(lambda: sum(parse_time(alert["endsAt"]) - at < 2 for at, alert in to_am) >= 3)
    time.sleep(0.5)  # past resolved_for: no more
    heard = len(to_am)
    time.sleep(0.2)
    assert len(to_am) == heard and to_chat == ["ALERT", "RESOLVED"]
    notifier.update(outage(firing=False))  # a resolve of what is not firing: nothing
    assert notifier.flush(2) and to_chat == ["ALERT", "RESOLVED"]


def parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_delivery_never_holds_up_the_round() -> None:
    """A destination that hangs (the home's Alertmanager in the outage): `update` has returned while the
    delivery is still inside the sender, and the next alert queues behind it."""
    inside, release = threading.Event(), threading.Event()

    def hangs(_request: Request, _timeout: float) -> str | None:
        inside.set()
        release.wait(10)
        return None

    notifier = Notifier([Destination(Kind.WEBHOOK, "http://home.example/hook")], sender=hangs)
    notifier.update(outage())
    assert inside.wait(5) and not release.is_set()
    notifier.update(outage(firing=False))  # returns at once, though the first is still on its way
    assert not notifier.flush(0.1)
    release.set()
    assert notifier.flush(5)


def test_a_real_alertmanager_takes_the_alert_and_notifies_it_resolved(
    tmp_path: Path, receiver: ThreadingHTTPServer
) -> None:
    """Debian's Alertmanager: the watch's alert is active with its annotations through API v2, and when
    the watch resolves it (endsAt now), Alertmanager itself sends the resolved notice to its receiver."""
    require_tools("prometheus-alertmanager")
    port = free_port()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/am"
    config = {"route": {"receiver": "hook", "group_by": ["alertname", "stack"], "group_wait": "0s",
                        "group_interval": "1s", "repeat_interval": "1h"},
              "receivers": [{"name": "hook", "webhook_configs": [{"url": hook, "send_resolved": True}]}]}  # fmt: skip
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    argv = ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address="]  # fmt: skip
    with (tmp_path / "alertmanager.log").open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        api = f"http://127.0.0.1:{port}/api/v2/alerts"
        notifier = Notifier([parse_destination(f"alertmanager=http://127.0.0.1:{port}")], sender=send)
        wait_for(lambda: send(Request(api, b"[]", {"Content-Type": "application/json"}), 1) is None)
        notifier.update(outage())
        assert notifier.flush(10)
        active = json.loads(urllib.request.urlopen(api, timeout=5).read())
        assert [(a["labels"]["alertname"], a["status"]["state"]) for a in active] == [("ManaPublicPathDown", "active")]
        assert active[0]["annotations"]["command"] == "mana-infra cutover --via edge"
        assert active[0]["labels"] == {"alertname": "ManaPublicPathDown", "stack": "prod", "source": "check",
                                       "severity": "critical"}  # fmt: skip
        notifier.update(outage(firing=False))
        assert notifier.flush(10)
        got: list[Any] = receiver.got  # type: ignore[attr-defined]
        wait_for(lambda: any(body["status"] == "resolved" for path, _, body in got if path == "/am"))
        statuses = [body["status"] for path, _, body in got if path == "/am"]
        assert statuses[0] == "firing" and statuses[-1] == "resolved"
        assert json.loads(urllib.request.urlopen(api, timeout=5).read()) == []
    finally:
        process.terminate()
        process.wait(10)


def wait_for(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ flags


def test_every_bad_monitoring_flag_is_named_at_once_without_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--no-pulumi", "--origin-ip", "192.0.2.1", "--resolver", "127.0.0.1", "--watch", "5",
            "--alert", "pager=https://x.example/a", "--alert", "slack=ftp://hooks.example/T0/SECRET",
            "--alert", "ntfy=https://ntfy.sh", "--alert", "https://hooks.example/services/T0/B0/SECRET",
            "--metrics-listen", "localhost",
            "--textfile", "/nonexistent/m.prom"]  # fmt: skip
    code = main(parse_args(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "SECRET" not in err
    assert (
        "--alert: entry 1: 'pager' is not a kind: KIND=URL with KIND one of webhook, alertmanager, ntfy, slack" in err
    )
    assert "--alert: entry 4: not KIND=URL: KIND=URL with KIND one of" in err  # a bare URL: never echoed
    assert "--alert: entry 2: the slack URL is not an http(s) URL" in err
    assert "--alert: entry 3: the ntfy URL names no topic" in err
    assert "--metrics-listen: 'localhost' is not HOST:PORT" in err
    assert "--textfile: its folder /nonexistent does not exist" in err
