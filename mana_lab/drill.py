"""The failover drill: tunnel healthy -> the standby proven warm -> rehearsal -> the tunnel cut -> cut-over
through Cloudflare's edge -> fail back -> the edge itself down -> DNS-only cut-over -> faults -> fail
back -> Cloudflare gone: the nameserver switch to the Hetzner mirror -> restored.

Inputs come from the offline plan (inputs.py): the lab runs the program's own artifacts and DNS
records, and its certificates were obtained and installed as the program does it, before anything
else (Lab.up: the public one from pebble by DNS-01, the Origin CA one from the Cloudflare stand-in).
Every phase is judged twice from the client namespace: by the probe (DNS through the lab server, TLS
verified against what visitors trust, each host must answer ``host=<h> port=<p>`` from its own backend
through the expected path) and by the real ``mana-infra check --json`` on the state's stack outputs
(its exit code). Every phase also counts the ACME orders pebble received meanwhile: none, ever, after
the lab is up (no site asks ACME; a cut-over obtains nothing).

Phases (check's expected exit):
- tunnel (0): every host through the edge and the tunnel.
- preflight (0): still tunnel mode; check's standby path (HTTPS to the VPS's address with each host's
  name) up for every host, with the public certificate, and check's budget finds no certificate to
  obtain; a visitor from outside the allowed networks is refused by the VPS (403) for every host,
  while the edge serves it. ``healthy_hosts``: hosts whose standby path is up.
- not-checked-from-here (1): check run from the outsider (outside the networks the VPS serves in tunnel
  mode): every host refused by the VPS, named as such with the outsider's address; not healthy, and a
  cut-over's pre-flight refuses.
- rehearsal (0: the rehearsal stack's record and site file, its check).
- outage (1): the tunnel cut; the edge answers 502; check's diagnosis: the edge way.
- cut-over-edge (0): the edge-way Caddyfile through the apply script, then the records switched to the
  edge-way records (proxied, to the origin name): the edge reaches the VPS with Full (strict), which
  accepts the Origin CA certificate and refuses the public one; the outsider is still refused at the
  VPS; check takes the Origin CA certificate on the standby path by the pin in the outputs.
- failback-too-early (0): still on the VPS with the tunnel cut: check's tunnel probe (a name that stays on
  the tunnel) says it is down, and the fail-back's pre-flight refuses.
- fail-back-edge (0): the tunnel back, the fail-back's pre-flight passing, the records back to it, then
  the tunnel Caddyfile.
- mac-mini-down (1): the tunnel and the Mac Mini's WireGuard down together (home power, home line):
  check offers no cut-over (case tunnel/mac-mini-down); then both back.
- edge-outage (1): the edge itself stops (connections refused); check's diagnosis: DNS-only.
- cut-over (0): the DNS-only Caddyfile, then the DNS-only records: every host straight at the VPS with
  the public certificate, every visitor served. Faults in this state, each with its recovery measured:
  wireguard-down, invalid-caddyfile, wan-change.
- fail-back (0): the edge restored, the records back to the tunnel first, then the tunnel Caddyfile.
- nameserver-switch (0): Cloudflare gone, the emergency cut-over's Caddy command (DNS-only), the
  client's DNS now the Hetzner mirror; then everything restored.

Both cut-overs' ``seconds`` run from the DNS switch (the edge following the records included) until
every host answers through the new path, and must stay within ``GREEN_WITHIN`` (1 s); the push before
is in the details. The rehearsal phase (when the inputs have a rehearsal stack): its ``check_exit`` is
``mana-infra check`` on the rehearsal stack's outputs (the test hostnames through the VPS);
``healthy_hosts`` counts the production hosts still served through the edge. Its ``seconds``: from the
record and the site file's command until the test hostname answers. It is ok only when, after the
``delete`` command and the record's removal, the VPS still serves its health path and no longer the
test hostname. The nameserver-switch phase (when the inputs have the mirror): ``seconds`` from the
cut-over command until every host answers through the VPS; ok only when check also finds the mirror up
and the lab returns to the tunnel afterwards.

Times are lab times: the probe does not cache DNS, so real clients add up to the old records' TTL
(DNS-only); the edge way has none to wait for. ``DrillReport.to_dict()`` is the JSON of
``mana-infra lab drill --json``; the rest is for tests and logs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mana_infra.check import decision
from mana_infra.model import STANDBY_REFUSAL
from mana_infra.outputs import Output

from . import topology as topo
from .lab import CheckRun, Lab

GREEN_WITHIN = 1.0  # seconds from the DNS switch until every host answers through the new path


@dataclass
class Phase:
    name: str
    check_exit: int | None
    healthy_hosts: int
    seconds: float | None
    ok: bool = True  # the phase's own conditions; the drill adds check's exit, the hosts, no ACME order
    acme_orders: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "check_exit": self.check_exit,
            "healthy_hosts": self.healthy_hosts,
            "seconds": self.seconds,
            "acme_orders": self.acme_orders,
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
    seconds: float = 0.0
    # The lab's certificates as up() obtained them (issuer, names, serial, expiry; the public one's
    # ACME orders by the end of up()), and the lab's timings.
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def up_seconds(self) -> float:
        return self.timings.get("up", 0.0)

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
        "diagnosis": report.get("diagnosis"),
        "budget_certificates": (report.get("budget") or {}).get("acme"),
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


def _standby(run: CheckRun) -> dict[str, dict[str, Any]]:
    """Per host: check's standby path (HTTPS to the VPS's address with the host's name)."""
    return {
        h["host"]: {
            k: h["standby"].get(k)
            for k in ("kind", "ok", "address", "status", "cert_trusted", "error", "failure", "refused", "answered_by")
        }
        for h in (run.report or {}).get("hosts", [])
    }


