"""`mana-infra cutover [--via edge|dns]` and `mana-infra failback`: the seed's checklist as one command.

Stages, each shown as it happens and timed: the pre-flight (`mana-infra check` on the stack as it is:
the standby must be green, unless --force), the configuration (`mode`, and for a cut-over
`failoverVia`), `pulumi up` through Pulumi's Automation API (every resource step printed as the
engine reports it), then `mana-infra check` again until every host is green through the new path, or
the time limit passes. Exit 0 only when every host is green. `--preview` changes nothing: it sets the
configuration, previews, and puts the configuration back.

The engine and the check are seams (`Engine`, `Checker`): the operator's are Pulumi's Automation API
and the real check; the tests and the lab put their own behind them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .check import decision
from .check.core import Endpoints
from .check.core import Options as CheckOptions
from .check.report import Report
from .errors import ExitCode, InputError, Problem
from .model import VIA_WORDS, VIAS, Mode, Via
from .outputs import Output
from .project import PROJECT, Project

# Time limits when the outputs carry no budget: Cloudflare follows a proxied record within a minute;
# resolvers keep a proxied record's answers for 300 s.
DEFAULT_WITHIN = {"edge": 120.0, "dns": 360.0, "tunnel": 360.0}


class Engine(Protocol):
    """What the command needs of Pulumi for one stack."""

    stack_name: str

    def get_config(self, key: str) -> str | None: ...

    def effective_config(self, key: str) -> str | None:
        """The value `pulumi up` would use: the stack file's, else Pulumi.yaml's default."""

    def set_config(self, values: Mapping[str, str | None]) -> None:
        """Set (a value) or remove (None) project config keys."""

    def preview(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        """Preview; on_step(op, resource URN) per step that is not `same`; the count of each op."""

    def up(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        """Update; on_step(op, resource URN) per step that is not `same`; the count of each op."""

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs, secrets left out."""


Checker = Callable[[Mapping[str, Any]], Report]
"""Runs `mana-infra check` on a stack's outputs: its report."""


@dataclass
class Stage:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Verdict:
    target: str
    stages: list[Stage] = field(default_factory=list)
    green: bool = False
    previewed: bool = False
    refused_by_lock: bool = False  # Pulumi's lock refused the update: nothing ran
    hosts: int = 0
    green_hosts: int = 0
    steps: list[dict[str, str]] = field(default_factory=list)
    """Every step of the engine that was not `same`: {"type", "name", "op"} (op as Pulumi reports the
    step; a replacement is one "replace")."""

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.green or self.previewed else ExitCode.NOT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "green": self.green,
            "previewed": self.previewed,
            "hosts": self.hosts,
            "green_hosts": self.green_hosts,
            "stages": [{"name": s.name, "seconds": s.seconds, "ok": s.ok, "detail": s.detail} for s in self.stages],
            "steps": self.steps,
        }


@dataclass
class Switch:
    """Where the command takes the stack."""

    mode: Mode
    via: Via | None = None  # None: keep the stack's way (a fail-back)

    @property
    def label(self) -> str:
        return "fail back to the tunnel" if self.mode == "tunnel" else f"cut over {VIA_WORDS[self.via or 'edge']}"

    def config(self) -> dict[str, str]:
        values: dict[str, str] = {"mode": self.mode}
        if self.via is not None:
            values["failoverVia"] = self.via
        return values


def green_hosts(report: Report) -> int:
    """Hosts whose DNS gives the path of the stack's mode and that answer through it."""
    return sum(1 for host in report.hosts if host.dns.path is host.dns.expected and host.live.ok)


@dataclass(frozen=True)
class Options:
    """How `run` goes: a preview or the real thing, past a failed pre-flight or not, its time limit; the
    log, clock and sleep are seams the tests drive."""

    preview: bool = False
    force: bool = False
    within: float | None = None  # seconds for every host to be green; None: the way's budget + 60 s
    interval: float = 2.0  # between the checks after `pulumi up`
    log: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def run(engine: Engine, checker: Checker, switch: Switch, options: Options = Options()) -> Verdict:
    """The stages; what failed stops the command with its verdict."""
    return _Switching(engine, checker, switch, options).run()


