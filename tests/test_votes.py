"""The votes: the VPS's probe script runs through the same bash-over-SSH transport as check's (here
bash itself), and its answer becomes a vote; the watch box abstains when it reaches nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mana_infra.check.probes import command_runner
from mana_infra.model import Service
from mana_infra.watchdog.votes import VoteKind, local_vote, vps_probe_script, vps_vote, vps_vote_from

from .support import check_report


class App(BaseHTTPRequestHandler):
    """The Mac Mini's app behind WireGuard: answers 200, and says which host it was asked for."""

    def do_GET(self) -> None:
        self.send_response(200 if self.headers["Host"] != "broken.mana.how" else 502)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def resolver() -> Iterator[str]:
    """A resolver on loopback that answers anything (REFUSED, as an authoritative server would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                query, peer = sock.recvfrom(512)
            except OSError:
                return
            sock.sendto(query[:2] + b"\x81\x05" + query[4:], peer)

    threading.Thread(target=answer, daemon=True).start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def app() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_vps_probe_runs_over_the_shell_transport_and_answers_per_host(app: int, resolver: str) -> None:
    services = (Service("a.mana.how", app, "a.mana.how"), Service("broken.mana.how", app, "broken.mana.how"))
    script = vps_probe_script(services, "127.0.0.1", timeout=2, nameservers=[resolver])
    done = command_runner(["bash", "-s"])(script, 30)
    assert done.returncode == 0, done.stderr
    vote = vps_vote_from(done.stdout)
    # Nothing answers HTTPS on this machine's port 443 for those names: the public path is down from here;
    # across "WireGuard" (loopback) one app answers and one gives Caddy's 502.
    assert vote.kind is VoteKind.DOWN and vote.standby_ready is False
    assert "the Mac Mini does not answer across WireGuard for 1" in vote.reason
    assert vps_vote(command_runner(["bash", "-s"]), services[:1], "127.0.0.1", 2, [resolver]).standby_ready is True
    # A resolver that does not answer (nothing listens there): the VPS's own network, an abstention.
    silent = vps_vote(command_runner(["bash", "-s"]), services[:1], "127.0.0.1", 1, ["127.0.0.1:9"])
    assert silent.kind is VoteKind.ABSTAIN and "resolver does not answer" in silent.reason


def test_votes_from_the_vps_answer() -> None:
    up = '{"resolver": "ok", "public": {"a": 200, "b": 404}, "standby": {"a": 200, "b": 200}}'
    assert (vps_vote_from(up).kind, vps_vote_from(up).standby_ready) == (VoteKind.UP, True)
    down = '{"resolver": "ok", "public": {"a": 530, "b": 0}, "standby": {"a": 200, "b": 200}}'
    assert vps_vote_from(down).kind is VoteKind.DOWN
    silent = '{"resolver": "unreachable", "public": {"a": 0}, "standby": {"a": 0}}'
    assert vps_vote_from(silent).kind is VoteKind.ABSTAIN and "its own network" in vps_vote_from(silent).reason
    nothing = vps_vote_from("", "ssh: connect to host 203.0.113.10 port 22: Connection timed out")
    assert nothing.kind is VoteKind.ABSTAIN and "Connection timed out" in nothing.reason


def test_the_watch_box_abstains_when_it_reaches_nothing() -> None:
    report = check_report(mode="tunnel", path="tunnel", green=0, vps="down", tunnel="unknown",
                          failures={"connect_timeout": ["h0.mana.how", "h1.mana.how", "h2.mana.how"]})  # fmt: skip
    assert local_vote(report).kind is VoteKind.ABSTAIN
    report.vps.health.status = 200  # the VPS answered: this machine's network works
    assert local_vote(report).kind is VoteKind.DOWN
