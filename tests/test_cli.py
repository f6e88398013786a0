"""`mana-infra plan` as the operator runs it: the command line in-process, and once the installed entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mana_infra import cli, names

from .support import PROJECT_DIR, plan_of, with_stack


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def mana_infra(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """`mana-infra ARGS` in this process, from the project folder: exit code, stdout, stderr."""
    monkeypatch.chdir(PROJECT_DIR)

    def run(*args: str) -> Run:
        try:
            code = cli.main(with_stack(list(args)))
        except SystemExit as exit_:  # argparse's own refusals
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_the_installed_entry_point_runs_the_plan(tmp_path: Path) -> None:
    """The console script the README's commands use, started as the operator starts it."""
    entry_point = Path(sys.executable).parent / "mana-infra"
    result = subprocess.run(
        [str(entry_point), "plan", "--stack", "prod", "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "prod"
    broken = subprocess.run(
        [str(entry_point), "plan", "--stack", "nosuch"], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120
    )
    assert broken.returncode == 2 and "no such stack file" in broken.stderr and "Traceback" not in broken.stderr


def test_plan_json_has_exactly_the_documented_shape(mana_infra: Callable[..., Run]) -> None:
    result = mana_infra("plan", "--stack", "prod", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["stack", "mode", "resources", "outputs", "placeholders", "artifacts"]
    assert (document["stack"], document["mode"]) == ("prod", "tunnel")
    assert all(list(resource) == ["type", "name", "inputs"] for resource in document["resources"])
    assert list(document["artifacts"]) == list(names.ARTIFACT_NAMES)
    assert document == json.loads(json.dumps(plan_of("prod").as_json()))


def test_plan_mode_and_services_overrides(mana_infra: Callable[..., Run], tmp_path: Path) -> None:
    inventory = tmp_path / "services.yaml"
    inventory.write_text("services:\n  - host: only.mana.how\n    port: 8080\n")
    result = mana_infra("plan", "--mode", "failover", "--services", str(inventory), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["mode"] == "failover"
    records = [r for r in document["resources"] if r["name"].startswith("dns-") and r["inputs"]["type"] == "CNAME"]
    assert [(r["inputs"]["name"], r["inputs"]["content"]) for r in records] == [("only.mana.how", "vps.mana.how")]
    assert (
        "only.mana.how {\n\timport origin_certificate\n\timport elsewhere_refused\n\timport visitor\n"
        "\treverse_proxy 10.0.0.2:8080 {" in (document["artifacts"]["Caddyfile"])
    )


def test_plan_table_lists_resources_outputs_and_placeholders(mana_infra: Callable[..., Run]) -> None:
    result = mana_infra("plan")
    assert result.returncode == 0, result.stderr
    for text in (
        "stack prod, mode tunnel",
        "standby-server",
        "hcloud:Server",
        "27 records: dns-auth.mana.how",  # the inventory's records, alike but for their names: one row
        "26 records:",  # and the mirror's
        "mana-infra:tunnelId",
        "mana-infra:sshPrivateKey = [secret]",
        "originIpv4",
        "203.0.113.10",
    ):
        assert text in result.stdout, text
    assert "chat.mana.how," in result.stdout and "dns-chat.mana.how" not in result.stdout
    from mana_infra.plan_view import output_cell

    outputs = json.loads(mana_infra("plan", "--json").stdout)["outputs"]
    hosts = output_cell("hosts", outputs["hosts"])
    assert hosts.startswith("27 hosts -> 00000000-0000-4000-8000-000000000000.cfargotunnel.com (proxied, ttl 1): ")
    assert "glitchtip.mana.how:8020" in hosts
    plist = output_cell("macminiLaunchdPlist", outputs["macminiLaunchdPlist"])  # a rendered file: by its size
    shown = r"\(\d+ lines: `mana-infra plan --json` has it; once deployed, `pulumi stack output macminiLaunchdPlist`\)"
    assert re.fullmatch(shown, plist), plist
    assert not re.search(r"PrivateKey = [A-Za-z0-9+/]{43}=", result.stdout)
    assert not re.search(
        r"offline-placeholder-(cloudflare|hcloud)-token|offline-placeholder-ssh-private-key", result.stdout
    )


def test_plan_table_says_how_long_the_switch_from_these_records_takes(mana_infra: Callable[..., Run]) -> None:
    tunnel = mana_infra("plan").stdout
    assert "Cut-over from these records, in the real world: through Cloudflare's edge within 60 s" in tunnel
    assert "DNS-only up to 300 s" in tunnel
    failover = mana_infra("plan", "--mode", "failover").stdout
    assert "Fail-back from these records" in failover and "Cut-over from" not in failover


def test_plan_diff_shows_what_the_flip_changes(mana_infra: Callable[..., Run]) -> None:
    result = mana_infra("plan", "--diff", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["from"], document["to"]) == ("tunnel", "failover")
    chat = {c["field"]: (c["before"], c["after"]) for c in document["changes"] if c["resource"] == "dns-chat.mana.how"}
    # Through the edge (the default way) only the target moves: still proxied, still automatic TTL.
    assert chat == {"content": ("00000000-0000-4000-8000-000000000000.cfargotunnel.com", "vps.mana.how")}
    table = mana_infra("plan", "--diff", "--mode", "failover")
    assert table.returncode == 0 and "from mode failover to tunnel" in table.stdout
    assert "27 resources:" in table.stdout and "dns-chat.mana.how" not in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("plan", "--stack", "nosuch"), "Pulumi.nosuch.yaml: no such stack file: the stacks here are failover, prod"),
        (("plan", "--services", "/nonexistent.yaml"), "cannot read the inventory"),
    ],
)
def test_bad_input_exits_2_with_the_message_and_no_traceback(
    mana_infra: Callable[..., Run], args: tuple[str, ...], message: str
) -> None:
    result = mana_infra(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_inventory_lists_every_problem(mana_infra: Callable[..., Run], tmp_path: Path) -> None:
    inventory = tmp_path / "services.yaml"
    inventory.write_text("services:\n  - host: a.mana.how\n    port: 0\n  - host: a.mana.how\n    prt: 1\n")
    result = mana_infra("plan", "--services", str(inventory))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "4 problems" in result.stderr
    for text in ("port 0 is not an integer", "duplicate host a.mana.how", "unknown key prt", "has no `port`"):
        assert text in result.stderr


def test_a_wrong_mode_is_refused_by_the_cli(mana_infra: Callable[..., Run]) -> None:
    result = mana_infra("plan", "--mode", "sideways")
    assert result.returncode == 2 and "invalid choice: 'sideways'" in result.stderr
    assert "tunnel" in result.stderr and "failover" in result.stderr and "Traceback" not in result.stderr


def test_plan_against_a_saved_plan_shows_only_what_changed(mana_infra: Callable[..., Run], tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text(mana_infra("plan", "--json").stdout)
    unchanged = json.loads(mana_infra("plan", "--against", str(base), "--json").stdout)
    assert unchanged["changes"] == []
    inventory = tmp_path / "services.yaml"
    inventory.write_text((PROJECT_DIR / "services.yaml").read_text() + "  - host: new.mana.how\n    port: 6000\n")
    added = json.loads(mana_infra("plan", "--against", str(base), "--services", str(inventory), "--json").stdout)
    # The new host's Cloudflare CNAME, its CNAME in the Hetzner mirror, and its site on the VPS (warm
    # in tunnel mode too: a new Caddyfile, a new command).
    assert {(c["resource"], c["field"]) for c in added["changes"]} == {
        ("dns-new.mana.how", "(resource)"),
        ("secondary-dns-new-cname", "(resource)"),
        ("caddy-apply", "stdin"),
        ("caddy-apply", "triggers[0]"),
    }
    [site] = [c["after"] for c in added["changes"] if c["field"] == "stdin"]
    assert (
        "new.mana.how {\n\timport public_certificate\n\timport elsewhere_refused\n\timport visitor\n"
        "\treverse_proxy 10.0.0.2:6000" in site
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    result = mana_infra("plan", "--against", str(broken))
    assert result.returncode == 2 and "is not the output of `mana-infra plan --json`" in result.stderr


def test_plan_prints_one_artifact_for_the_way_given_and_a_summary(mana_infra: Callable[..., Run]) -> None:
    """`--artifact NAME` prints the file alone (to diff or to validate); `--via` beside `--mode` shows the
    DNS-only flip without editing the stack; the table ends in Pulumi's own summary form."""
    result = mana_infra("plan", "--mode", "failover", "--via", "dns", "--artifact", "Caddyfile")
    assert result.returncode == 0, result.stderr
    assert "# mode=failover via=dns." in result.stdout and result.stdout.rstrip().endswith("sites.d/*.caddy")
    edge = mana_infra("plan", "--mode", "failover", "--artifact", "Caddyfile")
    assert "# mode=failover via=edge." in edge.stdout
    wrong = mana_infra("plan", "--artifact", "nope")
    assert wrong.returncode == 2 and "one of: Caddyfile, cloud-init.yaml" in wrong.stderr
    table = mana_infra("plan")
    resources = json.loads(mana_infra("plan", "--json").stdout)["resources"]
    assert f"Resources: + {len(resources)} to create (from an empty stack)" in table.stdout


def test_plan_acts_on_the_selected_stack_without_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every Pulumi command: --stack, else the stack `pulumi stack select` chose (here the rehearsal),
    named in the first line; with no Pulumi CLI to ask, the command says to give --stack."""
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "stack --show-name" ] && echo failover\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.chdir(PROJECT_DIR)
    assert cli.main(["plan"]) == 0
    assert "mana-infra plan: stack failover, mode failover" in capsys.readouterr().out
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert cli.main(["plan"]) == 2
    assert "--stack: is not given, and no Pulumi CLI is installed to say which is selected" in capsys.readouterr().err


def test_plan_against_shows_a_port_change_as_the_caddyfiles_own_lines(
    mana_infra: Callable[..., Run], tmp_path: Path
) -> None:
    """glitchtip 8020 -> 8021: the Caddyfile's unified diff holds exactly that line, a new host is a
    created resource with its inputs, the outputs that differ are named, and the summary counts."""
    base = tmp_path / "base.json"
    base.write_text(mana_infra("plan", "--json").stdout)
    inventory = tmp_path / "services.yaml"
    text = (PROJECT_DIR / "services.yaml").read_text()
    assert "port: 8020" in text
    inventory.write_text(text.replace("port: 8020", "port: 8021") + "  - host: new.mana.how\n    port: 6000\n")
    document = json.loads(mana_infra("plan", "--against", str(base), "--services", str(inventory), "--json").stdout)
    caddyfile = document["files"]["Caddyfile"]
    assert caddyfile.startswith(f"--- Caddyfile ({base})\n+++ Caddyfile (this plan)\n")
    removed = [line for line in caddyfile.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-\treverse_proxy 10.0.0.2:8020 {"]
    assert "+\treverse_proxy 10.0.0.2:8021 {" in caddyfile.splitlines()
    assert document["summary"] == {"create": 2, "update": 1, "delete": 0, "same": document["summary"]["same"]}
    [record] = [c for c in document["created"] if c["resource"] == "dns-new.mana.how"]
    assert record["inputs"]["name"] == "new.mana.how" and record["inputs"]["proxied"] is True
    assert {o["output"] for o in document["outputs"]} >= {"hosts", "caddyfileSha256"}
    table = mana_infra("plan", "--against", str(base), "--services", str(inventory)).stdout
    assert "Resources: + 2 to create, ~ 1 to update, - 0 to delete" in table
    assert "+\treverse_proxy 10.0.0.2:8021 {" in table and "(Caddyfile: its diff" in table
    from mana_infra.plan_view import change_rows

    assert ("dns-new.mana.how", "(created)", "",
            "new.mana.how CNAME -> 00000000-0000-4000-8000-000000000000.cfargotunnel.com (proxied, ttl 1)") in (
        change_rows(document)
    )  # fmt: skip


def test_plan_diff_groups_the_records_and_keeps_keys_secret(mana_infra: Callable[..., Run]) -> None:
    """The DNS-only flip moves 27 records the same way: one row per field, naming how many."""
    table = mana_infra("plan", "--diff", "--mode", "failover", "--via", "dns").stdout
    assert table.startswith("Flipping stack prod from mode failover to tunnel. Resources: + 0 to create")
    assert table.count("27 resources:") == 3  # content, proxied, ttl
    assert "dns-chat.mana.how" not in table  # in the groups, not a row each
    assert not re.search(r"PrivateKey = [A-Za-z0-9+/]{43}=", table)


def test_a_misspelled_flag_is_refused_with_the_nearest_for_every_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One dispatch for every subcommand: a typo never reaches a command, its value is not blamed twice,
    and a subcommand's own flags (lab up's) count."""
    monkeypatch.chdir(PROJECT_DIR)
    for argv, nearest in (
        (["plan", "--stak", "prod"], "--stack"),
        (["check", "--resolvr", "127.0.0.1"], "--resolver"),
        (["cutover", "--preveiw"], "--preview"),
        (["lab", "up", "--stak", "prod"], "--stack"),
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"did you mean {nearest}?" in err and "is not an argument" not in err, (argv, err)
