"""The GitHub workflows (.github/workflows/): actionlint finds nothing, every action is pinned to a version,
the pull request jobs use no secret, and `pulumi up` runs only in a job behind an environment."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import PROJECT_DIR, find_program, require_tools

WORKFLOWS_DIR = PROJECT_DIR / ".github" / "workflows"
# Every workflow, named: a new one must be added here, and so to every check below.
WORKFLOWS = [WORKFLOWS_DIR / name for name in ("deploy.yml", "pr.yml", "preview.yml")]
SCRIPTS = sorted((PROJECT_DIR / ".github" / "scripts").glob("*.sh"))
# owner/repo[/path]@<version tag: v1, v4.2.2> or @<full commit SHA>.
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
PULUMI_UP = re.compile(r"\bpulumi\s+(up|update)\b|\bmana-infra\s+(deploy|cutover|failback)\b")


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
    return find_program(
        Path(sys.executable).parent / "actionlint",
        "actionlint",
        "needs actionlint (pinned in requirements-dev.txt: `make setup` installs it)",
    )


def test_every_workflow_is_one_the_tests_check() -> None:
    assert sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")]) == WORKFLOWS


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


def comment_script() -> str:
    (job,) = [job for name, job in jobs(WORKFLOWS_DIR / "pr.yml").items() if name == "comment"]
    (step,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/github-script@")]
    return str(step["with"]["script"])


# The comment step's script, run by Node with a stand-in for the GitHub client: prints the calls it makes.
COMMENT_HARNESS = """
const fs = require('fs');
const [report, existing] = process.argv.slice(2);
fs.writeFileSync('plan-report.md', report);
const calls = [];
const github = {
  paginate: async () => JSON.parse(existing),
  rest: { issues: {
    listComments: () => {},
    updateComment: async (args) => calls.push(['update', args.comment_id, args.body]),
    createComment: async (args) => calls.push(['create', args.issue_number, args.body]),
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
(async () => { SCRIPT })().then(() => console.log(JSON.stringify(calls)));
"""


def run_comment_step(tmp_path: Path, report: str, existing: list[dict[str, Any]]) -> list[list[Any]]:
    require_tools("node")
    harness = tmp_path / "harness.js"
    harness.write_text(COMMENT_HARNESS.replace("SCRIPT", comment_script()))
    done = subprocess.run(
        ["node", str(harness), report, json.dumps(existing)], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    calls: list[list[Any]] = json.loads(done.stdout)
    return calls


def test_the_plan_comment_is_one_comment_updated_in_place(tmp_path: Path) -> None:
    marker = "<!-- mana-infra-plan -->"
    report = f"{marker}\n## Offline plan\n"
    assert run_comment_step(tmp_path, report, []) == [["create", 7, report]]
    bot = {"login": "github-actions[bot]"}
    existing = [
        {"id": 1, "user": {"login": "someone"}, "body": f"{marker} quoted by a person"},
        {"id": 2, "user": bot, "body": "another bot comment"},
        {"id": 3, "user": bot, "body": f"{marker}\nthe previous plan"},
    ]
    assert run_comment_step(tmp_path, report, existing) == [["update", 3, report]]
    # GitHub refuses comments over 65536 characters: cut, and say where the rest is.
    [[_, _, body]] = run_comment_step(tmp_path, report + "x" * 70000, [])
    assert len(body) < 65536 and body.endswith("the whole report is in the job summary of this run)\n")


def test_the_plan_report_compares_every_stack_and_mode_with_the_base(tmp_path: Path) -> None:
    """plan-report.sh as the pull request job runs it: the base branch lacks a host this change adds."""
    base, head = tmp_path / "base", tmp_path / "head"
    for folder in (base, head):
        folder.mkdir()
        for name in ("Pulumi.yaml", "Pulumi.prod.yaml", "requirements.txt"):
            shutil.copy(PROJECT_DIR / name, folder / name)
        shutil.copytree(PROJECT_DIR / "mana_infra", folder / "mana_infra")
    (head / "venv").symlink_to(PROJECT_DIR / "venv")
    inventory = (PROJECT_DIR / "services.yaml").read_text()
    (base / "services.yaml").write_text(inventory)
    (head / "services.yaml").write_text(inventory + "  - host: new.mana.how\n    port: 6000\n")
    report = tmp_path / "report.md"
    done = subprocess.run(
        [str(PROJECT_DIR / ".github" / "scripts" / "plan-report.sh"), str(base), str(report)],
        cwd=head, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert text.startswith("<!-- mana-infra-plan -->\n## Offline plan")
    assert text.count("prod, mode tunnel, against the base branch") == 1
    assert text.count("prod, mode failover, against the base branch") == 1
    assert "what flipping the mode changes" in text and "exit status" not in text
    # The new host, created, in both modes' comparison.
    assert text.count("dns-new.mana.how") >= 2 and "created" in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_pulumi_up_only_behind_an_environment(path: Path) -> None:
    """Started by a person or by the clock, never by a push or a pull request, and never without the
    environment's approval."""
    for name, job in jobs(path).items():
        if runs_pulumi_up(job):
            assert job.get("environment"), f"{path.name}: job {name} runs `pulumi up` without an environment"
            assert set(triggers(load(path))) <= {"workflow_dispatch", "schedule"}, f"{path.name} deploys on a push"


def test_the_deploy_needs_the_production_environment() -> None:
    path = WORKFLOWS_DIR / "deploy.yml"
    (job,) = jobs(path).values()
    assert runs_pulumi_up(job) and job["environment"] == "production"
    # Through mana-infra deploy, which keeps the deployed mode (a run of main never fails back), with
    # the policy pack; no bare `pulumi up` beside it.
    runs = [str(step.get("run", "")) for step in job["steps"]]
    assert any(re.search(r"mana-infra deploy .*--policy-pack policy", run) for run in runs), runs
    assert not any(re.search(r"\bpulumi\s+up\b", run) for run in runs)
    assert all((step.get("with") or {}).get("command") in (None, "") for step in job["steps"] if "uses" in step)
    assert set(triggers(load(path))) == {"workflow_dispatch", "schedule"}
    # Weekly: the public certificate is renewed under 30 days left, well before its 90 run out.
    [schedule] = triggers(load(path))["schedule"]
    *_, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()


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
