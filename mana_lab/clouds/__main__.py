"""Run one stand-in in the foreground (the lab starts it inside a network namespace).

    python -m mana_lab.clouds hetzner --listen 127.0.0.1:8080 --state hetzner.json --log hetzner.jsonl
    python -m mana_lab.clouds cloudflare --listen [::1]:8443 --state cf.json --log cf.jsonl --zone mana.how

Plain HTTP. The providers take an http:// endpoint:

- hcloud: ``hcloud:endpoint`` / ``HCLOUD_ENDPOINT`` = ``http://HOST:PORT/v1`` (hcloud-go appends
  ``/servers`` etc. to the endpoint), a token of exactly 64 characters.
- cloudflare: ``cloudflare:baseUrl`` / ``CLOUDFLARE_BASE_URL`` = ``http://HOST:PORT/client/v4``
  (cloudflare-go adds a slash and joins ``zones/...``), a token matching ``^[0-9A-Za-z_-]{40,80}$``.

The state file is reloaded on start and rewritten after every change; SIGTERM and SIGINT stop the
server cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .cloudflare import CloudflareApi
from .hetzner import DEFAULT_IPV4_POOL, DEFAULT_IPV6_POOL, DEFAULT_NAMESERVERS, HetznerCloud
from .server import Api, StandInServer


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mana_lab.clouds", description=__doc__.split("\n\n")[0])
    parser.add_argument("api", choices=["hetzner", "cloudflare"])
    parser.add_argument(
        "--listen", type=parse_listen, default=("127.0.0.1", 0), help="HOST:PORT (default: a free port)"
    )
    parser.add_argument("--state", type=Path, required=True, help="state file (JSON), reloaded on start")
    parser.add_argument("--log", type=Path, required=True, help="request log (JSON lines)")
    parser.add_argument(
        "--token", action="append", help="accept only this token (repeatable; default: any well-formed)"
    )
    parser.add_argument("--zone", action="append", default=[], help="cloudflare: a zone of the account (repeatable)")
    parser.add_argument("--ipv4-pool", action="append", help="hetzner: IPv4 addresses, ranges a-b or CIDRs")
    parser.add_argument("--ipv6-pool", action="append", help="hetzner: IPv6 prefixes split into /64 networks")
    parser.add_argument("--nameserver", action="append", help="hetzner: a zone's authoritative nameserver")
    parser.add_argument("--action-polls", type=int, default=0, help="hetzner: polls an action stays running")
    return parser


def build_api(args: argparse.Namespace) -> Api:
    if args.api == "hetzner":
        if args.zone:
            raise SystemExit("--zone is for cloudflare: Hetzner zones are created through the API")
        return HetznerCloud(
            args.state,
            tokens=args.token,
            ipv4_pool=args.ipv4_pool or DEFAULT_IPV4_POOL,
            ipv6_pool=args.ipv6_pool or DEFAULT_IPV6_POOL,
            nameservers=args.nameserver or DEFAULT_NAMESERVERS,
            action_polls=args.action_polls,
        )
    return CloudflareApi(args.state, zones=args.zone, tokens=args.token)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    host, port = args.listen
    server = StandInServer(build_api(args), host, port, args.log)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{args.api} stand-in listening on {server.url}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