class _Switching:
    """One cut-over or fail-back, stage by stage, each timed and logged as it ends."""

    def __init__(self, engine: Engine, checker: Checker, switch: Switch, options: Options) -> None:
        self.engine, self.checker, self.switch, self.options = engine, checker, switch, options
        self.verdict = Verdict(target=switch.label)

    def stage(self, name: str, started: float, ok: bool, detail: str = "") -> bool:
        done = Stage(name, round(self.options.clock() - started, 2), ok, detail)
        self.verdict.stages.append(done)
        self.options.log(f"[{'ok' if ok else 'FAIL'}] {name} ({done.seconds:.1f} s){': ' + detail if detail else ''}")
        return ok

    def run(self) -> Verdict:
        if self.preflight() and self.apply() and not self.verdict.previewed:
            self.until_green()
        return self.verdict

    def preflight(self) -> bool:
        """1. The stack as it is: the decision says what keeps the switch from helping."""
        engine, switch, started = self.engine, self.switch, self.options.clock()
        before = engine.outputs()
        if not before:
            return self.stage(
                "pre-flight",
                started,
                False,
                f"stack {engine.stack_name} has no outputs yet: it was never deployed, so there is no standby to "
                f"check; `pulumi up --stack {engine.stack_name}` builds it first",
            )
        report = self.checker(before)
        self.verdict.hosts = len(report.hosts)
        if blocked := decision.adoption_blocker(before, switch.mode, switch.via, engine.stack_name):
            return self.stage("pre-flight", started, False, blocked)
        problems = decision.switch_blockers(report, before, switch.mode, switch.via)
        if problems and not self.options.force:
            anyway = "fails back" if switch.mode == "tunnel" else "cuts over"
            return self.stage("pre-flight", started, False, "; ".join(problems) + f" (--force {anyway} all the same)")
        ready = "the tunnel serves" if switch.mode == "tunnel" else "the standby is green"
        return self.stage("pre-flight", started, True, ready if not problems else "forced past: " + "; ".join(problems))

    def apply(self) -> bool:
        """2. The configuration, and 3. the engine (a preview puts the configuration back)."""
        engine, config, clock = self.engine, self.switch.config(), self.options.clock
        previous = {key: engine.get_config(key) for key in config}
        started = clock()
        engine.set_config(config)
        self.stage("configuration", started, True, ", ".join(f"{k}={v}" for k, v in config.items()))
        started = clock()
        if self.options.preview:
            try:
                counts = engine.preview(self.step)
            finally:
                engine.set_config(previous)
            self.verdict.previewed = True
            return self.stage("preview", started, True, _counts(counts) + "; the configuration is back as it was")
        try:
            counts = engine.up(self.step)
        except Exception as exc:  # the engine's own error: said as it is, the verdict says where it stopped
            words = f"{exc}".strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            if concurrent_update(exc):  # nothing ran: the stack is as it was, and so is its configuration
                engine.set_config(previous)
                self.verdict.refused_by_lock = True
                words = (
                    f"another update of stack {engine.stack_name} is running (Pulumi's lock on the stack): "
                    f"nothing changed, the configuration is back as it was; run this again when it ends ({words})"
                )
            return self.stage("pulumi up", started, False, words)
        return self.stage("pulumi up", started, True, _counts(counts))

    def step(self, op: str, urn: str) -> None:
        found = resource_step(op, urn)
        if found not in self.verdict.steps:
            self.verdict.steps.append(found)
        self.options.log(f"    {op:<8} {found['name']}")

    def until_green(self) -> None:
        """4. check on the new outputs until every host is green through the new path, or the limit."""
        verdict, options = self.verdict, self.options
        after = self.engine.outputs()
        limit = options.within if options.within is not None else _within(after, self.switch)
        started = options.clock()
        while True:
            report = self.checker(after)
            verdict.hosts, verdict.green_hosts = len(report.hosts), green_hosts(report)
            problems = decision.switched_problems(report, self.switch.via)
            if not problems and verdict.green_hosts == verdict.hosts:
                verdict.green = True
                self.stage("every host green", started, True, f"{verdict.green_hosts} of {verdict.hosts}")
                return
            if options.clock() - started + options.interval > limit:
                detail = f"{verdict.green_hosts} of {verdict.hosts} green after {limit:g} s: {'; '.join(problems[:3])}"
                self.stage("every host green", started, False, detail)
                return
            options.sleep(options.interval)


