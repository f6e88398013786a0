"""The verdict's rules, on reports made to order: what the table offers and what the pre-flight
refuses never contradict each other."""

from __future__ import annotations

from mana_infra.check import cli as check
from mana_infra.check.decision import Context, adoption_blocker, diagnose, standby_blockers, switch_blockers
from mana_infra.check.report import Way

from .support import check_report

HOSTS = [f"h{i}.mana.how" for i in range(3)]


def test_a_way_the_pre_flight_would_refuse_says_so() -> None:
    """The VPS serves every host but its health path fails: the table's way still fits (the column), the
    standby is not ready (the pre-flight), and the diagnosis, the alert and cutover all say so."""
    report = check_report(mode="tunnel", path="tunnel", green=0, vps="down", failures={"tunnel_error": HOSTS})
    diagnosis = diagnose(report, Context("prod"))
    assert (diagnosis.way, diagnosis.case) == (Way.EDGE, "tunnel/serving")
    assert "but the standby is not ready (vps: down): a cut-over's pre-flight refuses it" in diagnosis.why
    assert standby_blockers(report) == ["vps: down"]
    assert check.alert_payload(report, 3)["standby_ready"] is False
    assert switch_blockers(report, {}, "failover", "edge") == ["vps: down"]


def test_a_ready_standby_has_no_caveat_and_no_blocker() -> None:
    report = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS})
    diagnosis = diagnose(report, Context("prod"))
    assert diagnosis.way is Way.EDGE and "not ready" not in diagnosis.why
    assert standby_blockers(report) == [] and check.alert_payload(report, 3)["standby_ready"] is True


def test_switch_blockers_know_the_zone_mode_and_adopted_records() -> None:
    report = check_report(mode="tunnel", path="tunnel")
    outputs = {"zoneSslMode": "full", "adoptRecordsLeft": ["h0.mana.how"], "failoverVia": "edge"}
    [ssl] = switch_blockers(report, outputs, "failover", "edge")
    assert ssl.startswith("the zone's SSL/TLS mode is 'full'")
    assert switch_blockers(report, outputs, "failover", "dns") == []
    assert adoption_blocker(outputs, "failover", "edge", "prod") is None  # the edge way keeps the TTL
    blocked = adoption_blocker(outputs, "failover", "dns", "prod")
    assert blocked is not None and blocked.endswith(": this switch changes their TTL")
