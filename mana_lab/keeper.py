"""The real-engine lab left running: ``mana-infra lab up --engine`` starts this process, detached.

It builds the e2e's world (the stand-in clouds live in this process), sets the stack up with the
README's commands, runs the first ``pulumi up`` in tunnel mode, the Mac Mini's WireGuard from its
output and the run after the adoption (README step 5) — or, for ``lab e2e --keep``, every e2e run,
which ends in tunnel mode too — then keeps the world until ``lab down``.
Meanwhile it answers on a Unix socket (root's alone) one JSON line per request: ``{"op": "faults"}``,
``{"op": "fault", "name": N, "on": true}``, ``{"op": "requests"}`` (the stand-in APIs' counts),
``{"op": "down"}``. What a person needs to act in the
operator's seat (the project copy, the stack's login, the check flags that point at the lab) goes into
``operator.json`` beside it, mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import engine as engines
from . import topology as topo
from .e2e import EndToEnd, Run, fresh_workdir
from .faults import BY_NAME, FAULT_NAMES, Faults
from .system import LabError

SOCKET = "keeper.sock"
OPERATOR = "operator.json"
REPORT = "e2e.json"  # `lab e2e --keep`'s report
ENGINE_DIR = "engine"  # the world's folder in the lab's work folder
STACK = "prod"


def _log(message: str) -> None:
    print(message, flush=True)  # the keeper's stdout is its log file, which `lab up` follows


class Keeper(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, faults: Faults) -> None:
        path.unlink(missing_ok=True)
        self.faults, self.world, self.lock = faults, faults.world, threading.Lock()
        super().__init__(str(path), Handler)
        os.chmod(path, 0o600)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "faults":
            return {"ok": True, "faults": self.faults.listing()}
        if op == "fault":
            name, on = request.get("name"), request.get("on")
            if not isinstance(name, str) or name not in BY_NAME or not isinstance(on, bool):
                return {"ok": False, "error": f"no fault {name!r}: one of {', '.join(FAULT_NAMES)}, on or off"}
            with self.lock:  # one change at a time: parts shared by faults
                self.faults.set(str(name), on)
            return {"ok": True, "faults": self.faults.listing()}
        if op == "requests":  # what the stand-in APIs have answered so far: {"hetzner": n, "cloudflare": n}
            return {"ok": True, "requests": self.world.requests()}
        if op == "down":
            threading.Thread(target=self.shutdown, daemon=True).start()
            return {"ok": True}
        return {"ok": False, "error": f"unknown request {op!r}"}


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: Keeper = self.server  # type: ignore[assignment]
        try:
            answer = server.answer(json.loads(self.rfile.readline()))
        except (ValueError, LabError, OSError) as error:
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        self.wfile.write((json.dumps(answer) + "\n").encode())


def ask(workdir: Path, request: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """One request to the keeper of the lab in ``workdir``; a LabError when none answers."""
    import socket

    path = workdir / ENGINE_DIR / SOCKET
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps(request) + "\n").encode())
            answer: dict[str, Any] = json.loads(sock.makefile().readline())
    except (OSError, ValueError) as error:
        raise LabError(
            f"no real-engine lab answers at {path} ({error}): start one with `mana-infra lab up --engine`"
        ) from error
    return answer


def operator_seat(e2e: EndToEnd) -> dict[str, Any]:
    """What `lab watch`, `lab sh` and `lab check` run with: the operator's folder, environment and the
    check flags that point mana-infra's probes at the lab."""
    op, world = e2e.op, e2e.world
    flags = [*world.check_flags(timeout=2), "--mirror-nameserver", topo.MIRROR_DNS_IP]
    return {"cwd": str(op.project), "env": op.env, "check_flags": flags, "stack": STACK}


def deploy_as_the_readme_says(e2e: EndToEnd) -> None:
    """The world, the README's set-up, its first `pulumi up` (tunnel mode), the Mac Mini's WireGuard and
    the run after the adoption (step 5)."""
    _log("lab: the world (stand-in clouds, DNS, edge, pebble, the Mac Mini)")
    e2e.start()
    _log("lab: the README's first `pulumi up` in tunnel mode, then the Mac Mini's WireGuard from its output")
    run = Run("up-tunnel", "")
    e2e.up_tunnel(run)
    if run.problems:
        raise LabError("the first `pulumi up`: " + "; ".join(run.problems[:3]))
    _log("lab: `pulumi config rm adoptRecords && pulumi up` (README step 5, after the first run)")
    run = Run("up-after-adoption", "")
    e2e.up_after_adoption(run)
    if run.problems:
        raise LabError("the run after the adoption: " + "; ".join(run.problems[:3]))


def run_the_e2e(e2e: EndToEnd, where: Path) -> None:
    """`lab e2e --keep`: every e2e run, its report beside the seat; the world stays for a person."""
    report = e2e.run_all(keep=True)
    (where / REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if e2e.operator is None:
        raise LabError("the e2e's world did not come up: nothing to keep")


def keep(workdir: Path, project_dir: Path, run_e2e: bool = False) -> int:
    found = engines.find(project_dir)
    if isinstance(found, str):
        _log(f"lab: the real-engine lab {found}")
        return 2
    where = workdir / ENGINE_DIR
    fresh_workdir(where)
    e2e = EndToEnd(where, found, project_dir, _log)
    # `lab down`'s SIGTERM ends it wherever it is, setting up or serving: the world comes down below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _log(f"lab: Pulumi {found.version}")
        if run_e2e:
            run_the_e2e(e2e, where)
        else:
            deploy_as_the_readme_says(e2e)
        seat = where / OPERATOR
        seat.touch(mode=0o600)
        seat.write_text(json.dumps(operator_seat(e2e), indent=2) + "\n")
        server = Keeper(where / SOCKET, Faults(e2e.world))
        _log("lab: ready")
        server.serve_forever()
        server.server_close()
    except LabError as error:
        _log(f"lab: {error}")
        return 1
    finally:
        _log("lab: taking the world down")
        e2e.world.down()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mana_lab.keeper", description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--e2e", action="store_true", help="run every e2e run first (`lab e2e --keep`)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    code = keep(args.workdir, args.project_dir, args.e2e)
    _log(f"lab: the keeper ends after {time.monotonic() - started:.0f} s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
