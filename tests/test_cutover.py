"""`mana-infra cutover` and `failback`: the checklist as one command, stage by stage, green or not."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mana_infra import cli, cutover
from mana_infra.check import Report
from mana_infra.errors import InputError

from .support import check_report as report
from .support import copy_project, local_backend, require_engine

URN = "urn:pulumi:prod::mana-infra::"


class FakeEngine:
    """The stack's config and outputs as Pulumi would keep them; `up` makes the outputs follow the mode."""

    def __init__(self, outputs: dict[str, Any], config: dict[str, str] | None = None, fail: str = "") -> None:
        self.stack_name = "prod"
        self.config = dict(config or {"mode": "tunnel"})
        self._outputs, self.fail, self.calls = outputs, fail, []  # type: list[str]

    def get_config(self, key: str) -> str | None:
        return self.config.get(key)

    def effective_config(self, key: str) -> str | None:
        return self.config.get(key) or {"mode": "tunnel", "failoverVia": "edge"}.get(key)

    def set_config(self, values: Mapping[str, str | None]) -> None:
        self.calls.append(f"set {dict(values)}")
        for key, value in values.items():
            if value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = value

    def preview(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        self.calls.append("preview")
        on_step("update", URN + "cloudflare:index/dnsRecord:DnsRecord::dns-auth.mana.how")
        return {"update": 28, "same": 40}

    def up(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        self.calls.append("up")
        self.config_at_up = dict(self.config)
        if self.fail:
            raise RuntimeError(f"error: {self.fail}")
        on_step("update", URN + "mana-infra:index:CaddyConfig$command:remote:Command::caddy-apply")
        on_step("update", URN + "cloudflare:index/dnsRecord:DnsRecord::dns-auth.mana.how")
        self._outputs = {**self._outputs, "mode": self.config["mode"]}
        return {"update": 28, "same": 40}

    def outputs(self) -> dict[str, Any]:
        return dict(self._outputs)


class Checks:
    """Answers check's reports in turn; the last one repeats."""

    def __init__(self, *reports: Report) -> None:
        self.reports, self.seen = list(reports), []  # type: list[Mapping[str, Any]]

    def __call__(self, outputs: Mapping[str, Any]) -> Report:
        self.seen.append(dict(outputs))
        return self.reports.pop(0) if len(self.reports) > 1 else self.reports[0]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


OUTPUTS = {"mode": "tunnel", "failoverVia": "edge", "zoneSslMode": "strict",
           "cutoverBudget": {"edge": {"seconds": 60}, "dns": {"seconds": 300}}}  # fmt: skip


def switch_with(engine: FakeEngine, checks: Checks, target: cutover.Switch, **options: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    clock = Clock()
    verdict = cutover.run(
        engine, checks, target, cutover.Options(log=lines.append, clock=clock, sleep=clock.sleep, **options)
    )
    return verdict, lines


def test_a_cut_over_through_the_edge_stage_by_stage_until_every_host_is_green() -> None:
    engine = FakeEngine(dict(OUTPUTS))
    checks = Checks(report(green=0, standby="up"), report(green=1), report(green=3))
    verdict, lines = switch_with(engine, checks, cutover.Switch("failover", "edge"))
    assert verdict.exit_code == 0 and verdict.green and (verdict.green_hosts, verdict.hosts) == (3, 3)
    assert [s.name for s in verdict.stages] == ["pre-flight", "configuration", "pulumi up", "every host green"]
    assert engine.config == {"mode": "failover", "failoverVia": "edge"}
    assert engine.calls == ["set {'mode': 'failover', 'failoverVia': 'edge'}", "up"]
    assert "    update   caddy-apply" in lines and "    update   dns-auth.mana.how" in lines  # as they happen
    assert lines[0].startswith("[ok] pre-flight") and "the standby is green" in lines[0]
    assert checks.seen[-1]["mode"] == "failover"  # checked on the new outputs
    assert verdict.stages[-1].seconds == 2.0  # green at the second check after the update, 2 s later


def test_a_standby_that_is_not_green_is_not_cut_over_to_unless_forced() -> None:
    broken = report(
        green=0, standby="down", problems=(("standby", "standby path (HTTPS straight to the VPS) down: 3 of 3 fail"),)
    )
    engine = FakeEngine(dict(OUTPUTS))
    verdict, lines = switch_with(engine, Checks(broken), cutover.Switch("failover", "dns"))
    assert verdict.exit_code == 1 and engine.calls == [] and engine.config == {"mode": "tunnel"}
    assert lines == [
        "[FAIL] pre-flight (0.0 s): standby: down; standby path (HTTPS straight to the VPS) down: 3 of 3 fail "
        "(--force cuts over all the same)"
    ]
    engine = FakeEngine(dict(OUTPUTS))
    verdict, lines = switch_with(engine, Checks(broken, report()), cutover.Switch("failover", "dns"), force=True)
    assert verdict.exit_code == 0 and "forced past: standby: down" in lines[0] and "up" in engine.calls


def test_the_edge_way_without_full_strict_is_refused_saying_how() -> None:
    engine = FakeEngine({**OUTPUTS, "zoneSslMode": "full"})
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "edge"))
    assert verdict.exit_code == 1 and engine.calls == []
    assert "the zone's SSL/TLS mode is 'full': the way through the edge needs Full (strict)" in lines[0]
    assert "or cut over --via dns" in lines[0]


def test_a_preview_changes_nothing_and_puts_the_configuration_back() -> None:
    engine = FakeEngine(dict(OUTPUTS), config={"mode": "tunnel"})  # failoverVia unset before
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "dns"), preview=True)
    assert verdict.exit_code == 0 and verdict.previewed and not verdict.green
    assert engine.calls == ["set {'mode': 'failover', 'failoverVia': 'dns'}", "preview",
                            "set {'mode': 'tunnel', 'failoverVia': None}"]  # fmt: skip
    assert engine.config == {"mode": "tunnel"}
    assert any("28 update; the configuration is back as it was" in line for line in lines)


