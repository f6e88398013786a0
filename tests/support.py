"""Helpers shared by the tests. Tests that need a tool from Debian skip without it, except in CI (CI=true),
where a missing tool is a failed set-up and must fail the run."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

from mana_infra import plan as offline
from mana_infra.check.report import Report
from mana_infra.config import StandbyConfig, read_stack_config
from mana_infra.program import Standby, build
from mana_infra.project import Project

if TYPE_CHECKING:
    from mana_lab.engine import Engine

# This checkout: the project around the tests' own folder.
PROJECT = Project.find(Path(__file__).parent)
PROJECT_DIR = PROJECT.dir
FIXTURES = Path(__file__).resolve().parent / "fixtures"
T = TypeVar("T")


def plan_of(stack: str = "prod", mode: str | None = None, **overrides: str) -> offline.PlanResult:
    """The offline plan of a stack file as it is (in ``mode``, with config ``overrides``): evaluated once
    per test run, each caller gets its own copy, so nothing one test does reaches another."""
    return copy.deepcopy(_evaluated_plan(stack, mode, tuple(sorted(overrides.items()))))


@functools.cache
def _evaluated_plan(stack: str, mode: str | None, overrides: tuple[tuple[str, str], ...]) -> offline.PlanResult:
    return offline.plan(stack, mode=mode, overrides=dict(overrides), project=PROJECT)


# The standby's three states: what its Caddyfile is in each.
STATES = {"tunnel": {"mode": "tunnel"}, "failover": {"mode": "failover"},
          "failover-dns": {"mode": "failover", "failoverVia": "dns"}}  # fmt: skip


def plan_in(state: str, stack: str = "prod") -> offline.PlanResult:
    overrides = dict(STATES[state])
    return plan_of(stack, overrides.pop("mode"), **overrides)


def by_name(result: offline.PlanResult) -> dict[str, offline.Recorded]:
    return {resource.name: resource for resource in result.resources}


def etc_caddy(tmp_path: Path, files: dict[str, str], zone: str = "mana.how") -> Path:
    """An /etc/caddy as the VPS has it: ``files`` (relative paths), and both certificates (a test CA's,
    for the zone and *.zone) where the Caddyfile refers to them."""
    from mana_infra.render.caddyfile import ORIGIN_CERTIFICATE, PUBLIC_CERTIFICATE
    from mana_lab.standins import LocalCA

    caddy_dir = tmp_path / "etc-caddy"
    for folder in ("sites.d", "global.d", "certs"):
        (caddy_dir / folder).mkdir(parents=True, exist_ok=True)
    cert, key = LocalCA(tmp_path / "ca").issue("standby", [zone, f"*.{zone}"])
    for path in (PUBLIC_CERTIFICATE, ORIGIN_CERTIFICATE):
        (caddy_dir / path).write_text(cert.read_text() + key.read_text())
    for name, text in files.items():
        (caddy_dir / name).write_text(text)
    return caddy_dir


def caddy_with(caddy_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`caddy COMMAND` with ``caddy_dir`` as its /etc/caddy (in a mount namespace of its own)."""
    require_root_and_tools("caddy", "unshare", "mount")
    script = f"mkdir -p /etc/caddy && mount --bind {caddy_dir} /etc/caddy && caddy {command}"
    return subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=60)