def concurrent_update(error: Exception) -> bool:
    """Pulumi refused the update because another one holds the stack (Automation API's
    ConcurrentUpdateError; the CLI's words for the file backend's and Pulumi Cloud's lock)."""
    if type(error).__name__ == "ConcurrentUpdateError":
        return True
    text = str(error)
    return "currently locked" in text or "Another update is currently in progress" in text


# How Pulumi names the parts of one replacement; reported as the one step "replace".
REPLACEMENT_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "discard-replaced"})


def resource_step(op: str, urn: str) -> dict[str, str]:
    """A step as reports give it: the resource's type token and name (from its URN), and the op."""
    qualified, _, name = urn.rpartition("::")
    kind = qualified.rpartition("::")[2].rpartition("$")[2]
    return {"type": kind, "name": name, "op": "replace" if op in REPLACEMENT_OPS else op}


def _counts(counts: Mapping[str, int]) -> str:
    changed = {op: n for op, n in counts.items() if op != "same" and n}
    return ", ".join(f"{n} {op}" for op, n in sorted(changed.items())) or "no changes"


def _within(outputs: Mapping[str, Any], switch: Switch) -> float:
    """The time limit: the way's budget from the outputs (as the records were), and a minute more."""
    way = "tunnel" if switch.mode == "tunnel" else str(switch.via or outputs.get(Output.FAILOVER_VIA) or "edge")
    budget = outputs.get(Output.CUTOVER_BUDGET) or {}
    seconds = (budget.get(way) or {}).get("seconds") if isinstance(budget, dict) and way in VIAS else None
    return float(seconds) + 60 if isinstance(seconds, int | float) else DEFAULT_WITHIN.get(way, DEFAULT_WITHIN["dns"])


# --------------------------------------------------------------------------------- the operator's seams


SECRET_SENTINEL = "[secret]"  # how `pulumi stack output --json` shows a secret without --show-secrets


