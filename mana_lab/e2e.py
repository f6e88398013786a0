"""The operator's runs through the real engine, in the lab: ``mana-infra lab e2e [--json]``.

The real Pulumi CLI, its Python language host and the six provider plugins (``make engine``) run the
program of a copy of this project, set up exactly with the README's commands, against the stand-in
Hetzner and Cloudflare APIs of a ``World`` (world.py), whose machines are the lab's: the servers the
Hetzner API creates boot from the program's user data, the Cloudflare records are the zone the lab's
DNS serves and the edge follows, the certificate comes from the lab's pebble by DNS-01 at the
Cloudflare API. Everything runs on the operator's machine, the lab's client namespace (inside
``sshAllowedCidrs``), with its own PULUMI_HOME and a local backend.

The runs, in order, each judged on the CLI's own JSON (``--json``: the engine's events), the
stand-ins' request logs and ``mana-infra check`` in the lab:

- ``up-tunnel``: prod from empty state while the tunnel's records exist, adopted as the README says
  (``mana-infra adopt`` on the saved answers, the one command it prints): every inventory record
  imported, none created twice, no request through the edge failed during the run; then the Mac
  Mini's WireGuard from the stack's output, and check green;
- ``up-after-adoption``: ``pulumi config rm adoptRecords && pulumi up``: the records' comment, in place;
- ``up-noop``, ``refresh``, ``up-after-refresh``: nothing changes, no drift, nothing replaced after it;
- ``cutover``, ``failback``: ``mana-infra cutover --via edge --yes`` and
  ``mana-infra failback --yes``: the inventory records updated in place, the Caddy command replaced,
  no cloud resource created, replaced or deleted, the verdict green;
- ``cutover-direct``, ``failback-direct`` (Plan C): the Mac Mini's sync takes the certificate the
  acme-directory run renewed; the tunnel cut and the VPS unreachable, check's verdict is the direct way,
  ``mana-infra cutover --via direct`` updates the records in place (the mirror's RRSets follow the way)
  and runs nothing on the VPS, every host green through the home; then the fail-back, records only;
- ``watch-tunnel-cut``, ``watch-restart-race``, ``watch-holds-back``: the watchdog (``mana-infra
  watch``) from the operator's seat, fault by fault (e2e_watch.py): it cuts over by itself through the
  edge, fails back after the stable window, then latches; restarted mid-outage it keeps its count and
  cuts over DNS-only (the records updated in place, nothing else written), and beside a person's
  cutover one writes; where it must not act it pages or keeps quiet, and acts not;
  ``failback-by-hand`` (after the DNS-only cut-over): the README's ``pulumi config set mode tunnel &&
  pulumi up``;
- ``rehearsal-up``, ``rehearsal-destroy``: the failover stack with only what the README has the
  operator set; check green on its test hostname; after the destroy its site file is gone and a prod
  ``up`` changes nothing;
- ``emergency``: the Cloudflare API unreachable, the stack's ``emergencyCutover`` exactly as printed:
  no packet to Cloudflare, the VPS serves every host, the mirror holds every host; then the VPS gone
  too, ``emergencyCutoverDirect`` as printed: only the mirror's RRSets, every host from home; then back;
- ``policy``: ``pulumi preview --policy-pack policy`` passes on prod and blocks a change that lifts
  the protection of the primary IPs;
- ``replace-server``: a new image, protection on, as the README documents it: the server replaced
  at the same primary IPs, the Mac Mini's WireGuard back by itself, check green;
- ``key-exists``: the operator's SSH key uploaded to the Hetzner project by hand: the preview uses it
  and uploads none;
- ``secrets``: ``pulumi stack export`` holds no private key and no token in plaintext.

A confirmation prompt is answered as a terminal's operator answers it: PULUMI_SKIP_CONFIRMATIONS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mana_infra.cutover import resource_step
from mana_infra.inventory import load_inventory
from mana_infra.names import (
    CADDY_COMMAND,
    CERTIFICATE_COMMANDS,
    REHEARSAL_COMMAND,
    STANDBY_SERVER,
    WIREGUARD_CONFIG_PATH,
)
from mana_infra.outputs import Output
from mana_infra.render.caddyfile import PUBLIC_CERTIFICATE as PUBLIC_CERTIFICATE_FILE
from mana_infra.render.remote import CADDY_DIR

from . import certs, e2e_watch
from . import topology as topo
from .engine import Engine
from .system import LabError, netns_exec_argv, run_limited
from .world import World

TUNNEL_ID = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
HCLOUD_TOKEN = "lab" + "h" * 61  # the provider insists on 64 characters
CLOUDFLARE_TOKEN = "lab" + "c" * 37  # and on 40 or more
STACK_FILES = (
    "Pulumi.yaml",
    "Pulumi.prod.yaml",
    "Pulumi.failover.yaml",
    "services.yaml",
    "__main__.py",
    "requirements.txt",
)
CHANGE_KEYS = ("create", "update", "replace", "delete", "same")
# Records of the zone beside the inventory, as a real zone has them: the mirror copies them.
EXTRA_RECORDS = (
    {"type": "MX", "name": "@", "content": "mail.example.net", "priority": 10, "ttl": 3600},
    {"type": "TXT", "name": "@", "content": "v=spf1 include:_spf.example.net ~all", "ttl": 3600},
)
INVENTORY_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
MIRROR_RRSET = "hcloud:index/zoneRrset:ZoneRrset"
PUBLIC_CERTIFICATE = "certificates-public"
# The public certificate on the VPS, where the plan's command puts it.
PUBLIC_PEM = f"{CADDY_DIR}/{PUBLIC_CERTIFICATE_FILE}"


# A preview with the policy pack takes about 20 s here; without its virtualenv the pack's language host
# waits for ever (seen: over ten minutes), so the step checks first and never waits long.
POLICY_PREVIEW_SECONDS = 180.0


def policy_venv_problem(project: Path) -> str | None:
    """Why `pulumi preview --policy-pack policy` cannot run in ``project``, or None."""
    if (project / "policy" / "venv" / "bin" / "python").exists():
        return None
    return (
        f"the policy pack's virtualenv {project / 'policy' / 'venv'} is missing (policy/PulumiPolicy.yaml names it): "
        "`make setup` makes it, or `python3 -m venv policy/venv && policy/venv/bin/pip install -r "
        "policy/requirements.txt`"
    )


@dataclass
class Run:
    """One of the operator's runs and what it proved."""

    name: str
    command: str
    ok: bool = False
    seconds: float = 0.0
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KEYS, 0))
    resources: list[dict[str, str]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "ok": self.ok,
            "seconds": self.seconds,
            "changes": self.changes,
            "resources": self.resources,
            "requests": self.requests,
            "problems": self.problems,
        }

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def changed(self, **ops: int) -> None:
        """Exactly these non-`same` counts (the rest zero)."""
        wanted = {op: ops.get(op, 0) for op in CHANGE_KEYS if op != "same"}
        got = {op: self.changes.get(op, 0) for op in wanted}
        if "import" in self.changes or "import" in ops:
            wanted["import"], got["import"] = ops.get("import", 0), self.changes.get("import", 0)
        self.expect(got == wanted, f"changes {got}, expected {wanted}")

    def touched(self, kind: str = "") -> list[dict[str, str]]:
        return [r for r in self.resources if r["type"].startswith(kind)]


