"""`make bench`: wall times of the offline plan, of `mana-infra check`, of the lab's drill, and of the
flip through the real engine (CLI, language host, plugins) against the stand-in clouds, for 27 and 500 hosts,
and the watchdog: the time from the tunnel's cut to every host green through the VPS, by itself.

Figures, not assertions: speed is reported here, never asserted in a timed test.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNS = 3


def wall_time(argv: list[str], cwd: Path = PROJECT_DIR) -> float:
    """Median wall time of a whole command, start-up included, as the operator waits for it."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench: `{' '.join(argv[2:])}` failed:\n{done.stderr.strip()}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def project_without_adoption(folder: Path) -> Path:
    """A copy of the project for the generated inventories: the operator's adoptRecords name hosts of
    the real inventory, which the generated ones do not have (a plan would rightly refuse them)."""
    copy = folder / "project"
    shutil.copytree(PROJECT_DIR, copy, ignore=shutil.ignore_patterns("venv", ".engine", ".git", "__pycache__"))
    stack = copy / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack.read_text())
    (document.get("config") or {}).pop("mana-infra:adoptRecords", None)
    stack.write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


def generated_inventory(hosts: int, folder: Path) -> Path:
    path = folder / f"services-{hosts}.yaml"
    lines = ["services:"] + [f"  - host: app{index}.mana.how\n    port: {10000 + index}" for index in range(hosts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def engine_bench(folder: Path) -> None:
    """The flip's `pulumi up` and `mana-infra cutover` through the real engine, in the lab's world."""
    from mana_lab import engine
    from mana_lab.bench import unavailable
    from mana_lab.e2e import run_bench

    found = engine.find(PROJECT_DIR)
    reason = unavailable() or (found if isinstance(found, str) else None)
    print("the real engine against the stand-in clouds, the lab as their machines (one run each)")
    if reason or isinstance(found, str):
        print(f"  skipped: {reason}")
        return
    for hosts in (27, 500):
        inventory = None if hosts == 27 else generated_inventory(hosts, folder)
        figures = run_bench(folder / f"engine-{hosts}", found, PROJECT_DIR, inventory, lambda _line: None)
        print(f"  {hosts} hosts (set-up and adoption {figures.get('setup_seconds', 0):.1f} s):")
        for name in (
            "first up",
            "flip by hand",
            "back by hand",
            "cutover",
            "failback",
            "cutover direct",
            "failback direct",
            "watchdog",
        ):
            run = figures.get(name)
            if run is None:
                continue
            goal = "   (goal < 15 s for 27 hosts)" if name == "flip by hand" and hosts == 27 else ""
            if "fault_to_green_seconds" in run:  # the tunnel cut to every host green, by the watchdog alone
                goal = "   (at the default --interval 10, the tunnel cut to every host green: "
                goal += f"{run['fault_to_green_seconds']:.1f} s, goal < 60 s)"
            state = "" if run["ok"] else f"   FAILED: {'; '.join(run['problems'])[:200]}"
            print(f"    {name:<14} {run['seconds']:7.1f} s{goal}{state}")
            for stage, seconds in run.get("stages", []):
                print(f"      {stage:<18} {seconds:6.1f} s")


def main() -> None:
    plan = [sys.executable, "-m", "mana_infra", "plan", "--stack", "prod"]
    print(f"mana-infra plan, median of {RUNS} runs (wall time, process start included)")
    print(f"  prod (27 hosts), table:   {wall_time(plan):6.2f} s   (goal < 3 s)")
    print(f"  prod (27 hosts), --json:  {wall_time([*plan, '--json']):6.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        previous = None
        project = project_without_adoption(Path(folder))
        for hosts in (100, 250, 500):
            inventory = str(generated_inventory(hosts, Path(folder)))
            seconds = wall_time([*plan, "--json", "--services", inventory], cwd=project)
            growth = (
                ""
                if previous is None
                else f"   (+{(seconds - previous[1]) / (hosts - previous[0]) * 1000:.1f} ms per extra host)"
            )
            print(
                f"  {hosts:4} hosts, --json:       {seconds:6.2f} s{growth}"
                + ("   (goal < 15 s)" if hosts == 500 else "")
            )
            previous = (hosts, seconds)

    # mana_lab is not installed (the wheel ships mana_infra alone): it comes from this checkout, as for
    # `mana-infra lab`.
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    from mana_lab.standins import bench as check_bench

    print("mana-infra check, 27 hosts against local servers (median of 5, in-process)")
    for mode in ("tunnel", "failover"):
        figures = check_bench(27, 5, mode)
        print(f"  {mode:8} mode: {figures['median_s']:6.2f} s   (max {figures['max_s']:.2f} s, goal < 3 s)")

    with tempfile.TemporaryDirectory(prefix="mana-engine-bench-") as folder:
        engine_bench(Path(folder))

    from mana_lab.bench import run as lab_bench

    print("the lab's drill (network namespaces, real Caddy, WireGuard, knot, sshd, pebble and lego)")
    lab = lab_bench()
    if "skipped" in lab:
        print(f"  skipped: {lab['skipped']}")
        return
    up, acme = lab["lab_up_seconds"], lab["acme_seconds"]
    print(f"  lab up:                       {up:6.2f} s   (with its one ACME order: {acme:.2f} s)")
    print(f"  preflight (standby proven):   {lab['preflight_seconds']:6.2f} s")
    for label, way in (("cut-over through the edge:", "edge"), ("cut-over DNS-only:", "dns")):
        print(
            f"  {label:29} {lab[f'cutover_{way}_seconds']:6.2f} s   from the DNS switch until every host is green"
            f" (goal < 1 s; {lab[f'cutover_{way}_from_push_seconds']:.2f} s from the push)"
        )
    print(f"  ACME orders in the cut-overs: {lab['acme_orders_in_cutovers']:6d}     (goal 0)")
    edge_back, dns_back = lab["failback_edge_seconds"], lab["failback_seconds"]
    print(f"  fail-back, every host green:  {edge_back:6.2f} s (from the edge way), {dns_back:.2f} s (from DNS-only)")
    for label, key in (("rehearsal, test host green:", "rehearsal_seconds"),
                       ("nameserver switch, all green:", "nameserver_switch_seconds")):  # fmt: skip
        if lab.get(key) is not None:
            print(f"  {label:29} {lab[key]:6.2f} s")
    check, check_failover = lab["check_seconds"], lab["check_failover_seconds"]
    print(f"  check, 27 hosts (process):    {check:6.2f} s   (failover mode {check_failover:.2f} s)")
    down, back = lab["wireguard_down_502_after_seconds"], lab["wireguard_recovery_seconds"]
    print(f"  WireGuard down -> 502 for all: {down:5.2f} s, back: {back:.2f} s")
    print(f"  WAN address change recovered: {lab['wan_change_recovery_seconds']:6.2f} s")
    print(f"  whole drill:                  {lab['drill_seconds']:6.2f} s ({'passed' if lab['ok'] else 'FAILED'})")


if __name__ == "__main__":
    main()
