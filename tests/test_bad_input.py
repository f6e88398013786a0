"""Nothing silently wrong: every file, key and flag an operator hands the commands is checked, and what
would be ignored, taken wrongly or crash is refused (exit 2) with where it is and the fix."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mana_infra import cli

from .support import PROJECT_DIR, copy_project, with_stack

LATIN1 = "caf\xe9".encode("latin-1")  # "café" as an editor on an old system saves it: not UTF-8


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's files, the working directory of the commands."""
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(with_stack(list(args)))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert (code, out) == (2, ""), err
    assert "Traceback" not in err
    return " ".join(err.split())


@pytest.mark.parametrize("name", ["services.yaml", "Pulumi.prod.yaml"])
def test_a_file_that_is_not_utf8_is_named_with_the_offset_of_its_first_bad_byte(
    checkout: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = checkout / name
    text = path.read_bytes()
    path.write_bytes(text + b"# " + LATIN1 + b"\n")
    message = refused(capsys, "plan")
    assert f"{path}: is not UTF-8 text: byte 0xe9 at offset {len(text) + 5} (invalid continuation byte)" in message
    assert "fix: save the file as UTF-8" in message


def test_saved_plans_and_outputs_that_are_not_utf8_are_named_too(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = checkout / "saved.json"
    bad.write_bytes(b'{"stack": "' + LATIN1 + b'"}')
    assert f"{bad}: is not UTF-8 text: byte 0xe9 at offset 14" in refused(capsys, "plan", "--against", str(bad))
    assert f"{bad}: is not UTF-8 text: byte 0xe9 at offset 14" in refused(
        capsys, "check", "--outputs", str(bad), "--no-ssh", "--resolver", "127.0.0.1:9"
    )


def test_a_misspelled_key_names_the_key_it_meant(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = checkout / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("mana-infra:secondaryDns: true", "mana-infra:secondaryDNS: false"))
    message = refused(capsys, "plan")
    assert (
        "Pulumi.prod.yaml: mana-infra:secondaryDNS: is not a key of this project: it would be ignored "
        "(did you mean `secondaryDns`?)" in message
    )
    assert (
        "fix: pulumi config rm --stack prod secondaryDNS && pulumi config set --stack prod secondaryDns <value>"
        in message
    )


def test_a_renamed_key_says_what_took_its_place(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = checkout / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text() + "  mana-infra:failoverProxied: true\n")
    assert "mana-infra:failoverProxied: was renamed: use failoverVia (edge keeps" in refused(capsys, "plan")


def test_a_key_given_twice_names_both_lines(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = checkout / "services.yaml"
    services.write_text("services:\n  - host: mana.how\n    port: 5030\n    port: 5031\n")
    message = refused(capsys, "plan")
    assert f"{services}:4: the key 'port' is given twice (lines 3 and 4): YAML keeps only the last" in message
    stack = checkout / "Pulumi.prod.yaml"
    shutil.copy(PROJECT_DIR / "services.yaml", services)
    stack.write_text(stack.read_text() + "  mana-infra:mode: failover\n")
    assert "the key 'mana-infra:mode' is given twice (lines 5 and 11)" in refused(capsys, "plan")


@pytest.mark.parametrize(
    ("line", "what", "key"),
    [
        ("  hcloud:token: " + "h" * 64, "a provider token", "hcloud:token"),
        ("  cloudflare:apiToken: " + "c" * 40, "a provider token", "cloudflare:apiToken"),
        ("  mana-infra:macMiniPublicKey: '-----BEGIN OPENSSH PRIVATE KEY----- x'", "a private key", "macMiniPublicKey"),
    ],
)
def test_a_token_or_private_key_in_plaintext_is_refused_with_the_secret_command(
    checkout: Path, capsys: pytest.CaptureFixture[str], line: str, what: str, key: str
) -> None:
    stack = checkout / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text() + line + "\n")
    message = refused(capsys, "plan")
    assert f"is {what} in plaintext: anyone who reads the repository has it" in message
    assert (
        f"fix: pulumi config rm --stack prod {key} && pulumi config set --stack prod --secret {key} <value> "
        "(then rotate it)" in message
    )


def test_flags_that_cannot_take_effect_together_are_refused(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = checkout / "failover-plan.json"
    code, out, _ = run(capsys, "plan", "--stack", "failover", "--json")
    assert code == 0
    saved.write_text(out)
    assert "--diff: cannot be combined with --against" in refused(capsys, "plan", "--against", str(saved), "--diff")
    message = refused(capsys, "plan", "--stack", "prod", "--against", str(saved))
    assert f"{saved}: is a plan of stack failover, this one of stack prod" in message
    assert "fix: compare like with like: --stack failover" in message
    code, out, _ = run(capsys, "plan", "--json")
    saved.write_text(out)
    message = refused(capsys, "plan", "--mode", "failover", "--against", str(saved))
    assert "is a plan of mode tunnel, this one of mode failover" in message and "fix: --mode tunnel" in message


def test_no_changes_says_so(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = checkout / "plan.json"
    saved.write_text(run(capsys, "plan", "--json")[1])
    code, out, _ = run(capsys, "plan", "--against", str(saved))
    assert code == 0 and " ".join(out.split()) == (
        f"Changes against {saved} (stack prod, mode tunnel). Resources: + 0 to create, ~ 0 to update, - 0 to "
        "delete, 85 unchanged No changes."
    )


def test_the_plan_shows_every_output_and_secrets_as_secret(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "plan")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80  # an 80-column terminal, no wrapped rows
    assert re.search(r"│ macminiWireguardConfig +│ \[secret\] +│", out)  # a value, not rich's markup
    assert re.search(r"│ hosts +│ 27 hosts ->", out)  # every output, the hosts too
    document = json.loads(run(capsys, "plan", "--json")[1])
    assert list(document) == ["stack", "mode", "resources", "outputs", "placeholders", "artifacts"]
    assert document["outputs"]["macminiWireguardConfig"] == "[secret]" and len(document["outputs"]["hosts"]) == 27
    assert {"key": "hcloud:token", "value": "[secret]", "why": "a Hetzner Cloud API token (read & write)"} in (
        document["placeholders"]
    )


def test_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("mana-infra 0.")