def test_not_green_within_the_ways_budget_is_a_failure_that_says_what_is_wrong() -> None:
    engine = FakeEngine(dict(OUTPUTS))
    stuck = report(green=1, problems=(("dns", "DNS: 2 hosts resolve to the tunnel path"),))
    verdict, _ = switch_with(engine, Checks(report(), stuck), cutover.Switch("failover", "edge"))
    assert verdict.exit_code == 1 and verdict.green_hosts == 1
    last = verdict.stages[-1]
    assert (last.name, last.ok) == ("every host green", False)
    assert last.detail.startswith("1 of 3 green after 120 s: DNS: 2 hosts resolve to the tunnel path")  # 60 s + 60


def test_an_engine_error_stops_the_command_with_the_engines_words() -> None:
    engine = FakeEngine(dict(OUTPUTS), fail="update failed: dns-auth.mana.how: 81053 record already exists")
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "edge"))
    assert verdict.exit_code == 1 and verdict.stages[-1].name == "pulumi up"
    assert "81053 record already exists" in lines[-1]


def test_a_fail_back_sets_the_mode_and_keeps_the_way() -> None:
    engine = FakeEngine({**OUTPUTS, "mode": "failover"}, config={"mode": "failover", "failoverVia": "dns"})
    tunnel = report(path="tunnel")
    verdict, _ = switch_with(engine, Checks(report(standby="down"), tunnel), cutover.Switch("tunnel"))
    assert verdict.exit_code == 0 and engine.config == {"mode": "tunnel", "failoverVia": "dns"}
    assert verdict.stages[0].ok and verdict.stages[0].detail == "the tunnel serves"  # no standby needed


def test_a_fail_back_while_the_tunnel_is_down_is_refused_unless_forced() -> None:
    """Failed back too early, every host is down until the tunnel returns: the probe name says first."""
    engine = FakeEngine({**OUTPUTS, "mode": "failover"}, config={"mode": "failover", "failoverVia": "edge"})
    verdict, lines = switch_with(engine, Checks(report(tunnel="down")), cutover.Switch("tunnel"))
    assert verdict.exit_code == 1 and engine.calls == [] and engine.config["mode"] == "failover"
    assert lines == [
        "[FAIL] pre-flight (0.0 s): the tunnel is down (tunnel-probe.mana.how: HTTP 530 (Cloudflare error 1033: the "
        "tunnel has no cloudflared connection)): every host would be down until the tunnel is back "
        "(--force fails back all the same)"
    ]
    unknown = report(tunnel="not_checked")
    verdict, lines = switch_with(engine, Checks(unknown), cutover.Switch("tunnel"))
    assert verdict.exit_code == 1 and lines[0].startswith("[FAIL] pre-flight (0.0 s): whether the tunnel serves is not")
    verdict, lines = switch_with(engine, Checks(report(tunnel="down"), report()), cutover.Switch("tunnel"), force=True)
    assert verdict.exit_code == 0 and "forced past: the tunnel is down" in lines[0] and "up" in engine.calls


def test_without_a_terminal_the_command_wants_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["cutover", "--via", "dns"]) == 2
    assert "--yes: is needed without a terminal to ask" in capsys.readouterr().err


