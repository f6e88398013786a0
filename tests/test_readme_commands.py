"""The README's offline commands, run as written: every `mana-infra plan …` and `mana-infra --version`
it names (code spans and blocks; syntax lines with placeholders such as FILE or […] aside, and the bare
`mana-infra plan` that prose names as a command, not one to run without its stack), in a copy of
the project with the installed entry point on PATH, through a shell (pipes and redirections as
written), and `make plan`, its first command. Each must exit 0 without a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .support import PROJECT_DIR, copy_project, require_tools

README = PROJECT_DIR / "README.md"
OFFLINE = ("mana-infra plan", "mana-infra --version")
PLACEHOLDERS = ("[", "…", "FILE", "PLAN_JSON", "NAME", "<", "...")


def readme_commands() -> list[str]:
    """Every offline command of the README, in its order, but those that write a file first (a later
    command reads it: `--against plan.json` after `--json > plan.json`)."""
    text = README.read_text()
    spans = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    blocks = [
        line.split("  #")[0]
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)
        for line in block.splitlines()
    ]
    commands = []
    for raw in [*spans, *blocks]:
        command = " ".join(raw.split())  # a code span's line break is a space
        if (
            command.startswith(OFFLINE)
            and command != "mana-infra plan"
            and not any(mark in command for mark in PLACEHOLDERS)
            and command not in commands
        ):
            commands.append(command)
    return sorted(commands, key=lambda command: ">" not in command)


def test_the_readme_names_its_offline_commands() -> None:
    commands = readme_commands()
    assert "mana-infra plan --stack prod --json > plan.json" in commands
    assert any("--artifact Caddyfile > Caddyfile && caddy adapt" in command for command in commands)
    assert len(commands) >= 4, commands


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    """In one copy of the project: first those that write a file (the others may read it), then the
    others two at a time (each is a process of its own)."""
    require_tools("caddy")
    project = copy_project(tmp_path / "project")

    def run(command: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        argv = ["bash", "-o", "pipefail", "-c", command]
        return command, subprocess.run(argv, cwd=project, env=_env(), capture_output=True, text=True, timeout=120)

    writers = [command for command in readme_commands() if ">" in command]
    done = [run(command) for command in writers]
    with ThreadPoolExecutor(2) as pool:
        done += list(pool.map(run, [command for command in readme_commands() if command not in writers]))
    for command, result in done:
        assert result.returncode == 0 and "Traceback" not in result.stderr, (
            command,
            result.stdout[-2000:],
            result.stderr,
        )


def test_make_plan_runs_the_offline_plan() -> None:
    require_tools("make")
    done = subprocess.run(["make", "-s", "plan"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "mana-infra plan: stack prod, mode tunnel (offline)" in " ".join(done.stdout.split())
    assert "Resources: + " in done.stdout


def _env() -> dict[str, str]:
    """The operator's shell: the installed entry point on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    assert shutil.which("mana-infra", path=bin_dir), f"no mana-infra in {bin_dir}"
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