def _refusals(result: Mapping[str, Any], message: str) -> dict[str, dict[str, Any]]:
    """Per host: whether the VPS refused it with the standby's 403 (``message`` with the host)."""
    out = {}
    for r in result["results"]:
        expected = message.format(host=r["host"])
        out[r["host"]] = {
            "refused": r.get("status") == 403 and r.get("body") == expected,
            "status": r.get("status"),
            "body": r.get("body", r.get("error")),
        }
    return out


TUNNEL_REFUSAL = STANDBY_REFUSAL.format(host="{host}", served="served through Cloudflare", address=topo.OUTSIDER_IP)
EDGE_REFUSAL = STANDBY_REFUSAL.format(
    host="{host}", served="served through Cloudflare's proxy", address=topo.OUTSIDER_IP
)


def _cert_summary(served: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What certificates a set of hosts was served: issuers, serials, how many verified."""
    return {
        "issuers": sorted({str(c.get("issuer")) for c in served.values()}),
        "serials": sorted({str(c.get("serial")) for c in served.values()}),
        "verified": sum(bool(c.get("verified")) for c in served.values()),
        "errors": sorted(
            {str(c.get("verify_error") or c.get("error")) for c in served.values() if not c.get("verified")}
        ),
    }


def _only(summary: Mapping[str, Any], certificate: Mapping[str, Any], hosts: int) -> bool:
    """Whether every one of ``hosts`` was served ``certificate`` and it verified for each."""
    return bool(summary["serials"] == [certificate["serial"]] and summary["verified"] == hosts)


def preflight(lab: Lab) -> Phase:
    """Tunnel mode, the daily proof that the standby is warm: check's standby path for every host (the
    VPS serves each with the public certificate, its Caddy reaches the Mac Mini through WireGuard),
    nothing left to obtain (check's budget), and the VPS refusing a visitor from elsewhere while the
    edge serves that visitor as usual."""
    t0 = time.monotonic()
    run = lab.check("tunnel")
    standby = _standby(run)
    hosts = [h for h, _ in lab.services]
    served = lab.served_certificates(hosts, topo.VPS_IP)
    public = lab.certificates["public"]
    summary = _cert_summary(served)
    public_served = _only(summary, public, len(hosts))
    refused = _refusals(lab.probe(role="outsider", connect=topo.VPS_IP), TUNNEL_REFUSAL)
    visitor = lab.probe(role="outsider", expect_ips=[topo.EDGE_IP])
    seconds = round(time.monotonic() - t0, 3)
    every_standby = len(standby) == len(hosts) and all(
        s["ok"] and s["kind"] == "https-via-vps" and s["address"] == topo.VPS_IP for s in standby.values()
    )
    nothing_to_obtain = (run.report or {}).get("budget", {}).get("acme") == "none"
    outsider_refused = all(r["refused"] for r in refused.values())
    return Phase(
        "preflight",
        run.exit_code,
        sum(bool(s["ok"]) for s in standby.values()),
        seconds,
        ok=every_standby and public_served and nothing_to_obtain and outsider_refused and visitor["all_ok"],
        details={
            **_check_details(run),
            "standby": standby,
            "standby_certificates": summary,
            "public_certificate_served": public_served,
            "outsider": {"address": topo.OUTSIDER_IP, "refused_by_vps": refused, "via_edge": _served(visitor)},
            "outsider_refused": outsider_refused,
        },
    )


def not_checked_from_here(lab: Lab) -> Phase:
    """check run from outside the networks the VPS serves in tunnel mode (the outsider: a home address
    that changed overnight): the VPS refuses every host, and check says exactly that. Not healthy, the
    standby unchecked, the refused address named, a cut-over's pre-flight refusing."""
    t0 = time.monotonic()
    run = lab.check("tunnel", role="outsider")
    report = run.report or {}
    standby = _standby(run)
    refused = {h: s for h, s in standby.items() if s.get("failure") == "refused_here"}
    problem = next((p for p in report.get("problems", []) if p.startswith("standby not checked from here")), "")
    ok = (
        bool(standby)
        and len(refused) == len(standby)
        and all(s["refused"] == topo.OUTSIDER_IP and s["answered_by"] == "vps" for s in refused.values())
        and report.get("paths", {}).get("standby", {}).get("state") == "unchecked"
        and f"the VPS refuses {topo.OUTSIDER_IP} for" in problem
        and report.get("healthy") is False
        and run.typed is not None
        and bool(decision.standby_blockers(run.typed))
    )
    return Phase(
        "not-checked-from-here",
        run.exit_code,
        sum(bool(s["ok"]) for s in standby.values()),
        round(time.monotonic() - t0, 3),
        ok=ok,
        details={**_check_details(run), "refused": len(refused), "problem": problem},
    )


def mac_mini_down(lab: Lab, *, deadline: float = 20) -> Phase:
    """Home power or the home line: the tunnel and the Mac Mini's WireGuard fail together. check names
    no way to fail over (case tunnel/mac-mini-down); then both come back."""
    t0 = time.monotonic()
    lab.cut_edge("link")
    lab.wireguard_down()
    lab.home_line(up=False)  # the home's own address goes with it (Plan C cannot help either)
    _, statuses, _ = until_every_host_502(lab, connect=topo.VPS_IP)
    run = lab.check("tunnel")
    public = lab.probe(expect_ips=[topo.EDGE_IP])
    diagnosis = (run.report or {}).get("diagnosis") or {}
    lab.home_line()
    lab.wireguard_up()
    lab.wait_handshake(after=0)
    lab.restore_edge()
    back = lab.probe(mode="until_ok", deadline=deadline, expect_ips=[topo.EDGE_IP])
    return Phase(
        "mac-mini-down",
        run.exit_code,
        _healthy(public),
        round(time.monotonic() - t0, 3),
        ok=diagnosis.get("case") == "tunnel/mac-mini-down" and diagnosis.get("way") is None and back["all_ok"],
        details={**_check_details(run), "statuses_at_the_vps": statuses, "back": back["all_ok"]},
    )


def failback_too_early(lab: Lab, state: str) -> Phase:
    """On the VPS with the tunnel still cut: check (the probe name through the tunnel) says it is down,
    and the fail-back's pre-flight refuses, naming the risk."""
    t0 = time.monotonic()
    run = lab.check(state)
    report = run.report or {}
    refused = decision.failback_blockers(run.typed) if run.typed else ["no report"]
    probe = report.get("tunnel_probe") or {}
    return Phase(
        "failback-too-early",
        run.exit_code,
        sum(1 for h in report.get("hosts", []) if h["live"]["ok"]),
        round(time.monotonic() - t0, 3),
        ok=probe.get("state") == "down" and bool(refused) and "every host would be down" in refused[0],
        details={**_check_details(run), "tunnel_probe": probe, "failback_preflight": refused},
    )


def _served_by_vps(lab: Lab, host: str, port: int) -> tuple[bool, dict[str, Any]]:
    """Whether the VPS serves ``host`` from its backend, asked directly at its address (DNS plays no
    part). A name without a site gets Caddy's empty answer (the wildcard certificate still fits it)."""
    result = lab.probe([(host, port)], connect=topo.VPS_IP)["results"][0]
    return bool(result["ok"]), {k: result.get(k) for k in ("status", "body", "error")}


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
    tests = [(str(h["host"]).lower(), int(h["port"])) for h in outputs[Output.HOSTS]]
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
    at_vps = {h: _served_by_vps(lab, h, p) for h, p in tests}
    health = lab.fetch(lab.origin_name, "/healthz")
    prod_after = lab.probe(expect_ips=edge)
    removed = (
        not any(x["ok"] for x in gone["results"])
        and not any(served for served, _ in at_vps.values())
        and health.get("status") == 200
        and prod_after["all_ok"]
        and not any(rec in lab.dns_records for rec in records)
    )
    check_hosts = _check_hosts(run)
    served_by_vps = r["all_ok"] and all(
        check_hosts.get(h, {}).get("dns_path") == "origin" and check_hosts[h]["address"] == topo.VPS_IP
        for h, _ in tests
    )
    return Phase(
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
                "at_vps": {h: {"served": served, **answer} for h, (served, answer) in at_vps.items()},
                "health": {k: health.get(k) for k in ("status", "body", "ip")},
                "production_all_ok": prod_after["all_ok"],
            },
            "removed": removed,
        },
    )