class AutomationEngine:
    """Pulumi's Automation API on the project's stack (the Pulumi CLI does the work)."""

    def __init__(self, stack: str, project_dir: Path, policy_packs: Sequence[str] = ()) -> None:
        from pulumi import automation

        self._automation, self.policy_packs = automation, list(policy_packs)
        self._project, self.stack_name = Project.at(project_dir), stack
        try:
            self.stack = automation.select_stack(stack_name=stack, work_dir=str(project_dir))
        except Exception as exc:  # no CLI, no login, no such stack: the CLI's own words
            words = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            fix = (
                f"`pulumi stack init {stack}` in {project_dir} (the backend you are logged in to has no such stack)"
                if "no stack named" in str(exc)
                else "install the Pulumi CLI, `pulumi login`, and run this in the project folder"
            )
            raise InputError([Problem(f"stack {stack}", f"cannot be selected: {words}", fix)]) from None

    def get_config(self, key: str) -> str | None:
        """The stack file's own value (None: not set there, Pulumi.yaml's default applies): what a
        preview puts back."""
        value = self._project.stack_config(self.stack_name).stack_values.get(f"{PROJECT}:{key}")
        return None if value is None else str(value)

    def effective_config(self, key: str) -> str | None:
        return self._project.stack_config(self.stack_name).get(key)

    def set_config(self, values: Mapping[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                self.stack.remove_config(f"{PROJECT}:{key}")
            else:
                self.stack.set_config(f"{PROJECT}:{key}", self._automation.ConfigValue(value))

    def _on_event(self, on_step: Callable[[str, str], None]) -> Callable[[Any], None]:
        def handle(event: Any) -> None:
            pre = event.resource_pre_event
            # A read (the program's StackReferences) changes nothing.
            if pre is not None and str(pre.metadata.op.value) not in ("same", "read", "refresh"):
                on_step(str(pre.metadata.op.value), pre.metadata.urn)

        return handle

    def preview(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        result = self.stack.preview(on_event=self._on_event(on_step))
        return {str(op.value): n for op, n in result.change_summary.items()}

    def up(self, on_step: Callable[[str, str], None]) -> dict[str, int]:
        result = self.stack.up(on_event=self._on_event(on_step), policy_packs=self.policy_packs or None)
        return {
            str(op.value if hasattr(op, "value") else op): n
            for op, n in (result.summary.resource_changes or {}).items()
        }

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs but its secrets. One CLI call: the Automation API's `outputs()` makes a
        second with --show-secrets only to learn which are secret, which the masked answer tells too
        (its "[secret]", the sentinel the API compares against); the watchdog asks every round."""
        workspace = self.stack.workspace
        masked = workspace.pulumi_command.run(
            ["stack", "output", "--json", "--stack", self.stack.name],
            workspace.work_dir,
            getattr(workspace, "env_vars", None) or {},
        )
        values: dict[str, Any] = json.loads(masked.stdout)
        return {name: value for name, value in values.items() if value != SECRET_SENTINEL}


class CheckWith:
    """The real check on a stack's outputs, with the check flags the operator gave the command (resolver,
    CA file, SSH key, ...): `args` is the command's parse, which carries check's flags. A Checker."""

    def __init__(self, args: argparse.Namespace, stack: str) -> None:
        from .check import cli as check

        checks_own = argparse.ArgumentParser(add_help=False)
        check.add_arguments(checks_own, for_switch=True)
        # check's own defaults, the flags a switch passes on as the operator gave them: parsed once.
        self.given = {name: getattr(args, name) for name in vars(checks_own.parse_args([]))}
        self.defaults = vars(check.parse_args(["--stack", stack]))
        self._last: tuple[dict[str, Any], tuple[Endpoints, CheckOptions]] | None = None
        self._building = threading.Lock()  # the watchdog's check and its VPS vote ask at the same time

    def inputs(self, outputs: Mapping[str, Any]) -> tuple[Endpoints, CheckOptions]:
        """check's endpoints and options for these outputs (the watchdog's VPS vote uses them too: the
        same outputs twice a round are built once)."""
        from .check import cli as check

        with self._building:
            if self._last is not None and self._last[0] == dict(outputs):
                return self._last[1]
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="mana-infra-outputs-") as file:
                json.dump(dict(outputs), file)
                file.flush()
                built = check.build(argparse.Namespace(**{**self.defaults, **self.given, "outputs": file.name}))
            self._last = (dict(outputs), built)
            return built

    def __call__(self, outputs: Mapping[str, Any]) -> Report:
        from .check.view import check_once

        endpoints, options = self.inputs(outputs)
        return check_once(endpoints, options, show_progress=False)


def check_with(args: argparse.Namespace, stack: str) -> CheckWith:
    return CheckWith(args, stack)


def print_verdict(verdict: Verdict, stream: Any = None) -> None:
    out = stream or sys.stdout
    total = sum(stage.seconds for stage in verdict.stages)
    word = "PREVIEWED, nothing changed" if verdict.previewed else ("GREEN" if verdict.green else "NOT GREEN")
    print(f"{verdict.target}: {word}, {verdict.green_hosts} of {verdict.hosts} hosts, {total:.1f} s", file=out)
    for stage in verdict.stages:
        print(f"  {stage.name:<18} {stage.seconds:7.1f} s  {'ok' if stage.ok else 'FAILED'}", file=out)
