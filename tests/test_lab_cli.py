"""`mana-infra lab`'s own command line, where it needs no lab: a closed pipe, `down` with nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support import PROJECT_DIR


def test_status_into_a_closed_pipe_is_no_traceback() -> None:
    """`mana-infra lab status | head -1`: the reader leaves early, the command ends quietly."""
    code = (
        "import sys; sys.path.insert(0, '.'); import mana_lab.cli as cli;"
        "cli.status_text = lambda: '\\n'.join(f'mlab-{i}: no processes' for i in range(200000));"
        "sys.exit(cli.main(['status']))"
    )
    reader, writer = os.pipe()
    os.close(reader)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, stdout=writer, stderr=subprocess.PIPE, check=False
    )
    os.close(writer)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()


def test_down_removes_the_work_folder_with_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No namespace is touched here (a developer's running lab would go): the clean-up itself is the
    lab's own, tested with it; what `down` adds is the work folder."""
    import mana_lab.cli as cli
    import mana_lab.system

    monkeypatch.setattr(mana_lab.system, "cleanup_leftovers", lambda _pids: ["3 processes stopped"])
    workdir = tmp_path / "lab"
    (workdir / "pki").mkdir(parents=True)
    (workdir / "pki" / "key.pem").write_text("a key")
    assert cli.main(["--workdir", str(workdir), "down"]) == 0
    assert not workdir.exists()
    assert capsys.readouterr().out == f"removed: 3 processes stopped; the work folder {workdir}\n"
