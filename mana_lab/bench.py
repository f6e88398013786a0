"""Benchmark hook for ``make bench``: one drill in the lab, its figures as a dict.

``run()`` returns both cut-overs' times (client-measured, from the DNS switch until every host answers
from its own backend through the new path: through the edge, and DNS-only; also from the Caddyfile
push), the preflight's (the standby proven warm in tunnel mode, the outsider refused), the fail-backs',
the same for the rehearsal's test hostname and the nameserver switch to the Hetzner mirror, how long
the lab's ACME order takes (lego at pebble, DNS-01), how long ``mana-infra check`` takes for the plan's
27 hosts in the lab (wall time with process start, and check's own figure), or ``{"skipped": reason}``
where the lab cannot run (not root, not Linux, tools missing).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any


def unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the lab needs root (ip netns)"
    from .lab import missing_tools

    missing = missing_tools()
    return f"lab tools missing: {', '.join(missing)}" if missing else None


def run(stack: str = "prod", log: Callable[[str], None] = lambda _s: None) -> dict[str, Any]:
    reason = unavailable()
    if reason:
        return {"skipped": reason}
    from .drill import run_drill
    from .inputs import inputs_from_plan

    with tempfile.TemporaryDirectory(prefix="mana-lab-bench-") as workdir:
        report = run_drill(inputs_from_plan(stack), workdir, log=log)
    tunnel, preflight = report.phase("tunnel"), report.phase("preflight")
    edge, dns = report.phase("cut-over-edge"), report.phase("cut-over")
    return {
        "ok": report.ok,
        "hosts": report.hosts,
        "lab_up_seconds": report.up_seconds,
        "acme_seconds": report.timings.get("acme"),  # the public certificate's one order, during up
        "preflight_seconds": preflight.seconds,
        "cutover_edge_seconds": edge.seconds,  # from the DNS switch (the edge following it)
        "cutover_edge_from_push_seconds": edge.details["seconds_from_push"],
        "cutover_dns_seconds": dns.seconds,  # from the DNS switch
        "cutover_dns_from_push_seconds": dns.details["seconds_from_push"],
        "acme_orders_in_cutovers": (edge.acme_orders or 0) + (dns.acme_orders or 0),
        "failback_edge_seconds": report.phase("fail-back-edge").seconds,
        "failback_seconds": report.phase("fail-back").seconds,
        "check_seconds": tunnel.details["check_seconds"],  # tunnel mode, healthy; process start included
        "check_report_seconds": tunnel.details["check_report_seconds"],
        "check_failover_seconds": dns.details["check_seconds"],
        "wireguard_down_502_after_seconds": report.fault("wireguard-down").details["502_for_every_host_after"],
        "wireguard_recovery_seconds": report.fault("wireguard-down").seconds,
        "wan_change_recovery_seconds": report.fault("wan-change").seconds,
        "drill_seconds": report.seconds,
        # None where the stack has no rehearsal stack / no Hetzner mirror (the phase is not run).
        "rehearsal_seconds": _phase_seconds(report, "rehearsal"),
        "nameserver_switch_seconds": _phase_seconds(report, "nameserver-switch"),
    }


def _phase_seconds(report: Any, name: str) -> float | None:
    found = [p.seconds for p in report.phases if p.name == name]
    return found[0] if found else None


if __name__ == "__main__":
    import json

    print(json.dumps(run(log=lambda s: print(s, file=sys.stderr)), indent=2))
