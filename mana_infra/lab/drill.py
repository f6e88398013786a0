"""The failover drill: tunnel healthy -> edge cut -> cut-over to the VPS -> faults -> fail back.

Inputs come from the offline plan (inputs.py): the lab runs the program's own artifacts and DNS
records. Every phase is judged twice from the client namespace: by the probe (DNS through the lab
server, TLS verified against the lab CAs, each host must answer ``host=<h> port=<p>`` from its own
backend through the expected path) and by the real ``mana-infra check --json`` (its exit code).

Phases (check's expected exit): tunnel (0), outage (1: the edge is cut), cut-over (0: the failover
Caddyfile pushed through the apply script, then the zone switched to the failover records), fail-back
(0: the edge restored, the zone back to the tunnel records, then the tunnel Caddyfile).
Faults in failover mode, each with its recovery measured: wireguard-down, invalid-caddyfile, wan-change.

Times are lab times: the probe does not cache DNS, so real clients add up to the old records' TTL.
``DrillReport.to_dict()`` is the JSON of ``mana-infra lab drill --json``; the rest is for tests and logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import topology as topo
from .lab import CheckRun, Lab


@dataclass
class Phase:
    name: str
    check_exit: int | None
    healthy_hosts: int
    seconds: float | None
    ok: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "check_exit": self.check_exit,
            "healthy_hosts": self.healthy_hosts,
            "seconds": self.seconds,
        }


@dataclass
class Fault:
    name: str
    recovered: bool
    seconds: float | None
    failed_requests: int
    ok: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recovered": self.recovered,
            "seconds": self.seconds,
            "failed_requests": self.failed_requests,
        }


@dataclass
class DrillReport:
    hosts: int
    phases: list[Phase] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    up_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.phases) and all(p.ok for p in self.phases) and all(f.ok for f in self.faults)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def fault(self, name: str) -> Fault:
        return next(f for f in self.faults if f.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Exactly {"hosts", "phases": [...], "faults": [...]}."""
        return {
            "hosts": self.hosts,
            "phases": [p.to_dict() for p in self.phases],
            "faults": [f.to_dict() for f in self.faults],
        }


def broken_caddyfile(valid: str, zone: str) -> str:
    """A realistic bad push: the valid file plus a site with a typo'd directive."""
    return valid + f"\ntypo.{zone} {{\n\treverse_prox 10.0.0.2:1\n}}\n"


