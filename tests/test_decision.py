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


# ------------------------------------------------------------------------------------- Plan C, direct

VPS_DOWN = {"standby": "down", "vps": "down"}


def test_the_home_serves_when_the_vps_cannot_the_verdict_is_the_direct_way() -> None:
    report = check_report(
        mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS}, home=(4, 6), **VPS_DOWN
    )
    diagnosis = diagnose(report, Context("prod"))
    assert (diagnosis.way, diagnosis.case) == (Way.DIRECT, "tunnel/vps-down/home")
    assert diagnosis.command == "mana-infra cutover --via direct --stack prod"
    assert "the VPS cannot serve" in diagnosis.why and "the home answers straight from its own address" in diagnosis.why
    assert switch_blockers(report, {}, "failover", "direct") == []
    assert switch_blockers(report, {}, "failover", "direct-dns") == []


def test_the_vps_comes_first_whenever_it_serves() -> None:
    report = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS}, home=(4, 6))
    assert diagnose(report, Context("prod")).way is Way.EDGE


def test_the_edge_down_and_the_vps_down_dns_only_to_the_home_needs_its_ipv4() -> None:
    edge_down = {"connect_timeout": HOSTS}
    dual = check_report(mode="tunnel", path="tunnel", green=0, failures=edge_down, home=(4, 6), **VPS_DOWN)
    assert diagnose(dual, Context("prod")).way is Way.DIRECT_DNS
    # A published address that does not serve fails its visitors: neither way is offered, nor let through.
    half = check_report(mode="tunnel", path="tunnel", green=0, failures=edge_down, home=(4,), **VPS_DOWN,
                        problems=(("home", "the home's IPv6 2001:db8:1a::20 does not answer on tcp/443"),))  # fmt: skip
    assert diagnose(half, Context("prod")).way is None
    assert switch_blockers(half, {}, "failover", "direct") == [
        "the home's IPv6 2001:db8:1a::20 does not answer on tcp/443"
    ]
    only6 = check_report(
        mode="tunnel", path="tunnel", green=0, failures=edge_down, home=(6,), published=(6,), **VPS_DOWN
    )
    diagnosis = diagnose(only6, Context("prod"))
    assert diagnosis.way is None and "IPv6 only" in diagnosis.why
    [blocker] = switch_blockers(only6, {}, "failover", "direct-dns")
    assert "DNS-only needs the home's IPv4" in blocker
    assert switch_blockers(only6, {}, "failover", "direct") == []  # through the edge, IPv6 serves everyone


def test_a_home_that_does_not_answer_is_no_way_and_says_why() -> None:
    report = check_report(
        mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS}, home=(), **VPS_DOWN,
        problems=(("home", "the home's IPv4 198.51.100.40 does not answer on tcp/443"),),
    )  # fmt: skip
    diagnosis = diagnose(report, Context("prod"))
    assert diagnosis.way is None and diagnosis.case == "tunnel/vps-down"
    assert "nor does the home straight from its own address: the home's IPv4 198.51.100.40" in diagnosis.why
    assert switch_blockers(report, {}, "failover", "direct") == [
        "the home's IPv4 198.51.100.40 does not answer on tcp/443"
    ]
    unconfigured = check_report(mode="tunnel", path="tunnel", green=0, failures={"tunnel_error": HOSTS}, **VPS_DOWN)
    [blocker] = switch_blockers(unconfigured, {}, "failover", "direct")
    assert "set homeAddress or homeAddress6" in blocker


def test_cloudflare_and_the_vps_gone_the_emergency_offers_the_mirrors_direct_records() -> None:
    report = check_report(
        mode="tunnel", path="tunnel", green=0, failures={"connect_timeout": HOSTS}, home=(4, 6), **VPS_DOWN
    )
    report.cloudflare_api.state = report.cloudflare_api.state.__class__("unreachable")
    command = "pulumi config set --stack prod failoverVia direct-dns && ..."
    diagnosis = diagnose(report, Context("prod", "the VPS's emergency", command))
    assert (diagnosis.way, diagnosis.command, diagnosis.case) == (Way.EMERGENCY, command, "api/vps-down/home")
    without = diagnose(report, Context("prod", "the VPS's emergency"))
    assert without.way is None and "needs the Hetzner mirror" in without.why


def test_the_homes_silence_is_named_by_family_and_failure() -> None:
    from mana_infra.check.assess import home_unreached
    from mana_infra.check.report import DnsPath, Failure, HomeReach

    def reach(family: int, failure: Failure | None, error: str | None = None) -> HomeReach:
        address = "198.51.100.40" if family == 4 else "2001:db8:1a::20"
        return HomeReach(DnsPath.HOME, failure is None, address, None, None, None, None, False, False,
                         error or (failure and failure.label), failure, None, family=family)  # fmt: skip

    v4_silent, v6_ok = reach(4, Failure.CONNECT_TIMEOUT), reach(6, None)
    words = home_unreached(v4_silent, [v4_silent, v6_ok])
    assert "port 443 is not forwarded to the Mac Mini" in words and "DS-Lite" in words
    assert "IPv6 answers, so the Mac Mini's Caddy runs" in words
    v6_silent = reach(6, Failure.CONNECT_TIMEOUT)
    assert "the router's IPv6 firewall does not open it" in home_unreached(v6_silent, [v6_silent])
    v6_refused = reach(6, Failure.CONNECT_REFUSED)
    assert "the Mac Mini's Caddy does not run" in home_unreached(v6_refused, [v6_refused])
    untrusted = reach(4, Failure.CERT_UNTRUSTED)
    assert "serves no valid certificate" in home_unreached(untrusted, [untrusted])