def outage(lab: Lab, name: str, how: str, *, deadline: float = 20) -> Phase:
    """A failure of the tunnel path (how "link": the tunnel is cut, the edge answers 502) or of the edge
    itself (how "stop": connections refused); check in tunnel mode names the way that fits."""
    t0 = time.monotonic()
    lab.cut_edge(how)
    r = lab.probe(mode="until_ok", until="fail", deadline=deadline, expect_ips=[topo.EDGE_IP])
    seconds = round(time.monotonic() - t0, 3)
    run = lab.check("tunnel")
    expected_way = "edge" if how == "link" else "dns"
    details = {**_check_details(run), "served": _served(r), "expected_way": expected_way}
    way = (details["diagnosis"] or {}).get("way")
    return Phase(
        name,
        run.exit_code,
        _healthy(r),
        seconds,
        ok=run.typed is not None and decision.public_path_down(run.typed) and way == expected_way,
        details=details,
    )


def cut_over(lab: Lab, name: str, state: str, state_inputs: Mapping[str, Any], *, deadline: float = 20) -> Phase:
    """Cut over as the program does: the state's Caddyfile through the apply script (over SSH), then the
    zone's records switched to the state's (the edge following the proxied ones). ``seconds``: from the
    DNS switch until every host answers from its backend through the new path: the edge (state
    "failover", the records still proxied) or the VPS (state "failover-dns")."""
    via_edge = state == "failover"
    expect = [topo.EDGE_IP] if via_edge else [topo.VPS_IP]
    t0 = time.monotonic()
    step = lab.apply_state(state_inputs)
    r = lab.probe(mode="until_ok", deadline=deadline, interval=0.05, expect_ips=expect)
    done = time.monotonic()
    seconds = round(done - step["dns_at"], 3) if step["dns_at"] is not None else None
    run = lab.check(state)
    hosts = [h for h, _ in lab.services]
    details: dict[str, Any] = {
        **_check_details(run),
        "check_hosts": _check_hosts(run),
        "served": _served(r),
        **{k: step[k] for k in ("push_ok", "push_seconds", "dns_seconds")},
        "push_output": step["push_output"][-500:],
        "seconds_from_push": round(done - t0, 3),
        "green_within": GREEN_WITHIN,
    }
    ok = bool(step["push_ok"]) and seconds is not None and seconds <= GREEN_WITHIN
    if via_edge:
        # The edge's view (Full (strict): the Origin CA alone): each host's certificate at the VPS, and
        # the VPS's own name, which carries the public certificate and so must be refused.
        assert lab.pki is not None
        at_edge = lab.served_certificates(
            [*hosts, lab.origin_name], topo.VPS_IP, role="edge", ca_file=lab.pki.origin_ca_path
        )
        public_at_edge = at_edge.pop(lab.origin_name)
        summary = _cert_summary(at_edge)
        origin = lab.certificates["origin"]
        origin_only = (
            _only(summary, origin, len(hosts))
            and public_at_edge.get("verified") is False
            and public_at_edge.get("serial") == lab.certificates["public"]["serial"]
        )
        # A visitor from elsewhere straight at the VPS (trusting the Origin CA too, so that TLS is not
        # what stops it): refused; through the edge, served.
        refused = _refusals(
            lab.probe(role="outsider", connect=topo.VPS_IP, cafile=str(lab.ca_bundle_with_origin_ca)), EDGE_REFUSAL
        )
        visitor = lab.probe(role="outsider", expect_ips=[topo.EDGE_IP])
        outsider_refused = all(x["refused"] for x in refused.values())
        details.update(
            edge_to_vps=summary,
            public_certificate_at_edge={
                k: public_at_edge.get(k) for k in ("issuer", "serial", "verified", "verify_error")
            },
            origin_certificate_only=origin_only,
            outsider={"refused_by_vps": refused, "via_edge": _served(visitor)},
            outsider_refused=outsider_refused,
        )
        ok = ok and origin_only and outsider_refused and visitor["all_ok"]
    else:
        at_vps = lab.served_certificates(hosts, topo.VPS_IP)
        summary = _cert_summary(at_vps)
        public_served = _only(summary, lab.certificates["public"], len(hosts))
        visitor = lab.probe(role="outsider", expect_ips=[topo.VPS_IP])
        details.update(
            standby_certificates=summary,
            public_certificate_served=public_served,
            outsider={"served": _served(visitor)},
        )
        ok = ok and public_served and visitor["all_ok"]
    return Phase(name, run.exit_code, _healthy(r), seconds, ok=ok, details=details)


