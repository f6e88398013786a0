"""`mana-infra deploy`: the unattended `pulumi up` (the weekly run, a deploy of main). It never changes
the deployed mode: the stack's outputs say which mode and way it is in (deployed.py), and when the
checkout's config says otherwise — a cut-over made from another machine, not in main — this run keeps
the deployed ones and says so, since when and by what. Everything else (certificates, the mirror, the
inventory) it deploys as `pulumi up` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .cutover import Engine, resource_step
from .deployed import ModeRecord
from .errors import ExitCode

UNATTENDED = "mana-infra deploy (unattended)"  # what the stack's modeChangedBy would say


@dataclass
class DeployVerdict:
    ok: bool = False
    kept: ModeRecord | None = None  # the deployed mode the run kept against the checkout's config
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.NOT_OK


def run_deploy(engine: Engine, log: Callable[[str], None] = print) -> DeployVerdict:
    """`pulumi up` of the stack in its deployed mode; the checkout's mode and way put back afterwards."""
    verdict = DeployVerdict()
    deployed = ModeRecord.from_outputs(engine.outputs())
    configured = ModeRecord(engine.effective_config("mode") or "tunnel", engine.effective_config("failoverVia"))
    configured = ModeRecord(configured.mode, configured.via if configured.mode == "failover" else None)
    previous = {key: engine.get_config(key) for key in ("mode", "failoverVia")}
    keep = deployed is not None and deployed.state != configured.state
    if deployed is not None and keep:
        verdict.kept = deployed
        log(
            f"stack {engine.stack_name} is {deployed.text()}; this checkout's Pulumi.{engine.stack_name}.yaml "
            f"says {configured.words}: an unattended run never changes the mode, so this one keeps "
            f"{deployed.words} (`mana-infra failback` or `cutover` is how a person changes it)"
        )
        engine.set_config({"mode": deployed.mode, **({"failoverVia": deployed.via} if deployed.via else {})})

    def step(op: str, urn: str) -> None:
        log(f"    {op:<8} {resource_step(op, urn)['name']}")

    try:
        verdict.counts = engine.up(step)
        verdict.ok = True
    except Exception as exc:  # the engine's own words; the config is put back either way
        verdict.error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        log(f"pulumi up failed: {verdict.error}")
    finally:
        if keep:
            engine.set_config(previous)
    return verdict
