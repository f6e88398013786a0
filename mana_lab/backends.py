"""Stub backends for the Mac Mini: one process, one thread per port (stdlib only).

Run inside the mini namespace as a plain script: ``python backends.py <spec.json>`` where the spec
is ``{"bind": "::", "services": [[host, port], ...]}``. Each answer is
``host=<Host header> port=<port>`` so a probe can tell which route delivered it; ``/_lab/visitor``
answers the visitor's address as the app sees it (the peer and the headers that carry one).

Binding "::" dual-stack (rather than 10.0.0.2) means the backends survive the WireGuard interface going away
and coming back (wg-quick down/up) and also answer the edge over the private tunnel link.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEADERS_PATH = "/_lab/visitor"
"""Answers what the app learns of its visitor's address (JSON), instead of host and port."""
ADDRESS_HEADERS = ("Cf-Connecting-IP", "X-Real-IP", "X-Forwarded-For", "True-Client-IP")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mana-lab-stub"

    def do_GET(self) -> None:
        raw = self.headers.get("Host") or ""
        host = raw if raw.startswith("[") else raw.rsplit(":", 1)[0]
        port = self.server.server_port  # type: ignore[attr-defined]  # HTTPServer sets it
        if self.path == HEADERS_PATH:
            # What the app sees of its visitor: the headers that carry an address, and the peer.
            seen = {name: self.headers.get(name) for name in ADDRESS_HEADERS}
            body = json.dumps({"peer": self.client_address[0], **seen}).encode()
        else:
            body = f"host={host} port={port}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 - http.server naming

    def log_message(self, format: str, *args: object) -> None:
        pass  # 27 backends x request loops would flood the log


class _Server(ThreadingHTTPServer):
    # AF_INET6 on "::" also accepts IPv4 (v4-mapped): WireGuard's 10.0.0.2 and the edge's IPv6 link.
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True


class _CatchAll(BaseHTTPRequestHandler):
    """cloudflared's last ingress rule, `service: http_status:404`: any name on the tunnel without an app."""

    protocol_version = "HTTP/1.1"
    server_version = "mana-lab-cloudflared"

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET  # noqa: N815 - http.server naming

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    bind = spec.get("bind", "::")
    ports = sorted({int(p) for _, p in spec["services"]})
    servers = [_Server((bind, p), _Handler) for p in ports]
    if spec.get("catch_all"):
        servers.append(_Server((bind, int(spec["catch_all"])), _CatchAll))
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"serving {len(ports)} ports on {bind}", flush=True)
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
