"""Adopting the records the tunnel already has: offline, from a saved Cloudflare API answer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mana_infra import cli
from mana_infra import plan as offline
from mana_infra.adopt import classify
from mana_infra.inventory import load_inventory

from .support import PROJECT_DIR

FIXTURE = Path(__file__).parent / "fixtures" / "cloudflare-dns-records.json"
TUNNEL_ID = "00000000-0000-4000-8000-000000000000"


def test_each_host_is_adopted_created_or_flagged() -> None:
    services = load_inventory(PROJECT_DIR / "services.yaml", "mana.how")
    records = json.loads(FIXTURE.read_text())["result"]
    verdicts = {a.host: a for a in classify(services, records, "mana.how", TUNNEL_ID)}
    assert verdicts["chat.mana.how"].verdict == "adopt"
    assert verdicts["chat.mana.how"].import_id == "023e105f4ecef8ad9ca31a8372d0c353/" + f"{2:032x}"
    # The apex has an MX beside its CNAME: Cloudflare flattens the apex CNAME, so that is fine.
    assert verdicts["mana.how"].verdict == "adopt"
    assert verdicts["todo.mana.how"].verdict == "conflict" and "81053" in verdicts["todo.mana.how"].detail
    assert (
        verdicts["grafana.mana.how"].verdict == "conflict"
        and "not at the tunnel" in verdicts["grafana.mana.how"].detail
    )
    assert verdicts["photos.mana.how"].verdict == "create"
    assert len(verdicts) == 27


def test_adopt_prints_the_config_commands_that_the_program_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in a checkout of its own (the stack there has the tunnel id): adopt reads that project."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("venv", ".git", "tests", "__pycache__"))
    stack_file = project / "Pulumi.prod.yaml"
    stack_file.write_text(stack_file.read_text() + f"  mana-infra:tunnelId: {TUNNEL_ID}\n")
    monkeypatch.chdir(project)
    assert cli.main(["adopt", "--records", str(FIXTURE)]) == 0
    stdout = capsys.readouterr().out
    commands = re.findall(r"pulumi config set --stack prod --path 'adoptRecords\[\"([^\"]+)\"\]' (\S+)", stdout)
    adopted = dict(commands)
    assert sorted(adopted) == ["auth.mana.how", "chat-api.mana.how", "chat.mana.how", "mana.how"]
    assert "conflict todo.mana.how" in " ".join(stdout.split())
    # What the commands set, the program turns into import options.
    plan = offline.plan("prod", overrides={"tunnelId": TUNNEL_ID, "adoptRecords": json.dumps(adopted)})
    imports = {r.inputs["name"]: r.options["importId"] for r in plan.resources if r.options["importId"]}
    assert imports == adopted
