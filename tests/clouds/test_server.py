"""The shared plumbing: request log, routing apart from the control surface, hooks, the command line."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mana_lab.clouds.__main__ import build_api, build_parser, parse_listen
from mana_lab.clouds.hetzner import HetznerCloud
from mana_lab.clouds.server import StandInServer
from mana_lab.standins import LocalCA

from .conftest import CLOUDFLARE_TOKEN, HCLOUD_TOKEN, Running, call, fake_ssh_key

LOG_FIELDS = {"time", "api", "method", "path", "query", "status", "request_bytes", "duration_ms"}


def test_every_request_is_logged_without_its_token(hetzner: Running, tmp_path: Path) -> None:
    body = {"name": "op", "public_key": fake_ssh_key()}
    assert hetzner("POST", "/ssh_keys", body).status == 201
    assert hetzner("GET", "/ssh_keys?name=op").status == 200
    assert hetzner("GET", "/servers", token="w" * 64 + "x").status == 401
    assert hetzner.control("GET", "state").status == 200
    text = (tmp_path / "hetzner.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/v1/ssh_keys", 201),
        ("GET", "/v1/ssh_keys", 200),
        ("GET", "/v1/servers", 401),
        ("GET", "/_stand-in/state", 200),
    ]
    assert all(set(entry) == LOG_FIELDS for entry in entries)
    assert entries[0]["request_bytes"] == len(json.dumps(body).encode()) and entries[1]["request_bytes"] == 0
    assert entries[1]["query"] == "name=op" and entries[0]["api"] == "hetzner"
    assert HCLOUD_TOKEN not in text and "Authorization" not in text and "w" * 64 not in text


def test_unknown_paths_answer_in_each_apis_own_error_shape(hetzner: Running, cloudflare: Running) -> None:
    for path in ("/v1/nothing", "/v2/servers", "/"):
        reply = call(hetzner.server.url + path, token=HCLOUD_TOKEN)
        assert reply.status == 404 and reply.body["error"]["code"] == "not_found"
    assert hetzner("PATCH", "/servers").status == 404
    unknown = cloudflare("GET", "/nothing/here")
    assert unknown.status == 400 and unknown.body["errors"][0]["code"] == 7003
    assert cloudflare("DELETE", "/ips").status == 405
    assert hetzner.control("GET", "nothing").status == 404
    assert call(hetzner.server.url + "/v1/servers", token=HCLOUD_TOKEN).headers["Content-Type"] == "application/json"


def test_a_chunked_body_is_read(hetzner: Running) -> None:
    connection = http.client.HTTPConnection(hetzner.server.host, hetzner.server.port, timeout=5)
    payload = json.dumps({"name": "chunked", "public_key": fake_ssh_key()}).encode()
    headers = {"Authorization": f"Bearer {HCLOUD_TOKEN}", "Content-Type": "application/json"}
    connection.request("POST", "/v1/ssh_keys", body=iter([payload[:10], payload[10:]]), headers=headers)
    response = connection.getresponse()
    assert response.status == 201 and json.loads(response.read())["ssh_key"]["name"] == "chunked"
    connection.close()


def test_hooks_run_outside_the_lock_and_cannot_break_the_api(tmp_path: Path) -> None:
    seen: list[Any] = []

    def on_created(server: dict[str, Any]) -> None:
        # The API must answer while the hook runs: a hook under the lock would block this request.
        seen.append(call(url + "/v1/servers", token=HCLOUD_TOKEN, timeout=2).body["servers"][0]["id"])
        raise RuntimeError("a broken lab hook")

    with StandInServer(HetznerCloud(on_server_created=on_created)) as server:
        url = server.url
        reply = Running(server, "/v1", HCLOUD_TOKEN)(
            "POST", "/servers", {"name": "s", "server_type": "cx23", "image": "ubuntu-24.04"}
        )
        assert reply.status == 201
        assert seen == [reply.body["server"]["id"]]


def test_listen_addresses_and_arguments() -> None:
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("10.0.0.1:80") == ("10.0.0.1", 80)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_listen("nohost")
    args = build_parser().parse_args(["hetzner", "--state", "s.json", "--log", "l.jsonl", "--zone", "mana.how"])
    with pytest.raises(SystemExit):
        build_api(args)


def test_ipv6_loopback() -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with StandInServer(HetznerCloud(), "::1", 0) as server:
        assert server.url.startswith("http://[::1]:")
        assert call(server.url + "/v1/locations", token=HCLOUD_TOKEN).status == 200


def test_https_with_a_certificate_for_the_apis_own_name(tmp_path: Path) -> None:
    """lego's Hetzner provider has https://api.hetzner.cloud/v1 in its code: the lab serves the stand-in
    there over TLS, with a certificate of the lab's CA for that name, which a client trusting it accepts."""
    ca = LocalCA(tmp_path / "ca")
    with StandInServer(HetznerCloud(), tls=ca.issue("hetzner-api", ["api.hetzner.cloud"], ips=["127.0.0.1"])) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(ca.cert_path))
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)
        connection.request("GET", "/v1/locations", headers={"Authorization": f"Bearer {HCLOUD_TOKEN}"})
        assert connection.getresponse().status == 200
        connection.close()
        untrusted = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=ssl.create_default_context(), timeout=5
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusted.request("GET", "/v1/locations")
        untrusted.close()
        # The refused handshake held up nobody: the server still answers.
        again = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)
        again.request("GET", "/v1/locations", headers={"Authorization": f"Bearer {HCLOUD_TOKEN}"})
        assert again.getresponse().status == 200
        again.close()


def test_command_line_serves_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mana_lab.clouds", "cloudflare", "--listen", "127.0.0.1:0"]
    command += ["--state", str(tmp_path / "cf.json"), "--log", str(tmp_path / "cf.jsonl"), "--zone", "mana.how"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert line.startswith("cloudflare stand-in listening on http://127.0.0.1:")
        reply = call(url + "/client/v4/zones?name=mana.how", token=CLOUDFLARE_TOKEN)
        assert reply.body["result"][0]["name"] == "mana.how"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads((tmp_path / "cf.json").read_text())["zones"]
    assert (tmp_path / "cf.jsonl").read_text().count("\n") == 1
