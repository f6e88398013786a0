"""One writer at a time on this machine: cutover, failback, deploy and the watchdog take the stack's
lock file (in the project folder) before they change anything. The second waits a while, then refuses,
naming who holds it. Across machines, Pulumi's own lock on the stack does the same for `pulumi up`
(cutover puts its configuration back when that lock refuses it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .errors import InputError, Problem

# How long a switch (cutover, failback, the watchdog's) waits for another writer: a cut-over of the
# inventory through the engine, its check included, takes well under that.
SWITCH_WAIT = 300.0


def lock_path(project_dir: Path, stack: str) -> Path:
    return project_dir / f".mana-infra-{stack}.lock"


@contextlib.contextmanager
def stack_lock(
    project_dir: Path,
    stack: str,
    what: str,
    *,
    wait: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] = lambda _holder: None,
) -> Iterator[None]:
    """Hold stack ``stack``'s lock while the block runs; wait up to ``wait`` seconds for it (``on_wait``
    told once who holds it), else refuse."""
    path = lock_path(project_dir, stack)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = clock() + wait
    held = waited = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                holder = path.read_text(encoding="utf-8").strip() or "another mana-infra command"
                if not waited:
                    on_wait(holder)
                    waited = True
                if clock() >= deadline:
                    raise InputError(
                        [
                            Problem(
                                f"stack {stack}",
                                f"is being changed by {holder}: one writer at a time, nothing was changed",
                                f"wait for it to end (`mana-infra check --stack {stack}` shows the result), "
                                "then run this again",
                            )
                        ]
                    ) from None
                sleep(min(1.0, max(0.0, deadline - clock())))
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"{what} (pid {os.getpid()} on {socket.gethostname()}, since {since})\n".encode())
        yield
    finally:
        if held:  # only the holder clears the record of who holds it
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the lock