def unavailable(reason: str) -> NoReturn:
    """Skip a test this machine cannot run (``reason``: "needs ..."); in CI, which must run every test,
    fail it."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but it {reason}")
    pytest.skip(reason)


def find_program(preferred: Path, name: str, reason: str) -> str:
    """``preferred`` (what the project builds or pins), else ``name`` on PATH, else unavailable."""
    found = str(preferred) if preferred.is_file() else shutil.which(name)
    if found is None:
        unavailable(reason)
    return found


def require_engine() -> str:
    """The real Pulumi CLI: the one `make engine` built, else one on PATH (an operator's own)."""
    return find_program(
        PROJECT_DIR / ".engine" / "bin" / "pulumi",
        "pulumi",
        "needs the Pulumi CLI (`make engine` builds it; `make test` does)",
    )


def require_full_engine() -> Engine:
    """The real engine with its Python language host and the pinned provider plugins (`make engine`)."""
    from mana_lab.engine import find

    found = find(PROJECT_DIR)
    if isinstance(found, str):
        unavailable(found)
    return found


def require_tools(*tools: str) -> None:
    """Skip (or, in CI, fail) when a tool the test runs is not installed."""
    # sbin tools (sshd, knotd) count even where PATH lacks /usr/sbin.
    missing = [tool for tool in tools if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    if missing:
        unavailable(f"needs {', '.join(missing)} (Debian packages; `make test` installs them when run as root)")


def require_root_and_tools(*tools: str) -> None:
    """Network namespaces need root on Linux; skip elsewhere, fail in CI."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        unavailable("needs root on Linux (network namespaces)")
    require_tools(*tools)


# The project's own files: what a second checkout of it needs.
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.failover.yaml", "services.yaml")


def copy_project(target: Path, names: Sequence[str] = PROJECT_FILES) -> Path:
    """A copy of the project's own files (no tests, no venv) in ``target``: a second checkout."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PROJECT_DIR / name, target / name)
    return target


def local_backend(home: Path) -> dict[str, str]:
    """The environment of a Pulumi CLI whose state and home are under ``home`` (a local backend, no
    update check, no plugin downloads); creates the state folder."""
    (home / "state").mkdir(parents=True, exist_ok=True)
    return {
        "PULUMI_HOME": str(home / ".pulumi"),
        "PULUMI_BACKEND_URL": f"file://{home / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "mana-infra tests",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


def with_standby(check: Callable[[Standby], Awaitable[T]], stack: str = "prod", **overrides: str) -> T:
    """Run the real program under the mock engine with the stack's real config file, then await
    `check` on what it built. A fresh run every call: nothing is shared between tests."""
    result: dict[str, T] = {}

    async def program(project: Project) -> None:
        config = read_stack_config(project)
        assert isinstance(config, StandbyConfig), "with_standby runs the standby's program"
        result["value"] = await check(build(config))

    offline.evaluate(stack, project=PROJECT, overrides=overrides, program_fn=program)
    return result["value"]


def with_stack(argv: list[str]) -> list[str]:
    """`plan` and `adopt` as the tests of this checkout's stack prod run them: --stack prod unless given
    (without it they act on the stack the Pulumi CLI has selected: test_cli has that case)."""
    if argv[:1] in (["plan"], ["adopt"]) and "--stack" not in argv:
        return [argv[0], "--stack", "prod", *argv[1:]]
    return argv


def check_report(
    *,
    mode: str = "failover",
    vps: str = "up",
    failures: dict[str, list[str]] | None = None,
    hosts: int = 3,
    green: int = 3,
    standby: str = "up",
    problems: tuple[tuple[str, str], ...] = (),
    tunnel: str = "up",
    path: str = "origin",
    home: tuple[int, ...] | None = None,
    published: tuple[int, ...] = (4, 6),
) -> Report:
    """check's report as its readers use it (cutover, the decision): the hosts (DNS on ``path``, ``green`` of
    them answering), the standby path's and the VPS's state, the tunnel's probe, the public path's
    ``failures`` (kind -> hosts), and ``problems`` as (subject, text); ``home``: the families the home's
    name answers on of the ``published`` ones, every host answering straight there when any does (None:
    Plan C not configured)."""
    tunnel_error = (
        None if tunnel == "up" else "HTTP 530 (Cloudflare error 1033: the tunnel has no cloudflared connection)"
    )
    https = dict.fromkeys(("address", "status", "latency_ms", "cert_days_left", "cert_trusted", "error", "failure",
                           "refused"), None) | {"path": path, "cert_pinned": False, "cert_expiring": False}  # fmt: skip
    dns = {"path": path, "expected": path, "detail": "", "chain": [], "addresses": [], "ttl": None, "error": None,
           "failure": None, "ms": 1.0}  # fmt: skip
    rows = [
        {
            "host": f"h{i}.mana.how",
            "name": f"h{i}",
            "port": 8000 + i,
            "health": "/",
            "dns": dns,
            "live": https | {"ok": i < green},
            "standby": https | {"ok": standby == "up"},
            **({"direct": https | {"path": "home", "ok": bool(home)}} if home is not None else {}),
        }
        for i in range(hosts)
    ]
    reach = [
        https | {"path": "home", "ok": family in (home or ()), "family": family, "url": "", "body": "", "serving": True}
        for family in published
    ]
    probe = {"host": "tunnel-probe.mana.how", "state": tunnel, "status": 404, "error": tunnel_error}
    paths = {"standby": {"state": standby}, "vps": {"state": vps}, "wireguard": {"state": "up"}}
    failed = sum(len(names) for names in (failures or {}).values())
    public = {"state": "down" if failed * 2 >= hosts and failed else ("degraded" if failed else "up"),
              "total": hosts, "failed": failed, "failures": failures or {}}  # fmt: skip
    return Report.from_json(
        {
            "version": 2, "checked_at": "2026-12-07T00:00:00+00:00", "mode": mode, "stack": "prod",
            "endpoints": {"origin_name": "vps.mana.how", "origin_ips": [], "tunnel_target": None,
                          "tunnel_addresses": [], "health_url": None, "https_port": 443, "resolvers": []},
            "hosts": rows,
            "vps": {"health": https | {"ok": vps == "up"},
                    "wireguard": {"checked": False, "ok": None, "interface": "wg0", "latest_handshake": None,
                                  "age_seconds": None, "max_age_seconds": 180, "error": None},
                    "ssh": {"checked": False, "ok": None, "error": None, "via": "", "seconds": None,
                            "why_not_checked": "no SSH"}},
            "cloudflare_api": {"checked": False, "ok": None, "state": "not_checked", "error": None,
                               "why_not_checked": "no token", "url": None, "seconds": None},
            "tunnel_probe": probe, "certificates": {}, "paths": paths, "home": reach if home is not None else [],
            "public_path": public,
            "diagnosis": {"way": None, "why": "", "command": None, "case": None},
            "budget": {"edge_seconds": 60, "dns_seconds": None, "acme": "none",
                       "text": {"edge": "", "dns": "", "certificates": ""}},
            "findings": [{"subject": subject, "text": text} for subject, text in problems],
            "notes": [], "seconds": 0.1,
        }
    )  # fmt: skip
