"""The GitHub workflows (.github/workflows/): actionlint finds nothing, every action is pinned to a version,
the pull request jobs use no secret, and `pulumi up` runs only in a job behind an environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import PROJECT_DIR

WORKFLOWS_DIR = PROJECT_DIR / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))
SCRIPTS = sorted((PROJECT_DIR / ".github" / "scripts").glob("*.sh"))
# owner/repo[/path]@<version tag: v1, v4.2.2> or @<full commit SHA>.
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
PULUMI_UP = re.compile(r"\bpulumi\s+(up|update)\b")


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """`on:` (YAML 1.1 reads the bare key as True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(path)["jobs"]
    return found


def uses_of(job: dict[str, Any]) -> list[str]:
    found = [job["uses"]] if "uses" in job else []
    return found + [step["uses"] for step in job.get("steps", []) if "uses" in step]


def runs_pulumi_up(job: dict[str, Any]) -> bool:
    for step in job.get("steps", []):
        if PULUMI_UP.search(str(step.get("run", ""))):
            return True
        if str(step.get("uses", "")).startswith("pulumi/actions@") and str(
            (step.get("with") or {}).get("command", "")
        ).strip() in ("up", "update"):
            return True
    return False


def find_actionlint() -> str:
    """The venv's actionlint (requirements-dev.txt), else one on PATH; in CI a missing one fails."""
    beside_python = Path(sys.executable).parent / "actionlint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("actionlint")
    if found is None:
        reason = "needs actionlint (pinned in requirements-dev.txt: `make setup` installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test, but it {reason}")
        pytest.skip(reason)
    return found


def test_the_workflows_are_there() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"pr.yml", "preview.yml", "deploy.yml"} <= names


def test_actionlint_finds_nothing() -> None:
    """actionlint (with shellcheck on the `run:` scripts, where shellcheck is installed)."""
    command = [find_actionlint(), "-no-color", "-format", "{{json .}}", "-pyflakes="]
    result = subprocess.run(
        [*command, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=60, cwd=PROJECT_DIR, check=False
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_the_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("needs shellcheck (Debian package shellcheck)")
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_version(path: Path) -> None:
    for name, job in jobs(path).items():
        for uses in uses_of(job):
            if uses.startswith("./"):
                continue  # an action in this repository: pinned by the commit itself
            assert PINNED.match(uses), (
                f"{path.name}: job {name} uses {uses!r}: pin it to a release tag (owner/action@v1.2.3) or a commit "
                "SHA, never a branch such as @main or @master"
            )


def test_the_pull_request_workflow_uses_no_secret() -> None:
    """It runs on every pull request, forks included, and runs their code: no secret may be in reach."""
    path = WORKFLOWS_DIR / "pr.yml"
    assert set(triggers(load(path))) == {"pull_request"}
    assert "secrets." not in path.read_text(encoding="utf-8")
    for name, job in jobs(path).items():
        assert "secrets" not in json.dumps(job), name
        assert "environment" not in job, name
    # The only job that may write (the comment) runs none of the pull request's code.
    for name, job in jobs(path).items():
        permissions = job.get("permissions", load(path).get("permissions"))
        if any(level == "write" for level in (permissions or {}).values()):
            assert all(
                str(use).split("@")[0] in ("actions/download-artifact", "actions/github-script") for use in uses_of(job)
            ), name
            assert not any("run" in step for step in job.get("steps", [])), name
    assert not any("pull_request_target" in triggers(load(p)) for p in WORKFLOWS)


def test_the_plan_comment_is_one_comment() -> None:
    text = (WORKFLOWS_DIR / "pr.yml").read_text(encoding="utf-8")
    assert "<!-- mana-infra-plan -->" in text and "updateComment" in text
    script = (PROJECT_DIR / ".github" / "scripts" / "plan-report.sh").read_text(encoding="utf-8")
    assert "<!-- mana-infra-plan -->" in script
    for flag in ("--against", "--diff", "--json", "--mode"):
        assert flag in script


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_pulumi_up_only_behind_an_environment(path: Path) -> None:
    for name, job in jobs(path).items():
        if runs_pulumi_up(job):
            assert job.get("environment"), f"{path.name}: job {name} runs `pulumi up` without an environment"
            assert set(triggers(load(path))) == {"workflow_dispatch"}, f"{path.name} deploys on its own"


def test_the_deploy_needs_the_production_environment() -> None:
    path = WORKFLOWS_DIR / "deploy.yml"
    (job,) = jobs(path).values()
    assert runs_pulumi_up(job) and job["environment"] == "production"
    assert set(triggers(load(path))) == {"workflow_dispatch"}
    assert "Required reviewers" in path.read_text(encoding="utf-8")


def test_the_preview_runs_the_policy_pack_and_comments() -> None:
    path = WORKFLOWS_DIR / "preview.yml"
    (job,) = jobs(path).values()
    (step,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert step["with"]["command"] == "preview" and step["with"]["policyPacks"] == "policy"
    assert step["with"]["comment-on-pr"] is True
    # Skipped, visibly, without the secrets: every later step waits for the check.
    check, *rest = job["steps"]
    assert "GITHUB_STEP_SUMMARY" in check["run"]
    assert all(s.get("if") == "steps.secrets.outputs.available == 'true'" for s in rest)


def test_the_guarded_deploy_detector_sees_pulumi_up() -> None:
    assert runs_pulumi_up({"steps": [{"run": "venv/bin/pulumi up --yes"}]})
    assert runs_pulumi_up({"steps": [{"uses": "pulumi/actions@v6.6.1", "with": {"command": "up"}}]})
    assert not runs_pulumi_up({"steps": [{"uses": "pulumi/actions@v6.6.1", "with": {"command": "preview"}}]})
    assert not PINNED.match("actions/checkout@main") and not PINNED.match("actions/checkout")
    assert PINNED.match("actions/checkout@v4.2.2") and PINNED.match("pulumi/actions@v6")
