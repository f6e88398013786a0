"""The VPS's vote, probed on the VPS itself: runs there with the system's python3 (stdlib only), sent
over the SSH session the watchdog already holds (`python3 - SPEC <<EOF`). Takes its spec as JSON in
its first argument, prints one JSON line:

    {"resolver": "ok"|"unreachable", "public": {host: code}, "standby": {host: code}}

``public``: HTTPS to each host through whatever public DNS gives the VPS (Hetzner's network: through
Cloudflare's edge while the tunnel has the hosts); ``standby``: HTTP to the Mac Mini's app across
WireGuard with the host's name. A code is the HTTP status, or 0 when nothing answered. ``resolver``:
whether the VPS's resolver (its /etc/resolv.conf, or the spec's ``nameservers``) answers at all: any
answer, an error too, says the VPS's own network works; silence says it does not, and the VPS
abstains. TLS is not verified here: the vote is about who answers; the watch box's check verifies it.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import struct
import sys
from concurrent.futures import ThreadPoolExecutor


def public(host: str, path: str, timeout: float) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        connection = http.client.HTTPSConnection(host, 443, timeout=timeout, context=context)
        connection.request("GET", path, headers={"User-Agent": "mana-infra-vote"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0


def standby(address: str, port: int, host: str, path: str, timeout: float) -> int:
    try:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
        connection.request("GET", path, headers={"Host": host, "User-Agent": "mana-infra-vote"})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0


def nameservers() -> list[str]:
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as conf:
            return [line.split()[1] for line in conf if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return []


def resolver(name: str, servers: list[str], timeout: float = 2.0) -> str:
    """One DNS query for ``name`` to each server ("address" or "address:port"); "ok" at the first answer."""
    query_id = random.randrange(65536)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.strip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", 1, 1)
    for server in servers:
        address, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.sendto(packet, (address, int(port)))
                reply = sock.recv(512)
        except OSError:
            continue
        if len(reply) >= 2 and struct.unpack(">H", reply[:2])[0] == query_id:
            return "ok"
    return "unreachable"


def main() -> None:
    spec = json.loads(sys.argv[1])
    timeout, hosts = float(spec["timeout"]), spec["hosts"]
    with ThreadPoolExecutor(max_workers=min(64, 2 * len(hosts) + 1)) as pool:
        checked = pool.submit(resolver, spec["neutral"], spec.get("nameservers") or nameservers())
        pub = {h["host"]: pool.submit(public, h["host"], h["path"], timeout) for h in hosts}
        wg = {h["host"]: pool.submit(standby, spec["macmini"], h["port"], h["host"], h["path"], timeout) for h in hosts}
        result = {
            "resolver": checked.result(),
            "public": {host: future.result() for host, future in pub.items()},
            "standby": {host: future.result() for host, future in wg.items()},
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