def fail_back(lab: Lab, name: str, current: str, tunnel: Mapping[str, Any], *, deadline: float = 20) -> Phase:
    """The tunnel (and the edge) is back: the fail-back's pre-flight (check on ``current``, the state
    the lab is in) finds it serving, the zone returns to the tunnel records first (names leave the VPS
    before it stops serving them), then the tunnel Caddyfile is pushed."""
    t0 = time.monotonic()
    lab.restore_edge()
    # The fail-back's pre-flight, as `mana-infra failback` runs it: the tunnel serves again.
    before = lab.check(current)
    preflight = decision.failback_blockers(before.typed) if before.typed else ["no report"]
    step = lab.apply_state(tunnel, dns_first=True)
    r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=[topo.EDGE_IP])
    seconds = round(time.monotonic() - t0, 3)
    run = lab.check("tunnel")
    return Phase(
        name,
        run.exit_code,
        _healthy(r),
        seconds,
        ok=bool(step["push_ok"]) and not preflight,
        details={
            **_check_details(run),
            "failback_preflight": preflight,
            "served": _served(r),
            **{k: step[k] for k in ("push_ok", "push_seconds", "dns_seconds")},
        },
    )


def switch_nameservers(
    lab: Lab, emergency: Mapping[str, Any], tunnel: Mapping[str, Any], *, deadline: float = 20
) -> Phase:
    """Cloudflare completely gone (the README's "Cloudflare completely down, or the account locked"): its
    edge refuses connections and its API is out of reach. The emergency cut-over's targeted ``pulumi up``
    runs only the Caddy command (its
    ``create`` text, the DNS-only Caddyfile on stdin: the emergency sets ``failoverVia dns``); the
    Cloudflare zone stays as it is. The nameserver switch: the client's DNS now asks the Hetzner mirror.
    Then check in that state, with the mirror asked directly too. Afterwards everything returns: the
    edge, Cloudflare's nameservers (still the tunnel records), the tunnel Caddyfile."""
    vps, edge = [topo.VPS_IP], [topo.EDGE_IP]
    cloudflare_zone = list(lab.dns_records)
    lab.cut_edge("stop")
    t0 = time.monotonic()
    push_ok, push_out = lab.push_caddyfile(emergency["Caddyfile"], command=emergency["caddy_command"])
    push_seconds = round(time.monotonic() - t0, 3)
    lab.switch_nameservers("mirror")
    r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=vps)
    seconds = round(time.monotonic() - t0, 3)
    state = "failover-dns" if emergency.get("overrides", {}).get("failoverVia") == "dns" else "failover"
    run = lab.check(state, mirror=True)
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
            "health_body": health.get("body"),
            "push_ok": push_ok,
            "push_seconds": push_seconds,
            "push_output": push_out[-500:],
            "emergency_target": emergency.get("target"),
            "emergency_state": state,
            "cloudflare_zone_untouched": untouched,
            "restore_seconds": restore_seconds,
            "restore_push_output": back_out[-300:],
            "restored": restored,
            "restored_served": _served(back),
        },
    )


