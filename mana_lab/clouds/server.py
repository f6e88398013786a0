"""HTTP plumbing shared by the stand-ins: requests in, JSON out, a request log, a control surface.

One `StandInServer` serves one API object (`HetznerCloud` or `CloudflareApi`). Paths under
``/_stand-in/`` go to the API object's `control` method (state dump, seeding, settings only the
account owner can change); everything else goes to its `handle` method, which behaves like the public
API. Every request is appended to a JSON-lines log: time, method, path, query, status, request body
size and duration. Headers are never logged, so the Authorization header never reaches the log.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/_stand-in/"
"""Paths under this prefix are the stand-in's own control surface, never part of a cloud API."""

MAX_BODY = 8 * 1024 * 1024
POLL_INTERVAL = 0.05
"""How often serve_forever looks for a shutdown request: `stop()` returns within it."""


class InvalidBodyError(ValueError):
    """The request body is not the JSON the endpoint needs."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def json(self) -> Any:
        """The body as JSON (an empty body is an empty object); `InvalidBodyError` if it does not parse."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidBodyError(str(error)) from error


@dataclass
class Response:
    status: int
    body: Any = None
    """JSON-serialisable value, `bytes`/`str` sent as is, or None for an empty body."""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


class Api(Protocol):
    name: str

    def handle(self, request: Request) -> Response: ...

    def control(self, request: Request) -> Response: ...


Hook = Callable[[], None]


def run_hooks(hooks: list[Hook]) -> None:
    """Run the callbacks queued under an API's lock, after it was released; a failing hook is reported
    on stderr and does not fail the request that caused it."""
    for hook in hooks:
        try:
            hook()
        except Exception as error:  # a lab hook must not break the API
            print(f"stand-in hook failed: {error!r}", file=sys.stderr, flush=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_time(moment: datetime | None = None) -> str:
    """RFC 3339 with seconds, `+00:00` as the Hetzner API writes it."""
    return (moment or utc_now()).replace(microsecond=0).isoformat()


def save_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_json(path: Path | None) -> Any:
    if path is None or not path.exists():
        return None
    return json.loads(path.read_text())


class RequestLog:
    """Appends one JSON object a line; safe across the server's threads."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps(dict(entry), separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock, self.path.open("a") as stream:
            stream.write(line)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mana-lab-stand-in"
    server: _HttpServer

    def _serve(self) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        size = 0
        try:
            body = self._read_body()
            size = len(body)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=dict(self.headers.items()),
                body=body,
            )
            api = self.server.api
            response = api.control(request) if split.path.startswith(CONTROL_PREFIX) else api.handle(request)
        except _BodyTooLargeError:
            response = Response(413, {"error": "request body too large"})
            self.close_connection = True
        except Exception as error:  # the stand-in must answer, like the real API's 500
            print(f"stand-in error on {self.command} {split.path}: {error!r}", file=sys.stderr, flush=True)
            response = Response(500, {"error": {"code": "server_error", "message": "stand-in error"}})
        status = response.status
        payload = response.encoded()
        # Logged before the answer goes out: whoever got the answer finds its request in the log.
        self.server.log.write(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "api": self.server.api.name,
                "method": self.command,
                "path": split.path,
                "query": split.query,
                "status": status,
                "request_bytes": size,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
            }
        )
        self.send_response(status)
        if payload or response.body is not None:
            self.send_header("Content-Type", response.content_type)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += length
                if total > MAX_BODY:
                    raise _BodyTooLargeError
                chunks.append(self.rfile.read(length))
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise _BodyTooLargeError
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815 - http.server naming

    def log_message(self, format: str, *args: object) -> None:
        pass  # the JSON-lines log is the record


class _BodyTooLargeError(Exception):
    pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, log: RequestLog) -> None:
        self.api = api
        self.log = log
        super().__init__(address, _Handler)


def _server_class(host: str) -> type[_HttpServer]:
    if ":" in host:

        class _V6(_HttpServer):
            address_family = socket.AF_INET6

        return _V6
    return _HttpServer


class StandInServer:
    """A stand-in API on HOST:PORT (port 0 picks a free one); `start()` serves from a thread,
    `serve_forever()` in the foreground. With ``tls`` (certificate and key files) it speaks HTTPS: for a
    client whose API address is fixed in its code (lego's Hetzner provider: https://api.hetzner.cloud/v1)."""

    def __init__(
        self,
        api: Api,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.api = api
        self._httpd = _server_class(host)((host, port), api, RequestLog(log_path))
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The handshake happens in the request's thread: a slow client holds up nobody else.
            self._httpd.socket = context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> StandInServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_INTERVAL,), name=f"stand-in-{self.api.name}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(POLL_INTERVAL)

    def stop(self) -> None:
        """Stop serving (from another thread than `serve_forever`'s) and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
