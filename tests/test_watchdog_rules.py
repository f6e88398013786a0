"""The watchdog's rules, fault by fault, on reports and votes made to order (the lab proves the same
faults against the real engine): when it cuts over, and every case where it must not."""

from __future__ import annotations

from dataclasses import replace

from mana_infra.check.decision import Context, diagnose
from mana_infra.check.report import AnsweredBy, Failure, Report, Way
from mana_infra.watchdog.decide import Act, Policy, Round, Situation, WatchState, acted, decide
from mana_infra.watchdog.votes import Vote, VoteKind

from .support import check_report

HOSTS = [f"h{i}.mana.how" for i in range(3)]
POLICY = Policy(rounds=3)
READY = {"zoneSslMode": "strict", "emergencyCutover": "pulumi up --stack prod --target ... (emergency)"}


def tunnel_down(**changes: object) -> Report:
    """The tunnel cut: the edge answers 530 for every host; the standby serves them."""
    report = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS}, **changes)  # type: ignore[arg-type]
    report.diagnosis = diagnose(report, Context("prod", "pulumi up --stack prod --target ... (emergency)"))
    return report


def healthy() -> Report:
    report = check_report(mode="tunnel", path="tunnel")
    report.diagnosis = diagnose(report, Context("prod"))
    return report


WATCH_DOWN = Vote("watch", VoteKind.DOWN, True, Way.EDGE, "3 of 3 hosts fail")
WATCH_UP = Vote("watch", VoteKind.UP, True, None, "every host answers")
VPS_DOWN = Vote("vps", VoteKind.DOWN, True, None, "3 of 3 hosts fail from Hetzner's network")
VPS_UP = Vote("vps", VoteKind.UP, True, None, "0 of 3 hosts fail from Hetzner's network")


def rounds(state: WatchState, *steps: tuple[list[Vote], Report], paused: str | None = None) -> tuple[list, WatchState]:
    decisions = []
    for now, (votes, report) in enumerate(steps):
        decision, state = decide(state, Round(votes, report, READY, float(now * 10), paused), POLICY)
        decisions.append(decision)
    return decisions, state


def test_down_from_both_vantage_points_for_three_rounds_cuts_over_through_the_edge() -> None:
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    assert [d.act for d in decisions] == [Act.NOTHING, Act.NOTHING, Act.CUT_OVER]
    assert [d.situation for d in decisions] == [Situation.WATCHING, Situation.WATCHING, Situation.ACTING]
    assert decisions[-1].way is Way.EDGE and state.down_rounds == 3


def test_flapping_for_sixty_rounds_never_cuts_over() -> None:
    """Down for two rounds, up for one, again and again: the count starts over each time."""
    pattern = [([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 2 + [([WATCH_UP, VPS_UP], healthy())]
    decisions, state = rounds(WatchState(), *pattern * 20)
    assert len(decisions) == 60 and all(d.act is Act.NOTHING for d in decisions)
    assert state.down_rounds == 0 and not state.actions


def test_the_watch_boxs_own_uplink_cut_is_no_vote_and_no_cut_over() -> None:
    """The watch box reaches nothing: it abstains; the VPS alone is fewer voices than the rule needs."""
    abstain = Vote("watch", VoteKind.ABSTAIN, None, None, "this machine reaches nothing: its own network")
    decisions, state = rounds(WatchState(), *[([abstain, VPS_DOWN], tunnel_down())] * 6)
    assert all(d.act is Act.NOTHING and d.situation is Situation.TOO_FEW for d in decisions)
    assert state.down_rounds == 0


def test_no_voice_at_all_is_quiet_but_says_so() -> None:
    """Both vantage points abstain (the watch box's uplink cut takes its SSH to the VPS too): nothing to
    act on and no page — and not "ok" either, which would page "resolved" after an outage's page."""
    abstain = Vote("watch", VoteKind.ABSTAIN, None, None, "this machine reaches nothing: its own network")
    vps = Vote("vps", VoteKind.ABSTAIN, None, None, "no vote from the VPS: Connection refused")
    decisions, state = rounds(WatchState(), *[([abstain, vps], tunnel_down())] * 4)
    assert all(d.act is Act.NOTHING and d.situation is Situation.TOO_FEW for d in decisions)
    assert not Situation.TOO_FEW.pages
    assert decisions[-1].words.startswith("no vantage point sees the path down, but too few vote to tell: watch:")
    assert state.down_rounds == 0


def test_the_vps_disagreeing_is_no_cut_over() -> None:
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_UP], tunnel_down())] * 6)
    assert all(d.act is Act.NOTHING and d.situation is Situation.WATCHING for d in decisions)
    assert "the vantage points disagree" in decisions[0].words and state.down_rounds == 0


