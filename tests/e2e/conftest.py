"""One real-engine world for the whole of tests/e2e: `mana-infra lab e2e --json --keep` runs every
operator run through the real engine (test_e2e.py holds its report to them), then keeps the world in
tunnel mode for test_engine_lab.py to drive as a person would (`lab fault`, `watch`, `sh`, `down`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mana_lab.lab import REQUIRED_TOOLS

from ..support import PROJECT_DIR, require_full_engine, require_root_and_tools


def lab(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mana_infra", "lab", "--workdir", str(workdir), *args]
    return subprocess.run(argv, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def kept_e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """The e2e's report and the work folder of the world it kept."""
    require_root_and_tools(*REQUIRED_TOOLS)
    require_full_engine()
    workdir = tmp_path_factory.mktemp("e2e") / "lab"
    # --replace: like every lab test's set-up, the suite clears whatever a crashed run left running.
    done = lab(workdir, "e2e", "--json", "--replace", "--keep", timeout=1500)
    (workdir.parent / "e2e-stderr.log").write_text(done.stderr)
    try:
        assert done.stdout.strip(), done.stderr[-3000:]
        result: dict[str, Any] = json.loads(done.stdout)
        result["exit_code"] = done.returncode
        result["stderr"] = done.stderr
        yield result, workdir
    finally:
        lab(workdir, "down")
