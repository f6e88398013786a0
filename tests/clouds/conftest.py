"""Stand-in servers on 127.0.0.1, a free port each, and a urllib client that calls them as the providers do."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mana_lab.clouds.cloudflare import CloudflareApi
from mana_lab.clouds.hetzner import HetznerCloud
from mana_lab.clouds.server import StandInServer

HCLOUD_TOKEN = "h" * 64
CLOUDFLARE_TOKEN = "cfTOKEN_" + "x" * 32


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def call(
    url: str,
    method: str = "GET",
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, reply_headers = response.read(), response.status, dict(response.headers.items())
    except urllib.error.HTTPError as error:
        raw, status, reply_headers = error.read(), error.code, dict(error.headers.items())
    text = raw.decode()
    try:
        parsed: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = text
    return Reply(status, parsed, reply_headers)


@dataclass
class Running:
    server: StandInServer
    prefix: str
    token: str
    events: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, method: str, path: str, body: Any = None, token: str | None = "default") -> Reply:
        return call(self.server.url + self.prefix + path, method, body, self.token if token == "default" else token)

    def control(self, method: str, path: str, body: Any = None) -> Reply:
        return call(self.server.url + "/_stand-in/" + path, method, body)


def fake_ssh_key(seed: int = 0, comment: str = "op@lab") -> str:
    """A well-formed ssh-ed25519 public key (random bytes as the key: nobody logs in with it)."""
    kind = b"ssh-ed25519"
    material = os.urandom(32) if seed == 0 else seed.to_bytes(32, "big")
    blob = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big") + material
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


@pytest.fixture
def hetzner(tmp_path: Path) -> Iterator[Running]:
    events: list[tuple[str, Any]] = []
    api = HetznerCloud(
        tmp_path / "hetzner.json",
        on_server_created=lambda server: events.append(("created", server)),
        on_server_deleted=lambda server: events.append(("deleted", server)),
        on_zone_changed=lambda zone, rrsets: events.append(("zone", (zone, rrsets))),
    )
    with StandInServer(api, "127.0.0.1", 0, tmp_path / "hetzner.jsonl") as server:
        yield Running(server, "/v1", HCLOUD_TOKEN, events)


@pytest.fixture
def cloudflare(tmp_path: Path) -> Iterator[Running]:
    events: list[tuple[str, Any]] = []
    api = CloudflareApi(
        tmp_path / "cloudflare.json",
        zones=["mana.how"],
        on_records_changed=lambda zone, records: events.append(("records", (zone, records))),
    )
    with StandInServer(api, "127.0.0.1", 0, tmp_path / "cloudflare.jsonl") as server:
        yield Running(server, "/client/v4", CLOUDFLARE_TOKEN, events)