def until_every_host_502(lab: Lab, **probe: Any) -> tuple[dict[str, Any], list[Any], int]:
    """Probe until Caddy on the VPS answers 502 for every host at once and fast (WireGuard or the Mac Mini
    down: see _faults on the pooled connections that hang first), at most 30 s. The last probe, its
    statuses, and the requests that failed meanwhile."""
    started, failed = time.monotonic(), 0
    while True:
        r = lab.probe(timeout=4.5, **probe)
        failed += r["failures"]
        statuses = sorted({x.get("status") or "timeout/error" for x in r["results"]}, key=str)
        if (statuses == [502] and max(x["seconds"] for x in r["results"]) < 4.5) or time.monotonic() - started >= 30:
            return r, statuses, failed


def _faults(lab: Lab, failover_dns: Mapping[str, Any], zone: str, *, deadline: float, nudge: bool) -> list[Fault]:
    """The faults, in the DNS-only state (every host straight at the VPS), each with its recovery."""
    vps = [topo.VPS_IP]
    faults: list[Fault] = []

    # WireGuard on the Mac Mini goes down. Caddy drops pooled upstream connections after 10 s idle
    # (keepalive), a request on one still in the pool hangs until the client gives up (which closes
    # it); new dials fail after the 3 s dial timeout: 502. Wait until every host answers 502 quickly,
    # let check judge, then bring WireGuard back and measure the recovery.
    lab.wireguard_down()
    t0 = time.monotonic()
    r, statuses, failed = until_every_host_502(lab)
    fast_502_after = round(time.monotonic() - t0, 3)
    slowest_502 = max(x["seconds"] for x in r["results"])
    run = lab.check("failover-dns")
    down_paths = _check_details(run)["paths"]
    t0 = time.monotonic()
    lab.wireguard_up()
    lab.wait_handshake(after=0)
    r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=vps)
    seconds = round(time.monotonic() - t0, 3)
    failed += r["failures"]
    detected = statuses == [502] and run.exit_code == 1 and down_paths.get("standby") == "down"
    faults.append(
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

    # An invalid Caddyfile is pushed while clients keep requesting.
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
    push_ok, out = lab.push_caddyfile(broken_caddyfile(failover_dns["Caddyfile"], zone))
    seconds = round(time.monotonic() - t0, 3)
    worker.join()
    loop_failures = int(loop.get("failures", -1))
    served = loop.get("all_ok", False) and loop_failures == 0
    faults.append(
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

    # The Mac Mini's WAN address changes; WireGuard roams to the new endpoint.
    t0 = time.monotonic()
    new_ip = lab.change_mini_wan()
    if nudge:
        lab.nudge_tunnel()
    r = lab.probe(mode="until_ok", deadline=max(deadline, 35), expect_ips=vps)  # PersistentKeepalive is 25 s
    seconds = round(time.monotonic() - t0, 3)
    endpoint = lab.wg_show("vps")["peers"][0]["endpoint"]
    roamed = endpoint.startswith(new_ip + ":")
    faults.append(
        Fault(
            "wan-change",
            r["all_ok"] and roamed,
            seconds,
            r["failures"],
            ok=r["all_ok"] and roamed,
            details={"new_wan_ip": new_ip, "vps_sees_endpoint": endpoint, "nudged": nudge},
        )
    )
    return faults


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
    states = inputs["states"]
    tunnel = states["tunnel"]
    report = DrillReport(hosts=len(inputs["services"]))
    started = time.monotonic()

    log(f"drill: {report.hosts} hosts, lab in {workdir}")
    with Lab.from_inputs(workdir, inputs, "tunnel") as lab:
        report.timings = dict(lab.timings)
        report.certificates = {k: {kk: vv for kk, vv in v.items() if kk != "pem"} for k, v in lab.certificates.items()}
        public = lab.certificates["public"]
        log(
            f"lab up in {report.up_seconds:.2f} s; public certificate from {public['issuer']}\n"
            f"  ({public['orders']} ACME order, {lab.timings.get('acme', 0):.2f} s), "
            f"origin certificate from {lab.certificates['origin']['issuer']}"
        )

        def phase(run: Callable[[], Phase], expect_exit: int, expect_healthy: int) -> Phase:
            orders = lab.acme_orders()
            p = run()
            p.acme_orders = lab.acme_orders() - orders
            p.ok = p.ok and p.check_exit == expect_exit and p.healthy_hosts == expect_healthy and p.acme_orders == 0
            p.details.update(expect_exit=expect_exit, expect_healthy=expect_healthy)
            report.phases.append(p)
            log(
                f"[{'ok' if p.ok else 'FAIL'}] phase {p.name}: check exit {p.check_exit} (want {expect_exit}), "
                f"{p.healthy_hosts}/{report.hosts} hosts healthy"
                + (f", {p.seconds:.2f} s" if p.seconds is not None else "")
                + f", {p.acme_orders} ACME orders"
                + ("" if p.ok else f"; problems: {p.details.get('problems')}")
            )
            return p

        def tunnel_phase() -> Phase:
            r = lab.probe(mode="until_ok", deadline=deadline, expect_ips=[topo.EDGE_IP])
            run = lab.check("tunnel")
            return Phase(
                "tunnel",
                run.exit_code,
                _healthy(r),
                r["elapsed"],
                details={**_check_details(run), "served": _served(r)},
            )

        everyone = report.hosts
        phase(tunnel_phase, 0, everyone)
        phase(lambda: preflight(lab), 0, everyone)
        phase(lambda: not_checked_from_here(lab), 1, 0)
        if inputs.get("rehearsal"):
            phase(lambda: rehearse(lab, inputs["rehearsal"], deadline=deadline), 0, everyone)
        phase(lambda: outage(lab, "outage", "link", deadline=deadline), 1, 0)
        phase(lambda: cut_over(lab, "cut-over-edge", "failover", states["failover"], deadline=deadline), 0, everyone)
        phase(lambda: failback_too_early(lab, "failover"), 0, everyone)
        phase(lambda: fail_back(lab, "fail-back-edge", "failover", tunnel, deadline=deadline), 0, everyone)
        phase(lambda: mac_mini_down(lab, deadline=deadline), 1, 0)
        phase(lambda: outage(lab, "edge-outage", "stop", deadline=deadline), 1, 0)
        phase(lambda: cut_over(lab, "cut-over", "failover-dns", states["failover-dns"], deadline=deadline), 0, everyone)
        for f in _faults(lab, states["failover-dns"], inputs["zone"], deadline=deadline, nudge=nudge_after_wan_change):
            report.faults.append(f)
            log(
                f"[{'ok' if f.ok else 'FAIL'}] fault {f.name}: recovered={f.recovered} in "
                f"{f.seconds if f.seconds is not None else '-'} s, {f.failed_requests} failed requests"
                + ("" if f.ok else f"; {f.details}")
            )
        phase(lambda: fail_back(lab, "fail-back", "failover-dns", tunnel, deadline=deadline), 0, everyone)
        # Cloudflare completely down: the emergency cut-over and the nameserver switch to the mirror.
        if inputs.get("mirror") and inputs.get("emergency"):
            phase(lambda: switch_nameservers(lab, inputs["emergency"], tunnel, deadline=deadline), 0, everyone)

    report.seconds = round(time.monotonic() - started, 3)
    return report
