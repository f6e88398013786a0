"""The Pulumi program: read the configuration once, check it, wire the components, export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_cloudflare as cloudflare

from .components.caddy import CaddyConfig
from .components.certificates import Certificates
from .components.dns import FailoverDns, lookup_zone_id, read_zone_records
from .components.rehearsal import SITE_FILE, RehearsalSites
from .components.secondary_dns import SecondaryDns, read_mirrored_records, read_zone_rrsets
from .components.standby_server import StandbyServer
from .components.wireguard import WireGuardKeys
from .config import RehearsalConfig, StandbyConfig, read_stack_config
from .deployed import DEPLOYED_REFERENCE, ModeRecord, after_run
from .errors import InputError, Problem, cloud_error
from .mirror import Unmirrored, mirror_extra_records
from .model import CLOUDFLARE_API, CLOUDFLARE_IP_RANGES, DnsRecord, Mode, tunnel_target, via_home, via_proxied
from .monitor.dashboard import dashboard_json
from .monitor.rules import alert_rules_yaml
from .names import CADDY, MACMINI_CADDY, REHEARSAL, STANDBY, certificate_config
from .outputs import PROD_OUTPUTS_READ, Output
from .project import Project
from .records import (
    adoption_left_text,
    cutover_budget,
    tunnel_probe_host,
    tunnel_probe_record,
)
from .render.caddyfile import (
    MAC_MINI_CADDYFILE,
    ORIGIN_CERTIFICATE,
    PUBLIC_CERTIFICATE,
    CaddySpec,
    render_caddyfile,
)
from .render.cloud_init import render_cloud_init
from .render.home import caddy_launchd_plist, home_caddyfile, sync_launchd_plist, sync_script
from .render.remote import CADDY_DIR
from .render.services import macmini_wireguard_plist, watch_launchd_agent, watch_systemd_unit, watchdog_systemd_unit
from .render.wireguard import render_macmini_config, render_server_config


@dataclass(frozen=True)
class Standby:
    """What the program built, for the exports and for tests."""

    keys: WireGuardKeys
    server: StandbyServer
    dns: FailoverDns
    caddy: CaddyConfig
    certificates: Certificates
    ssl_mode: str
    """The zone's SSL/TLS mode at Cloudflare ("strict" is what the edge way needs), or why it is unknown."""
    caddyfile: str
    records: tuple[DnsRecord, ...]
    user_data: pulumi.Output[str]
    macmini_wireguard_config: pulumi.Output[str]
    zone_id: str
    secondary: SecondaryDns | None
    unmirrored: tuple[Unmirrored, ...]
    home_caddyfile: str | None
    """The Mac Mini's own Caddyfile (Plan C configured), also on the VPS for the Mac Mini to fetch."""


@dataclass(frozen=True)
class Rehearsal:
    """What the rehearsal stack built: its sites, and the prod outputs it read."""

    sites: RehearsalSites
    prod: dict[Output, pulumi.Output[str]]


class ProgramInputError(InputError, pulumi.RunError):
    """Bad input inside `pulumi up`: a `pulumi.RunError`, so the engine prints its message and stops
    cleanly, without the Python traceback an operator has no use for. Raised where the program runs,
    and from inside an Output's apply (which `run`'s try does not cover)."""


def run(project: Project | None = None) -> None:
    """Entry point of `pulumi up` (and of the offline plan, under the mock engine). The Pulumi CLI
    runs the program in the project's folder, where the project is found."""
    try:
        config = read_stack_config(project or Project.find())
        if isinstance(config, RehearsalConfig):
            export_rehearsal(config, build_rehearsal(config))
        else:
            export(config, build(config))
    except InputError as error:
        raise ProgramInputError(error.problems) from None
    except Exception as error:  # an invoke's failure: the cloud's words, not a traceback
        failed = cloud_error(error)
        if failed is None:
            raise
        raise pulumi.RunError(str(failed)) from None


