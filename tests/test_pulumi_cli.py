"""The real Pulumi CLI (`make engine`, or one already on PATH) on this project's stack files: what it
refuses before any program runs, the offline plan refuses too, with the same keys; what it lets through
reaches the program, which asks the clouds (here: closed ports on loopback) and says, without a
traceback, which API did not answer. The full runs against the stand-in clouds are tests/e2e.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mana_infra import plan as offline
from mana_infra.errors import InputError
from mana_infra.project import Project
from mana_lab.engine import Engine

from .support import PROJECT_DIR, PROJECT_FILES, copy_project, require_engine, require_full_engine

# Where the program's first question goes: nothing listens on port 9 of loopback.
CLOSED = "http://127.0.0.1:9"
PAST_THE_CONFIG = {
    "prod": "mana-infra: the Hetzner Cloud API did not answer (getSshKeys): ",
    # The rehearsal reads the prod stack first: before prod exists, the engine says so (no program error).
    "failover": 'StackReference (prod): error: Preview failed: unknown stack "prod"',
}


class Cli:
    """`pulumi` in a copy of the project, logged in to a local backend, with nothing else on PATH."""

    def __init__(self, engine: Engine, home: Path, project: Path) -> None:
        self.binary, self.project = str(engine.cli), project
        self.env = {**engine.environment(home / "state"), "PATH": f"{engine.bin_dir}:/usr/bin:/bin", "HOME": str(home)}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args, "--non-interactive"],
            cwd=self.project,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stack_init(self, stack: str) -> None:
        done = self("stack", "init", stack)
        assert done.returncode == 0, done.stderr

    def preview_stops_at(self, stack: str) -> str:
        """What stops `pulumi preview` of the stack (its last error line)."""
        done = self("preview", "--stack", stack)
        assert done.returncode != 0
        return " ".join((done.stdout + done.stderr).split())


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    engine = require_full_engine()
    project = copy_project(tmp_path / "project", (*PROJECT_FILES, "__main__.py", "requirements.txt"))
    shutil.copytree(PROJECT_DIR / "mana_infra", project / "mana_infra", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "venv").symlink_to(PROJECT_DIR / "venv")  # the program's virtualenv (Pulumi.yaml names it)
    yield Cli(engine, tmp_path / "home", project)


def set_as_the_readme_says(cli: Cli, stack: str) -> None:
    """The values the README has the operator set for each stack, with `pulumi config set`."""
    secrets = {"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "cloudflare:apiToken": "c" * 40}
    if stack == "prod":
        for key, value in (
            ("tunnelId", "00000000-0000-4000-8000-000000000000"),
            ("sshPublicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4ANPKer0n1FQ5JlpAqofs+I7+rol/Mq/dDNS0gSAyC op"),
        ):
            assert cli("config", "set", "--stack", stack, key, value).returncode == 0
        assert cli("config", "set", "--stack", stack, "--path", "sshAllowedCidrs[0]", "198.51.100.7/32").returncode == 0
        assert cli("config", "set", "--stack", stack, "hcloud:endpoint", f"{CLOSED}/v1").returncode == 0
        secrets["hcloud:token"] = "h" * 64
    assert cli("config", "set", "--stack", stack, "cloudflare:baseUrl", f"{CLOSED}/client/v4").returncode == 0
    for key, value in secrets.items():
        done = cli("config", "set", "--stack", stack, "--secret", key, stdin=value)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("stack", ["prod", "failover"])
def test_each_stack_passes_the_clis_checks_with_what_the_readme_sets(cli: Cli, stack: str) -> None:
    cli.stack_init(stack)
    set_as_the_readme_says(cli, stack)
    stopped = cli.preview_stops_at(stack)
    assert PAST_THE_CONFIG[stack] in stopped and "Traceback" not in stopped, stopped
    # What the CLI wrote is what the project reader (and so the plan) reads.
    config = Project.at(cli.project).stack_config(stack)
    assert {"mana-infra:sshPrivateKey", "cloudflare:apiToken"} <= config.secure
    if stack == "prod":
        assert config.get("sshAllowedCidrs") == '["198.51.100.7/32"]'
    offline.plan(stack, project=Project.at(cli.project))


def test_a_key_without_value_or_default_is_refused_by_both(cli: Cli) -> None:
    """The failover stack's defect before the standby's keys got empty defaults: both refuse it."""
    project_file = cli.project / "Pulumi.yaml"
    document = yaml.safe_load(project_file.read_text())
    for key in ("tunnelId", "sshPublicKey", "sshAllowedCidrs"):
        del document["config"][key]["default"]
    project_file.write_text(yaml.safe_dump(document, sort_keys=False))
    cli.stack_init("failover")
    set_as_the_readme_says(cli, "failover")
    stopped = cli.preview_stops_at("failover")
    assert "Stack 'failover' is missing configuration values" in stopped
    with pytest.raises(InputError) as caught:
        offline.plan("failover", project=Project.at(cli.project))
    [problem] = caught.value.problems
    assert "Stack 'failover' is missing configuration values" in problem.message
    for key in ("tunnelId", "sshPublicKey", "sshAllowedCidrs"):
        assert f"'{key}'" in stopped and f"'{key}'" in problem.message


def test_a_secret_in_plaintext_and_a_wrong_type_are_refused_by_both(cli: Cli) -> None:
    cli.stack_init("prod")
    set_as_the_readme_says(cli, "prod")
    stack_file = cli.project / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack_file.read_text())
    encrypted = document["config"]["mana-infra:sshPrivateKey"]
    document["config"]["mana-infra:sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY-----"
    stack_file.write_text(yaml.safe_dump(document))
    assert "configuration key 'sshPrivateKey' must be encrypted as it's secret" in cli.preview_stops_at("prod")
    with pytest.raises(InputError, match="mana-infra:sshPrivateKey: is in plaintext, but it is a secret"):
        Project.at(cli.project).stack_config("prod")

    document["config"]["mana-infra:sshPrivateKey"] = encrypted
    document["config"]["mana-infra:failoverTtl"] = "a minute"
    stack_file.write_text(yaml.safe_dump(document))
    assert "configuration key 'failoverTtl' must be of type 'integer'" in cli.preview_stops_at("prod")
    with pytest.raises(InputError, match="mana-infra:failoverTtl: 'a minute' is not of type integer"):
        Project.at(cli.project).stack_config("prod")


def test_the_engine_is_the_one_the_readme_names() -> None:
    done = subprocess.run([require_engine(), "version"], capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 0 and done.stdout.strip().startswith("v3.")