def _served(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per host: the address it was reached at, the HTTP status, the body (or the error)."""
    return {
        r["host"]: {"ok": r["ok"], "ip": r.get("ip"), "status": r.get("status"), "body": r.get("body", r.get("error"))}
        for r in result["results"]
    }


def _healthy(result: Mapping[str, Any]) -> int:
    return sum(bool(r["ok"]) for r in result["results"])


def _check_details(run: CheckRun) -> dict[str, Any]:
    report = run.report or {}
    return {
        "check_seconds": run.seconds,
        "check_report_seconds": report.get("seconds"),
        "problems": run.problems,
        "paths": {k: v.get("state") for k, v in report.get("paths", {}).items()},
        "tunnel_down": report.get("tunnel_down"),
    }


def run_drill(
    inputs: Mapping[str, Any],
    workdir: str | Path,
    *,
    deadline: float = 20,
    nudge_after_wan_change: bool = True,
    log: Callable[[str], None] = print,
) -> DrillReport:
    """Run every phase and fault in a fresh lab (torn down afterwards, also on errors and Ctrl-C).

    A phase that misses its expectation is recorded and the drill goes on where that makes sense.
    nudge_after_wan_change: after the WAN change the Mac Mini sends a packet at once, as the Mac's
    WireGuard client does on a network change; without it, traffic resumes with the next
    PersistentKeepalive (up to 25 s).
    """
    tunnel, failover = inputs["modes"]["tunnel"], inputs["modes"]["failover"]
    zone = inputs["zone"]
    report = DrillReport(hosts=len(inputs["services"]))
    started = time.monotonic()

    def phase(p: Phase, expect_exit: int, expect_healthy: int, also: bool = True) -> None:
        p.ok = p.check_exit == expect_exit and p.healthy_hosts == expect_healthy and also
        p.details.update(expect_exit=expect_exit, expect_healthy=expect_healthy)
        report.phases.append(p)
        log(
            f"[{'ok' if p.ok else 'FAIL'}] phase {p.name}: check exit {p.check_exit} (want {expect_exit}), "
            f"{p.healthy_hosts}/{report.hosts} hosts healthy"
            + (f", {p.seconds:.2f} s" if p.seconds is not None else "")
            + ("" if p.ok else f"; problems: {p.details.get('problems')}")
        )

    def fault(f: Fault) -> None:
        report.faults.append(f)
        log(
            f"[{'ok' if f.ok else 'FAIL'}] fault {f.name}: recovered={f.recovered} in "
            f"{f.seconds if f.seconds is not None else '-'} s, {f.failed_requests} failed requests"
            + ("" if f.ok else f"; {f.details}")
        )

    log(f"drill: {report.hosts} hosts, lab in {workdir}")
    with Lab.from_inputs(workdir, inputs, "tunnel") as lab:
        report.up_seconds = lab.timings.get("up", 0.0)
        log(f"lab up in {report.up_seconds:.2f} s")
        edge, vps = [topo.EDGE_IP], [topo.VPS_IP]

        # 1. Everything healthy through the tunnel.
        r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=edge)
        run = lab.check("tunnel")
        phase(
            Phase(
                "tunnel",
                run.exit_code,
                _healthy(r),
                r["elapsed"],
                details={**_check_details(run), "served": _served(r)},
            ),
            0,
            report.hosts,
        )

        # 2. Outage: the tunnel path dies (cloudflared loses its connection; the edge answers 502).
        t0 = time.monotonic()
        lab.cut_edge()
        r = lab.probe(mode="until_ok", until="fail", deadline=deadline, expect_ips=edge)
        seconds = round(time.monotonic() - t0, 3)
        run = lab.check("tunnel")
        phase(
            Phase("outage", run.exit_code, _healthy(r), seconds, details={**_check_details(run), "served": _served(r)}),
            1,
            0,
            also=bool(run.report and run.report["tunnel_down"]),
        )

        # 3. Cut over as the program does: the failover Caddyfile through the apply script (over SSH),
        #    then the zone's records switched to the failover plan's.
        t0 = time.monotonic()
        step = lab.apply_mode(failover)
        r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=vps)
        seconds = round(time.monotonic() - t0, 3)
        run = lab.check("failover")
        phase(
            Phase(
                "cut-over",
                run.exit_code,
                _healthy(r),
                seconds,
                details={
                    **_check_details(run),
                    "served": _served(r),
                    **{k: step[k] for k in ("push_ok", "push_seconds", "dns_seconds")},
                    "push_output": step["push_output"][-500:],
                },
            ),
            0,
            report.hosts,
            also=step["push_ok"],
        )

        # Fault: WireGuard on the Mac Mini goes down. Caddy drops pooled upstream connections after
        # 10 s idle (keepalive), a request on one still in the pool hangs until the client gives up
        # (which closes it); new dials fail after the 3 s dial timeout: 502. Wait until every host
        # answers 502 quickly, let check judge, then bring WireGuard back and measure the recovery.
        lab.wireguard_down()
        t0 = time.monotonic()
        failed = 0
        statuses: list[Any] = []
        while time.monotonic() - t0 < 30:
            r = lab.probe(timeout=4.5)
            failed += r["failures"]
            statuses = sorted({x.get("status") or "timeout/error" for x in r["results"]}, key=str)
            if statuses == [502] and max(x["seconds"] for x in r["results"]) < 4.5:
                break
        fast_502_after = round(time.monotonic() - t0, 3)
        slowest_502 = max(x["seconds"] for x in r["results"])
        run = lab.check("failover")
        down_paths = _check_details(run)["paths"]
        t0 = time.monotonic()
        lab.wireguard_up()
        lab.wait_handshake(after=0)
        r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=vps)
        seconds = round(time.monotonic() - t0, 3)
        failed += r["failures"]
        detected = statuses == [502] and run.exit_code == 1 and down_paths.get("standby") == "down"
        fault(
            Fault(
                "wireguard-down",
                r["all_ok"],
                seconds,
                failed,
                ok=detected and r["all_ok"],
                details={
                    "502_for_every_host_after": fast_502_after,
                    "slowest_502_seconds": slowest_502,
                    "statuses_while_down": statuses,
                    "check_exit_while_down": run.exit_code,
                    **_check_details(run),
                },
            )
        )
        log(
            f"  wireguard down: every host 502 after {fast_502_after:.2f} s (each in <= {slowest_502:.2f} s); "
            f"check exit {run.exit_code}: {run.problems}"
        )

        # Fault: an invalid Caddyfile is pushed while clients keep requesting.
        loop: dict[str, Any] = {}
        worker = threading.Thread(
            daemon=True,
            target=lambda: loop.update(
                lab.probe(mode="loop", duration=2.5, max_requests=5000, interval=0.02, expect_ips=vps)
            ),
        )
        worker.start()
        time.sleep(0.4)
        t0 = time.monotonic()
        push_ok, out = lab.push_caddyfile(broken_caddyfile(failover["Caddyfile"], zone))
        seconds = round(time.monotonic() - t0, 3)
        worker.join()
        loop_failures = int(loop.get("failures", -1))
        served = loop.get("all_ok", False) and loop_failures == 0
        fault(
            Fault(
                "invalid-caddyfile",
                not push_ok and served,
                seconds,
                loop_failures,
                ok=not push_ok and served and "invalid" in out,
                details={
                    "push_rejected": not push_ok,
                    "push_output": out[-500:],
                    "requests_during_push": loop.get("requests"),
                },
            )
        )

        # Fault: the Mac Mini's WAN address changes; WireGuard roams to the new endpoint.
        t0 = time.monotonic()
        new_ip = lab.change_mini_wan()
        if nudge_after_wan_change:
            lab.nudge_tunnel()
        r = lab.probe(mode="until_ok", deadline=max(deadline, 35), expect_ips=vps)  # PersistentKeepalive is 25 s
        seconds = round(time.monotonic() - t0, 3)
        endpoint = lab.wg_show("vps")["peers"][0]["endpoint"]
        roamed = endpoint.startswith(new_ip + ":")
        fault(
            Fault(
                "wan-change",
                r["all_ok"] and roamed,
                seconds,
                r["failures"],
                ok=r["all_ok"] and roamed,
                details={"new_wan_ip": new_ip, "vps_sees_endpoint": endpoint, "nudged": nudge_after_wan_change},
            )
        )

        # 4. Fail back: the tunnel is back; the zone returns to the tunnel records first (names leave
        #    the VPS before it stops serving them), then the tunnel Caddyfile is pushed.
        t0 = time.monotonic()
        lab.restore_edge()
        step = lab.apply_mode(tunnel, dns_first=True)
        r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=edge)
        seconds = round(time.monotonic() - t0, 3)
        run = lab.check("tunnel")
        phase(
            Phase(
                "fail-back",
                run.exit_code,
                _healthy(r),
                seconds,
                details={
                    **_check_details(run),
                    "served": _served(r),
                    **{k: step[k] for k in ("push_ok", "push_seconds", "dns_seconds")},
                },
            ),
            0,
            report.hosts,
            also=step["push_ok"],
        )

    report.seconds = round(time.monotonic() - started, 3)
    log(f"drill {'passed' if report.ok else 'FAILED'} in {report.seconds:.1f} s")
    return report