def build(config: StandbyConfig) -> Standby:
    """The standby's resources, in the order the engine gets them."""
    keys = WireGuardKeys("wireguard", {"macmini_public_key": config.macmini_public_key})
    server, user_data = _server(config, keys)
    macmini_wireguard_config = _macmini_wireguard_config(config, keys, server)
    records = config.record_settings.records(config.services, config.tunnel_id)
    # With Cloudflare unreachable the program must make no Cloudflare call: the zone id comes from config.
    zone_id = config.cloudflare_zone_id or lookup_zone_id(config.zone)
    ssl_mode = zone_ssl_mode(config, zone_id)
    certificates, certificate_files = _certificates(config, zone_id, server)
    caddyfile = _caddyfile(config)
    caddy, dns = _caddy_and_dns(config, _Placed(server, zone_id, records, caddyfile, certificate_files))
    mac_mini_caddyfile = _home_caddyfile(config, server, caddy)
    secondary, unmirrored = build_secondary_dns(config, server, zone_id) if config.secondary_dns else (None, ())
    return Standby(
        keys=keys,
        server=server,
        dns=dns,
        caddy=caddy,
        certificates=certificates,
        ssl_mode=ssl_mode,
        caddyfile=caddyfile,
        records=records,
        user_data=user_data,
        macmini_wireguard_config=macmini_wireguard_config,
        zone_id=zone_id,
        secondary=secondary,
        unmirrored=unmirrored,
        home_caddyfile=mac_mini_caddyfile,
    )


def _home_caddyfile(config: StandbyConfig, server: StandbyServer, caddy: CaddyConfig) -> str | None:
    """The Mac Mini's Caddyfile, put on the VPS beside the public certificate for the Mac Mini to fetch."""
    if config.home is None:
        return None
    text = home_caddyfile(config.services, config.home_name, config.health_path, published_ranges(config))
    CaddyConfig(
        MACMINI_CADDY,
        {
            "host": server.ipv4_address,
            "user": config.ssh_user,
            "private_key": config.ssh_private_key,
            "content": text,
            "target": MAC_MINI_CADDYFILE,
            "triggers": [server.server_id],
            "after": [caddy],
        },
    )
    return text


def _server(config: StandbyConfig, keys: WireGuardKeys) -> tuple[StandbyServer, pulumi.Output[str]]:
    """The VPS, booted from user data that holds its WireGuard config (a secret)."""
    network = config.wireguard
    server_wireguard_config = pulumi.Output.all(keys.server_private_key, keys.macmini_public_key).apply(
        lambda pair: render_server_config(network, pair[0], pair[1])
    )
    user_data: pulumi.Output[str] = pulumi.Output.secret(server_wireguard_config.apply(render_cloud_init))
    server = StandbyServer(
        STANDBY,
        {
            "resource_prefix": f"mana-{config.stack}",
            "server_type": config.server_type,
            "location": config.location,
            "image": config.image,
            "ssh_public_key": config.ssh_public_key,
            "ssh_allowed_cidrs": config.ssh_allowed_cidrs,
            "wireguard_port": network.listen_port,
            "user_data": user_data,
            "labels": {"project": "mana-infra", "stack": config.stack, "role": "standby"},
            "protect": config.protect,
        },
    )
    return server, user_data


def _macmini_wireguard_config(config: StandbyConfig, keys: WireGuardKeys, server: StandbyServer) -> pulumi.Output[str]:
    macmini_private_key = (
        keys.macmini_private_key if keys.macmini_private_key is not None else pulumi.Output.from_input(None)
    )
    return pulumi.Output.secret(
        pulumi.Output.all(keys.server_public_key, server.ipv4_address, macmini_private_key).apply(
            lambda values: render_macmini_config(
                config.wireguard, values[0], values[1], values[2], config.macmini_private_key_path
            )
        )
    )