@pytest.fixture
def real_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stack of this project in a local backend, through the real Pulumi CLI."""
    binary = require_engine()
    project = copy_project(tmp_path / "project", ("Pulumi.yaml", "Pulumi.prod.yaml", "services.yaml"))
    monkeypatch.setenv("PATH", f"{Path(binary).parent}:{os.environ['PATH']}")
    for key, value in local_backend(tmp_path).items():
        monkeypatch.setenv(key, value)
    from pulumi import automation

    automation.create_stack("prod", work_dir=str(project))
    yield project


def test_a_stack_the_backend_does_not_have_is_told_to_init_it(real_stack: Path) -> None:
    """Logged in, no stack `staging` there: the fix is `pulumi stack init`, not installing the CLI."""
    with pytest.raises(InputError) as refused:
        cutover.AutomationEngine("staging", real_stack)
    [problem] = refused.value.problems
    assert "no stack named 'staging' found" in problem.message, problem
    assert problem.fix is not None and problem.fix.startswith("`pulumi stack init staging` in ")


def test_the_automation_engine_sets_and_restores_config_with_the_real_cli(real_stack: Path) -> None:
    engine = cutover.AutomationEngine("prod", real_stack)
    assert engine.get_config("mode") == "tunnel" and engine.get_config("failoverVia") is None
    engine.set_config({"mode": "failover", "failoverVia": "dns"})
    assert "mana-infra:failoverVia: dns" in (real_stack / "Pulumi.prod.yaml").read_text()
    engine.set_config({"mode": "tunnel", "failoverVia": None})
    assert engine.get_config("mode") == "tunnel" and engine.get_config("failoverVia") is None


def test_a_stack_never_deployed_says_so_and_what_to_run() -> None:
    """Before the first `pulumi up` there are no outputs: not "the Pulumi CLI is not installed"."""
    engine = FakeEngine({})
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "edge"), preview=True)
    assert verdict.exit_code == 1 and engine.calls == []
    assert lines == [
        "[FAIL] pre-flight (0.0 s): stack prod has no outputs yet: it was never deployed, so there is no standby "
        "to check; `pulumi up --stack prod` builds it first"
    ]


@pytest.mark.parametrize(
    "arguments, flag, fix",
    [
        (["cutover", "--preveiw"], "--preveiw", "did you mean --preview?"),
        (["failback", "--via", "dns"], "--via", "leave it out: failback returns to the tunnel"),
        (["cutover", "--resolvr", "192.0.2.53"], "--resolvr", "did you mean --resolver?"),
        (["failback", "--watch", "30"], "--watch", "it is `mana-infra check`'s: mana-infra check --watch"),
        (["cutover", "--fast"], "--fast", "`mana-infra cutover --help` lists every flag"),
    ],
)
def test_a_flag_the_command_does_not_take_is_refused_before_anything_runs(
    arguments: list[str], flag: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert f"{flag}: is not a flag of mana-infra {arguments[0]}" in err and fix in err, err
    assert "--yes" not in err  # never the advice to run the real thing


@pytest.mark.parametrize("command", ["cutover", "failback"])
def test_help_lists_every_flag_with_its_own_description(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert cli.SWITCH_DESCRIPTIONS[command].split(":")[0] in out
    for flag in ("--stack", "--force", "--preview", "--yes", "--within", "--json", "--resolver", "--ca-file",
                 "--ssh-key", "--timeout", "--tunnel-probe"):  # fmt: skip
        assert flag in out, flag
    assert ("--via" in out) == (command == "cutover")
    assert "check's flags, for the pre-flight and the checks after" in out


def test_adopt_records_left_set_block_a_switch_whose_ttl_they_would_ignore() -> None:
    """adoptRecords after the first run: the records ignore TTL changes, so DNS-only would keep 300 s."""
    outputs = {**OUTPUTS, "adoptRecordsLeft": ["auth.mana.how"]}
    engine = FakeEngine(dict(outputs))
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "dns"), force=True)
    assert verdict.exit_code == 1 and engine.calls == []
    assert lines == [
        "[FAIL] pre-flight (0.0 s): adoptRecords is still set for 1 host: their records ignore TTL and comment "
        "changes; pulumi config rm --stack prod adoptRecords && pulumi up --stack prod: this switch changes "
        "their TTL"
    ]
    # Through the edge the TTL stays automatic: nothing it would ignore.
    engine = FakeEngine(dict(outputs))
    verdict, _ = switch_with(engine, Checks(report(green=0), report()), cutover.Switch("failover", "edge"))
    assert verdict.exit_code == 0


def test_a_direct_cut_over_with_the_vps_down_is_green_through_the_home_and_says_what_the_standby_has() -> None:
    """Plan C: the VPS down is why the direct way was taken; its problems do not hold the verdict back, any
    other does; the pre-flight asks the home, not the standby."""
    engine = FakeEngine(dict(OUTPUTS))
    vps = (("vps", "VPS health https://vps.mana.how/healthz fails: connection refused"),)
    before = report(mode="tunnel", path="tunnel", green=0, standby="down", vps="down", home=(4, 6), problems=vps)
    after = report(path="home", standby="down", vps="down", home=(4, 6), problems=vps)
    verdict, lines = switch_with(engine, Checks(before, after), cutover.Switch("failover", "direct"))
    assert verdict.exit_code == 0 and verdict.green, lines
    assert engine.config == {"mode": "failover", "failoverVia": "direct"}
    assert verdict.target == "cut over straight to the home through the edge"
    stray = report(path="home", home=(4, 6), problems=(("home", "the home's IPv6 ... does not answer"),))
    engine = FakeEngine(dict(OUTPUTS))
    verdict, _ = switch_with(engine, Checks(before, stray), cutover.Switch("failover", "direct"), within=4)
    assert not verdict.green and "the home's IPv6" in verdict.stages[-1].detail
    nowhere = report(mode="tunnel", path="tunnel", green=0, standby="down", vps="down", home=())
    verdict, _ = switch_with(FakeEngine(dict(OUTPUTS)), Checks(nowhere), cutover.Switch("failover", "direct"))
    assert not verdict.green and verdict.stages[0].name == "pre-flight" and not verdict.stages[0].ok
