"""The real-engine lab from the command line: ``lab up --engine`` (the keeper, detached), ``lab fault``,
``lab watch``, ``lab sh``; ``lab check``, ``status`` and ``down`` know it too (cli.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mana_infra.errors import ExitCode

from . import keeper
from . import topology as topo
from .system import LabError, netns_exec_argv

KEEPER_PID = "keeper.pid"  # in the lab's work folder, from the moment the keeper starts
UP_SECONDS = 1500.0  # the world and the first `pulumi up` (under a minute here), or the whole e2e (~6 min)
WATCH_STATE = "lab-watch/watch-prod.json"  # `lab watch`'s state file in the world's folder (not the e2e's)


def start(workdir: Path, project_dir: Path, log: Callable[[str], None], run_e2e: bool = False) -> dict[str, Any]:
    """Start the keeper detached (``run_e2e``: it runs every e2e run first), follow its log until it is
    ready; the state `lab.json` records."""
    from . import engine

    found = engine.find(project_dir)
    if isinstance(found, str):
        raise LabError(f"the real-engine lab {found}")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "keeper.log"
    with log_path.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mana_lab.keeper", "--workdir", str(workdir), "--project-dir", str(project_dir),
             *(["--e2e"] if run_e2e else [])],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    # On record at once: `lab down` (or --replace) stops it even while it sets up, or after a Ctrl-C here.
    (workdir / KEEPER_PID).write_text(f"{process.pid}\n")
    try:
        _follow(log_path, process, log)
    except BaseException:
        stop(process.pid)
        raise
    return {"kind": "engine", "keeper": process.pid, "check": check_argv(seat(workdir))}


def _follow(log_path: Path, process: subprocess.Popen[bytes], log: Callable[[str], None]) -> None:
    """Echo the keeper's log until it says it is ready; a LabError if it ends or takes too long first."""
    seen = 0
    deadline = time.monotonic() + UP_SECONDS
    while True:
        lines = log_path.read_text(errors="replace").splitlines()
        for line in lines[seen:]:
            log(line)
        seen = len(lines)
        if "lab: ready" in lines:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"the real-engine lab did not come up (its log: {log_path})")
        time.sleep(0.2)


def kept_report(workdir: Path) -> dict[str, Any]:
    """The report `lab e2e --keep`'s keeper wrote."""
    return _written(workdir, keeper.REPORT, f"the e2e's report is missing: see {workdir / 'keeper.log'}")


def seat(workdir: Path) -> dict[str, Any]:
    """The operator's seat the keeper wrote: folder, environment, check flags."""
    return _written(
        workdir, keeper.OPERATOR, f"no real-engine lab in {workdir}: start one with `mana-infra lab up --engine`"
    )


def _written(workdir: Path, name: str, missing: str) -> dict[str, Any]:
    """A JSON file the keeper wrote into the world's folder; a LabError saying ``missing`` without it."""
    try:
        found: dict[str, Any] = json.loads((workdir / keeper.ENGINE_DIR / name).read_text())
    except (OSError, ValueError) as error:
        raise LabError(f"{missing} ({error})") from error
    return found


def check_argv(operator: dict[str, Any]) -> list[str]:
    return ["mana-infra", "check", "--stack", operator["stack"], *operator["check_flags"]]


def run_in_seat(workdir: Path, argv: Sequence[str], timeout: float | None = None) -> int:
    """``argv`` on the operator's machine (the lab's client namespace), in the project copy with the
    stack's login: what the README has the operator type, here."""
    operator = seat(workdir)
    env = {**operator["env"], "LAB_CHECK_FLAGS": shlex.join(operator["check_flags"])}
    try:
        full = netns_exec_argv(topo.ns_name("client"), list(argv))
        return subprocess.run(full, cwd=operator["cwd"], env=env, check=False, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish within {timeout:g} s: stopped") from None


def watch(workdir: Path, extra: Sequence[str]) -> int:
    """The watchdog from the watch box's place (the operator's machine), as the README installs it,
    with the lab's check flags and a state file in the lab; its own flags pass through."""
    operator = seat(workdir)
    state = workdir / keeper.ENGINE_DIR / WATCH_STATE
    argv = ["mana-infra", "watch", "--stack", operator["stack"], "--state", str(state), *operator["check_flags"]]
    return run_in_seat(workdir, [*argv, *extra])


def fault(workdir: Path, name: str | None, to: str | None) -> int:
    """`lab fault`: the faults and their state; `lab fault NAME on|off`: make or mend one."""
    if name is None:
        answer = keeper.ask(workdir, {"op": "faults"})
    elif to not in ("on", "off"):
        raise LabError(f"`lab fault {name}` wants on or off: `mana-infra lab fault {name} on`")
    else:
        answer = keeper.ask(workdir, {"op": "fault", "name": name, "on": to == "on"})
    if not answer.get("ok"):
        raise LabError(str(answer.get("error")))
    for entry in answer["faults"]:
        print(f"{entry['name']:<14} {'ON ' if entry['on'] else 'off'}  {entry['words']}")
    return ExitCode.OK


def stop_recorded(workdir: Path) -> bool:
    """Stop the keeper the work folder records, if one runs (`lab down`, `--replace`)."""
    try:
        pid = int((workdir / KEEPER_PID).read_text())
    except (OSError, ValueError):
        return False
    return stop(pid)


def stop(pid: int, timeout: float = 120) -> bool:
    """Stop a keeper (it takes its world down first); True if one was running."""
    try:  # a pid from an old state file may be another process's by now
        if b"mana_lab.keeper" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, signal.SIGTERM)
    except FileNotFoundError:
        return False
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
