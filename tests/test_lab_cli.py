"""`mana-infra lab`'s own command line, where it needs no lab: a closed pipe, `down` with nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support import PROJECT_DIR


def test_status_into_a_closed_pipe_is_no_traceback() -> None:
    """`mana-infra lab status | head -1`: the reader leaves early, the command ends quietly."""
    code = (
        "import sys; sys.path.insert(0, '.'); import mana_lab.cli as cli;"
        "cli.status_text = lambda *_: '\\n'.join(f'mlab-{i}: no processes' for i in range(200000));"
        "sys.exit(cli.main(['status']))"
    )
    reader, writer = os.pipe()
    os.close(reader)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, stdout=writer, stderr=subprocess.PIPE, check=False
    )
    os.close(writer)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()


def test_down_removes_the_work_folder_with_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No namespace is touched here (a developer's running lab would go): the clean-up itself is the
    lab's own, tested with it; what `down` adds is the work folder."""
    import mana_lab.cli as cli
    import mana_lab.system

    monkeypatch.setattr(mana_lab.system, "cleanup_leftovers", lambda _pids: ["3 processes stopped"])
    workdir = tmp_path / "lab"
    (workdir / "pki").mkdir(parents=True)
    (workdir / "pki" / "key.pem").write_text("a key")
    assert cli.main(["--workdir", str(workdir), "down"]) == 0
    assert not workdir.exists()
    assert capsys.readouterr().out == f"removed: 3 processes stopped; the work folder {workdir}\n"


def test_a_rehearsal_stack_runs_its_prod_stacks_plan_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`lab up --stack failover`: the rehearsal has no VPS of its own; the lab runs prod with it."""
    import mana_lab.cli as cli

    assert cli.lab_stacks("failover", PROJECT_DIR) == ("prod", "failover")
    assert "stack failover rehearses prod" in capsys.readouterr().err
    assert cli.lab_stacks("prod", PROJECT_DIR) == ("prod", "failover")


def running_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lab as `lab up` leaves it, without building one: its namespaces and its state file."""
    import json

    import mana_lab.system

    monkeypatch.setattr(mana_lab.system, "lab_namespaces", lambda: ["mlab-client", "mlab-dns"])
    monkeypatch.setattr(mana_lab.system, "netns_pids", lambda ns: [])
    workdir = tmp_path / "lab"
    workdir.mkdir()
    state = {"stack": "prod", "rehearsal": "failover", "mode": "failover-dns", "started": 0,
             "check": ["python", "-m", "mana_infra", "check", "--outputs", "out.json"], "ssh": ["ssh"]}  # fmt: skip
    (workdir / "lab.json").write_text(json.dumps(state))
    return workdir


@pytest.mark.parametrize("command", ["up", "drill", "e2e"])
def test_a_running_lab_is_never_replaced_without_replace(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mana_lab.cli as cli

    workdir = running_lab(tmp_path, monkeypatch)
    assert cli.main(["--workdir", str(workdir), command]) == 2
    err = capsys.readouterr().err
    assert "a lab is running: stack prod, state failover-dns, rehearsal stack failover, up since" in err
    assert f"`mana-infra lab down` first, or `mana-infra lab {command} --replace`" in err
    assert cli._refuse_running_lab(workdir, command, replace=True) is None
    assert "replacing the running lab: stack prod" in capsys.readouterr().err


def test_status_names_what_the_lab_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mana_lab.cli as cli

    workdir = running_lab(tmp_path, monkeypatch)
    lines = cli.status_text(workdir).splitlines()
    assert lines[0].startswith("lab: stack prod, state failover-dns, rehearsal stack failover, up since ")
    assert lines[1] == "check: ip netns exec mlab-client python -m mana_infra check --outputs out.json"
    assert lines[3:] == ["mlab-client: no processes", "mlab-dns: no processes"]
    (workdir / "lab.json").unlink()
    assert "not started by `mana-infra lab up`" in cli.status_text(workdir)


def test_lab_check_without_a_lab_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mana_lab.cli as cli
    import mana_lab.system

    monkeypatch.setattr(mana_lab.system, "lab_namespaces", lambda: [])
    assert cli.main(["--workdir", str(tmp_path), "check"]) == 2
    assert "start one with `mana-infra lab up`" in capsys.readouterr().err


def test_a_command_past_its_limit_is_killed_with_what_it_started_and_named(tmp_path: Path) -> None:
    """No command of the lab or the e2e waits for ever: a grandchild that holds the output pipe open (as
    a language host does) is killed with it, and the error names the command."""
    import time

    from mana_lab.system import LabError, run_limited

    started = time.monotonic()
    with pytest.raises(LabError) as failed:
        run_limited(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5, what="pulumi preview --policy-pack policy")
    assert time.monotonic() - started < 5
    assert str(failed.value) == (
        "`pulumi preview --policy-pack policy` did not finish within 0.5 s: killed, with everything it started"
    )
    assert run_limited(["sh", "-c", "echo ok"], timeout=5).stdout == "ok\n"


def test_the_policy_step_says_when_the_packs_virtualenv_is_missing(tmp_path: Path) -> None:
    from mana_lab.e2e import policy_venv_problem

    problem = policy_venv_problem(tmp_path)
    assert problem is not None and "policy/venv is missing" in problem and "`make setup` makes it" in problem
    (tmp_path / "policy" / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "policy" / "venv" / "bin" / "python").touch()
    assert policy_venv_problem(tmp_path) is None


def test_the_check_flags_lab_help_names_are_checks_and_pass_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lab --help` said check's --verbose passes through, and check has no --verbose: every flag the
    help names is check's own, and `lab check` passes each on (here to the "no lab" refusal, not argparse's)."""
    import re

    import mana_lab.cli as cli
    import mana_lab.system
    from mana_infra.check import cli as check
    from mana_infra.cli import Parser

    monkeypatch.setenv("COLUMNS", "400")  # no flag broken across lines by the help's wrapping
    help_text = " ".join(cli.parser().format_help().split())
    named = re.findall(r"--[a-z][a-z-]+", help_text.split("check's own flags", 1)[1].split("pass through")[0])
    checks = check.parser(Parser)
    assert named and isinstance(checks, Parser) and set(named) <= set(checks.flags), named
    monkeypatch.setattr(mana_lab.system, "lab_namespaces", lambda: [])
    assert cli.main(["--workdir", str(tmp_path), "check", *named]) == 2
    assert "start one with `mana-infra lab up`" in capsys.readouterr().err
