"""The lab's DNS: the zone and the mirror as knot serves them, and the edge that follows the proxied records."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mana_infra.model import TUNNEL_DOMAIN, DnsRecord

from . import edge as edge_config
from . import topology as topo
from .dnszone import render_knot_conf, render_zone, tunnel_zone_records
from .lab_base import LabBase
from .system import LabError, run


class LabDns(LabBase):
    """The lab's DNS: the zone and the mirror as knot serves them, and the edge that follows the proxied records."""

    def _write_dns_files(self) -> None:
        # The operator's machine may change the zone by dynamic update: lego's DNS-01 TXT records.
        (self.dns_dir / "knot.conf").write_text(
            render_knot_conf(
                self.dns_dir, topo.DNS_IP, [self.zone, TUNNEL_DOMAIN], updates={self.zone: [topo.CLIENT_IP]}
            )
        )
        self._write_zones(self.dns_records)
        if self.mirror_records is not None:
            self.mirror_dir.mkdir(parents=True, exist_ok=True)
            (self.mirror_dir / "knot.conf").write_text(
                render_knot_conf(self.mirror_dir, topo.MIRROR_DNS_IP, [self.zone])
            )
            self._write_mirror_zone(self.mirror_records)

    def _write_mirror_zone(self, records: Sequence[DnsRecord]) -> None:
        # Hetzner's zone holds only the RRSets: no cfargotunnel.com to flatten into, nothing else.
        self._serial += 1
        text = render_zone(self.zone, records, self._serial, topo.MIRROR_DNS_IP)
        tmp = self.mirror_dir / f"{self.zone}.zone.tmp"
        tmp.write_text(text)
        tmp.replace(self.mirror_dir / f"{self.zone}.zone")

    def _write_zones(self, records: Sequence[DnsRecord]) -> None:
        self._serial += 1
        # The tunnel's name has an address only the edge reaches (its end of the private link), as
        # Cloudflare gives it one: visitors reach a tunnel only through a proxied record.
        tunnel = tunnel_zone_records(self.tunnel_id, topo.EDGE_TUNNEL_IP)
        lookup: dict[str, list[DnsRecord]] = {}
        for r in tunnel:
            lookup.setdefault(r.name, []).append(r)
        edge_addresses = [topo.EDGE_IP, topo.EDGE_IP6]
        texts = {
            self.zone: render_zone(self.zone, records, self._serial, topo.DNS_IP, lookup, edge_addresses),
            TUNNEL_DOMAIN: render_zone(TUNNEL_DOMAIN, tunnel, self._serial, topo.DNS_IP),
        }
        for zone, text in texts.items():
            tmp = self.dns_dir / f"{zone}.zone.tmp"
            tmp.write_text(text)
            tmp.replace(self.dns_dir / f"{zone}.zone")  # atomic: knotd never reads half a file

    def _write_edge_files(self) -> bool:
        """The edge's Caddyfile for the records as they are (see edge.py); whether it changed."""
        assert self.pki is not None
        # Full (strict) takes the Origin CA's certificates and publicly trusted ones (the lab's public CAs
        # are its pebbles); rewritten each time, so that a reload after a pebble's root arrived trusts it.
        trust = self.edge_dir / "origin-trust.pem"
        roots = [Path(self.origin_ca_file or self.pki.origin_ca_path), *sorted(self.acme_dir.glob("pebble*root.pem"))]
        trust.write_text("".join(root.read_text() for root in roots))
        files = edge_config.EdgeFiles(self.pki.edge_cert, self.pki.edge_key, trust, self.edge_caddy_data)
        text = edge_config.render(self.dns_records, self.services, self.tunnel_target, topo.MINI_TUNNEL_IP, files)
        path = self.edge_dir / "Caddyfile"
        if path.exists() and path.read_text() == text:
            return False
        path.write_text(text)
        return True

    def _edge_follows_records(self) -> None:
        """Cloudflare applies a record change to its proxy: the edge's configuration follows the
        records' targets, reloaded in place. The file follows even while the edge is stopped, so a
        restarted edge starts with the records as they are."""
        if self._write_edge_files() and "caddy-edge" in self._procs:
            self.exec(
                "edge",
                ["caddy", "reload", "--config", str(self.edge_dir / "Caddyfile"), "--adapter", "caddyfile"],
                env=self._xdg_env(self.edge_dir),
                check=True,
            )

    def set_dns(self, records: Iterable[DnsRecord]) -> float:
        """Replace the zone's records and reload knotd, and let the edge follow the proxied records'
        targets (Cloudflare's proxy applies a change with it); returns seconds until both serve it."""
        t0 = time.monotonic()
        self.dns_records = list(records)
        self._write_zones(self.dns_records)
        # -b: wait until knotd has finished loading, so the next query sees the new zone.
        run(["knotc", "-s", str(self.dns_dir / "knot.sock"), "-b", "zone-reload", self.zone], timeout=15)
        self._edge_follows_records()
        return round(time.monotonic() - t0, 4)

    def add_dns_records(self, records: Iterable[DnsRecord]) -> float:
        """Add records to the Cloudflare zone (keeping the rest); seconds until served."""
        new = list(records)
        return self.set_dns([*[r for r in self.dns_records if r not in new], *new])

    def remove_dns_records(self, records: Iterable[DnsRecord]) -> float:
        gone = set(records)
        return self.set_dns([r for r in self.dns_records if r not in gone])

    def set_mirror(self, records: Iterable[DnsRecord]) -> float:
        """Replace the mirror zone's records (what a `pulumi up` would write to Hetzner) and reload."""
        if self.mirror_records is None:
            raise LabError("this lab has no Hetzner mirror (no mirror_records)")
        t0 = time.monotonic()
        self.mirror_records = list(records)
        self._write_mirror_zone(self.mirror_records)
        run(["knotc", "-s", str(self.mirror_dir / "knot.sock"), "-b", "zone-reload", self.zone], timeout=15)
        return round(time.monotonic() - t0, 4)