@dataclass
class Report:
    pulumi: str
    plugins: dict[str, str]
    runs: list[Run] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.ok for run in self.runs)

    def run(self, name: str) -> Run:
        return next(r for r in self.runs if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pulumi": self.pulumi,
            "plugins": self.plugins,
            "runs": [run.to_dict() for run in self.runs],
            "setup": self.setup,
            "seconds": self.seconds,
            "ok": self.ok,
        }


def events_summary(events: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], list[dict[str, str]]]:
    """The engine's own account of a run, from its JSON events: the summary's counts (create, update,
    replace, delete, same, and import when any) and every step that was not `same`."""
    changes = dict.fromkeys(CHANGE_KEYS, 0)
    steps: list[dict[str, str]] = []
    for event in events:
        summary = event.get("summaryEvent")
        if summary:
            for op, n in (summary.get("resourceChanges") or {}).items():
                changes[op] = changes.get(op, 0) + int(n)
        pre = event.get("resourcePreEvent")
        if pre and pre["metadata"]["op"] not in ("same", "read", "refresh"):
            step = resource_step(pre["metadata"]["op"], pre["metadata"]["urn"])
            if step not in steps and step["type"] != "pulumi:pulumi:Stack":
                steps.append(step)
    return changes, steps


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class Operator:
    """The operator's machine: the lab's client namespace, a copy of the project, the engine."""

    def __init__(
        self, world: World, engine: Engine, project_dir: Path, workdir: Path, inventory: Path | None = None
    ) -> None:
        self.world, self.engine = world, engine
        self.source = project_dir
        self.project = workdir / "project"
        self.home = workdir / "home"
        self.log = workdir / "operator.log"
        shutil.rmtree(self.project, ignore_errors=True)
        self.project.mkdir(parents=True)
        for name in STACK_FILES:
            shutil.copy(project_dir / name, self.project / name)
        if inventory is not None:  # another inventory (the benchmark's), as the operator's services.yaml
            shutil.copy(inventory, self.project / "services.yaml")
        ignore = shutil.ignore_patterns("__pycache__", "venv")
        for folder in ("mana_infra", "policy"):
            shutil.copytree(project_dir / folder, self.project / folder, ignore=ignore)
        # The virtualenvs the project's own set-up made (`make setup`): Pulumi.yaml and the policy
        # pack's PulumiPolicy.yaml name them relative to their folders.
        for venv in ("venv", "policy/venv"):
            if (project_dir / venv).is_dir():
                (self.project / venv).symlink_to(project_dir / venv)
        self.home.mkdir(parents=True, exist_ok=True)
        self.timeout = 600.0  # per command; the benchmark's 500 hosts need more
        self.env = {
            **engine.environment(workdir / "state"),
            "PATH": f"{engine.bin_dir}:{self.project / 'venv' / 'bin'}:/usr/local/sbin:/usr/local/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            # A terminal's operator answers the confirmation; here nobody is at one.
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            # The lab's CA signs pebble's API certificate: lego (in the ACME provider) must trust it.
            "LEGO_CA_CERTIFICATES": str(world.pki.ca_path) if world.pki else "",
            # lego's Cloudflare DNS provider reads its API's address from here (and only here).
            "CLOUDFLARE_BASE_URL": world.cloudflare_base_url,
            # Its Hetzner provider has https://api.hetzner.cloud/v1 in its code: the hosts file sends that
            # name to the stand-in, which shows a certificate of the lab CA (Go reads the roots from here).
            "SSL_CERT_FILE": str(world.pki.ca_path) if world.pki else "",
            "CLOUDFLARE_API_TOKEN": CLOUDFLARE_TOKEN,
        }

    def sh(
        self, command: str, *, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``command`` as the operator types it, in the project folder on the operator's machine."""
        started = time.monotonic()
        done = run_limited(
            netns_exec_argv(topo.ns_name("client"), ["sh", "-c", command]),
            cwd=self.project,
            env=self.env,
            input=stdin,
            timeout=timeout or self.timeout,
            what=command,
        )
        with self.log.open("a") as log:
            log.write(f"\n$ {command}   # exit {done.returncode}, {time.monotonic() - started:.1f} s\n")
            log.write(done.stderr[-4000:])
        return done

    def stream(self, command: str, *, until: Callable[[str], bool], timeout: float = 180) -> list[tuple[float, str]]:
        """``command`` in the operator's seat, its stdout read as it comes: (time it came, line) until a
        line that ``until`` accepts, or the command ends, or the timeout (then it is killed)."""
        proc = subprocess.Popen(
            netns_exec_argv(topo.ns_name("client"), ["sh", "-c", command]),
            cwd=self.project, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        lines: list[tuple[float, str]] = []
        stop = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        stop.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append((time.monotonic(), line.strip()))
                if until(line):
                    break
        finally:
            stop.cancel()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        with self.log.open("a") as log:
            log.write(f"\n$ {command}   # streamed, {len(lines)} lines\n" + "\n".join(line for _, line in lines[-20:]))
        return lines

    def must(self, command: str, *, stdin: str | None = None) -> str:
        done = self.sh(command, stdin=stdin)
        if done.returncode != 0:
            raise LabError(
                f"`{command}` failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    def outputs(self, stack: str = "prod") -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.must(f"pulumi stack output --stack {stack} --json"))
        return out

    def check(self, stack: str = "prod", *, mirror: bool = True, extra: Sequence[str] = ()) -> dict[str, Any]:
        """``mana-infra check --stack S --json`` on the operator's machine, pointed at the lab."""
        flags = self.world.check_flags()
        flags += ["--mirror-nameserver", topo.MIRROR_DNS_IP] if mirror else ["--no-mirror"]
        done = self.sh(shlex.join(["mana-infra", "check", "--stack", stack, "--json", *flags, *extra]))
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except json.JSONDecodeError:
            report = {"problems": [done.stderr.strip()[-500:] or f"exit {done.returncode}, no report"]}
        report["exit_code"] = done.returncode
        return report


class EndToEnd:
    """Sets up the world and the operator, then runs each of the operator's runs in order."""

    def __init__(
        self,
        workdir: Path,
        engine: Engine,
        project_dir: Path,
        log: Callable[[str], None] = lambda _: None,
        inventory: Path | None = None,
    ) -> None:
        self.workdir, self.engine, self.project_dir, self.log = workdir, engine, project_dir, log
        self.inventory = inventory
        services = load_inventory(inventory or project_dir / "services.yaml", "mana.how")
        self.services = [(s.host, s.port) for s in services]
        self.zone = "mana.how"
        seed = [
            {"type": "CNAME", "name": host, "content": f"{TUNNEL_ID}.cfargotunnel.com", "proxied": True, "ttl": 1}
            for host, _ in self.services
        ] + [dict(r) for r in EXTRA_RECORDS]
        self.world = World(workdir / "world", self.zone, TUNNEL_ID, self.services, seed_records=seed)
        self.report = Report(engine.version, dict(engine.plugins))
        self.operator: Operator | None = None

    # ---------------------------------------------------------------------------------------- driving

    def run_all(self, keep: bool = False) -> Report:
        """Every run in order; the world is taken down afterwards unless ``keep`` (the keeper keeps it)."""
        started = time.monotonic()
        try:
            self.log("e2e: the lab's world (stand-in clouds, DNS, edge, pebble, the Mac Mini)")
            self.start()
            for name, body in RUNS:
                run = self._timed(name, body)
                self.report.runs.append(run)
                api_calls = f"{run.requests.get('cloudflare', 0):4} CF"
                verdict = "ok" if run.ok else "FAILED"
                self.log(f"e2e: {name:<18} {verdict} {run.seconds:6.1f} s {api_calls}  {run.command[:60]}")
                for problem in run.problems:
                    self.log(f"        {problem}")
                if not run.ok and name in ("up-tunnel",):
                    break  # nothing after it stands on anything
        finally:
            if not keep:
                self.world.down()
            self.report.seconds = round(time.monotonic() - started, 1)
        return self.report

    def start(self) -> None:
        self.world.up()
        self.operator = Operator(self.world, self.engine, self.project_dir, self.workdir, self.inventory)
        self._setup()

    def bench(self) -> dict[str, Any]:
        """``make bench``: the first `pulumi up`, the flip by hand both ways, then ``mana-infra cutover``
        and ``failback`` stage by stage, each as the operator waits for it (process start included)."""
        figures: dict[str, Any] = {"hosts": len(self.services)}
        try:
            started = time.monotonic()
            self.start()
            self.op.timeout = max(600.0, 6.0 * len(self.services))
            figures["setup_seconds"] = round(time.monotonic() - started, 1)
            bench_runs: tuple[tuple[str, Callable[[EndToEnd, Run], None]], ...] = (
                ("first up", EndToEnd.up_tunnel),
                ("flip by hand", lambda e2e, run: e2e._by_hand(run, "failover")),
                ("back by hand", lambda e2e, run: e2e._by_hand(run, "tunnel")),
                ("cutover", lambda e2e, run: e2e.cutover(run, "edge")),
                ("failback", EndToEnd.failback),
                ("cutover direct", EndToEnd.cutover_direct),
                ("failback direct", EndToEnd.failback_direct),
                # The watchdog's time from the fault to green: at the inventory's size (27), what it is for.
                # At the default interval (10 s): the figure the README promises.
                *(
                    (("watchdog", lambda e2e, run: e2e_watch.tunnel_cut(e2e, run, interval=10.0)),)
                    if len(self.services) <= 100
                    else ()
                ),
            )
            for name, body in bench_runs:
                run = self._timed(name, body)
                self.log(f"bench: {name:<14} {'ok' if run.ok else 'FAILED'} {run.seconds:6.1f} s")
                figures[name] = {"seconds": run.seconds, "ok": run.ok, "problems": run.problems[:3]}
                if "fault_to_green_seconds" in run.details:
                    figures[name]["fault_to_green_seconds"] = run.details["fault_to_green_seconds"]
                verdict = run.details.get("verdict")
                if verdict:
                    figures[name]["stages"] = [(s["name"], s["seconds"]) for s in verdict["stages"]]
                if not run.ok and name == "first up":
                    break
        finally:
            self.world.down()
        return figures

    def _by_hand(self, run: Run, mode: str) -> None:
        """The README's flip: `pulumi config set mode …` and `pulumi up`, until the engine is done."""
        self.pulumi(run, f"pulumi config set --stack prod mode {mode} && pulumi up --stack prod")
        self._flip_in_place(run)

    def _timed(self, name: str, body: Callable[[EndToEnd, Run], None]) -> Run:
        run = Run(name, "")
        before = self.world.requests()
        errors_before = len(self.world.hook_errors)
        started = time.monotonic()
        try:
            body(self, run)
        except (LabError, subprocess.TimeoutExpired, KeyError, ValueError) as error:
            run.problems.append(f"{type(error).__name__}: {error}")
        run.seconds = round(time.monotonic() - started, 2)
        after = self.world.requests()
        run.requests = {api: after[api] - before[api] for api in after}
        run.problems += [f"the lab: {error}" for error in self.world.hook_errors[errors_before:]]
        run.ok = not run.problems
        return run

    @property
    def op(self) -> Operator:
        assert self.operator is not None
        return self.operator

    # ------------------------------------------------------------------------------------ the set-up

    def _setup(self) -> None:
        """README "Using it for real", steps 2 to 4, with the lab's endpoints beside them."""
        started = time.monotonic()
        op, world = self.op, self.world
        key = world.client_key
        commands = [
            "pulumi stack init prod",
            f"pulumi config set --stack prod tunnelId {TUNNEL_ID}",
            f'pulumi config set --stack prod sshPublicKey "$(cat {key}.pub)"',
            f"pulumi config set --stack prod --secret sshPrivateKey < {key}",
            f"pulumi config set --stack prod --path 'sshAllowedCidrs[0]' {topo.CLIENT_IP}/32",
            f"pulumi config set --stack prod --secret hcloud:token {HCLOUD_TOKEN}",
            f"pulumi config set --stack prod --secret cloudflare:apiToken {CLOUDFLARE_TOKEN}",
            # The lab's clouds, and its ACME CA for the public certificate (the README's acmeServer).
            f"pulumi config set --stack prod hcloud:endpoint {world.hetzner_endpoint}",
            f"pulumi config set --stack prod cloudflare:baseUrl {world.cloudflare_base_url}",
            f"pulumi config set --stack prod acmeServer {world.acme_directory}",
            # Plan C (the README's home side): the router's public IPv4, the Mac Mini's stable IPv6.
            f"pulumi config set --stack prod homeAddress {topo.HOME_IP}",
            f"pulumi config set --stack prod homeAddress6 {topo.MINI_LAN_IP6}",
        ]
        for command in commands:
            op.must(command)
        # Step 4: the records that exist are adopted (the README's two curls against the lab's API).
        curl = f'curl -sS -H "Authorization: Bearer {CLOUDFLARE_TOKEN}"'
        zones = json.loads(op.must(f'{curl} "{world.cloudflare_base_url}/zones?name={self.zone}"'))
        zone_id = zones["result"][0]["id"]
        op.must(
            f'{curl} "{world.cloudflare_base_url}/zones/{zone_id}/dns_records?page=1&per_page=5000" > records-1.json'
        )
        adopt = op.sh(f"mana-infra adopt --stack prod --zone-id {zone_id} --records records-1.json")
        if adopt.returncode != 0:
            raise LabError(f"mana-infra adopt says the first `pulumi up` is not safe:\n{adopt.stdout}{adopt.stderr}")
        printed = adoption_command(adopt.stdout)
        op.must(printed)
        self.zone_id = zone_id
        self.report.setup = {
            "seconds": round(time.monotonic() - started, 1),
            "commands": [*commands, "mana-infra adopt ...", printed[:80] + " ..."],
        }

    # ------------------------------------------------------------------------------------- the runs

    def pulumi(self, run: Run, command: str) -> subprocess.CompletedProcess[str]:
        """A pulumi command with the engine's events as JSON (``--json``): the run's changes and steps."""
        run.command = command
        # A terminal's operator sees the preview and answers; here the update runs at once.
        suffix = " --skip-preview --json" if re.search(r"pulumi (up|destroy|refresh)\b[^&]*$", command) else " --json"
        done = self.op.sh(command + suffix)
        events = _json_lines(done.stdout)
        run.changes, run.resources = events_summary(events)
        run.details["diagnostics"] = [
            e["diagnosticEvent"]["message"].strip()
            for e in events
            if "diagnosticEvent" in e and e["diagnosticEvent"].get("severity") in ("error", "warning")
        ]
        if done.returncode != 0:
            run.problems.append(
                f"exit {done.returncode}: "
                + " | ".join(run.details["diagnostics"][-3:] or [done.stderr.strip()[-400:]])
            )
        return done

    def green(self, run: Run, stack: str = "prod", mirror: bool = True, mode: str | None = None) -> dict[str, Any]:
        report = self.op.check(stack, mirror=mirror)
        run.details["check"] = {k: report.get(k) for k in ("exit_code", "problems", "mode")}
        run.expect(
            report["exit_code"] == 0, f"check --stack {stack}: exit {report['exit_code']}: {report.get('problems')}"
        )
        if mode is not None:
            run.expect(report.get("mode") == mode, f"check --stack {stack}: mode {report.get('mode')}, expected {mode}")
        return report

    def no_cloud_resource_touched(self, run: Run, but: Sequence[str] = (), *, mirror: bool = False) -> None:
        """Nothing at the clouds but the inventory records' update in place (``mirror``: the Hetzner
        mirror's RRSets too, which follow a direct way)."""
        updated = (INVENTORY_RECORD, MIRROR_RRSET) if mirror else (INVENTORY_RECORD,)
        touched = [
            r
            for r in run.resources
            if r["type"].startswith(("hcloud:", "cloudflare:", "tls:", "acme:", "random:"))
            and not (r["type"] in updated and r["op"] == "update")
            and r["name"] not in but
        ]
        run.expect(not touched, f"cloud resources touched beyond the inventory records' update: {touched}")

    def up_tunnel(self, run: Run) -> None:
        stop = self.workdir / "probe-stop"
        stop.unlink(missing_ok=True)
        loop: dict[str, Any] = {}
        probe = threading.Thread(
            target=lambda: loop.update(
                self.world.probe(mode="loop", duration=600, max_requests=10**6, interval=0.3, stop_file=str(stop))
            )
        )
        probe.start()
        try:
            self.pulumi(run, "pulumi up --stack prod")
        finally:
            stop.touch()
            probe.join()
        run.details["visitors"] = {k: loop.get(k) for k in ("requests", "failures")}
        run.expect(
            loop.get("requests", 0) > 0 and loop.get("failures") == 0,
            f"requests through the edge during the run: {loop.get('requests')}, failed {loop.get('failures')}"
            f" (the first: {(loop.get('first_failures') or [None])[0]})",
        )
        imported = [r["name"] for r in run.resources if r["op"] == "import"]
        run.expect(
            sorted(imported) == sorted(f"dns-{h}" for h, _ in self.services),
            f"imported {len(imported)} records, expected the {len(self.services)} inventory records",
        )
        run.expect(
            not [r for r in run.resources if r["op"] in ("update", "replace", "delete")],
            "a first run changed what existed",
        )
        records = self.world.cloudflare_records()
        for host, _ in self.services:
            at_name = [r for r in records if r["name"] == host and r["type"] in ("A", "AAAA", "CNAME")]
            run.expect(len(at_name) == 1, f"{host}: {len(at_name)} records at Cloudflare after the run")
        boots = self.world.boots
        run.expect(len(boots) == 1 and boots[0]["status"] == "done", f"the VPS's boot: {boots}")
        # README step 6: the Mac Mini's WireGuard from the stack's output.
        self.world.install_macmini_config(
            self.op.must("pulumi stack output --stack prod --show-secrets macminiWireguardConfig")
        )
        self.world.wait_handshake()
        # README, the home side: the sync (its files from the VPS through WireGuard) and Caddy at boot.
        run.details["home sync"] = self.world.home_up(self.op.outputs())
        self.world.settle()
        self.green(run, mode="tunnel")

    def up_after_adoption(self, run: Run) -> None:
        self.pulumi(run, "pulumi config rm --stack prod adoptRecords && pulumi up --stack prod")
        run.changed(update=len(self.services))
        run.expect(all(r["type"] == INVENTORY_RECORD for r in run.resources), f"more than the records: {run.resources}")

    def up_noop(self, run: Run) -> None:
        before = self.world.requests()
        self.pulumi(run, "pulumi up --stack prod")
        run.changed()
        writes = self._writes(before)
        run.expect(not writes, f"a second `pulumi up` wrote to the clouds: {writes}")

    def _writes(self, before: Mapping[str, int]) -> list[str]:
        return [
            f"{api}: {entry['method']} {entry['path']}"
            for api in ("hetzner", "cloudflare")
            for entry in self.world.request_log(api, before[api])
            if entry["method"] not in ("GET", "HEAD")
        ]

    def refresh(self, run: Run) -> None:
        self.pulumi(run, "pulumi refresh --stack prod")
        run.changed()

    def up_after_refresh(self, run: Run) -> None:
        self.up_noop(run)

    def acme_directory(self, run: Run) -> None:
        """Staging, then production: another directory is another CA. The account and the certificate
        are made anew there; the old certificate is revoked at its own CA, never at the new one."""
        world = self.world
        old = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        self.pulumi(
            run, f"pulumi config set --stack prod acmeServer {world.second_acme_directory} && pulumi up --stack prod"
        )
        replaced = sorted(r["name"] for r in run.resources if r["op"] == "replace")
        run.expect(
            replaced == ["certificates-acme", "certificates-acme-account", "certificates-public"],
            f"replaced {replaced}",
        )
        others = [r for r in run.resources if r["op"] != "replace" and r["name"] != CERTIFICATE_COMMANDS["public"]]
        run.expect(not others, f"beyond the account and the certificate: {others}")
        new = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        run.details["certificates"] = {"old": old["issuer"], "new": new["issuer"]}
        served = world.exec(
            "client",
            ["curl", "-sS", "--fail", "--max-time", "5", "--cacert", str(world.second_ca_root), "--resolve",
             f"vps.{self.zone}:443:{topo.VPS_IP}", f"https://vps.{self.zone}/healthz"],
        )  # fmt: skip
        run.expect(served.returncode == 0, f"the VPS does not serve the new CA's certificate: {served.stderr.strip()}")
        run.expect(new["serial"] != old["serial"], "the certificate was not replaced")
        status = {
            which: world.certificate_status(port, old["serial"])
            for which, port in (("old CA", topo.ACME_MANAGEMENT_PORT), ("new CA", world.SECOND_CA_MANAGEMENT_PORT))
        }
        run.details["old certificate"] = status
        run.expect(status["old CA"] == "Revoked", f"the old certificate at its CA: {status['old CA']}")
        run.expect(status["new CA"] == "unknown", f"the new CA was asked about the old certificate: {status}")

    def cutover(self, run: Run, via: str) -> None:
        self._switch(run, f"mana-infra cutover --stack prod --via {via} --yes --json", "failover")
        outputs = self.op.outputs()
        deployed = outputs.get(Output.FAILOVER_VIA)
        run.expect(deployed == via, f"failoverVia {deployed}, expected {via}")
        # The stack records since when and by what it is in its mode (deployed.py).
        by, since = str(outputs.get(Output.MODE_CHANGED_BY)), outputs.get(Output.MODE_SINCE)
        run.expect(by.startswith("mana-infra cutover by ") and bool(since), f"recorded: {since}, by {by}")

    def deploy_keeps_mode(self, run: Run) -> None:
        """The weekly run of main after a cut-over made on this machine: main's Pulumi.prod.yaml says
        tunnel; `mana-infra deploy` keeps the failover, says so, changes no record, keeps the record of
        who cut over; the checkout's file is as it was afterwards."""
        op = self.op
        stack_file = op.project / "Pulumi.prod.yaml"
        cut_over, before = stack_file.read_text(), op.outputs()
        op.must("pulumi config rm --stack prod mode && pulumi config rm --stack prod failoverVia")
        main = stack_file.read_text()
        run.command = "mana-infra deploy --stack prod --policy-pack policy"
        try:
            done = op.sh(run.command)
        finally:
            after_file = stack_file.read_text()
            stack_file.write_text(cut_over)
        steps = [line.split() for line in done.stdout.splitlines() if line.startswith("    ")]
        run.resources = [{"type": "", "name": name, "op": step} for step, name in steps]
        run.expect(done.returncode == 0, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
        run.expect("so this one keeps failover through the edge" in done.stdout, f"said: {done.stdout[:300]}")
        run.expect(not any(name.startswith("dns-") for _, name in steps), f"records touched: {steps}")
        run.expect(after_file == main, "the checkout's stack file was not put back")
        after = op.outputs()
        record = (Output.MODE, Output.MODE_SINCE, Output.MODE_CHANGED_BY)
        moved = {key: after.get(key) for key in record if after.get(key) != before.get(key)}
        run.expect(not moved, f"the mode's record moved: {moved}")
        self.green(run, mode="failover")

    def failback(self, run: Run) -> None:
        self._switch(run, "mana-infra failback --stack prod --yes --json", "tunnel")

    def cutover_direct(self, run: Run) -> None:
        """Plan C through the real engine: the tunnel cut and the VPS gone dark. check's verdict is the
        direct way; `mana-infra cutover --via direct` updates the 27 records in place and touches nothing
        else (nothing runs on the VPS); every host is green through the home. First the Mac Mini's sync, as
        launchd runs it every ten minutes: the certificate the acme-directory run renewed reaches it."""
        synced = self.world.home_sync(str(self.op.outputs()[Output.MACMINI_SYNC_SCRIPT]))
        at_vps = self.world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout
        run.details["home sync"] = synced
        run.expect(self.world.home_files().get("public.pem") == at_vps, f"the Mac Mini's certificate: {synced}")
        self.world.cut_edge("link")
        self.world.vps_unreachable()
        diagnosis = self.op.check(mirror=False).get("diagnosis") or {}
        run.details["diagnosis"] = diagnosis
        wanted = ("direct", "mana-infra cutover --via direct --stack prod")
        found = (diagnosis.get("way"), diagnosis.get("command"))
        run.expect(found == wanted, f"check's verdict with the tunnel cut and the VPS down: {diagnosis}")
        self._switch(run, "mana-infra cutover --stack prod --via direct --yes --json", "failover", direct=True)

    def failback_direct(self, run: Run) -> None:
        """The tunnel and the VPS back: `mana-infra failback` from the home, the records in place again (the
        mirror's back at the VPS too)."""
        self.world.restore_tunnel_link()
        self.world.vps_unreachable(False)
        self._switch(run, "mana-infra failback --stack prod --yes --json", "tunnel", direct=True)

    def _switch(self, run: Run, command: str, mode: str, *, direct: bool = False) -> None:
        run.command = command
        flags = [*self.world.check_flags(), "--mirror-nameserver", topo.MIRROR_DNS_IP]
        done = self.op.sh(f"{command} {shlex.join(flags)}")
        try:
            verdict = json.loads(done.stdout)
        except json.JSONDecodeError:
            run.problems.append(f"exit {done.returncode}, no verdict: {done.stderr.strip()[-500:]}")
            return
        run.details["verdict"] = {k: verdict[k] for k in ("target", "green", "hosts", "green_hosts", "stages")}
        run.resources = verdict["steps"]
        run.changes = dict.fromkeys(CHANGE_KEYS, 0)
        for step in run.resources:
            run.changes[step["op"]] = run.changes.get(step["op"], 0) + 1
        run.expect(done.returncode == 0 and verdict["green"], f"not green: {verdict['stages']}")
        self._flip_in_place(run, caddy=not direct)
        self.world.settle()
        if direct and mode == "failover":  # the VPS is down: green is every host through the home
            report = self.op.check()
            run.expect(all(h["dns"]["path"] == "home" and h["live"]["ok"] for h in report["hosts"]), "not home")
        else:
            self.green(run, mode=mode)

    def _flip_in_place(self, run: Run, *, caddy: bool = True) -> None:
        """The inventory records updated in place; the VPS's Caddy command replaced (a direct way's flip
        runs nothing on the VPS); no other cloud resource touched."""
        records = {r["name"] for r in run.touched(INVENTORY_RECORD) if r["op"] == "update"}
        run.expect(records == {f"dns-{h}" for h, _ in self.services}, f"records updated: {sorted(records)}")
        ran = [r["op"] for r in run.resources if r["name"] == CADDY_COMMAND]
        run.expect(ran == (["replace"] if caddy else []), f"the Caddy command: {ran}")
        others = [r for r in run.resources if r["type"] == "command:remote:Command" and r["name"] != CADDY_COMMAND]
        run.expect(not others, f"other commands ran: {others}")
        self.no_cloud_resource_touched(run, mirror=not caddy)

    def failback_by_hand(self, run: Run) -> None:
        self._by_hand(run, "tunnel")
        self.world.settle()
        self.green(run, mode="tunnel")

    def rehearsal_up(self, run: Run) -> None:
        op, world = self.op, self.world
        for command in (
            "pulumi stack init failover",
            f"pulumi config set --secret sshPrivateKey --stack failover < {world.client_key}",
            f"pulumi config set --secret cloudflare:apiToken {CLOUDFLARE_TOKEN} --stack failover",
            f"pulumi config set cloudflare:baseUrl {world.cloudflare_base_url} --stack failover",
        ):
            op.must(command)
        self.pulumi(run, "pulumi up --stack failover")
        run.expect(
            {r["op"] for r in run.resources} == {"create"}
            and {r["name"] for r in run.resources} >= {REHEARSAL_COMMAND},
            f"the rehearsal: {run.resources}",
        )
        world.settle()
        self.green(run, "failover", mirror=False, mode="failover")
        # Production is untouched: still every host through the tunnel.
        self.green(run, mode="tunnel")

    def rehearsal_after_replace(self, run: Run) -> None:
        """The prod VPS was replaced (same addresses, a new server): the rehearsal's site file follows it."""
        self.pulumi(run, "pulumi up --stack failover")
        run.expect(
            [(r["name"], r["op"]) for r in run.resources] == [(REHEARSAL_COMMAND, "replace")],
            f"the rehearsal after the replacement: {run.resources}",
        )
        self.world.settle()
        self.green(run, "failover", mirror=False, mode="failover")

    def rehearsal_destroy(self, run: Run) -> None:
        self.pulumi(run, "pulumi destroy --stack failover")
        run.expect(run.changes.get("delete", 0) > 0 and not run.touched("hcloud:"), f"destroy: {run.resources}")
        left = self.world.exec("vps", ["sh", "-c", "ls /etc/caddy/sites.d"]).stdout.split()
        run.expect(not [f for f in left if f.endswith(".caddy")], f"site files left on the VPS: {left}")
        after = Run("prod", "")
        self.pulumi(after, "pulumi up --stack prod")
        run.details["prod-after"] = after.changes
        run.expect(
            not after.problems and all(after.changes.get(k, 0) == 0 for k in CHANGE_KEYS if k != "same"),
            f"prod after the destroy: {after.changes} {after.problems}",
        )

    def emergency(self, run: Run) -> None:
        world, op = self.world, self.op
        printed = str(op.outputs()[Output.EMERGENCY_CUTOVER])
        world.cloudflare_unreachable()
        try:
            before = world.requests()["cloudflare"]
            self.pulumi(run, printed)
            run.details["cloudflare_attempts"] = world.cloudflare_attempts()
            run.expect(world.cloudflare_attempts() == 0, f"{world.cloudflare_attempts()} connections to Cloudflare")
            run.expect(world.requests()["cloudflare"] == before, "Cloudflare's API was asked")
            run.expect([r["name"] for r in run.resources] == [CADDY_COMMAND], f"changed: {run.resources}")
            # The registrar's switch: the resolver now asks the Hetzner mirror.
            world.switch_nameservers("mirror")
            served = world.probe(expect_ips=[topo.VPS_IP])
            run.expect(served["all_ok"], f"through the mirror: {served['results'][:2]}")
            self._emergency_direct(run)
            self._renewal_at_hetzner(run)
        finally:
            world.switch_nameservers("cloudflare")
            world.cloudflare_unreachable(False)
        # When Cloudflare is back (the README): reachable again, and back to the tunnel.
        renewed = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        back = Run("back", "")
        self.pulumi(
            back,
            "pulumi config set --stack prod cloudflareReachable true && pulumi config set --stack prod failoverVia edge"
            " && pulumi config set --stack prod mode tunnel && pulumi up --stack prod",
        )
        run.problems += [f"back: {p}" for p in back.problems]
        # The challenge returns to Cloudflare in place: no new certificate for it.
        certificate_steps = {r["name"]: r["op"] for r in back.touched("acme:")}
        run.expect(certificate_steps == {PUBLIC_CERTIFICATE: "update"}, f"back: the ACME steps {certificate_steps}")
        served = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        run.expect(served["serial"] == renewed["serial"], "back: a new certificate was ordered")
        world.settle()
        self.green(run, mode="tunnel")

    def _emergency_direct(self, run: Run) -> None:
        """Cloudflare gone and the VPS too: the stack's emergencyCutoverDirect as printed points the
        mirror's records at the home (Plan C), asking Cloudflare nothing and running nothing on the VPS;
        every host is served from home through the mirror."""
        world = self.world
        printed = str(self.op.outputs()[Output.EMERGENCY_CUTOVER_DIRECT])
        world.vps_unreachable()
        try:
            direct = Run("emergency-direct", "")
            self.pulumi(direct, printed)
            run.problems += [f"emergency direct: {p}" for p in direct.problems]
            run.details["emergency direct"] = {"command": printed[:120], "changes": direct.changes}
            kinds = {(r["type"], r["op"]) for r in direct.resources}
            run.expect(kinds == {(MIRROR_RRSET, "update")}, f"emergency direct changed: {direct.resources[:4]}")
            run.expect(world.cloudflare_attempts() == 0, f"{world.cloudflare_attempts()} connections to Cloudflare")
            served = world.probe(mode="until_ok", deadline=10, expect_ips=[topo.HOME_IP])
            run.expect(served["all_ok"], f"from home through the mirror: {served['results'][:2]}")
        finally:
            # The VPS back: the way back to it (the next run's mirror follows).
            world.vps_unreachable(False)
            self.op.must("pulumi config set --stack prod failoverVia dns")

    def _renewal_at_hetzner(self, run: Run) -> None:
        """A long outage: the weekly untargeted `pulumi up`, with the certificate due (``--replace``
        stands in for the calendar: a renewal and a new order go through the same challenge). It calls
        no Cloudflare API, the DNS-01 record goes to the Hetzner zone, the CA validates it there (the
        resolvers follow the registrar's switch), and the VPS serves the new certificate."""
        world = self.world
        old = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        hetzner_before, cloudflare_before = world.requests()["hetzner"], world.requests()["cloudflare"]
        weekly = Run("weekly", "")
        urn = "urn:pulumi:prod::mana-infra::mana-infra:index:Certificates$acme:index/certificate:Certificate::"
        urn += PUBLIC_CERTIFICATE
        self.pulumi(weekly, f"pulumi up --stack prod --replace '{urn}'")
        run.problems += [f"weekly run: {p}" for p in weekly.problems]
        run.details["weekly"] = weekly.changes
        run.expect(
            world.cloudflare_attempts() == 0, f"weekly run: {world.cloudflare_attempts()} connections to Cloudflare"
        )
        run.expect(world.requests()["cloudflare"] == cloudflare_before, "weekly run: Cloudflare's API was asked")
        run.expect(
            not weekly.touched("cloudflare:"),
            f"weekly run changed Cloudflare resources: {weekly.touched('cloudflare:')}",
        )
        challenge = [
            (entry["method"], entry["path"].rsplit("/", 1)[-1])
            for entry in world.request_log("hetzner", hetzner_before)
            if "/rrsets/_acme-challenge/TXT/actions/" in entry["path"] and entry["status"] == 201
        ]
        run.details["challenge at hetzner"] = challenge
        run.expect(
            ("POST", "add_records") in challenge and ("POST", "remove_records") in challenge,
            f"weekly run: the DNS-01 record did not go through the Hetzner zone: {challenge}",
        )
        new = certs.describe(world.exec("vps", ["cat", PUBLIC_PEM], check=True).stdout)
        run.expect(new["serial"] != old["serial"], "weekly run: the VPS still has the old certificate")
        served = world.probe(expect_ips=[topo.VPS_IP])
        run.expect(
            served["all_ok"], f"weekly run: through the mirror with the new certificate: {served['results'][:2]}"
        )

    def policy(self, run: Run) -> None:
        run.command = "pulumi preview --stack prod --policy-pack policy"
        problem = policy_venv_problem(self.op.project)
        run.expect(problem is None, str(problem))
        if problem:
            return
        passed = self.op.sh(run.command, timeout=POLICY_PREVIEW_SECONDS)
        run.details["pass"] = passed.returncode
        run.expect(
            passed.returncode == 0 and "✅ mana-infra-guard-rails" in passed.stdout,
            f"the policy pack on prod: exit {passed.returncode}: {passed.stdout[-600:]}",
        )
        try:
            unprotect = f"pulumi config set --stack prod protect false && {run.command}"
            blocked = self.op.sh(unprotect, timeout=POLICY_PREVIEW_SECONDS)
        finally:
            self.op.must("pulumi config set --stack prod protect true")
        out = blocked.stdout + blocked.stderr
        run.expect(
            blocked.returncode != 0 and "[mandatory]  prod-ips-and-zone-protected" in out,
            f"unprotected primary IPs were not blocked: exit {blocked.returncode}",
        )
        run.expect("Traceback" not in out, "a Python traceback in the blocked preview")

    def replace_server(self, run: Run) -> None:
        before = self.op.outputs()
        self.pulumi(run, "pulumi config set --stack prod image ubuntu-22.04 && pulumi up --stack prod")
        replaced = {r["name"] for r in run.resources if r["op"] == "replace"}
        run.expect(STANDBY_SERVER in replaced and CADDY_COMMAND in replaced, f"replaced: {sorted(replaced)}")
        run.expect(not [r for r in run.touched("hcloud:index/primaryIp") if r["op"] != "same"], "the primary IPs moved")
        after = self.op.outputs()
        run.expect(after[Output.ORIGIN_IPV4] == before[Output.ORIGIN_IPV4], "the VPS has another address")
        run.expect(
            len(self.world.boots) >= 2 and self.world.boots[-1]["status"] == "done", f"boot: {self.world.boots[-1:]}"
        )
        # The Mac Mini's WireGuard reconnects by itself (its keepalive), nothing changed on it.
        self.world.wait_handshake(timeout=30)
        self.green(run, mode="tunnel")

    def key_exists(self, run: Run) -> None:
        """The operator uploaded a key by hand (Hetzner's console, here its API); the program uses it."""
        op, world = self.op, self.world
        key = self.workdir / "laptop_ed25519"
        run_limited(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(key)], timeout=20)
        body = json.dumps({"name": "operator-laptop", "public_key": Path(f"{key}.pub").read_text().strip()})
        op.must(
            f"curl -sS --fail -H 'Authorization: Bearer {HCLOUD_TOKEN}' -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)} {world.hetzner_endpoint}/ssh_keys"
        )
        uploaded = next(k for k in world.hetzner.state["ssh_keys"].values() if k["name"] == "operator-laptop")
        stack_file = op.project / "Pulumi.prod.yaml"
        saved = stack_file.read_text()
        try:
            op.must(f'pulumi config set --stack prod sshPublicKey "$(cat {key}.pub)"')
            run.command = "pulumi preview --stack prod"
            done = op.sh(f"{run.command} --json")
        finally:
            stack_file.write_text(saved)
        preview = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        steps = preview.get("steps", [])
        run.changes = {**dict.fromkeys(CHANGE_KEYS, 0), **preview.get("changeSummary", {})}
        run.resources = [resource_step(s["op"], s["urn"]) for s in steps if s["op"] != "same"]
        run.expect(done.returncode == 0, f"preview: exit {done.returncode}: {done.stderr[-400:]}")
        uploads = [r for r in run.resources if r["type"] == "hcloud:index/sshKey:SshKey" and r["op"] == "create"]
        run.expect(not uploads, f"the program uploads the key again: {uploads}")
        server: dict[str, Any] = next((s for s in steps if s["urn"].endswith("::standby-server")), {})
        keys = ((server.get("newState") or {}).get("inputs") or {}).get("sshKeys")
        run.expect(keys == [str(uploaded["id"])], f"the server's keys {keys}, expected [{uploaded['id']}]")

    def secrets(self, run: Run) -> None:
        run.command = "pulumi stack export --stack prod"
        exported = self.op.must(run.command)
        wireguard = self.op.must("pulumi stack output --stack prod --show-secrets macminiWireguardConfig")
        private_key = re.search(r"PrivateKey = (\S+)", wireguard)
        on_the_vps = re.search(r"PrivateKey = (\S+)", self.world.exec("vps", ["cat", WIREGUARD_CONFIG_PATH]).stdout)
        plaintext = {
            "the VPS's WireGuard key": on_the_vps[1] if on_the_vps else "(no key on the VPS)",
            "an OpenSSH private key": "OPENSSH PRIVATE KEY",
            "a PEM private key": "PRIVATE KEY-----",
            "the Hetzner token": HCLOUD_TOKEN,
            "the Cloudflare token": CLOUDFLARE_TOKEN,
            "the Mac Mini's WireGuard key": private_key[1] if private_key else "(no key in the output)",
        }
        for what, text in plaintext.items():
            run.expect(text not in exported, f"{what} is in the exported state in plaintext")
        run.expect('"ciphertext"' in exported, "the state holds no secret at all")


# The operator's runs in order, each once: `lab e2e` runs them, the tests and the docs name them from here.
RUNS: tuple[tuple[str, Callable[[EndToEnd, Run], None]], ...] = (
    ("up-tunnel", EndToEnd.up_tunnel),
    ("up-after-adoption", EndToEnd.up_after_adoption),
    ("up-noop", EndToEnd.up_noop),
    ("refresh", EndToEnd.refresh),
    ("up-after-refresh", EndToEnd.up_after_refresh),
    ("acme-directory", EndToEnd.acme_directory),
    ("cutover", lambda e2e, run: e2e.cutover(run, "edge")),
    ("deploy-keeps-mode", EndToEnd.deploy_keeps_mode),
    ("failback", EndToEnd.failback),
    ("cutover-direct", EndToEnd.cutover_direct),
    ("failback-direct", EndToEnd.failback_direct),
    ("watch-tunnel-cut", e2e_watch.tunnel_cut),
    # The watchdog's DNS-only cut-over (the same cutover code a person's `--via dns` runs) ...
    ("watch-restart-race", e2e_watch.restart_race),
    # ... and the README's flip back by hand from it.
    ("failback-by-hand", EndToEnd.failback_by_hand),
    ("watch-holds-back", e2e_watch.holds_back),
    ("rehearsal-up", EndToEnd.rehearsal_up),
    ("replace-server", EndToEnd.replace_server),
    ("rehearsal-after-replace", EndToEnd.rehearsal_after_replace),
    ("rehearsal-destroy", EndToEnd.rehearsal_destroy),
    ("emergency", EndToEnd.emergency),
    ("policy", EndToEnd.policy),
    ("key-exists", EndToEnd.key_exists),
    ("secrets", EndToEnd.secrets),
)
RUN_NAMES = tuple(name for name, _ in RUNS)


def adoption_command(printed: str) -> str:
    """The one command ``mana-infra adopt`` prints to fill adoptRecords, as the shell reads its lines."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("pulumi config set-all"))
    command = []
    for line in lines[start:]:
        command.append(line.strip().removesuffix("\\").strip())
        if not line.rstrip().endswith("\\"):
            break
    return " ".join(command)


def fresh_workdir(workdir: Path) -> None:
    if os.geteuid() != 0:
        raise LabError("the end-to-end runs need root (network namespaces)")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)


def run_e2e(workdir: Path, engine: Engine, project_dir: Path, log: Callable[[str], None]) -> Report:
    fresh_workdir(workdir)
    return EndToEnd(workdir, engine, project_dir, log).run_all()


def run_bench(
    workdir: Path, engine: Engine, project_dir: Path, inventory: Path | None, log: Callable[[str], None]
) -> dict[str, Any]:
    fresh_workdir(workdir)
    return EndToEnd(workdir, engine, project_dir, log, inventory).bench()
