"""The watchdog's loop with the real cut-over code behind the engine's seam: it acts through
cutover.run under the stack's lock, pages once per change, keeps its state in a file, and
pause/resume reach it through that file's neighbours."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mana_infra.check.decision import Context, diagnose
from mana_infra.check.report import Report, Way
from mana_infra.watchdog.decide import Policy
from mana_infra.watchdog.run import Watch, load_state, pause, resume, run_watch
from mana_infra.watchdog.votes import Vote, VoteKind

from .support import check_report
from .test_cutover import OUTPUTS, FakeEngine

HOSTS = [f"h{i}.mana.how" for i in range(3)]


def checker(outputs: Mapping[str, Any]) -> Report:
    """check on the stack as its outputs say: in tunnel mode the tunnel is cut; in failover every host
    answers through the VPS."""
    if outputs.get("mode") == "tunnel":
        report = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS})
    else:
        report = check_report(mode="failover", path="origin", tunnel="down")
    report.diagnosis = diagnose(report, Context("prod"))
    return report


def vps_down(_outputs: Mapping[str, Any]) -> Vote:
    return Vote("vps", VoteKind.DOWN, True, None, "3 of 3 hosts fail from Hetzner's network")


def watch(tmp_path: Path, engine: FakeEngine, pages: list[dict[str, Any]], lines: list[str], rounds: int) -> Watch:
    return Watch(
        stack="prod",
        project_dir=tmp_path,
        state_path=tmp_path / "state" / "watch-prod.json",
        policy=Policy(rounds=3),
        engine=engine,
        checker=checker,
        vps=vps_down,
        pager=pages.append,
        interval=10,
        rounds=rounds,
        emit=lines.append,
        clock=iter(range(0, 10_000, 10)).__next__,  # type: ignore[arg-type]
        sleep=lambda _seconds: None,
    )


def test_the_tunnel_cut_is_cut_over_once_paged_twice_and_remembered(tmp_path: Path) -> None:
    engine, pages, lines = FakeEngine(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    assert run_watch(watch(tmp_path, engine, pages, lines, rounds=6)) == 0
    rounds = [json.loads(line) for line in lines]
    assert [r["decision"] for r in rounds] == ["nothing", "nothing", "cut-over", "nothing", "nothing", "nothing"]
    assert rounds[0]["votes"] == {"watch": "down", "vps": "down"} and rounds[3]["mode"] == "failover"
    assert engine.config == {"mode": "failover", "failoverVia": "edge"} and engine.calls.count("up") == 1
    assert [p["situation"] for p in pages] == ["acting", "acted-green"]  # and nothing while in failover
    state = load_state(tmp_path / "state" / "watch-prod.json")
    [action] = state.actions
    assert (action.what, action.way, action.green) == ("cut-over", Way.EDGE, True)
    assert "3 of 3 hosts green" in action.detail


def test_paused_it_probes_and_pages_but_never_acts_and_resume_lifts_it(tmp_path: Path) -> None:
    engine, pages, lines = FakeEngine(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    state_path = tmp_path / "state" / "watch-prod.json"
    said = pause(state_path, "maintenance of the Mac Mini")
    run_watch(watch(tmp_path, engine, pages, lines, rounds=5))
    assert engine.calls == [] and [p["situation"] for p in pages] == ["paused-outage"]
    assert said in pages[0]["words"] and pages[0]["command"] == "mana-infra cutover --via edge --stack prod"
    resume(state_path)
    run_watch(watch(tmp_path, engine, pages, lines, rounds=1))
    assert "up" in engine.calls  # the count survived the restart: acting at once


def test_a_round_that_fails_is_said_and_the_loop_goes_on(tmp_path: Path) -> None:
    """The stack's backend out of reach for a round (the watch box's own trouble): no crash, no act."""
    engine, pages, lines = FakeEngine(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    calls = {"n": 0}
    real_outputs = engine.outputs

    def flaky() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("error: failed to read the stack: dial tcp: i/o timeout")
        return real_outputs()

    engine.outputs = flaky  # type: ignore[method-assign]
    run_watch(watch(tmp_path, engine, pages, lines, rounds=4))
    first = json.loads(lines[0])
    assert first["error"].startswith("RuntimeError: error: failed to read the stack")
    assert [json.loads(line)["decision"] for line in lines[1:]] == ["nothing", "nothing", "cut-over"]


def test_stopped_while_acting_it_latches_at_restart_and_never_runs_it_twice(tmp_path: Path) -> None:
    from mana_infra.watchdog.decide import Act, Action, WatchState
    from mana_infra.watchdog.run import save_state

    state_path = tmp_path / "state" / "watch-prod.json"
    save_state(
        state_path,
        WatchState(down_rounds=3, last_down_at=0.0, pending=Action(0.0, Act.CUT_OVER, Way.EDGE, False, "started")),
    )
    engine, pages, lines = FakeEngine(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    run_watch(watch(tmp_path, engine, pages, lines, rounds=3))
    state = load_state(state_path)
    assert state.latched and "stopped while it ran a cut-over" in state.latched and "up" not in engine.calls
    assert [p["situation"] for p in pages] == ["latched"]


def test_pulumis_lock_refusing_is_no_action_and_no_latch(tmp_path: Path) -> None:
    engine, pages, lines = FakeEngine(dict(OUTPUTS), fail="the stack is currently locked by 1 lock(s)"), [], []  # type: ignore[var-annotated]
    run_watch(watch(tmp_path, engine, pages, lines, rounds=3))
    state = load_state(tmp_path / "state" / "watch-prod.json")
    assert state.actions == [] and state.latched is None and engine.config == {"mode": "tunnel"}
    assert json.loads(lines[-1])["acted"].startswith("Pulumi's lock on the stack refused the update")


class PersonSwitchesMeanwhile(FakeEngine):
    """A person's cutover lands between the watchdog's decision and its turn at the stack's lock: from
    the fourth read on (the one under the lock), the outputs say failover."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        super().__init__(outputs)
        self.reads = 0

    def outputs(self) -> dict[str, Any]:
        self.reads += 1
        return {**super().outputs(), **({"mode": "failover"} if self.reads >= 4 else {})}


