"""The failover drill: tunnel healthy -> rehearsal -> edge cut -> cut-over to the VPS -> faults ->
fail back -> Cloudflare gone: the nameserver switch to the Hetzner mirror -> restored.

Inputs come from the offline plan (inputs.py): the lab runs the program's own artifacts and DNS
records. Every phase is judged twice from the client namespace: by the probe (DNS through the lab
server, TLS verified against the lab CAs, each host must answer ``host=<h> port=<p>`` from its own
backend through the expected path) and by the real ``mana-infra check --json`` (its exit code).

Phases (check's expected exit): tunnel (0), rehearsal (0: the rehearsal stack's record and site file,
its check), outage (1: the edge is cut), cut-over (0: the failover Caddyfile pushed through the apply
script, then the zone switched to the failover records), fail-back (0: the edge restored, the zone back
to the tunnel records, then the tunnel Caddyfile), nameserver-switch (0: Cloudflare gone, the emergency
cut-over's Caddy command, the client's DNS now the Hetzner mirror; then everything restored).
Faults in failover mode, each with its recovery measured: wireguard-down, invalid-caddyfile, wan-change.

The rehearsal phase (when the inputs have a rehearsal stack): its ``check_exit`` is ``mana-infra check``
on the rehearsal stack's outputs (the test hostnames through the VPS); ``healthy_hosts`` counts the
production hosts still served through the edge. Its ``seconds``: from the record and the site file's
command until the test hostname answers. It is ok only when, after the ``delete`` command and the
record's removal, the VPS still serves its health path and no longer the test hostname.
The nameserver-switch phase (when the inputs have the mirror): ``seconds`` from the cut-over command
until every host answers through the VPS; ok only when check also finds the mirror up and the lab
returns to the tunnel afterwards.

Times are lab times: the probe does not cache DNS, so real clients add up to the old records' TTL.
``DrillReport.to_dict()`` is the JSON of ``mana-infra lab drill --json``; the rest is for tests and logs.
"""

from __future__ import annotations

import json
import subprocess
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


def _check_hosts(run: CheckRun) -> dict[str, dict[str, Any]]:
    """Per host in check's report: the DNS path, the address served, the live and standby verdicts."""
    out: dict[str, dict[str, Any]] = {}
    for h in (run.report or {}).get("hosts", []):
        out[h["host"]] = {
            "dns_path": h["dns"]["path"],
            "address": h["live"]["address"],
            "live_ok": h["live"]["ok"],
            "standby_ok": h["standby"]["ok"],
            **({"mirror_path": h["mirror"]["path"]} if "mirror" in h else {}),
        }
    return out


def _refused_by_vps(lab: Lab, host: str) -> tuple[bool, str]:
    """Whether the VPS's Caddy refuses TLS for ``host`` (no site, no certificate), asked directly at the
    VPS's address so that DNS plays no part."""
    proc = subprocess.run(lab.curl_argv(host, topo.VPS_IP), capture_output=True, text=True, timeout=15, check=False)
    return proc.returncode != 0, (proc.stdout + proc.stderr).strip()[-300:]


def rehearse(lab: Lab, rehearsal: Mapping[str, Any], *, deadline: float = 20) -> Phase:
    """The rehearsal stack's ``pulumi up`` and ``pulumi destroy`` against the prod lab in tunnel mode.

    up: its DnsRecord(s) added to the zone, its Caddy command's ``create`` text run over SSH with the
    site file on stdin (pulumi-command runs exactly that). Then from the client: every test hostname
    through the VPS (DNS -> VPS -> Caddy -> WireGuard -> the Mac Mini port of its service), every
    production host still through the edge, and ``mana-infra check`` on the rehearsal stack's outputs.
    destroy: the ``delete`` text (pulumi-command hands the stored stdin to delete too), the record(s)
    removed; the VPS's own site (the health path) keeps serving, the test hostnames no longer are.
    """
    outputs = rehearsal["outputs"]
    tests = [(str(h["host"]).lower(), int(h["port"])) for h in outputs["hosts"]]
    records = rehearsal["dns_records"]
    vps, edge = [topo.VPS_IP], [topo.EDGE_IP]
    outputs_file = lab.client_dir / f"{rehearsal.get('stack', 'failover')}-outputs.json"
    outputs_file.write_text(json.dumps(outputs))

    t0 = time.monotonic()
    dns_seconds = lab.add_dns_records(records)
    create_ok, create_out = lab.run_command(rehearsal["create"], rehearsal["site_file"])
    r = lab.probe(tests, mode="until_ok", deadline=deadline, expect_ips=vps)
    seconds = round(time.monotonic() - t0, 3)
    prod = lab.probe(expect_ips=edge)
    run = lab.check(None, outputs=outputs_file)

    t1 = time.monotonic()
    delete_ok, delete_out = lab.run_command(rehearsal["delete"], rehearsal["site_file"])
    lab.remove_dns_records(records)
    remove_seconds = round(time.monotonic() - t1, 3)
    gone = lab.probe(tests)
    refused = {h: _refused_by_vps(lab, h) for h, _ in tests}
    health = lab.fetch(lab.origin_name, "/healthz")
    prod_after = lab.probe(expect_ips=edge)
    removed = (
        not any(x["ok"] for x in gone["results"])
        and all(ok for ok, _ in refused.values())
        and health.get("status") == 200
        and prod_after["all_ok"]
        and not any(rec in lab.dns_records for rec in records)
    )
    check_hosts = _check_hosts(run)
    served_by_vps = r["all_ok"] and all(
        check_hosts.get(h, {}).get("dns_path") == "origin" and check_hosts[h]["address"] == topo.VPS_IP
        for h, _ in tests
    )
    phase = Phase(
        "rehearsal",
        run.exit_code,
        _healthy(prod),
        seconds,
        ok=create_ok and served_by_vps and delete_ok and removed,
        details={
            **_check_details(run),
            "check_hosts": check_hosts,
            "served": _served(prod),
            "test_served": _served(r),
            "create_ok": create_ok,
            "create_output": create_out[-500:],
            "dns_seconds": dns_seconds,
            "delete_ok": delete_ok,
            "delete_output": delete_out[-500:],
            "remove_seconds": remove_seconds,
            "after_removal": {
                "test_served": _served(gone),
                "refused_by_vps": {h: {"refused": ok, "output": out} for h, (ok, out) in refused.items()},
                "health": {k: health.get(k) for k in ("status", "body", "ip")},
                "production_all_ok": prod_after["all_ok"],
            },
            "removed": removed,
        },
    )
    return phase


