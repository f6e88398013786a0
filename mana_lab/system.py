"""Thin wrappers around ip(8), processes and namespace cleanup.

Every long-running lab process is started with ``ip netns exec <ns>`` so that it lives in exactly one
lab namespace. That gives cleanup a reliable handle even after a crash that lost the pidfiles:
``ip netns pids <ns>`` lists every process in the namespace (including daemons that forked away,
like wireguard-go and ``caddy start``), and only those pids are signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from .topology import PREFIX

T = TypeVar("T")

WG_RUN_DIR = Path("/var/run/wireguard")
ETC_NETNS = Path("/etc/netns")


class LabError(RuntimeError):
    """A lab step failed; the message says which and carries the tool's output."""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 30,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command and capture its output (never use this for daemonizing tools)."""
    proc = run_limited(argv, timeout=timeout, input=input, env=dict(env) if env is not None else None)
    if check and proc.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def run_limited(
    argv: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    what: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with its output captured, for at most ``timeout`` seconds: past it the command and
    everything it started (its own session) are killed and a LabError names the command (``what``, else
    its argv) — never a wait for a child that a grandchild's open pipe keeps alive."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        name = what or " ".join(argv)
        raise LabError(f"`{name}` did not finish within {timeout:g} s: killed, with everything it started") from None
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check)


def netns_exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def run_logged(
    ns: str, argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None, timeout: float = 30
) -> int:
    """Run a command that may leave a daemon behind (wg-quick + wireguard-go).

    Its output goes to a file, not a pipe: the daemon inherits and holds the descriptors open, so
    reading a pipe to EOF would hang forever.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        # New session: the daemon left behind must not get the terminal's Ctrl-C before down() runs.
        proc = subprocess.run(
            netns_exec_argv(ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_merged_env(env),
            timeout=timeout,
            start_new_session=True,
        )
    return proc.returncode


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return merged


def spawn(
    ns: str,
    argv: Sequence[str],
    *,
    name: str,
    pid_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    enter: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a foreground daemon inside ``ns``, its pid recorded in ``pid_dir/<name>.pid``.

    ``ip netns exec`` (or ``enter``, the argv prefix that enters a machine's namespaces: ``nsenter``)
    execs the command in place, so the Popen pid *is* the daemon's pid. A new session keeps Ctrl-C on
    the terminal from reaching it before down() does the orderly stop.
    """
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            [*enter, *argv] if enter is not None else netns_exec_argv(ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_merged_env(env),
            start_new_session=True,
        )
    (pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def attach_to_bridge(ns: str, port: str, ipv4: str, ipv6: str | None) -> None:
    """Plug namespace ``ns`` into the lab's internet: its ``wan0`` at the addresses, the peer ``port``
    on the bridge, on-link routes to the other documentation /24s (all share the one segment)."""
    from .topology import DOC_NETS_V4, NET_NS

    # Created directly inside the namespaces: no lab interface name ever exists on the host. The MAC
    # address follows the IPv4 address (locally administered 02:00:<the four bytes>), so a new machine at
    # a replaced server's addresses is reached at once, not after the neighbours' caches expire (~30 s).
    mac = "02:00:" + ":".join(f"{int(byte):02x}" for byte in ipv4.split("."))
    run(
        [
            "ip",
            "link",
            "add",
            "wan0",
            "address",
            mac,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            NET_NS,
        ]
    )
    ip("link", "set", port, "master", "br0", "up", ns=NET_NS)
    ip("addr", "add", f"{ipv4}/24", "dev", "wan0", ns=ns)
    if ipv6:
        # nodad: duplicate address detection would keep the address unusable for ~1 s.
        ip("addr", "add", f"{ipv6}/64", "dev", "wan0", "nodad", ns=ns)
    ip("link", "set", "wan0", "up", ns=ns)
    own = ".".join(ipv4.split(".")[:3]) + ".0/24"
    for net in DOC_NETS_V4:
        if net != own:
            ip("route", "add", net, "dev", "wan0", ns=ns)  # on-link: all /24s share the bridge


CLONE_NEWNET = 0x40000000


def in_namespace(ns: str, make: Callable[[], T]) -> T:
    """``make()`` run on a thread that entered network namespace ``ns``: a socket it opens lives in
    ``ns`` (and stays there) while this process serves it from any thread. Linux's setns(2) moves only
    the calling thread, so nothing else of the process changes namespace."""
    result: list[T] = []
    errors: list[BaseException] = []

    def enter_and_make() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{ns}") as handle:
            if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                errors.append(OSError(ctypes.get_errno(), f"setns into {ns} failed"))
                return
        try:
            result.append(make())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=enter_and_make, name=f"enter-{ns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def netns_list() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def lab_namespaces() -> list[str]:
    return [ns for ns in netns_list() if ns.startswith(PREFIX + "-")]


def netns_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_pids(pids: Sequence[int], *, grace: float = 2.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
    pids = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(pid_alive(p) for p in pids):
            return
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0.05)
    _reap(pids)


def _reap(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def pids_from_dir(pid_dir: Path) -> list[int]:
    pids: list[int] = []
    if pid_dir.is_dir():
        for f in pid_dir.glob("*.pid"):
            with contextlib.suppress(ValueError, IndexError, OSError):
                pids.append(int(f.read_text().split()[0]))
    return pids


def cleanup_leftovers(pid_dir: Path | None = None) -> list[str]:
    """Remove everything a (possibly crashed) lab run can leave behind. Idempotent.

    Returns a list of what was removed, for logging.
    """
    removed: list[str] = []
    namespaces = lab_namespaces()
    pids: list[int] = []
    for ns in namespaces:
        pids.extend(netns_pids(ns))
    if pid_dir is not None:
        # A pidfile may name a pid that was reused by an unrelated process after a crash: only
        # signal it if it still runs in a lab namespace (covered above) or is our own child.
        for pid in pids_from_dir(pid_dir):
            if pid in pids:
                continue
            try:
                ns_link = os.readlink(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            if any(ns_link == _ns_inode(ns) for ns in namespaces):
                pids.append(pid)
        for f in pid_dir.glob("*.pid"):
            f.unlink(missing_ok=True)
    if pids:
        kill_pids(pids)
        removed.append(f"{len(set(pids))} processes stopped")
    for ns in namespaces:
        run(["ip", "netns", "del", ns], check=False)
    if namespaces:
        removed.append(f"{len(namespaces)} network namespaces ({', '.join(sorted(namespaces))})")
    if WG_RUN_DIR.is_dir():
        for sock in WG_RUN_DIR.glob(f"{PREFIX}*"):
            sock.unlink(missing_ok=True)
            removed.append(str(sock))
    if ETC_NETNS.is_dir():
        for d in ETC_NETNS.glob(f"{PREFIX}-*"):
            for entry in d.iterdir():
                if entry.is_symlink() or entry.is_file():
                    entry.unlink()
            d.rmdir()
            removed.append(str(d))
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()  # only if empty: it may hold other tools' entries
    return removed


def _ns_inode(ns: str) -> str:
    try:
        st = os.stat(f"/run/netns/{ns}")
    except OSError:
        return ""
    return f"net:[{st.st_ino}]"
