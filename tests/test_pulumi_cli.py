"""The real Pulumi CLI (`make engine`, or one already on PATH) on this project's stack files: what it
refuses before any program runs, the offline plan refuses too, with the same keys.

Only the CLI can be built here (the Python language host and the provider plugins are not served by
the module proxy this project reaches), so these runs stop where the program would start: a run that
gets past the configuration stops at the missing language host, and the tests assert exactly that.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mana_infra import plan as offline
from mana_infra.errors import InputError
from mana_infra.project import Project

from .support import copy_project, local_backend, require_engine

PAST_THE_CONFIG = "no language plugin 'pulumi-language-python' found"


class Cli:
    """`pulumi` in a copy of the project, logged in to a local backend, with nothing else on PATH."""

    def __init__(self, binary: str, home: Path, project: Path) -> None:
        self.binary, self.project = binary, project
        self.env = {"PATH": str(Path(binary).parent) + ":/usr/bin:/bin", "HOME": str(home), **local_backend(home)}

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
    binary = require_engine()
    yield Cli(binary, tmp_path / "home", copy_project(tmp_path / "project"))


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
        secrets["hcloud:token"] = "h" * 64
    for key, value in secrets.items():
        done = cli("config", "set", "--stack", stack, "--secret", key, stdin=value)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("stack", ["prod", "failover"])
def test_each_stack_passes_the_clis_checks_with_what_the_readme_sets(cli: Cli, stack: str) -> None:
    cli.stack_init(stack)
    set_as_the_readme_says(cli, stack)
    assert PAST_THE_CONFIG in cli.preview_stops_at(stack)
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