def switch_nameservers(
    lab: Lab, emergency: Mapping[str, Any], tunnel: Mapping[str, Any], *, deadline: float = 20
) -> Phase:
    """Cloudflare completely gone (the README's runbook): its edge refuses connections and its API is
    out of reach. The emergency cut-over's targeted ``pulumi up`` runs only the Caddy command (its
    ``create`` text, the failover Caddyfile on stdin); the Cloudflare zone stays as it is. The
    nameserver switch: the client's DNS now asks the Hetzner mirror. Then check in failover mode, with
    the mirror asked directly too. Afterwards everything returns: the edge, Cloudflare's nameservers
    (still the tunnel records), the tunnel Caddyfile."""
    vps, edge = [topo.VPS_IP], [topo.EDGE_IP]
    cloudflare_zone = list(lab.dns_records)
    lab.cut_edge("stop")
    t0 = time.monotonic()
    push_ok, push_out = lab.push_caddyfile(emergency["Caddyfile"], command=emergency["caddy_command"])
    push_seconds = round(time.monotonic() - t0, 3)
    lab.switch_nameservers("mirror")
    r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=vps)
    seconds = round(time.monotonic() - t0, 3)
    run = lab.check("failover", mirror=True)
    report = run.report or {}
    mirror = report.get("paths", {}).get("mirror", {})
    health = report.get("vps", {}).get("health", {})
    untouched = lab.dns_records == cloudflare_zone

    # Back: Cloudflare returns; names leave the VPS first (the tunnel records are still in its zone),
    # then the tunnel Caddyfile.
    t1 = time.monotonic()
    lab.restore_edge()
    lab.switch_nameservers("cloudflare")
    back_ok, back_out = lab.push_caddyfile(tunnel["Caddyfile"])
    back = lab.probe(mode="until_ok", deadline=deadline, expect_ips=edge)
    restore_seconds = round(time.monotonic() - t1, 3)
    back_health = lab.fetch(lab.origin_name, "/healthz")
    restored = back_ok and back["all_ok"] and back_health.get("body") == "ok mode=tunnel"
    mirror_up = mirror.get("state") == "up" and mirror.get("failed") == 0 and mirror.get("total") == len(lab.services)
    return Phase(
        "nameserver-switch",
        run.exit_code,
        _healthy(r),
        seconds,
        ok=push_ok and mirror_up and health.get("served_mode") == "failover" and untouched and restored,
        details={
            **_check_details(run),
            "check_hosts": _check_hosts(run),
            "served": _served(r),
            "resolver": topo.MIRROR_DNS_IP,
            "mirror": mirror,
            "served_mode": health.get("served_mode"),
            "push_ok": push_ok,
            "push_seconds": push_seconds,
            "push_output": push_out[-500:],
            "emergency_target": emergency.get("target"),
            "cloudflare_zone_untouched": untouched,
            "restore_seconds": restore_seconds,
            "restore_push_output": back_out[-300:],
            "restored": restored,
            "restored_served": _served(back),
        },
    )


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

        # The rehearsal stack against production in tunnel mode: its test hostname through the VPS.
        if inputs.get("rehearsal"):
            p = rehearse(lab, inputs["rehearsal"], deadline=deadline)
            phase(p, 0, report.hosts, also=p.ok)  # p.ok: its own steps (create, served, delete, removed)

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

        # 5. Cloudflare completely down: the emergency cut-over and the nameserver switch to the mirror.
        if inputs.get("mirror") and inputs.get("emergency"):
            p = switch_nameservers(lab, inputs["emergency"], tunnel, deadline=deadline)
            phase(p, 0, report.hosts, also=p.ok)  # p.ok: push, mirror up, failover served, restored

    report.seconds = round(time.monotonic() - started, 3)
    log(f"drill {'passed' if report.ok else 'FAILED'} in {report.seconds:.1f} s")
    return report
