"""The real-engine lab's glue that the suite's world does not walk (it is kept by `lab e2e --keep`):
what `lab up --engine`'s keeper runs, in order, and what `lab up --engine` records and prints. The runs
themselves are proven through the real engine in tests/e2e."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from mana_lab import cli, engine_lab, keeper
from mana_lab.system import LabError


class FakeEndToEnd:
    def __init__(self, failing: str = "") -> None:
        self.calls: list[str] = []
        self.failing = failing

    def start(self) -> None:
        self.calls.append("start")

    def up_tunnel(self, run: Any) -> None:
        self._run("up_tunnel", run)

    def up_after_adoption(self, run: Any) -> None:
        self._run("up_after_adoption", run)

    def _run(self, name: str, run: Any) -> None:
        self.calls.append(name)
        if name == self.failing:
            run.problems.append("exit 255: the engine said no")


def test_the_keeper_deploys_as_the_readme_says_in_order() -> None:
    e2e = FakeEndToEnd()
    keeper.deploy_as_the_readme_says(e2e)  # type: ignore[arg-type]
    assert e2e.calls == ["start", "up_tunnel", "up_after_adoption"]


@pytest.mark.parametrize(
    ("failing", "said"),
    [("up_tunnel", "the first `pulumi up`: exit 255"), ("up_after_adoption", "the run after the adoption: exit 255")],
)
def test_a_failed_step_stops_the_keeper_naming_it(failing: str, said: str) -> None:
    e2e = FakeEndToEnd(failing)
    with pytest.raises(LabError, match=said):
        keeper.deploy_as_the_readme_says(e2e)  # type: ignore[arg-type]
    assert e2e.calls[-1] == failing


def test_lab_up_engine_records_the_keeper_and_says_how_to_drive_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: dict[str, Any] = {}

    def start(workdir: Path, project_dir: Path, log: Any, run_e2e: bool = False) -> dict[str, Any]:
        started.update(workdir=workdir, run_e2e=run_e2e)
        return {"kind": "engine", "keeper": 4242, "check": ["mana-infra", "check", "--stack", "prod"]}

    monkeypatch.setattr(engine_lab, "start", start)
    args = argparse.Namespace(workdir=str(tmp_path), project_dir=None, engine=True, mode="tunnel", stack="prod")
    assert cli._up(args) == 0
    state = json.loads((tmp_path / cli.STATE_FILE).read_text())
    assert state["kind"] == "engine" and state["keeper"] == 4242 and state["mode"] == "tunnel (real engine)"
    assert started == {"workdir": tmp_path, "run_e2e": False}
    printed = capsys.readouterr().out
    assert printed.startswith("lab up in ") and "deployed by the real engine, tunnel mode" in printed
    for command in ("mana-infra lab fault", "mana-infra lab watch --json", "mana-infra lab sh", "mana-infra lab down"):
        assert command in printed


def test_down_without_a_keeper_stops_nothing(tmp_path: Path) -> None:
    assert engine_lab.stop_recorded(tmp_path) is False
    (tmp_path / engine_lab.KEEPER_PID).write_text("1\n")  # init: not a keeper, never signalled
    assert engine_lab.stop_recorded(tmp_path) is False
