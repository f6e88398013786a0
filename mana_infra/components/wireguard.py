"""WireGuard keys that survive every `pulumi up`: randomness kept (as a secret) in the state."""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_random as random

from ..wgkeys import wireguard_private_key, wireguard_public_key


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
    # Not random.RandomBytes: pulumi-random makes its base64 value the resource's id (ids cannot be
    # secret; provider/resources.go, computeRandomBytesID), which puts a private key in plaintext into
    # the state and every preview. A RandomPassword's id is "none" and its result a secret; 64
    # alphanumerics (~381 bits) hashed with SHA-256 are 32 uniformly random bytes, a private key as
    # they are: wg clamps them, and so does X25519.
    seed = random.RandomPassword(name, length=64, special=False, opts=opts)
    private_key: pulumi.Output[str] = pulumi.Output.secret(seed.result.apply(wireguard_private_key))
    # A value derived from a secret stays secret; a public key is not.
    public_key = pulumi.Output.unsecret(private_key.apply(wireguard_public_key))
    return private_key, public_key
