"""Pulumi.yaml against Pulumi's own schema, and every stack file's keys declared there."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from mana_infra.config import PLAIN_KEYS, PROJECT, PROVIDER_TOKENS, SECRET_KEYS

from .support import FIXTURES, PROJECT_DIR

# Pulumi's own schema for Pulumi.yaml, at the pinned SDK's version (see tests/fixtures/README.md).
SCHEMA = FIXTURES / "pulumi-project.schema.json"


def project() -> dict:
    return yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())


def test_pulumi_yaml_is_valid_against_pulumis_schema() -> None:
    jsonschema.validate(project(), json.loads(SCHEMA.read_text()))


def test_the_schema_fixture_is_from_the_pinned_pulumi_version() -> None:
    pinned = re.search(r"^pulumi==(\S+)$", (PROJECT_DIR / "requirements.txt").read_text(), re.M)
    assert pinned is not None
    assert f"`github.com/pulumi/pulumi/sdk/v3` at\n  v{pinned[1]}" in (FIXTURES / "README.md").read_text()


def test_project_is_python_with_a_virtualenv() -> None:
    document = project()
    assert document["name"] == PROJECT
    assert document["runtime"]["name"] == "python" and document["runtime"]["options"]["virtualenv"] == "venv"


def test_every_key_the_program_reads_is_declared_with_type_and_description() -> None:
    declared = project()["config"]
    assert set(declared) == set(PLAIN_KEYS) | set(SECRET_KEYS)
    for key, declaration in declared.items():
        assert declaration["type"] in ("string", "integer", "boolean", "array", "object"), key
        assert declaration["description"].strip(), key
    assert declared["sshPrivateKey"]["secret"] is True
    # What every stack needs has no default; what only the standby needs defaults to empty (so the
    # rehearsal stack runs), and the standby refuses it empty: no default opens SSH or guesses a tunnel.
    for key in ("zone", "sshPrivateKey"):
        assert "default" not in declared[key], key
    for key in ("tunnelId", "sshPublicKey", "sshAllowedCidrs"):
        assert declared[key]["default"] in ("", []), key
    assert declared["mode"]["default"] == "tunnel" and declared["serverType"]["default"] == "cx23"


@pytest.mark.parametrize("stack_file", sorted(PROJECT_DIR.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_every_key_in_every_stack_file_is_declared(stack_file) -> None:
    declared = set(project()["config"])
    keys = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    for key in keys:
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            assert name in declared, f"{stack_file.name}: {key} is not declared in Pulumi.yaml"
        else:
            assert key in PROVIDER_TOKENS, (
                f"{stack_file.name}: {key} is neither this project's nor a known provider key"
            )


def test_dependencies_are_pinned_and_no_lock_file_records_a_registry() -> None:
    for lock_file in ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "package-lock.json"):
        assert not (PROJECT_DIR / lock_file).exists(), lock_file
    for requirements in PROJECT_DIR.glob("requirements*.txt"):
        for line in requirements.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+==([0-9]+!)?[0-9][0-9A-Za-z.]*", line), (
                    f"{requirements.name}: {line} is not pinned"
                )
