"""The real Pulumi engine this checkout runs: the CLI, the Python language host, the provider plugins.

``make engine`` (engine/build.sh) puts them in ``.engine/``: the CLI and the language host in
``.engine/bin``, the plugins in ``.engine/home`` (a PULUMI_HOME of the project's own, never the
operator's ``~/.pulumi``). ``find()`` says what is there, or why the real runs cannot happen here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGE_HOST = "pulumi-language-python"
PIN = re.compile(r"^pulumi(?:verse)?-([a-z]+)==([0-9.]+)\s*$")


@dataclass(frozen=True)
class Engine:
    cli: Path
    home: Path
    version: str
    plugins: dict[str, str] = field(default_factory=dict)
    """Installed resource plugins: name -> version."""

    @property
    def bin_dir(self) -> Path:
        return self.cli.parent

    def environment(self, state: Path, passphrase: str = "mana-infra lab") -> dict[str, str]:
        """What a Pulumi run needs beside the caller's environment: this CLI first on PATH (the
        Automation API finds it there), the language host beside it, the project's PULUMI_HOME, a
        local backend in ``state``, no update check and no plugin downloads."""
        state.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }


def pinned_plugins(project_dir: Path) -> dict[str, str]:
    """The plugins the program's SDKs ask for, at the versions requirements.txt pins."""
    found = {}
    for line in (project_dir / "requirements.txt").read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[match[1]] = match[2]
    return found


def find(project_dir: Path) -> Engine | str:
    """The engine of ``project_dir``'s ``.engine`` (or a ``pulumi`` on PATH with the plugins in
    ``.engine/home``), or the reason there is none to run."""
    engine_dir = project_dir / ".engine"
    cli = engine_dir / "bin" / "pulumi"
    if not cli.exists():
        on_path = shutil.which("pulumi")
        if on_path is None:
            return "needs the Pulumi CLI (`make engine` builds it; `make test` does)"
        cli = Path(on_path)
    bin_dir = cli.resolve().parent
    if not any((d / LANGUAGE_HOST).exists() for d in (cli.parent, bin_dir)) and not shutil.which(LANGUAGE_HOST):
        return (
            f"needs Pulumi's Python language host ({LANGUAGE_HOST}) beside {cli}: `make engine` with "
            "MANA_ENGINE_OFFLINE set to a folder that holds it (CI: ../shared/engine), or Pulumi's release"
        )
    home = engine_dir / "home"
    env: Mapping[str, str] = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    try:
        version = subprocess.run([str(cli), "version"], capture_output=True, text=True, timeout=60, env=env)
        listed = subprocess.run(
            [str(cli), "plugin", "ls", "--json"], capture_output=True, text=True, timeout=60, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"needs a Pulumi CLI that runs ({cli}: {error})"
    plugins = {p["name"]: p["version"] for p in json.loads(listed.stdout or "[]") or [] if p.get("kind") == "resource"}
    missing = {name: v for name, v in pinned_plugins(project_dir).items() if plugins.get(name) != v}
    if missing:
        wanted = ", ".join(f"{name} {v}" for name, v in sorted(missing.items()))
        return f"needs the provider plugins {wanted} in {home} (`make engine`, with MANA_ENGINE_OFFLINE or internet)"
    return Engine(cli, home, version.stdout.strip(), plugins)
