"""The project on disk, read one way: where it is, what `Pulumi.yaml` declares, and a stack's
configuration merged the way the Pulumi CLI merges it.

The project is found by walking up from the working directory to `Pulumi.yaml` (as the Pulumi CLI
does), or taken from `--project-dir`; never from where this package happens to be installed. The
program, the offline plan, `adopt` and the lab read their stack files through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Problem

PROJECT = "mana-infra"
PROJECT_FILE = "Pulumi.yaml"


def qualified(key: str) -> str:
    """A config key with its namespace: the project's keys may be written without it."""
    return key if ":" in key else f"{PROJECT}:{key}"


def config_string(value: Any) -> str:
    """A config value as the CLI hands it to the program: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def read_text(path: Path, what: str) -> str:
    """A project file's text; an unreadable file is bad input naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read {what}: {exc.strerror}", f"create {path.name}")]) from None


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A project YAML file as a mapping (empty when the file is empty)."""
    try:
        document = yaml.safe_load(read_text(path, what))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError([Problem(where, f"YAML syntax error: {exc}", "fix the file's syntax")]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError([Problem(str(path), f"is not a YAML mapping ({what})", "see the README for its shape")])
    return document


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with a Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise InputError(
        [
            Problem(
                str(here),
                f"no {PROJECT_FILE} here or in any folder above",
                "run this from the mana-infra project folder, or give --project-dir <folder>",
            )
        ]
    )


@dataclass(frozen=True)
class StackConfig:
    """A stack's configuration as the CLI hands it to the program.

    ``values``: qualified key -> text (objects and lists as JSON). ``secure``: the keys whose value
    the stack file holds encrypted (the value here is unknown offline). ``stack_values``: the stack
    file's own keys, before defaults.
    """

    stack: str
    file: Path
    values: dict[str, str]
    secure: frozenset[str] = frozenset()
    stack_values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(qualified(key))


@dataclass(frozen=True)
class Project:
    """The mana-infra project folder and its Pulumi.yaml."""

    dir: Path
    declared: Mapping[str, Mapping[str, Any]]

    @classmethod
    def at(cls, folder: Path) -> Project:
        folder = folder.resolve()
        document = read_yaml(folder / PROJECT_FILE, "the Pulumi project file")
        declared = document.get("config") or {}
        return cls(folder, {str(key): value for key, value in declared.items() if isinstance(value, dict)})

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        return cls.at(find_project_dir(start))

    def path(self, relative: str) -> Path:
        """A file named in config (the inventory), relative to the project folder."""
        return self.dir / relative

    def stacks(self) -> list[str]:
        return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in self.dir.glob("Pulumi.*.yaml"))

    def stack_file(self, stack: str) -> Path:
        return self.dir / f"Pulumi.{stack}.yaml"

    def defaults(self) -> dict[str, str]:
        """Pulumi.yaml's defaults, qualified: what the CLI passes for a key the stack does not set."""
        return {
            qualified(key): config_string(declaration["default"])
            for key, declaration in self.declared.items()
            if "default" in declaration
        }

    def stack_config(self, stack: str) -> StackConfig:
        """Pulumi.yaml defaults, then Pulumi.<stack>.yaml: the values `pulumi up` would see."""
        path = self.stack_file(stack)
        if not path.is_file():
            raise InputError(
                [
                    Problem(
                        path.name,
                        f"no such stack file: the stacks here are {', '.join(self.stacks()) or 'none'}",
                        f"pass --stack with one of them, or `pulumi stack init {stack}`",
                    )
                ]
            )
        stack_values = read_yaml(path, "a Pulumi stack file").get("config") or {}
        values = self.defaults()
        secure: set[str] = set()
        for key, value in stack_values.items():
            name = qualified(str(key))
            if isinstance(value, dict) and "secure" in value:
                # Encrypted with the stack's key: only the CLI can read it; here it is known to be set.
                values[name] = ""
                secure.add(name)
            else:
                values[name] = config_string(value)
        return StackConfig(stack, path, values, frozenset(secure), dict(stack_values))