def _certificates(config: StandbyConfig, zone_id: str, server: StandbyServer) -> tuple[Certificates, list[CaddyConfig]]:
    """Both certificates, and the commands that put them on the VPS."""
    certificates = Certificates(
        "certificates",
        {
            "zone": config.zone,
            "zone_id": zone_id,
            "acme_server": config.acme_server,
            "acme_email": config.acme_email,
            # After the registrar's switch, Let's Encrypt reads the challenge from the Hetzner zone.
            "dns_provider": "cloudflare" if config.cloudflare_reachable else "hetzner",
            "dns_token": config.cloudflare_token if config.cloudflare_reachable else config.hcloud_token,
            "cloudflare_reachable": config.cloudflare_reachable,
        },
    )
    files = [
        CaddyConfig(
            certificate_config(kind),
            {
                "host": server.ipv4_address,
                "user": config.ssh_user,
                "private_key": config.ssh_private_key,
                "content": content,
                "target": target,
                # A new server gets them again.
                "triggers": [server.server_id],
                "after": [server],
            },
        )
        for kind, target, content in (
            ("public", PUBLIC_CERTIFICATE, certificates.public_pem),
            ("origin", ORIGIN_CERTIFICATE, certificates.origin_pem),
        )
    ]
    return certificates, files


def vps_mode(config: StandbyConfig) -> Mode:
    """The mode the VPS serves: the stack's, but for a direct way, where the home serves and the VPS
    stays the standby exactly as in tunnel mode. Its Caddyfile is then the tunnel's, byte for byte, so a
    direct cut-over (and its fail-back) runs nothing on a VPS that may be gone: only the records move."""
    return "tunnel" if via_home(config.failover_via) else config.mode


def _caddyfile(config: StandbyConfig) -> str:
    edge_networks = cloudflare_networks(config)
    return render_caddyfile(
        CaddySpec(
            mode=vps_mode(config),
            via=config.failover_via,
            services=config.services,
            macmini_address=str(config.wireguard.macmini_address),
            origin_name=config.origin_name,
            health_path=config.health_path,
            allowed_networks=allowed_networks(config, edge_networks),
            cloudflare_networks=edge_networks,
            mac_mini_files=str(config.wireguard.macmini_address) if config.home else None,
        )
    )


@dataclass(frozen=True)
class _Placed:
    """What the Caddy command and the records stand on."""

    server: StandbyServer
    zone_id: str
    records: tuple[DnsRecord, ...]
    caddyfile: str
    certificate_files: list[CaddyConfig]


def _caddy_and_dns(config: StandbyConfig, placed: _Placed) -> tuple[CaddyConfig, FailoverDns]:
    server = placed.server

    def caddy_config(after: list[pulumi.Resource]) -> CaddyConfig:
        return CaddyConfig(
            CADDY,
            {
                "host": server.ipv4_address,
                "user": config.ssh_user,
                "private_key": config.ssh_private_key,
                "content": placed.caddyfile,
                # A flip re-runs the command even if the Caddyfile were the same; a new server gets it again.
                "triggers": [vps_mode(config), server.server_id],
                "after": [server, *placed.certificate_files, *after],
            },
        )

    def failover_dns(after: list[pulumi.Resource]) -> FailoverDns:
        return FailoverDns(
            "dns",
            {
                "zone_id": placed.zone_id,
                "origin_name": config.origin_name,
                "origin_ipv4": server.ipv4_address,
                "origin_ipv6": server.ipv6_address,
                "origin_ttl": config.failover_ttl,
                "inventory": placed.records,
                "adopt": config.adopt_records,
                "tunnel_probe": tunnel_probe_record(config.zone, config.tunnel_id),
                "home": config.home.records(config.failover_ttl) if config.home else (),
                "cloudflare_reachable": config.cloudflare_reachable,
                "after": after,
            },
        )

    # The order follows the mode: on a cut-over the VPS serves every host before DNS sends anyone
    # there; on the way back DNS leaves the VPS before it stops serving the public. A direct way does
    # not wait for the VPS at all.
    if vps_mode(config) == "failover":
        caddy = caddy_config([])
        return caddy, failover_dns([caddy])
    dns = failover_dns([])
    return caddy_config([dns]), dns


