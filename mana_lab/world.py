"""The lab as the clouds' own machines: what the real `pulumi up` builds, it builds here.

``World`` is the lab's substrate (its DNS, pebble, Cloudflare's edge, the Mac Mini, the operator's
machine, a visitor from elsewhere) plus the stand-in Hetzner Cloud and Cloudflare APIs
(``mana_lab.clouds``) in a namespace of their own, ``clouds`` (198.51.100.30), an internet away from
the operator. What the providers do through those APIs happens in the lab:

- a server the Hetzner stand-in creates is the lab's VPS machine (machine.py) at its primary IPs,
  booted from the user data the request carried, with the SSH keys it named as root's; a deleted
  server is gone; the firewalls applied to it hold in its namespace;
- the Hetzner zone's RRSets are what the mirror's nameserver (192.0.2.54) serves;
- the Cloudflare zone's records are what the zone's nameserver (192.0.2.53) serves, proxied ones with
  the edge's addresses, and the edge follows their targets, verifying origins against the stand-in's
  Origin CA (SSL Full (strict)); Cloudflare's published ranges are the edge's addresses;
- pebble is the ACME CA the program orders from, validating DNS-01 at the zone's nameserver.

Record changes reach DNS and the edge through one worker thread that applies the newest state of the
zone, so a burst of API calls (a flip of 27 records) costs one reload, not 27, as Cloudflare applies
changes within seconds. ``cloudflare_unreachable`` drops every packet to the Cloudflare API and counts
the connection attempts (the emergency: zero expected).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mana_infra.mirror import cloudflare_record
from mana_infra.model import DnsRecord

from . import certs
from . import topology as topo
from .clouds.cloudflare import RATE_LIMIT, CloudflareApi
from .clouds.hetzner import HetznerCloud
from .clouds.server import Request, StandInServer
from .dnszone import rrset_records
from .lab import ACME_LATENCY_MS, PACKAGE_DIR, Lab, LabSpec
from .system import ETC_NETNS, LabError, in_namespace, netns_exec_argv, run

NFT_TABLE = "inet lab-reach"


class World(Lab):
    """The substrate and the clouds; the VPS comes when the Hetzner API is asked for a server."""

    def __init__(
        self,
        workdir: str | Path,
        zone: str,
        tunnel_id: str,
        services: Sequence[tuple[str, int]],
        *,
        seed_records: Sequence[Mapping[str, Any]] = (),
        ssl_mode: str = "strict",
        **kwargs: Any,
    ) -> None:
        super().__init__(workdir, LabSpec({}, services, zone, tunnel_id, [], mirror_records=[]), **kwargs)
        self.clouds_dir = self.workdir / "clouds"
        shutil.rmtree(self.clouds_dir, ignore_errors=True)
        self.clouds_dir.mkdir(parents=True)
        self.hetzner_log = self.clouds_dir / "hetzner.jsonl"
        self.cloudflare_log = self.clouds_dir / "cloudflare.jsonl"
        self.vps_server_id: int | None = None
        self._servers: list[StandInServer] = []
        # The newest state of each zone, applied by the worker (seeding below is taken at up()).
        self._pending: dict[str, list[DnsRecord]] = {}
        self._pending_lock = threading.Condition()
        self._busy = False
        self._worker: threading.Thread | None = None
        self._stopping = False
        self.boots: list[dict[str, Any]] = []
        self.hook_errors: list[str] = []
        """What went wrong making a cloud's change real in the lab (a server that did not boot...)."""
        self.hetzner = HetznerCloud(
            self.clouds_dir / "hetzner.json",
            on_server_created=self._reported(self._server_created),
            on_server_deleted=self._reported(self._server_deleted),
            on_zone_changed=self._zone_changed,
            on_firewall_changed=self._firewall_changed,
            # As the real API answers: an action is "running" when first polled, a new server initializes
            # first (one poll each: the clients' waiting is exercised, the suite's time kept).
            action_polls=1,
        )
        # Cloudflare's published limit; the benchmark's generated inventories (hundreds of hosts) get it
        # scaled by their size over the real one's, so that they measure the engine, not the limit.
        limit, window = RATE_LIMIT
        self.cloudflare = CloudflareApi(
            self.clouds_dir / "cloudflare.json",
            zones=[self.zone],
            rate_limit=(limit * max(1, -(-len(services) // 27)), window),
            on_records_changed=self._records_changed,
            ip_ranges={
                "ipv4_cidrs": [n for n in topo.EDGE_NETWORKS if ":" not in n],
                "ipv6_cidrs": [n for n in topo.EDGE_NETWORKS if ":" in n],
            },
        )
        self._control("PUT", f"/_stand-in/zones/{self.zone}/settings/ssl", {"value": ssl_mode})
        if seed_records:
            self._control("POST", f"/_stand-in/zones/{self.zone}/dns_records", list(seed_records))
        self.dns_records = self._zone_records(self.cloudflare_records())
        self._pending.clear()
        self.origin_ca_file = self.clouds_dir / "origin-ca.pem"
        self.origin_ca_file.write_text(self.cloudflare.state["origin_ca"]["cert_pem"])

    @property
    def members(self) -> Mapping[str, topo.Member]:
        return {**topo.MEMBERS, "clouds": topo.CLOUDS}

    # ------------------------------------------------------------------------------------ the APIs

    @property
    def hetzner_endpoint(self) -> str:
        return f"http://{topo.CLOUDS.ipv4}:{topo.HETZNER_API_PORT}/v1"

    @property
    def cloudflare_base_url(self) -> str:
        return f"http://{topo.CLOUDS.ipv4}:{topo.CLOUDFLARE_API_PORT}/client/v4"

    def _control(self, method: str, path: str, body: Any) -> Any:
        answer = self.cloudflare.control(Request(method, path, {}, {}, json.dumps(body).encode()))
        if answer.status != 200:
            raise LabError(f"the Cloudflare stand-in refused {method} {path}: {answer.body}")
        return answer.body

    def cloudflare_records(self) -> list[dict[str, Any]]:
        zone = next(z for z in self.cloudflare.state["zones"].values() if z["name"] == self.zone)
        with self.cloudflare.store.lock:
            return [self.cloudflare._record_view(r) for r in zone["records"].values()]

    @staticmethod
    def _zone_records(records: Sequence[Mapping[str, Any]]) -> list[DnsRecord]:
        """The API's records as the zone's nameserver serves them (proxied ones the edge answers for)."""
        return [cloudflare_record(r) for r in records]

    # A second ACME CA beside the first: Let's Encrypt's production directory to the first's staging.
    SECOND_CA_PORT = 14100
    SECOND_CA_MANAGEMENT_PORT = 15100

    @property
    def second_acme_directory(self) -> str:
        return f"https://{topo.ACME_IP}:{self.SECOND_CA_PORT}/dir"

    def up(self) -> float:
        seconds = super().up()
        assert self.pki is not None
        config = certs.pebble_config(
            self.acme_dir / "pebble-2.json",
            self.pki.acme_cert,
            self.pki.acme_key,
            f"127.0.0.1:{self.SECOND_CA_PORT}",
            f"{topo.ACME_IP}:{self.SECOND_CA_MANAGEMENT_PORT}",
        )
        pebble = ["pebble", "-config", str(config), "-dnsserver", f"{topo.RESOLVER_IP}:53"]
        self._spawn("acme", "pebble-2", pebble, env=certs.PEBBLE_ENV)
        public, private = f"{topo.ACME_IP}:{self.SECOND_CA_PORT}", f"127.0.0.1:{self.SECOND_CA_PORT}"
        latency = [self.python, str(PACKAGE_DIR / "latency.py"), public, private, str(ACME_LATENCY_MS)]
        self._spawn("acme", "acme-latency-2", latency)
        self._wait_listening("pebble-2", "tcp", self.SECOND_CA_MANAGEMENT_PORT, address=topo.ACME_IP)
        self._wait_listening("acme-latency-2", "tcp", self.SECOND_CA_PORT, address=topo.ACME_IP)
        self.trust_pebble()
        roots = f"https://{topo.ACME_IP}:{self.SECOND_CA_MANAGEMENT_PORT}/roots/0"
        fetch = ["curl", "-sS", "--fail", "--max-time", "5", "--cacert", str(self.pki.ca_path), roots]
        second = self.exec("client", fetch, check=True).stdout
        self.second_ca_root = self.acme_dir / "pebble-2-root.pem"
        self.second_ca_root.write_text(second)
        self.ca_bundle.write_text(self.ca_bundle.read_text() + second)
        self._worker = threading.Thread(target=self._apply_zones, name="world-zones", daemon=True)
        self._worker.start()
        hetzner_tls = self.pki.ca.issue("hetzner-api", [topo.HETZNER_API_NAME])
        (ETC_NETNS / topo.ns_name("client") / "hosts").write_text(
            f"127.0.0.1 localhost\n::1 localhost\n{topo.CLOUDS.ipv4} {topo.HETZNER_API_NAME}\n"
        )
        for api, port, log, tls in (
            (self.hetzner, topo.HETZNER_API_PORT, self.hetzner_log, None),
            (self.hetzner, topo.HETZNER_API_TLS_PORT, self.hetzner_log, hetzner_tls),
            (self.cloudflare, topo.CLOUDFLARE_API_PORT, self.cloudflare_log, None),
        ):
            self._servers.append(in_namespace(topo.CLOUDS.ns, _server_factory(api, port, log, tls)).start())
        return seconds

    def down(self) -> list[str]:
        with self._pending_lock:
            self._stopping = True
            self._pending_lock.notify_all()
        for server in self._servers:
            server.stop()
        self._servers.clear()
        self.vps_server_id = None
        return super().down()

    def certificate_status(self, management_port: int, serial: str) -> str:
        """What the ACME CA behind ``management_port`` says of a certificate: "Valid", "Revoked", or
        "unknown" (it never issued it): pebble's management API."""
        assert self.pki is not None
        url = f"https://{topo.ACME_IP}:{management_port}/cert-status-by-serial/{serial}"
        done = self.exec("client", ["curl", "-sS", "--max-time", "5", "--cacert", str(self.pki.ca_path), url])
        try:
            return str(json.loads(done.stdout).get("Status", "unknown"))
        except json.JSONDecodeError:
            return "unknown"

    def requests(self) -> dict[str, int]:
        """How many requests each API has answered so far."""
        return {
            "hetzner": _lines(self.hetzner_log),
            "cloudflare": _lines(self.cloudflare_log),
        }

    def request_log(self, api: str, since: int = 0) -> list[dict[str, Any]]:
        path = self.hetzner_log if api == "hetzner" else self.cloudflare_log
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines[since:]]

    # ------------------------------------------------------------------------- the machines' hooks

    def _reported(self, hook: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        def reported(view: dict[str, Any]) -> None:
            try:
                hook(view)
            except Exception as error:
                self.hook_errors.append(f"{hook.__name__.strip('_')} {view.get('name')}: {error}")
                raise

        return reported

    def _server_created(self, view: dict[str, Any]) -> None:
        ipv4 = (view["public_net"].get("ipv4") or {}).get("ip")
        network = (view["public_net"].get("ipv6") or {}).get("ip")
        if not ipv4:
            raise LabError(f"server {view['name']} has no IPv4: the lab's machines are reached at one")
        # Hetzner gives the server the first address of its /64, as the program's DNS expects.
        ipv6 = str(ipaddress.ip_network(network, strict=False)[1]) if network else None
        if self.vps is not None:
            raise LabError(f"the lab runs one server; {self.vps.name} still runs (a second: {view['name']})")
        machine = self.boot_vps(
            view["user_data"], view["ssh_keys"], ipv4, ipv6, firewall=view["firewall_rules"], name=view["name"]
        )
        self.vps_server_id = int(view["id"])
        self.boots.append(
            {
                "server": view["name"],
                "id": view["id"],
                "status": machine.boot_result.status,
                "errors": machine.boot_result.errors,
                "seconds": machine.boot_result.seconds,
                "authorized_keys": machine.boot_result.authorized_keys,
            }
        )

    def _server_deleted(self, view: dict[str, Any]) -> None:
        if self.vps_server_id == int(view["id"]):
            self.delete_vps()
            self.vps_server_id = None

    def _firewall_changed(self, server_id: int, rules: list[dict[str, Any]]) -> None:
        if self.vps is not None and self.vps_server_id == server_id:
            self.vps.apply_firewall(rules)

    def _zone_changed(self, name: str, rrsets: list[dict[str, Any]]) -> None:
        if name == self.zone:
            self._queue("mirror", rrset_records(rrsets, self.zone))

    def _records_changed(self, name: str, records: list[dict[str, Any]]) -> None:
        if name == self.zone:
            self._queue("cloudflare", self._zone_records(records))

    def _queue(self, which: str, records: list[DnsRecord]) -> None:
        with self._pending_lock:
            self._pending[which] = records
            self._pending_lock.notify_all()

    def _apply_zones(self) -> None:
        while True:
            with self._pending_lock:
                while not self._pending and not self._stopping:
                    self._pending_lock.wait()
                if self._stopping:
                    return
                pending, self._pending = self._pending, {}
                self._busy = True
            try:
                if "cloudflare" in pending:
                    self.set_dns(pending["cloudflare"])
                if "mirror" in pending:
                    self.set_mirror(pending["mirror"])
            except Exception as error:  # a lab hiccup must not end the worker
                (self.log_dir / "world-zones.log").open("a").write(f"{type(error).__name__}: {error}\n")
            with self._pending_lock:
                self._busy = False
                self._pending_lock.notify_all()

    def settle(self, timeout: float = 10) -> None:
        """Wait until every record change the APIs took is served by DNS and the edge."""
        with self._pending_lock:
            self._pending_lock.wait_for(lambda: not self._pending and not self._busy, timeout)

    # ------------------------------------------------------------------------------ reachability

    def cloudflare_unreachable(self, unreachable: bool = True) -> None:
        """Drop (and count) every packet to the Cloudflare API, as when Cloudflare is down for us."""
        rules = f"table {NFT_TABLE}\ndelete table {NFT_TABLE}\n"
        if unreachable:
            rules += (
                f"table {NFT_TABLE} {{\n\tchain input {{\n\t\ttype filter hook input priority filter;\n"
                f"\t\ttcp dport {topo.CLOUDFLARE_API_PORT} ct state new counter drop\n"
                f"\t\ttcp dport {topo.CLOUDFLARE_API_PORT} drop\n\t}}\n}}\n"
            )
        run(netns_exec_argv(topo.CLOUDS.ns, ["nft", "-f", "-"]), input=rules)

    def cloudflare_attempts(self) -> int:
        """Connections attempted to the Cloudflare API while it was unreachable."""
        done = run(netns_exec_argv(topo.CLOUDS.ns, ["nft", "-j", "list", "table", *NFT_TABLE.split()]), check=False)
        if done.returncode != 0:
            return 0
        for item in json.loads(done.stdout).get("nftables", []):
            rule = item.get("rule")
            for expression in (rule or {}).get("expr", []):
                if "counter" in expression:
                    return int(expression["counter"]["packets"])
        return 0


def _server_factory(
    api: HetznerCloud | CloudflareApi, port: int, log: Path, tls: tuple[Path, Path] | None
) -> Callable[[], StandInServer]:
    return lambda: StandInServer(api, topo.CLOUDS.ipv4, port, log, tls=tls)


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as stream:
        return sum(1 for _ in stream)
