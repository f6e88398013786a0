"""Client-side probes: resolve through the lab DNS server, then fetch over verified HTTPS.

Runs inside the client namespace as a plain script (stdlib only): a JSON request on stdin, a JSON
result on stdout. One process checks many hosts concurrently, so a drill sweep costs one spawn.

DNS: the lab server is authoritative-only (like Cloudflare's), so the probe follows CNAME chains
itself, as a recursive resolver would (tunnel-mode names are CNAMEs into ``cfargotunnel.com``).
It does not cache: every attempt sees the zone as it is now (TTLs are the drill's to account for).

Request (all keys but ``hosts`` optional)::

    {"dns": "192.0.2.53", "cafile": "/path/bundle.pem", "timeout": 3,
     "hosts": [["auth.mana.how", 3001, "/"], ...],   # expected backend port, path
     "mode": "once" | "until_ok" | "loop" | "certs",
     "connect": "203.0.113.10",   # no DNS: every host is asked at this address (a server directly)
     "expect_ips": [...],    # a host only counts as ok when its name resolved to one of these
     "until": "ok" | "fail", # until_ok: wait until every host is ok (default) or every host fails
     "deadline": 30,         # until_ok: give up after this many seconds
     "interval": 0.2,        # until_ok / loop: pause between sweeps
     "duration": 5, "max_requests": 500,   # loop: bounds
     "stop_file": "/path"}   # loop: also stops once this file exists (a run of unknown length)

Result: {"results": [...], "elapsed": s, "all_ok": bool, "sweeps": n, "requests": n, "failures": n}

Mode "certs" fetches nothing: per host, the certificate the server presents for its name (``der``,
base64) and whether ``cafile`` verifies it for that name (``verified``, else ``verify_error``).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import socket
import ssl
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

QTYPE = {"A": 1, "AAAA": 28, "CNAME": 5}


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):
        length = msg[off]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
            continue
        if length == 0:
            off += 1
            break
        labels.append(msg[off + 1 : off + 1 + length].decode())
        off += 1 + length
    return ".".join(labels).lower(), (end if end is not None else off)


def dns_query(
    server: str, name: str, qtype: str = "A", timeout: float = 2.0
) -> tuple[int, list[tuple[str, str, str, int]]]:
    """One UDP query; returns (rcode, [(name, type, data, ttl)])."""
    qid = random.randrange(65536)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack("!HH", QTYPE[qtype], 1)
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, 53))
        while True:
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        rname, off = _read_name(msg, off)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", msg[off : off + 10])
        off += 10
        rdata = msg[off : off + rdlen]
        if rtype == 1:
            answers.append((rname, "A", socket.inet_ntop(socket.AF_INET, rdata), ttl))
        elif rtype == 28:
            answers.append((rname, "AAAA", socket.inet_ntop(socket.AF_INET6, rdata), ttl))
        elif rtype == 5:
            answers.append((rname, "CNAME", _read_name(msg, off)[0], ttl))
        off += rdlen
    return flags & 0xF, answers


def resolve(server: str, name: str, qtype: str = "A", timeout: float = 2.0) -> tuple[list[str], list[str]]:
    """Follow CNAMEs like a recursive resolver; returns (chain of names, addresses)."""
    chain = [name.lower().rstrip(".")]
    asked: set[str] = set()
    while len(chain) < 10:
        current = chain[-1]
        if current in asked:
            return chain, []  # the server had nothing more to say about the end of the chain
        asked.add(current)
        rcode, answers = dns_query(server, current, qtype, timeout)
        if rcode != 0:
            raise OSError(f"DNS rcode {rcode} for {current}")
        # The answer may hold (part of) the chain already: walk it before asking again.
        while True:
            nxt = next((d for n, t, d, _ in answers if n == current and t == "CNAME"), None)
            if nxt is None:
                break
            if nxt in chain:
                raise OSError(f"CNAME loop at {nxt}")
            chain.append(nxt)
            current = nxt
        addrs = [d for n, t, d, _ in answers if n == current and t == qtype]
        if addrs:
            return chain, addrs
    return chain, []


def fetch(host: str, ip: str, cafile: str | None, path: str = "/", timeout: float = 3.0) -> tuple[int, str]:
    """GET https://host/path from ip, TLS verified against cafile for ``host``."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    conn = http.client.HTTPSConnection(ip, 443, timeout=timeout, context=ctx)
    # Connect to the address but verify (and send SNI for) the hostname: a pre-set socket is used as is.
    sock = socket.create_connection((ip, 443), timeout=timeout)
    conn.sock = ctx.wrap_socket(sock, server_hostname=host)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read(4096).decode(errors="replace")
        return resp.status, body
    finally:
        conn.close()


