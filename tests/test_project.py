"""One reader of the project: found from where the operator stands, stack files merged as the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mana_infra import cli
from mana_infra.errors import InputError
from mana_infra.project import Project, find_project_dir

from .support import PROJECT_DIR, copy_project


def test_the_project_is_found_walking_up_from_the_working_directory(tmp_path: Path) -> None:
    checkout = copy_project(tmp_path / "checkout")
    deep = checkout / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_dir(deep) == checkout
    with pytest.raises(InputError) as caught:
        find_project_dir(tmp_path)
    [problem] = caught.value.problems
    assert "no Pulumi.yaml here or in any folder above" in str(problem)
    assert "--project-dir" in str(problem.fix)


def test_stack_config_is_pulumi_yaml_defaults_then_the_stack_file(tmp_path: Path) -> None:
    checkout = copy_project(tmp_path / "checkout")
    (checkout / "Pulumi.prod.yaml").write_text(
        "config:\n"
        "  mana-infra:zone: mana.how\n"
        "  mana-infra:failoverTtl: 120\n"
        "  mana-infra:sshAllowedCidrs:\n    - 198.51.100.7/32\n"
        "  mana-infra:sshPrivateKey:\n    secure: v1:abc\n"
        "  hcloud:token:\n    secure: v1:def\n"
    )
    config = Project.at(checkout).stack_config("prod")
    assert config.get("zone") == "mana.how"
    assert config.get("failoverTtl") == "120"  # the stack's value, as text
    assert config.get("mode") == "tunnel" and config.get("serverType") == "cx23"  # Pulumi.yaml's defaults
    assert json.loads(str(config.get("sshAllowedCidrs"))) == ["198.51.100.7/32"]  # objects as JSON
    assert config.get("secondaryDns") == "false" and config.get("adoptRecords") == "{}"
    assert config.secure == {"mana-infra:sshPrivateKey", "hcloud:token"}


def test_a_missing_stack_names_the_stacks_there() -> None:
    with pytest.raises(InputError, match=r"no such stack file: the stacks here are failover, prod"):
        Project.at(PROJECT_DIR).stack_config("staging")


def test_the_plan_reads_the_project_it_is_pointed_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not the copy the package was installed from: another checkout's inventory is the one planned."""
    checkout = copy_project(tmp_path / "checkout")
    (checkout / "services.yaml").write_text("services:\n  - host: only.mana.how\n    port: 8080\n")
    assert cli.main(["plan", "--stack", "prod", "--project-dir", str(checkout), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    cnames = [r["inputs"]["name"] for r in document["resources"] if r["name"].startswith("dns-") and
              r["inputs"]["type"] == "CNAME"]  # fmt: skip
    assert cnames == ["only.mana.how"]
