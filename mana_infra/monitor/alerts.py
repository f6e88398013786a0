"""Alerts that arrive: one when a state begins, a resolved notice when it ends, to every destination at
once — the operator's Alertmanager at home, and a push to a phone that does not depend on the home.

Destinations, chosen per URL (`KIND=URL`, from `--alert` or $MANA_WATCH_ALERTS):
- `alertmanager`: Alertmanager's API v2, `POST /api/v2/alerts` (prometheus/alertmanager's
  api/v2/openapi.yaml, postableAlerts). While firing the alert is sent again every `resend` seconds
  with `endsAt` four of those ahead, as Prometheus's rule manager does (rules/alerting.go: ValidUntil =
  4 * max(resend delay, interval)), so an Alertmanager that restarts learns it again and a watch that
  dies lets it lapse (the dashboard's and the rules' "watch silent" says so); resolved: `endsAt` now.
- `ntfy`: the topic URL (`https://ntfy.sh/TOPIC`, a user and password in it for a protected server);
  published as JSON to the server's root with the topic inside (docs.ntfy.sh/publish, "Publish as
  JSON": topic, message, title, priority 1 to 5, tags).
- `slack`: an incoming webhook taking Slack's `{"text": …}` — Slack, Discord's `…/slack` endpoint,
  Mattermost (api.slack.com/messaging/webhooks; Discord's "Execute Slack-Compatible Webhook").
- `webhook`: the watch's own JSON (as before, now with `status` firing or resolved).

Delivery never delays a probe round: each destination has a worker thread that retries with back-off
(1 s doubling to a minute) until `give_up` seconds have passed; every failure is logged with the
destination's redacted name (kind and host only: tokens live in paths and user parts) and counted.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .metrics import WatchMetrics
from .names import M

ALERTS_VARIABLE = "MANA_WATCH_ALERTS"  # whitespace-separated KIND=URL: URLs with tokens stay out of `ps`
PUBLIC_PATH_DOWN = "ManaPublicPathDown"  # an outage's alert, from the watch and the watchdog alike


class Kind(StrEnum):
    WEBHOOK = "webhook"
    ALERTMANAGER = "alertmanager"
    NTFY = "ntfy"
    SLACK = "slack"


@dataclass(frozen=True)
class Alert:
    """One alert's state as the watch sees it now. Its identity is (name, stack, source)."""

    name: str  # Alertmanager's alertname, e.g. ManaPublicPathDown
    stack: str
    source: str  # which loop raised it: "check" (the watch) or "watchdog"
    firing: bool
    started: float  # Unix time it began
    summary: str  # one line for a person
    details: tuple[str, ...] = ()  # more lines: what failed, what it did
    command: str | None = None  # what a person can run
    payload: dict[str, Any] = field(default_factory=dict)  # the webhook's JSON
    severity: str = "critical"

    @property
    def labels(self) -> dict[str, str]:
        return {"alertname": self.name, "stack": self.stack, "source": self.source, "severity": self.severity}

    @property
    def text(self) -> str:
        head = ("RESOLVED: " if not self.firing else "") + self.summary
        return "\n".join([head, *self.details, *([f"run: {self.command}"] if self.command and self.firing else [])])


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alertmanager_alerts(alert: Alert, now: float, valid_for: float) -> list[dict[str, Any]]:
    """The body of `POST /api/v2/alerts`: one postable alert, valid for `valid_for` seconds unless heard
    again (resolved: it ended now)."""
    annotations = {"summary": alert.summary, "description": "\n".join(alert.details)}
    if alert.command:
        annotations["command"] = alert.command
    ends = now if not alert.firing else now + valid_for
    return [{"labels": alert.labels, "annotations": annotations, "startsAt": _iso(alert.started), "endsAt": _iso(ends)}]


def ntfy_message(alert: Alert, topic: str) -> dict[str, Any]:
    """ntfy's JSON publish: urgent (5) while firing, default (3) for the all-clear."""
    return {
        "topic": topic,
        "title": f"{'Resolved' if not alert.firing else 'Mana'} ({alert.stack}): {alert.name}",
        "message": alert.text,
        "priority": 5 if alert.firing else 3,
        "tags": ["rotating_light"] if alert.firing else ["white_check_mark"],
    }


def slack_message(alert: Alert) -> dict[str, Any]:
    return {"text": f"*{'RESOLVED' if not alert.firing else 'ALERT'}* `{alert.stack}` {alert.name}\n{alert.text}"}


def webhook_message(alert: Alert) -> dict[str, Any]:
    return {**alert.payload, "status": "firing" if alert.firing else "resolved", "alertname": alert.name}