def zone_ssl_mode(config: StandbyConfig, zone_id: str) -> str:
    """The zone's SSL/TLS mode, read (never changed: it is zone-wide). The edge way needs Full (strict):
    a cut-over through the edge is refused without it, and the outputs always say what it is."""
    if not config.cloudflare_reachable:
        return "unknown (Cloudflare is marked unreachable)"
    cutting_over_via_edge = config.mode == "failover" and via_proxied(config.failover_via)
    dns_only = "direct-dns" if via_home(config.failover_via) else "dns"
    try:
        mode = str(cloudflare.get_zone_setting(zone_id=zone_id, setting_id="ssl").value)
    except Exception as exc:  # the invoke's error: only fatal when the edge way depends on the answer
        if cutting_over_via_edge:
            raise InputError(
                [
                    Problem(
                        f"zone {config.zone}",
                        f"its SSL/TLS mode cannot be read ({exc}): the way through the edge needs Full (strict)",
                        "give the token Zone Settings:Read, or fail over DNS-only: "
                        f"pulumi config set --stack {config.stack} failoverVia {dns_only}",
                    )
                ]
            ) from None
        return "unknown (the token cannot read the zone's settings)"
    if cutting_over_via_edge and mode != "strict":
        raise InputError(
            [
                Problem(
                    f"zone {config.zone}",
                    f"its SSL/TLS mode is {mode!r}: through the edge, Cloudflare must verify the origin's certificate "
                    "(the VPS's Origin CA one, the Mac Mini's public one), which only Full (strict) does (mana-infra "
                    "never changes zone-wide settings)",
                    f"Cloudflare dashboard -> {config.zone} -> SSL/TLS -> Overview -> Full (strict), or "
                    f"curl -X PATCH {CLOUDFLARE_API}/zones/{zone_id}/settings/ssl "
                    "-H 'Authorization: Bearer <token>' --json '{\"value\": \"strict\"}'; "
                    f"or fail over DNS-only: pulumi config set --stack {config.stack} failoverVia {dns_only}",
                )
            ]
        )
    return mode


def cloudflare_networks(config: StandbyConfig) -> tuple[str, ...]:
    """Cloudflare's published ranges (as the provider reads them) when its edge connects to the VPS:
    through the edge; in the other states no visitor comes from there, and nobody's claim is believed."""
    if config.mode != "failover" or config.failover_via != "edge":
        return ()
    return published_ranges(config)


def published_ranges(config: StandbyConfig) -> tuple[str, ...]:
    """Cloudflare's published ranges, as the provider reads them; with Cloudflare marked unreachable (no
    call may go there) the ones the project knows (model.CLOUDFLARE_IP_RANGES)."""
    if not config.cloudflare_reachable:
        return (*CLOUDFLARE_IP_RANGES[0], *CLOUDFLARE_IP_RANGES[1])
    ranges = cloudflare.get_ip_ranges()
    return (*ranges.ipv4_cidrs, *ranges.ipv6_cidrs)


def allowed_networks(config: StandbyConfig, edge_networks: tuple[str, ...]) -> tuple[str, ...]:
    """Who reaches the inventory hosts on the VPS in this mode: the operator's networks while the tunnel
    serves them (or the home does: Plan C); through the edge, Cloudflare's too; DNS-only, everyone (empty)."""
    if vps_mode(config) == "tunnel":
        return config.check_allowed_cidrs
    if config.failover_via == "dns":
        return ()
    return (*edge_networks, *config.check_allowed_cidrs)


def build_secondary_dns(
    config: StandbyConfig, server: StandbyServer, zone_id: str
) -> tuple[SecondaryDns, tuple[Unmirrored, ...]]:
    """The Hetzner mirror. Its extra records are read from Cloudflare while Cloudflare answers; without
    Cloudflare, the mirror's own copy is declared as it is, so no `pulumi up` deletes the records of the
    zone that is live after the registrar's switch (mail among them)."""
    unmirrored: list[Unmirrored] = []
    if config.cloudflare_reachable:
        extra, unmirrored = mirror_extra_records(
            read_zone_records(zone_id),
            config.zone,
            [s.host for s in config.services],
            config.origin_name,
            config.home.name if config.home else None,
        )
    else:
        extra = read_mirrored_records(config.zone)
    secondary = SecondaryDns(
        "secondary-dns",
        {
            "zone": config.zone,
            "ttl": config.failover_ttl,
            "origin_name": config.origin_name,
            "origin_ipv4": server.ipv4_address,
            "origin_ipv6": server.ipv6_address,
            "inventory_hosts": [service.host for service in config.services],
            "home": config.home.records(config.failover_ttl) if config.home else (),
            "direct": config.mode == "failover" and via_home(config.failover_via),
            "extra": extra,
            "labels": {"project": "mana-infra", "stack": config.stack, "role": "secondary-dns"},
            "protect": config.protect,
            "present": read_zone_rrsets(config.zone),
        },
    )
    return secondary, tuple(unmirrored)