def certificate(host: str, ip: str, cafile: str | None, timeout: float = 3.0) -> dict[str, Any]:
    """The certificate ``ip`` presents for ``host`` (SNI), and whether ``cafile`` verifies it."""
    res: dict[str, Any] = {"host": host, "ip": ip, "ok": False}
    try:
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((ip, 443), timeout=timeout) as sock,
            loose.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        res["der"] = base64.b64encode(der or b"").decode()
        strict = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        try:
            with (
                socket.create_connection((ip, 443), timeout=timeout) as sock,
                strict.wrap_socket(sock, server_hostname=host),
            ):
                pass
            res["verified"] = True
        except ssl.SSLError as exc:
            res["verified"] = False
            res["verify_error"] = getattr(exc, "verify_message", None) or str(exc)
        res["ok"] = True
    except Exception as exc:  # every failure is a result, not a crash
        res["error"] = f"{type(exc).__name__}: {exc}"
    return res


def check(req: dict[str, Any], host: str, port: int | None, path: str = "/") -> dict[str, Any]:
    t0 = time.monotonic()
    res: dict[str, Any] = {"host": host, "expected_port": port, "ok": False}
    try:
        if req.get("connect"):
            chain, addrs = [host], [str(req["connect"])]
        else:
            chain, addrs = resolve(req.get("dns", "192.0.2.53"), host, "A", req.get("timeout", 3))
        res["chain"] = chain
        res["addresses"] = addrs
        if not addrs:
            raise OSError("no address")
        res["ip"] = addrs[0]
        status, body = fetch(host, addrs[0], req.get("cafile"), path, req.get("timeout", 3))
        res["status"] = status
        res["body"] = body.strip()[:300]
        if port is None:
            res["ok"] = 200 <= status < 400
        else:
            res["ok"] = status == 200 and f"port={port}" in body.split() and f"host={host}" in body.split()
        if req.get("expect_ips") and addrs[0] not in req["expect_ips"]:
            res["ok"] = False  # served, but by the wrong path
    except Exception as exc:  # every failure is a result, not a crash
        res["error"] = f"{type(exc).__name__}: {exc}"
    res["seconds"] = round(time.monotonic() - t0, 4)
    return res


def sweep(req: dict[str, Any], pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
    hosts = [(h[0], h[1] if len(h) > 1 else None, h[2] if len(h) > 2 else "/") for h in req["hosts"]]
    if req.get("mode") == "certs":
        return list(
            pool.map(lambda h: certificate(h[0], str(req["connect"]), req.get("cafile"), req.get("timeout", 3)), hosts)
        )
    return list(pool.map(lambda h: check(req, *h), hosts))


def run(req: dict[str, Any]) -> dict[str, Any]:
    mode = req.get("mode", "once")
    t0 = time.monotonic()
    sweeps = requests = failures = 0
    results: list[dict[str, Any]] = []
    history: list[tuple[float, int]] = []  # (seconds since start, hosts ok) per sweep
    first_failures: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(req["hosts"])))) as pool:
        while True:
            results = sweep(req, pool)
            sweeps += 1
            requests += len(results)
            failures += sum(not r["ok"] for r in results)
            elapsed = time.monotonic() - t0
            all_ok = all(r["ok"] for r in results)
            history.append((round(elapsed, 3), sum(r["ok"] for r in results)))
            if not first_failures:
                first_failures = [r for r in results if not r["ok"]][:5]
            if mode in ("once", "certs"):
                break
            done = all_ok if req.get("until", "ok") == "ok" else not any(r["ok"] for r in results)
            if mode == "until_ok" and (done or elapsed >= req.get("deadline", 30)):
                break
            if mode == "loop" and (elapsed >= req.get("duration", 5) or requests >= req.get("max_requests", 500)):
                break
            if mode == "loop" and req.get("stop_file") and os.path.exists(req["stop_file"]):
                break
            time.sleep(req.get("interval", 0.2))
    return {
        "results": results,
        "elapsed": round(time.monotonic() - t0, 3),
        "all_ok": all(r["ok"] for r in results),
        "sweeps": sweeps,
        "requests": requests,
        "failures": failures,
        "history": history[-200:],
        "first_failures": first_failures,
    }


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