@dataclass(frozen=True)
class Destination:
    kind: Kind
    url: str

    @property
    def name(self) -> str:
        """For logs and the metrics' label: the kind and the host, never a path, a user or a query."""
        parts = urlsplit(self.url)
        return f"{self.kind.value}:{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def request(self, alert: Alert, now: float, valid_for: float) -> Request:
        parts = urlsplit(self.url)
        headers = {"Content-Type": "application/json", "User-Agent": "mana-infra-watch"}
        if parts.username is not None:  # credentials in the URL: a header, not the address
            user, password = unquote(parts.username), unquote(parts.password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = _host_port(parts.hostname, parts.port)
        if self.kind is Kind.NTFY:  # the topic goes into the body; a query (`?auth=…`) stays on the root
            root, _, topic = parts.path.rstrip("/").rpartition("/")
            url = urlunsplit((parts.scheme, host, root or "/", parts.query, ""))
            return Request(url, json.dumps(ntfy_message(alert, topic)).encode(), headers)
        if self.kind is Kind.ALERTMANAGER:
            path = parts.path.rstrip("/") + "/api/v2/alerts"
            body: Any = alertmanager_alerts(alert, now, valid_for)
        else:
            path, body = parts.path, slack_message(alert) if self.kind is Kind.SLACK else webhook_message(alert)
        return Request(urlunsplit((parts.scheme, host, path, parts.query, "")), json.dumps(body).encode(), headers)


def _host_port(host: str | None, port: int | None) -> str:
    host = f"[{host}]" if host and ":" in host else (host or "")
    return host + (f":{port}" if port else "")


def parse_destination(text: str) -> Destination:
    """`KIND=URL`; ValueError says what is wrong and the forms that work, never the URL (it may be a
    secret): a kind is named only when it looks like one."""
    kind, sep, url = (part.strip() for part in text.partition("="))
    kinds = ", ".join(k.value for k in Kind)
    if not sep or kind not in {k.value for k in Kind}:
        named = f"{kind!r} is not a kind" if re.fullmatch(r"[a-z0-9_-]{1,20}", kind) and sep else "not KIND=URL"
        raise ValueError(f"{named}: KIND=URL with KIND one of {kinds}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"[\s\x00-\x1f\x7f]", url):
        raise ValueError(f"the {kind} URL is not an http(s) URL")
    if Kind(kind) is Kind.NTFY and not parts.path.strip("/"):
        raise ValueError("the ntfy URL names no topic (e.g. https://ntfy.sh/mana-alerts-x7k2)")
    return Destination(Kind(kind), url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error here: urllib would follow a POST as a bodiless GET, with its credentials,
    to wherever it points, and count the GET's 200 as delivered."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(request: Request, timeout: float) -> str | None:
    """POST it; an error text (never the URL), or None when it was taken (2xx)."""
    http = urllib.request.Request(request.url, data=request.body, method="POST", headers=request.headers)
    try:
        with _OPENER.open(http, timeout=timeout) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return reason.strerror or type(reason).__name__ if isinstance(reason, OSError) else type(exc).__name__
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except Exception as exc:  # a malformed answer, a bad status line: said by its kind, never its text
        return type(exc).__name__


Sender = Callable[[Request, float], "str | None"]


@dataclass
class _Item:
    alert: Alert
    first_tried: float | None = None
    attempts: int = 0
    not_before: float = 0.0  # monotonic: the back-off's end


class _Worker:
    """One destination's queue: deliveries in order, each retried with back-off until it goes or is too
    old. An Alertmanager alert's newer state replaces its older one still waiting (only the last counts),
    keeping its back-off and its age."""

    def __init__(self, notifier: Notifier, destination: Destination) -> None:
        self.notifier, self.destination = notifier, destination
        self.pending: OrderedDict[Any, _Item] = OrderedDict()
        self.wake = threading.Condition()
        self.busy = False
        threading.Thread(target=self._loop, name=f"alerts {destination.kind.value}", daemon=True).start()

    def put(self, key: Any, alert: Alert) -> None:
        with self.wake:
            old = self.pending.get(key)
            self.pending[key] = _Item(alert) if old is None else replace(old, alert=alert)
            self.wake.notify()

    def idle(self) -> bool:
        with self.wake:
            return not self.pending and not self.busy

    def waiting(self) -> int:
        with self.wake:
            return len(self.pending)

    def _next(self) -> tuple[Any, _Item]:
        """The head of the queue once its back-off is over (a put wakes it to look again, no sooner)."""
        with self.wake:
            while True:
                if self.pending:
                    key, item = next(iter(self.pending.items()))
                    if (wait := item.not_before - time.monotonic()) <= 0:
                        self.busy = True
                        return key, item
                    self.wake.wait(wait)
                else:
                    self.wake.wait()

    def _loop(self) -> None:
        while True:
            key, item = self._next()
            try:
                delay = self.notifier.deliver(self.destination, item)
            except Exception as exc:  # never the worker's end: the item is dropped, said by its kind
                self.notifier.log(f"mana-infra: the alert to {self.destination.name} failed ({type(exc).__name__})")
                delay = None
            with self.wake:
                self.busy = False
                current = self.pending.get(key)
                if delay is None and current is not None and current.alert is item.alert:
                    del self.pending[key]
                elif delay is not None and current is not None:
                    current.attempts, current.first_tried = item.attempts, item.first_tried
                    current.not_before = time.monotonic() + delay


@dataclass
class Notifier:
    """Every destination's worker. The loops call `update` when an alert begins, changes or ends; while
    one fires, Alertmanager hears it again every `resend` seconds (a thread of its own, so a long round
    never lets it lapse), and a resolved one for `resolved_for` seconds after (Prometheus keeps sending
    resolved alerts too: an Alertmanager that was away learns of the end)."""

    destinations: Sequence[Destination]
    metrics: WatchMetrics | None = None
    log: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    sender: Sender = send
    interval: float = 60.0  # the loop's rounds: an alert is valid for four of these or of `resend`
    resend: float = 60.0
    resolved_for: float = 300.0
    give_up: float = 900.0
    timeout: float = 10.0
    backoff: float = 1.0  # the first wait after a failure; it doubles, to a minute at most
    _workers: list[_Worker] = field(default_factory=list)
    _active: dict[tuple[str, str, str], Alert] = field(default_factory=dict)
    _ended: dict[tuple[str, str, str], tuple[Alert, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sequence: int = 0

    def __post_init__(self) -> None:
        self._workers = [_Worker(self, destination) for destination in self.destinations]
        for destination in self.destinations:  # from zero, so that the first failure shows in increase()
            self._count(M.DELIVERIES, destination, 0)
            self._count(M.DELIVERY_FAILURES, destination, 0)
        if any(d.kind is Kind.ALERTMANAGER for d in self.destinations):
            threading.Thread(target=self._resend_loop, name="alerts resend", daemon=True).start()

    @property
    def valid_for(self) -> float:
        """How long Alertmanager keeps a firing alert without hearing it again (Prometheus: 4 times the
        larger of its resend delay and its evaluation interval)."""
        return 4 * max(self.resend, self.interval)

    def update(self, alert: Alert, quietly: bool = False) -> None:
        """The alert began, changed or ended. A resolve of an alert that is not firing is nothing.
        `quietly`: only Alertmanager hears it (a restart re-arming what was firing before it)."""
        key = (alert.name, alert.stack, alert.source)
        with self._lock:
            if key in self._active:  # the same alert, changed or ended: it began when it first fired
                alert = replace(alert, started=self._active[key].started)
            elif not alert.firing:
                return
            if alert.firing:
                self._active[key] = alert
                self._ended.pop(key, None)
            else:
                del self._active[key]
                self._ended[key] = (alert, self.clock())
            self._sequence += 1
            sequence = self._sequence
        for worker in self._workers:
            if worker.destination.kind is Kind.ALERTMANAGER:
                worker.put(key, alert)
            elif not quietly:
                worker.put(sequence, alert)

    def _resend_loop(self) -> None:
        while True:
            time.sleep(self.resend)
            now = self.clock()
            with self._lock:
                self._ended = {k: v for k, v in self._ended.items() if now - v[1] < self.resolved_for}
                again = [*self._active.items(), *((k, alert) for k, (alert, _) in self._ended.items())]
            for worker in self._workers:
                if worker.destination.kind is Kind.ALERTMANAGER:
                    for key, alert in again:
                        worker.put(key, alert)

    def deliver(self, destination: Destination, item: _Item) -> float | None:
        """One attempt; None when done (sent, or given up), else the seconds to wait before the next."""
        now = self.clock()
        item.first_tried = item.first_tried if item.first_tried is not None else now
        error = self.sender(destination.request(item.alert, now, self.valid_for), self.timeout)
        item.attempts += 1
        if error is None:
            self._count(M.DELIVERIES, destination)
            return None
        self._count(M.DELIVERY_FAILURES, destination)
        if now - item.first_tried >= self.give_up:
            self.log(f"mana-infra: the alert to {destination.name} failed ({error}); given up after {item.attempts}")
            return None
        delay = min(60.0, self.backoff * 2.0 ** (item.attempts - 1))
        self.log(f"mana-infra: the alert to {destination.name} failed ({error}); again in {delay:g} s")
        return delay

    def _count(self, metric: M, destination: Destination, by: float = 1.0) -> None:
        if self.metrics is not None:
            self.metrics.count(metric, (destination.name,), by)

    def flush(self, timeout: float) -> bool:
        """Wait until every destination has nothing left (at most `timeout` s): before the process ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(worker.idle() for worker in self._workers):
                return True
            time.sleep(0.05)
        return all(worker.idle() for worker in self._workers)

    def left(self) -> dict[str, int]:
        """What is still waiting, per destination's name (for the word at the end)."""
        return {w.destination.name: n for w in self._workers if (n := w.waiting())}


def destinations_from(texts: Sequence[str]) -> tuple[list[Destination], list[str]]:
    """Every `KIND=URL` parsed, and every problem (numbered when there are several)."""
    destinations, problems = [], []
    for index, text in enumerate(texts, 1):
        try:
            destinations.append(parse_destination(text))
        except ValueError as exc:
            problems.append(f"entry {index}: {exc}" if len(texts) > 1 else str(exc))
    return destinations, problems
