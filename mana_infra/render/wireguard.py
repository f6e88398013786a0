"""WireGuard configurations for both ends of the tunnel between the standby VPS and the Mac Mini."""

from __future__ import annotations

from ..model import WireGuardNetwork

# Neither copy is rewritten in place: say what each one is.
SERVER_HEADER = (
    "# Written by cloud-init when mana-infra (Pulumi) created this server. A changed key or address is a new\n"
    "# server on the next `pulumi up` (same addresses), never an edit of this file.\n"
)
MACMINI_HEADER = (
    "# The stack output macminiWireguardConfig of mana-infra (Pulumi). Nothing rewrites it here: after a\n"
    "# `pulumi up` that changed the output, copy it again and restart the interface.\n"
)


def render_server_config(network: WireGuardNetwork, server_private_key: str, macmini_public_key: str) -> str:
    """/etc/wireguard/wg0.conf on the VPS (written by cloud-init)."""
    prefix = network.subnet.prefixlen
    return (
        SERVER_HEADER
        + "[Interface]\n"
        + f"Address = {network.server_address}/{prefix}\n"
        + f"ListenPort = {network.listen_port}\n"
        + f"PrivateKey = {server_private_key}\n"
        + "\n"
        + "[Peer]\n"
        + "# Mac Mini\n"
        + f"PublicKey = {macmini_public_key}\n"
        + f"AllowedIPs = {network.macmini_address}/32\n"
    )


def render_macmini_config(
    network: WireGuardNetwork,
    server_public_key: str,
    endpoint_ipv4: str,
    macmini_private_key: str | None,
    macmini_private_key_path: str,
) -> str:
    """wg0.conf for the Mac Mini (a secret stack output).

    Without a private key (the operator keeps the Mac Mini's key off the state and configured only its
    public key) the file reads the key from the Mac Mini's own disk when the interface comes up.
    """
    if macmini_private_key is not None:
        key_line = f"PrivateKey = {macmini_private_key}\n"
    else:
        key_line = (
            "# The private key stays on the Mac Mini; wg-quick loads it after creating the interface.\n"
            f"PostUp = wg set %i private-key {macmini_private_key_path}\n"
        )
    return (
        MACMINI_HEADER
        + "[Interface]\n"
        + f"Address = {network.macmini_address}/{network.subnet.prefixlen}\n"
        + key_line
        + "\n"
        + "[Peer]\n"
        + "# Standby VPS (Hetzner); its primary IPv4 survives a server replacement\n"
        + f"PublicKey = {server_public_key}\n"
        + f"Endpoint = {endpoint_ipv4}:{network.listen_port}\n"
        + f"AllowedIPs = {network.subnet}\n"
        # The Mac Mini sits behind home NAT: keepalives hold the mapping open so the VPS can reach it.
        + "PersistentKeepalive = 25\n"
    )
