"""`mana-infra deploy`, the unattended run: it keeps the deployed mode whatever the checkout says, says
so with since when and by what, and puts the checkout's config back."""

from __future__ import annotations

from mana_infra.deploy import run_deploy

from .test_cutover import FakeEngine

IN_FAILOVER = {
    "mode": "failover",
    "failoverVia": "edge",
    "modeSince": "2026-12-07T03:00:00+00:00",
    "modeChangedBy": "mana-infra cutover by op@laptop",
}


def test_the_weekly_run_never_fails_back_a_cut_over_made_elsewhere() -> None:
    engine = FakeEngine(dict(IN_FAILOVER), config={"mode": "tunnel"})  # main's Pulumi.prod.yaml
    lines: list[str] = []
    verdict = run_deploy(engine, lines.append)
    assert verdict.ok and verdict.exit_code == 0 and verdict.kept is not None
    assert engine.config_at_up == {"mode": "failover", "failoverVia": "edge"}  # the deployed mode, kept
    assert engine.config == {"mode": "tunnel"}  # the checkout as it was
    assert lines[0] == (
        "stack prod is failover through the edge since 2026-12-07T03:00:00+00:00 (by mana-infra cutover by "
        "op@laptop); this checkout's Pulumi.prod.yaml says tunnel: an unattended run never changes the mode, so "
        "this one keeps failover through the edge (`mana-infra failback` or `cutover` is how a person changes it)"
    )


def test_in_the_deployed_mode_it_is_a_plain_pulumi_up() -> None:
    engine = FakeEngine({"mode": "tunnel", "failoverVia": "edge"}, config={"mode": "tunnel"})
    lines: list[str] = []
    verdict = run_deploy(engine, lines.append)
    assert verdict.ok and verdict.kept is None and engine.calls == ["up"]
    assert not any("keeps" in line for line in lines)


def test_a_failed_up_puts_the_config_back_and_fails() -> None:
    engine = FakeEngine(dict(IN_FAILOVER), config={"mode": "tunnel"}, fail="the stack is locked")
    verdict = run_deploy(engine, lambda _line: None)
    assert not verdict.ok and verdict.exit_code == 1 and "the stack is locked" in verdict.error
    assert engine.config.get("mode") == "tunnel" and engine.config.get("failoverVia") is None
