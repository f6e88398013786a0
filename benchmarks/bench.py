"""`make bench`: wall times of the offline plan (and, where present, of check and the lab drill).

Figures, not assertions: speed is reported here, never asserted in a timed test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNS = 3


def wall_time(argv: list[str]) -> float:
    """Median wall time of a whole command, start-up included, as the operator waits for it."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, check=True, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def generated_inventory(hosts: int, folder: Path) -> Path:
    path = folder / f"services-{hosts}.yaml"
    lines = ["services:"] + [f"  - host: app{index}.mana.how\n    port: {10000 + index}" for index in range(hosts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    plan = [sys.executable, "-m", "mana_infra", "plan", "--stack", "prod"]
    print(f"mana-infra plan, median of {RUNS} runs (wall time, process start included)")
    print(f"  prod (27 hosts), table:   {wall_time(plan):6.2f} s   (goal < 3 s)")
    print(f"  prod (27 hosts), --json:  {wall_time([*plan, '--json']):6.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        previous = None
        for hosts in (100, 250, 500):
            seconds = wall_time([*plan, "--json", "--services", str(generated_inventory(hosts, Path(folder)))])
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


if __name__ == "__main__":
    main()
