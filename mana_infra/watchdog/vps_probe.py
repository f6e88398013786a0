"""The VPS's vote, probed on the VPS itself: runs there with the system's python3 (stdlib only), sent
over the SSH session the watchdog already holds (`python3 - SPEC <<EOF`). Takes its spec as JSON in its
first argument, prints one JSON line:

    {"resolver": "ok"|"unreachable", "public": {host: code}, "standby": {host: code}}

``public``: HTTPS to each host through whatever public DNS gives the VPS (Hetzner's network: through
Cloudflare's edge while the tunnel has the hosts); ``standby``: HTTP to the Mac Mini's app across
WireGuard with the host's name. A code is the HTTP status, or 0 when nothing answered. ``resolver``:
whether the VPS's resolver answers at all (a name that does not exist is an answer; silence is the
VPS's own network in trouble). TLS is not verified here: the vote is about who answers, and the
watch box's own check verifies certificates.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
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


def resolver(name: str) -> str:
    try:
        socket.getaddrinfo(name, 443)
    except socket.gaierror as exc:
        # EAI_AGAIN (and a missing resolver) is silence; "no such name" is an answer.
        return "unreachable" if exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11)) else "ok"
    return "ok"


def main() -> None:
    spec = json.loads(sys.argv[1])
    timeout, hosts = float(spec["timeout"]), spec["hosts"]
    with ThreadPoolExecutor(max_workers=min(64, 2 * len(hosts) + 1)) as pool:
        checked = pool.submit(resolver, spec["neutral"])
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
