"""WireGuard keys that survive every `pulumi up`: random bytes kept in the state."""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_random as random

from ..wgkeys import wireguard_public_key


class WireGuardKeysArgs(TypedDict):
    macmini_public_key: NotRequired[str | None]
    """The Mac Mini's public key, when the operator keeps its private key off the state. None: generate a pair."""


class WireGuardKeys(pulumi.ComponentResource):
    """Key pairs for the VPS and (unless its public key is given) the Mac Mini."""

    server_private_key: pulumi.Output[str]
    server_public_key: pulumi.Output[str]
    macmini_private_key: pulumi.Output[str] | None
    macmini_public_key: pulumi.Output[str]

    def __init__(self, name: str, args: WireGuardKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:WireGuardKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.server_private_key, self.server_public_key = _key_pair(f"{name}-vps", child)
        given = args.get("macmini_public_key")
        if given:
            self.macmini_private_key = None
            self.macmini_public_key = pulumi.Output.from_input(given)
        else:
            self.macmini_private_key, self.macmini_public_key = _key_pair(f"{name}-macmini", child)

        self.register_outputs(
            {
                "server_public_key": self.server_public_key,
                "macmini_public_key": self.macmini_public_key,
            }
        )


def _key_pair(name: str, opts: pulumi.ResourceOptions) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    # 32 random bytes are a WireGuard private key as they are: wg clamps them, and so does X25519.
    seed = random.RandomBytes(name, length=32, opts=opts)
    private_key: pulumi.Output[str] = pulumi.Output.secret(seed.base64)
    # The provider marks base64 secret, and a value derived from a secret stays secret; a public key is not.
    public_key = pulumi.Output.unsecret(seed.base64.apply(wireguard_public_key))
    return private_key, public_key