def emergency_cutover(stack: str, zone_id: str, caddy_urn: str) -> str:
    """The commands that flip the VPS alone, touching nothing at Cloudflare. Every one names its stack:
    the selected stack may be another (after `pulumi stack init failover`, it is the rehearsal's)."""
    settings = {"cloudflareZoneId": zone_id, "cloudflareReachable": "false", "failoverVia": "dns", "mode": "failover"}
    steps = [f"pulumi config set --stack {stack} {key} {value}" for key, value in settings.items()]
    return " && ".join([*steps, f"pulumi up --stack {stack} --target '{caddy_urn}'"])


def emergency_cutover_direct(stack: str, zone_id: str, urns: Sequence[str]) -> str:
    """With Cloudflare gone and the VPS too: the Hetzner mirror's inventory records to the home's name,
    DNS-only (then the registrar's switch). Only Hetzner's DNS API is called: Cloudflare's resources ignore
    every change while Cloudflare is marked unreachable, and a VPS that is gone stays as the state has it."""
    settings = {
        "cloudflareZoneId": zone_id,
        "cloudflareReachable": "false",
        "failoverVia": "direct-dns",
        "mode": "failover",
    }
    steps = [f"pulumi config set --stack {stack} {key} {value}" for key, value in settings.items()]
    targets = " ".join(f"--target '{urn}'" for urn in urns)
    return " && ".join([*steps, f"pulumi up --stack {stack} {targets}"])


