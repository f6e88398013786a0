"""The Pulumi program: read the configuration once, check it, wire the components, export."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .components.caddy import CaddyConfig
from .components.dns import FailoverDns
from .components.standby_server import StandbyServer
from .components.wireguard import WireGuardKeys
from .config import StackConfig, read_stack_config
from .records import RecordSpec, inventory_record, tunnel_target
from .render.caddyfile import CaddySpec, render_caddyfile
from .render.cloud_init import render_cloud_init
from .render.wireguard import render_macmini_config, render_server_config


@dataclass(frozen=True)
class Standby:
    """What the program built, for the exports and for tests."""

    keys: WireGuardKeys
    server: StandbyServer
    dns: FailoverDns
    caddy: CaddyConfig
    caddyfile: str
    records: tuple[RecordSpec, ...]
    user_data: pulumi.Output[str]
    macmini_wireguard_config: pulumi.Output[str]


def run() -> None:
    """Entry point of `pulumi up` (and of the offline plan, under the mock engine)."""
    config = read_stack_config()
    export(config, build(config))


def build(config: StackConfig) -> Standby:
    network = config.wireguard
    keys = WireGuardKeys("wireguard", {"macmini_public_key": config.macmini_public_key})

    server_wireguard_config = pulumi.Output.all(keys.server_private_key, keys.macmini_public_key).apply(
        lambda pair: render_server_config(network, pair[0], pair[1])
    )
    user_data: pulumi.Output[str] = pulumi.Output.secret(server_wireguard_config.apply(render_cloud_init))

    server = StandbyServer(
        "standby",
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

    macmini_private_key = (
        keys.macmini_private_key if keys.macmini_private_key is not None else pulumi.Output.from_input(None)
    )
    macmini_wireguard_config: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(keys.server_public_key, server.ipv4_address, macmini_private_key).apply(
            lambda values: render_macmini_config(
                network, values[0], values[1], values[2], config.macmini_private_key_path
            )
        )
    )

    records = tuple(
        inventory_record(
            service,
            config.mode,
            tunnel_id=config.tunnel_id,
            origin_name=config.origin_name,
            failover_ttl=config.failover_ttl,
            failover_proxied=config.failover_proxied,
        )
        for service in config.services
    )
    dns = FailoverDns(
        "dns",
        {
            "zone": config.zone,
            "origin_name": config.origin_name,
            "origin_ipv4": server.ipv4_address,
            "origin_ipv6": server.ipv6_address,
            "origin_ttl": config.failover_ttl,
            "inventory": records,
            "adopt": config.adopt_records,
        },
    )

    caddyfile = render_caddyfile(
        CaddySpec(
            mode=config.mode,
            services=config.services,
            macmini_address=str(network.macmini_address),
            origin_name=config.origin_name,
            health_path=config.health_path,
            acme_email=config.acme_email,
        )
    )
    caddy = CaddyConfig(
        "caddy",
        {
            "host": server.ipv4_address,
            "user": config.ssh_user,
            "private_key": config.ssh_private_key,
            "caddyfile": caddyfile,
            "mode": config.mode,
            "server_id": server.server_id,
        },
        pulumi.ResourceOptions(depends_on=[server]),
    )

    return Standby(
        keys=keys,
        server=server,
        dns=dns,
        caddy=caddy,
        caddyfile=caddyfile,
        records=records,
        user_data=user_data,
        macmini_wireguard_config=macmini_wireguard_config,
    )


def export(config: StackConfig, standby: Standby) -> None:
    """The stack outputs: what the operator, `mana-infra check` and the rehearsal stack read."""
    pulumi.export("mode", config.mode)
    pulumi.export("originName", config.origin_name)
    pulumi.export("originIpv4", standby.server.ipv4_address)
    pulumi.export("originIpv6", standby.server.ipv6_address)
    pulumi.export("healthUrl", f"https://{config.origin_name}{config.health_path}")
    pulumi.export("tunnelTarget", tunnel_target(config.tunnel_id))
    pulumi.export("wireguardServerPublicKey", standby.keys.server_public_key)
    pulumi.export("macminiWireguardConfig", standby.macmini_wireguard_config)
    pulumi.export("caddyfileSha256", standby.caddy.caddyfile_sha256)
    ports = {service.host: service.port for service in config.services}
    pulumi.export(
        "hosts",
        [
            {
                "host": record.name,
                "port": ports[record.name],
                "type": record.type,
                "target": record.content,
                "proxied": record.proxied,
                "ttl": record.ttl,
            }
            for record in standby.records
        ],
    )