def test_a_person_switching_first_means_nothing_done_and_no_latch(tmp_path: Path) -> None:
    engine, pages, lines = PersonSwitchesMeanwhile(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    run_watch(watch(tmp_path, engine, pages, lines, rounds=3))
    third = json.loads(lines[-1])
    assert third["decision"] == "cut-over" and third["situation"] == "watching"
    assert third["acted"] == "the stack is in failover now, not tunnel: nothing done"
    assert "up" not in engine.calls and engine.config == {"mode": "tunnel"}  # the person's stands
    state = load_state(tmp_path / "state" / "watch-prod.json")
    assert state.actions == [] and state.latched is None and state.pending is None


def test_each_round_leaves_its_metrics_and_the_pages_are_the_incidents_alerts(tmp_path: Path) -> None:
    """With a Monitor: the textfile after each round (the cut-over on record in it); the pages as alerts —
    ManaPublicPathDown while it acts, resolved once every host is green through the VPS, and
    ManaInFailover (a warning) from then on; after a restart, the one that fires is armed again."""
    from prometheus_client.parser import text_string_to_metric_families

    from mana_infra.monitor.alerts import Destination, Kind, Notifier, Request
    from mana_infra.monitor.metrics import WatchMetrics
    from mana_infra.monitor.setup import Monitor
    from mana_infra.watchdog.run import page_alerts, rearm_alerts

    sent: list[Request] = []
    metrics = WatchMetrics("prod", "watchdog", 10.0, textfile=tmp_path / "watchdog.prom")
    notifier = Notifier([Destination(Kind.ALERTMANAGER, "http://am.example:9093")], metrics,
                        sender=lambda request, _timeout: sent.append(request))  # type: ignore[func-returns-value]  # fmt: skip
    engine, pages, lines = FakeEngine(dict(OUTPUTS)), [], []  # type: ignore[var-annotated]
    run = watch(tmp_path, engine, pages, lines, rounds=4)
    run.monitor = Monitor(metrics, notifier)
    run.pager = lambda payload: (pages.append(payload), [notifier.update(a) for a in page_alerts(payload)])  # type: ignore[assignment,func-returns-value]
    run_watch(run)
    assert notifier.flush(5) and [p["situation"] for p in pages] == ["acting", "acted-green"]
    samples = {(s.name, s.labels.get("what")): s.value for family in text_string_to_metric_families(
        (tmp_path / "watchdog.prom").read_text()) for s in family.samples}  # fmt: skip
    assert samples[("mana_watchdog_actions_total", "cut-over")] == 1 and samples[("mana_watch_rounds_total", None)] == 4
    assert samples[("mana_watchdog_down_rounds", None)] == 0
    alerts = [json.loads(request.body)[0] for request in sent]
    said = [
        (a["labels"]["alertname"], a["labels"]["severity"], a["annotations"]["summary"].split(":")[0]) for a in alerts
    ]
    assert said == [("ManaPublicPathDown", "critical", "acting"), ("ManaPublicPathDown", "critical", "acted-green"),
                    ("ManaInFailover", "warning", "acted-green")]  # fmt: skip
    assert alerts[1]["endsAt"] < alerts[2]["endsAt"]  # the first resolved, the second valid ahead
    [again] = rearm_alerts(load_state(tmp_path / "state" / "watch-prod.json"), "prod")
    assert (again.name, again.firing) == ("ManaInFailover", True)