def export(config: StandbyConfig, standby: Standby) -> None:
    """The stack outputs: what the operator, `mana-infra check` and the rehearsal stack read."""
    pulumi.export(Output.MODE, config.mode)
    pulumi.export(Output.FAILOVER_VIA, config.failover_via)
    export_mode_record(config)
    pulumi.export(Output.ORIGIN_NAME, config.origin_name)
    pulumi.export(Output.ORIGIN_IPV4, standby.server.ipv4_address)
    pulumi.export(Output.ORIGIN_IPV6, standby.server.ipv6_address)
    # A replaced server is a new id: what the rehearsal's site file follows to the new server.
    pulumi.export(Output.SERVER_ID, standby.server.server_id)
    pulumi.export(Output.HEALTH_URL, f"https://{config.origin_name}{config.health_path}")
    # Who may check the standby while the tunnel serves: what check adds a refused address to.
    pulumi.export(Output.CHECK_ALLOWED_CIDRS, list(config.check_allowed_cidrs))
    pulumi.export(Output.TUNNEL_TARGET, tunnel_target(config.tunnel_id))
    pulumi.export(Output.TUNNEL_PROBE, tunnel_probe_host(config.zone))
    # Left set after the first run, it keeps the records' TTL from following the mode (see records.py).
    pulumi.export(Output.ADOPT_RECORDS_LEFT, sorted(config.adopt_records))
    if config.adopt_records:
        pulumi.log.warn(adoption_left_text(sorted(config.adopt_records), config.stack, deployed=False))
    # Stops nothing, but said in `pulumi up`, in the plan (this output) and nowhere silently.
    pulumi.export(Output.CONFIG_WARNINGS, list(config.warnings))
    for warning in config.warnings:
        pulumi.log.warn(warning)
    pulumi.export(Output.WIREGUARD_SERVER_PUBLIC_KEY, standby.keys.server_public_key)
    pulumi.export(Output.MACMINI_WIREGUARD_CONFIG, standby.macmini_wireguard_config)
    # The Mac Mini's and the watch's service files (render/services.py says where each goes and why).
    pulumi.export(Output.MACMINI_LAUNCHD_PLIST, macmini_wireguard_plist())
    pulumi.export(Output.WATCH_SYSTEMD_UNIT, watch_systemd_unit(config.stack))
    pulumi.export(Output.WATCH_LAUNCHD_AGENT, watch_launchd_agent(config.stack))
    pulumi.export(Output.WATCHDOG_SYSTEMD_UNIT, watchdog_systemd_unit(config.stack))
    # For the operator's Prometheus and Grafana: the rules and the dashboard on the watch's metrics.
    pulumi.export(Output.WATCH_ALERT_RULES, alert_rules_yaml())
    pulumi.export(Output.WATCH_DASHBOARD, dashboard_json())
    pulumi.export(Output.MACMINI_ADDRESS, str(config.wireguard.macmini_address))
    export_home(config, standby)
    pulumi.export(Output.CLOUDFLARE_ZONE_ID, standby.zone_id)
    # Cloudflare's API down or the token revoked: flip the VPS alone, touching nothing at Cloudflare.
    pulumi.export(
        Output.EMERGENCY_CUTOVER,
        standby.caddy.command_urn.apply(lambda urn: emergency_cutover(config.stack, standby.zone_id, urn)),
    )
    if standby.secondary is not None:
        pulumi.export(Output.SECONDARY_DNS_NAMESERVERS, standby.secondary.nameservers)
        pulumi.export(Output.SECONDARY_DNS_POSTPONED, [f"{name} {kind}" for name, kind in standby.secondary.postponed])
        pulumi.export(
            Output.SECONDARY_DNS_UNMIRRORED,
            [{"name": u.name, "type": u.type, "content": u.content, "reason": u.reason} for u in standby.unmirrored],
        )
        pulumi.export(
            Output.REGISTRAR_STEP,
            standby.secondary.nameservers.apply(
                lambda servers: (
                    f"At the registrar of {config.zone}, replace the nameservers with "
                    f"{', '.join(s.rstrip('.') for s in servers)} (remove or replace the DS record first if "
                    "DNSSEC is on: see the README's section 'Cloudflare completely down, or the account locked')."
                )
            ),
        )
    pulumi.export(Output.CADDYFILE_SHA256, standby.caddy.content_sha256)
    pulumi.export(Output.ZONE_SSL_MODE, standby.ssl_mode)
    pulumi.export(Output.ORIGIN_CERTIFICATE_EXPIRES_ON, standby.certificates.origin_expires_on)
    pulumi.export(Output.ORIGIN_CERTIFICATE_SHA256, standby.certificates.origin_sha256)
    pulumi.export(Output.PUBLIC_CERTIFICATE_EXPIRES_ON, standby.certificates.public_expires_on)
    pulumi.export(Output.PUBLIC_CERTIFICATE_ISSUED_ON, standby.certificates.public_issued_on)
    pulumi.export(Output.CLOUDFLARE_REACHABLE, config.cloudflare_reachable)
    pulumi.export(Output.CUTOVER_BUDGET, cutover_budget(standby.records, config.failover_ttl))
    pulumi.export(Output.ZONE, config.zone)
    pulumi.export(Output.SSH_USER, config.ssh_user)
    services = {service.host: service for service in config.services}
    pulumi.export(
        Output.HOSTS,
        [
            {
                "host": record.name,
                "port": services[record.name].port,
                "health": services[record.name].health,
                "type": record.type,
                "target": record.content,
                "proxied": record.proxied,
                "ttl": record.ttl,
            }
            for record in standby.records
        ],
    )


def export_home(config: StandbyConfig, standby: Standby) -> None:
    """Plan C's outputs, once the home's addresses are configured: where the direct ways point, and the
    Mac Mini's files (render/home.py says where each goes)."""
    if config.home is None or standby.home_caddyfile is None:
        return
    pulumi.export(Output.HOME_NAME, config.home.name)
    pulumi.export(Output.HOME_IPV4, config.home.ipv4)
    pulumi.export(Output.HOME_IPV6, config.home.ipv6)
    pulumi.export(Output.MACMINI_CADDYFILE, standby.home_caddyfile)
    pulumi.export(Output.MACMINI_CADDY_LAUNCHD_PLIST, caddy_launchd_plist())
    pulumi.export(Output.MACMINI_SYNC_SCRIPT, sync_script(str(config.wireguard.server_address)))
    pulumi.export(Output.MACMINI_SYNC_LAUNCHD_PLIST, sync_launchd_plist())
    if standby.secondary is not None and config.home.ipv4:
        pulumi.export(
            Output.EMERGENCY_CUTOVER_DIRECT,
            pulumi.Output.all(*standby.secondary.inventory_urns).apply(
                lambda urns: emergency_cutover_direct(config.stack, standby.zone_id, urns)
            ),
        )