def test_the_mac_mini_down_is_no_cut_over_and_says_why() -> None:
    report = tunnel_down(standby="down")
    for host in report.hosts:  # Caddy on the VPS answers 502: it reaches no app across WireGuard
        host.standby.ok, host.standby.status, host.standby.failure = False, 502, Failure.HTTP_5XX
        host.standby.answered_by = AnsweredBy.VPS
    report.vps.health.ok = True
    report.diagnosis = diagnose(report, Context("prod"))
    decisions, _ = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], report)] * 4)
    assert [d.situation for d in decisions[2:]] == [Situation.NO_WAY] * 2
    assert all(d.act is Act.NOTHING for d in decisions)
    assert "no cut-over helps" in decisions[-1].words


def test_cloudflares_api_unreachable_pages_the_emergency_command_and_never_acts() -> None:
    report = tunnel_down()
    report.cloudflare_api.state, report.cloudflare_api.error = report.cloudflare_api.state.UNREACHABLE, "timed out"
    report.diagnosis = diagnose(report, Context("prod", "pulumi up --stack prod --target ... (emergency)"))
    decisions, _ = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], report)] * 4)
    assert decisions[-1].situation is Situation.EMERGENCY and decisions[-1].act is Act.NOTHING
    assert decisions[-1].command == "pulumi up --stack prod --target ... (emergency)"


def test_the_standby_not_ready_from_the_vps_is_no_cut_over() -> None:
    vps = replace(VPS_DOWN, standby_ready=False, reason="the Mac Mini does not answer across WireGuard for 3")
    decisions, _ = rounds(WatchState(), *[([WATCH_DOWN, vps], tunnel_down())] * 3)
    assert decisions[-1].situation is Situation.NOT_READY and decisions[-1].act is Act.NOTHING
    assert "the VPS does not see the Mac Mini answer across WireGuard" in decisions[-1].words


def test_a_restart_mid_outage_keeps_its_counters() -> None:
    _, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 2)
    restarted = WatchState.from_json(state.to_json())  # what the state file holds
    decisions, _ = rounds(restarted, ([WATCH_DOWN, VPS_DOWN], tunnel_down()))
    assert decisions[0].act is Act.CUT_OVER


def test_paused_it_pages_and_never_acts() -> None:
    decisions, _ = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 4, paused="by op: maintenance")
    assert decisions[-1].situation is Situation.PAUSED and all(d.act is Act.NOTHING for d in decisions)
    assert decisions[-1].command == "mana-infra cutover --via edge --stack prod"


def test_one_automatic_cut_over_per_window_then_it_latches() -> None:
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    situation, state = acted(state, decisions[-1], True, "every host green", 30.0)
    assert situation is Situation.GREEN and not state.latched
    decisions, state = rounds(state, *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)  # the next outage, same day
    assert decisions[-1].situation is Situation.LATCHED and decisions[-1].act is Act.NOTHING
    assert state.latched and "its budget" in state.latched


