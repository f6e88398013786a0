"""WireGuard key arithmetic: the public key that `wg pubkey` would print for a private key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def wireguard_public_key(private_key: str) -> str:
    """X25519 public key of a base64 private key. Both `wg` and cryptography clamp the scalar, so any
    32 random bytes are a valid private key and the two agree."""
    raw = base64.b64decode(private_key, validate=True)
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def wireguard_private_key(seed: str) -> str:
    """A private key (base64, as `wg genkey` prints one) from a secret of enough entropy: its SHA-256."""
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode("ascii")
