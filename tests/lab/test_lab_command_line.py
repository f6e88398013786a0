"""`mana-infra lab` as the README runs it, in a real lab: `up --stack failover` (the rehearsal stack:
prod's plan with the rehearsal), its progress, `status`, `check`, a second `up` refused, `down`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mana_lab.lab import REQUIRED_TOOLS

from ..support import PROJECT_DIR, require_root_and_tools


def lab(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mana_infra", "lab", "--workdir", str(workdir), *args]
    return subprocess.run(argv, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False)


def test_up_status_check_down(tmp_path: Path) -> None:
    require_root_and_tools(*REQUIRED_TOOLS)
    workdir = tmp_path / "lab"
    try:
        started = time.monotonic()
        up = lab(workdir, "up", "--stack", "failover")
        wall = time.monotonic() - started
        assert up.returncode == 0, up.stderr
        assert "stack failover rehearses prod: the lab runs prod's offline plan with failover's rehearsal" in up.stderr
        progress = [line for line in up.stderr.splitlines() if line.startswith("lab: ")]
        assert "lab: the network: namespaces, links, addresses" in progress, progress
        assert "lab: waiting for WireGuard's first handshake" in progress, progress
        assert up.stdout.startswith("lab up in ") and "(tunnel, stack prod; the offline plan " in up.stdout
        # The time it says is the wait the operator had, the plan's evaluation included (the process's start aside).
        said = float(up.stdout.removeprefix("lab up in ").split("s", 1)[0])
        assert wall - 3 < said <= wall, (said, wall)

        again = lab(workdir, "up")
        assert again.returncode == 2 and "a lab is running: stack prod, state tunnel, rehearsal stack failover" in (
            again.stderr
        )
        status = lab(workdir, "status")
        assert status.returncode == 0 and status.stdout.startswith("lab: stack prod, state tunnel"), status.stdout
        assert "mlab-client: " in status.stdout and "check: ip netns exec mlab-client " in status.stdout

        check = lab(workdir, "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "HEALTHY" in check.stdout, check.stdout
        as_json = lab(workdir, "check", "--json")
        assert as_json.returncode == 0 and '"healthy": true' in as_json.stdout
    finally:
        down = lab(workdir, "down")
    assert down.returncode == 0 and f"the work folder {workdir}" in down.stdout
    assert not workdir.exists()
    assert lab(workdir, "status").stdout.startswith("no lab is running")