def test_a_cut_over_not_green_latches_no_ping_pong() -> None:
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    situation, state = acted(state, decisions[-1], False, "1 of 3 green after 120 s", 30.0)
    assert situation is Situation.NOT_GREEN and state.latched
    decisions, _ = rounds(state, *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    assert all(d.act is Act.NOTHING for d in decisions) and decisions[-1].situation is Situation.LATCHED


def failed_over(tunnel: str) -> Report:
    report = check_report(mode="failover", tunnel=tunnel)
    report.diagnosis = diagnose(report, Context("prod"))
    return report


def test_automatic_fail_back_only_after_the_stable_window_when_enabled() -> None:
    policy = Policy(auto_failback=True, stable=60.0)
    its_own = {**READY, "modeChangedBy": "mana-infra watch (automatic) on watchbox"}
    state, acts = WatchState(), []
    for now, tunnel in enumerate(["up"] * 5 + ["down"] + ["up"] * 8):  # a break at 50 s restarts the window
        decision, state = decide(state, Round([], failed_over(tunnel), its_own, now * 10.0), policy)
        acts.append(decision.act)
    assert acts.index(Act.FAIL_BACK) == 12  # 60 s after the tunnel came back at round 6, not earlier
    # A person's cut-over is the person's to undo: never failed back by itself.
    persons = {**READY, "modeChangedBy": "mana-infra cutover by op@laptop"}
    decision, _ = decide(WatchState(tunnel_green_since=0.0), Round([], failed_over("up"), persons, 1000.0), policy)
    assert decision.act is Act.NOTHING and decision.situation is Situation.TUNNEL_BACK
    manual = Policy(auto_failback=False, stable=60.0)
    decision, _ = decide(WatchState(tunnel_green_since=0.0), Round([], failed_over("up"), READY, 1000.0), manual)
    assert decision.act is Act.NOTHING and decision.situation is Situation.TUNNEL_BACK
    assert decision.command == "mana-infra failback --stack prod"


def test_rounds_count_only_in_a_row_and_any_up_vote_starts_over() -> None:
    """Down, down, then the watch box abstains while the VPS says up, then down: not three in a row.
    And down rounds days apart (a stopped watchdog) are not in a row either."""
    abstain = Vote("watch", VoteKind.ABSTAIN, None, None, "this machine reaches nothing: its own network")
    steps = [([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 2 + [([abstain, VPS_UP], tunnel_down())]
    decisions, state = rounds(WatchState(), *steps, ([WATCH_DOWN, VPS_DOWN], tunnel_down()))
    assert all(d.act is Act.NOTHING for d in decisions) and state.down_rounds == 1
    _, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 2)
    decision, state = decide(state, Round([WATCH_DOWN, VPS_DOWN], tunnel_down(), READY, 86400.0), POLICY)
    assert decision.act is Act.NOTHING and state.down_rounds == 1


def test_resume_resets_the_budget_after_a_latch() -> None:
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    _, state = acted(state, decisions[-1], True, "every host green", 30.0)
    decisions, state = rounds(state, *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    assert decisions[-1].situation is Situation.LATCHED
    state = replace(state, latched=None, resumed_at=40.0, down_rounds=0)  # what `watch resume` does
    decisions, _ = rounds(state, *[([WATCH_DOWN, VPS_DOWN], tunnel_down())] * 3)
    assert decisions[-1].act is Act.CUT_OVER


def test_only_the_homes_direct_way_fitting_pages_the_command_and_never_acts() -> None:
    """The VPS down, the home serving: the verdict is the direct way, which shows the home's address to
    every visitor; the watchdog leaves that to a person, one page with the command."""
    report = tunnel_down(standby="down", vps="down", home=(4, 6))
    assert report.diagnosis.way is Way.DIRECT
    decisions, state = rounds(WatchState(), *[([WATCH_DOWN, VPS_DOWN], report)] * 5)
    assert [d.situation for d in decisions[2:]] == [Situation.HOME] * 3
    assert all(d.act is Act.NOTHING for d in decisions) and not state.actions and state.latched is None
    assert decisions[-1].command == "mana-infra cutover --via direct --stack prod"
    assert "a person decides" in decisions[-1].words and Situation.HOME.pages
