"""The project on disk, read one way: where it is, what `Pulumi.yaml` declares, and a stack's
configuration merged the way the Pulumi CLI merges it.

The project is found by walking up from the working directory to `Pulumi.yaml` (as the Pulumi CLI
does), or taken from `--project-dir`; never from where this package happens to be installed. The
program, the offline plan, `adopt` and the lab read their stack files through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, Problem
from .files import read_yaml_mapping
from .model import PROVIDER_TOKENS

PROJECT = "mana-infra"
PROJECT_FILE = "Pulumi.yaml"


def qualified(key: str) -> str:
    """A config key with its namespace: the project's keys may be written without it."""
    return key if ":" in key else f"{PROJECT}:{key}"


def config_string(value: Any) -> str:
    """A config value as the CLI hands it to the program: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


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


def selected_stack(project_dir: Path) -> str:
    """The stack the Pulumi CLI has selected for this project (`pulumi stack select`): what a command
    without --stack acts on, as every Pulumi command does."""
    import shutil
    import subprocess

    fix = "give --stack STACK, or select one: pulumi stack select STACK"
    if not shutil.which("pulumi"):
        raise InputError(
            [Problem("--stack", "is not given, and no Pulumi CLI is installed to say which is selected", fix)]
        )
    try:
        done = subprocess.run(
            ["pulumi", "stack", "--show-name", "--non-interactive"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(
            [Problem("--stack", f"is not given, and the Pulumi CLI did not say which is selected: {exc}", fix)]
        ) from None
    name = done.stdout.strip()
    if done.returncode != 0 or not name:
        detail = (done.stderr.strip().splitlines() or ["no stack is selected"])[-1]
        raise InputError([Problem("--stack", f"is not given, and no stack is selected ({detail})", fix)])
    return name.rsplit("/", 1)[-1]


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
        document = read_yaml_mapping(
            folder / PROJECT_FILE, "the Pulumi project file", "see Pulumi's project file reference"
        )
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
        """Pulumi.yaml defaults, then Pulumi.<stack>.yaml: the values `pulumi up` would see. What the
        Pulumi CLI refuses in the file before the program runs (a secret in plaintext, a value of the
        wrong type) is refused here too, every problem at once; for a key with neither value nor
        default see missing()."""
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
        document = read_yaml_mapping(path, "a Pulumi stack file", "see `pulumi config` for its shape")
        stack_values = document.get("config") or {}
        if not isinstance(stack_values, dict):
            raise InputError([Problem(path.name, "config: is not a mapping of keys to values", "see `pulumi config`")])
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
        problems = self._cli_refusals(path, {qualified(str(k)): v for k, v in stack_values.items()}, secure, stack)
        if problems:
            raise InputError(problems)
        return StackConfig(stack, path, values, frozenset(secure), dict(stack_values))

    def _cli_refusals(self, path: Path, stack_values: Mapping[str, Any], secure: set[str], stack: str) -> list[Problem]:
        """What `pulumi preview` and `pulumi up` refuse before running the program (the CLI's own
        check of a stack's configuration against Pulumi.yaml), with the command that fixes each (naming
        the stack: the selected one may be another)."""
        problems: list[Problem] = []
        rm, config_set = f"pulumi config rm --stack {stack}", f"pulumi config set --stack {stack}"
        for key, declared in self.declared.items():
            name = qualified(key)
            if name not in stack_values:
                continue
            if declared.get("secret") and name not in secure:
                problems.append(
                    Problem(
                        f"{path.name}: {name}",
                        "is in plaintext, but it is a secret: the Pulumi CLI refuses it (and the file is committed)",
                        f"{rm} {key} && {config_set} --secret {key} <value>",
                    )
                )
            elif name not in secure and not _of_type(stack_values[name], declared):
                kind = str(declared.get("type"))
                problems.append(
                    Problem(
                        f"{path.name}: {name}",
                        f"{stack_values[name]!r} is not of type {kind}: the Pulumi CLI refuses it",
                        f"{config_set} {'--path ' if kind in ('array', 'object') else ''}{key} <{kind}>",
                    )
                )
        reported = {problem.where for problem in problems}
        for name, value in stack_values.items():
            if name in secure or f"{path.name}: {name}" in reported:
                continue
            if name in PROVIDER_TOKENS or "PRIVATE KEY-----" in str(value):
                key = name.removeprefix(f"{PROJECT}:")
                what = "a provider token" if name in PROVIDER_TOKENS else "a private key"
                problems.append(
                    Problem(
                        f"{path.name}: {name}",
                        f"is {what} in plaintext: anyone who reads the repository has it",
                        f"{rm} {key} && {config_set} --secret {key} <value>   (then rotate it)",
                    )
                )
        return problems

    def missing(self, config: StackConfig, values: Mapping[str, str]) -> Problem | None:
        """The CLI's first refusal: keys Pulumi.yaml declares without a default that ``values`` lack."""
        keys = [
            key for key, declared in self.declared.items() if "default" not in declared and qualified(key) not in values
        ]
        if not keys:
            return None
        secret = {key for key in keys if self.declared[key].get("secret")}
        return Problem(
            config.file.name,
            f"Stack '{config.stack}' is missing configuration value{'s' * (len(keys) > 1)} "
            + ", ".join(f"'{key}'" for key in keys)
            + ": the Pulumi CLI refuses to run it",
            " && ".join(
                f"pulumi config set --stack {config.stack} {'--secret ' * (key in secret)}{key} <value>" for key in keys
            ),
        )


_INTEGER = re.compile(r"^[+-]?\d+$")


def _of_type(value: Any, declared: Mapping[str, Any]) -> bool:
    """The CLI's type check of a stack value (ValidateConfigValue): integers may be written as text,
    booleans as "true"/"false", arrays' items have the declared item type."""
    kind = declared.get("type")
    if kind == "string":
        return not isinstance(value, dict | list)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and bool(_INTEGER.match(value))
        )
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        items = declared.get("items") or {}
        return (
            isinstance(value, list) and all(_of_type(item, items) for item in value)
            if items
            else isinstance(value, list)
        )
    return True