def export_mode_record(config: StandbyConfig) -> None:
    """Since when and by what the stack is in its mode (deployed.py): read from the stack's own last
    outputs, carried over while the mode stays, recorded anew (and said) when this run changes it."""
    deployed = pulumi.StackReference(DEPLOYED_REFERENCE, stack_name=config.stack)
    names = (Output.MODE, Output.FAILOVER_VIA, Output.MODE_SINCE, Output.MODE_CHANGED_BY)

    def record(values: list[Any]) -> dict[str, str | None]:
        previous = ModeRecord.from_outputs(dict(zip(names, values, strict=True)))
        after, change = after_run(previous, config.mode, config.failover_via)
        if change:
            pulumi.log.warn(f"stack {config.stack}: {change}")
        return {"since": after.since, "by": after.by}

    recorded = pulumi.Output.all(*(deployed.get_output(name) for name in names)).apply(record)
    pulumi.export(Output.MODE_SINCE, recorded.apply(lambda r: r["since"]))
    pulumi.export(Output.MODE_CHANGED_BY, recorded.apply(lambda r: r["by"]))


def build_rehearsal(config: RehearsalConfig) -> Rehearsal:
    reference = pulumi.StackReference("prod", stack_name=config.prod_stack)
    prod = {name: _required_output(reference, config.prod_stack, name) for name in PROD_OUTPUTS_READ}
    sites = RehearsalSites(
        REHEARSAL,
        {
            "zone_id": lookup_zone_id(config.zone),
            "sites": [(host.host, host.service.port) for host in config.hosts],
            "origin_name": prod[Output.ORIGIN_NAME],
            "origin_ipv4": prod[Output.ORIGIN_IPV4],
            "macmini_address": prod[Output.MACMINI_ADDRESS],
            "server_id": prod[Output.SERVER_ID],
            "ttl": config.failover_ttl,
            "ssh_user": config.ssh_user,
            "ssh_private_key": config.ssh_private_key,
        },
    )
    return Rehearsal(sites=sites, prod=prod)


def _required_output(reference: pulumi.StackReference, stack: str, name: str) -> pulumi.Output[str]:
    def present(value: object) -> str:
        if value is None:
            raise ProgramInputError(
                [
                    Problem(
                        f"stack {stack}",
                        f"has no output {name}: the rehearsal needs the prod stack built by this version",
                        f"pulumi up --stack {stack}   (or point prodStack at the right stack)",
                    )
                ]
            )
        return str(value)

    return reference.get_output(name).apply(present)


def export_rehearsal(config: RehearsalConfig, rehearsal: Rehearsal) -> None:
    """The same output names as prod where they mean the same, so `mana-infra check --stack failover`
    checks the test hostnames as failover-mode hosts."""
    pulumi.export(Output.MODE, "failover")
    pulumi.export(Output.PROD_STACK, config.prod_stack)
    pulumi.export(Output.ZONE, config.zone)
    pulumi.export(Output.SSH_USER, config.ssh_user)
    for name, value in rehearsal.prod.items():
        pulumi.export(name, value)
    pulumi.export(Output.SITE_FILE, f"{CADDY_DIR}/{SITE_FILE}")
    pulumi.export(
        Output.HOSTS,
        [
            {
                "host": host.host,
                "port": host.service.port,
                "health": host.service.health,
                "service": host.service.host,
                "type": "CNAME",
                "target": rehearsal.prod[Output.ORIGIN_NAME],
                "proxied": False,
                "ttl": config.failover_ttl,
            }
            for host in config.hosts
        ],
    )
    pulumi.export(Output.REHEARSAL_URLS, [f"https://{host.host}/" for host in config.hosts])
    pulumi.export(Output.CHECK_COMMAND, f"mana-infra check --stack {config.stack}")
