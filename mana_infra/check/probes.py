"""The probes of `mana-infra check`: DNS with CNAME chains, HTTPS to a chosen address, the Cloudflare
API's token check, and the VPS script (WireGuard's handshake).

Every probe returns a result and never raises for a network failure: a check that crashes tells the
operator less than one that says what failed. Each failure also carries its kind (a
``report.Failure``): what the verdict groups by and picks the way to fail over from.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import shlex
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
from cryptography import x509

from .report import Failure

MAX_CHAIN = 12
BODY_LIMIT = 4096

# What a failed probe was, for grouping and for the diagnosis (see core.KIND_LABELS).


# ---------------------------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def parse_resolver(text: str) -> Nameserver:
    """`IP`, `IP:port`, `[IPv6]:port`; raise ValueError with a readable reason."""
    text = text.strip()
    address, port = text, 53
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r} is not IP[:port]")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        address, raw_port = text.split(":")
        port = _port(raw_port, text)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"{text!r} is not IP[:port] (an IP address, not a name: the resolver is what resolves names)"
        ) from None
    return Nameserver(address, port)


def _port(raw: str, text: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"{text!r} has no valid port (1-65535)")
    return int(raw)


def system_nameservers() -> list[Nameserver]:
    """The nameservers of /etc/resolv.conf (the same the operator's other tools use)."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    return [Nameserver(str(ns)) for ns in resolver.nameservers]


@dataclass
class DnsAnswer:
    chain: list[str] = field(default_factory=list)  # the asked name first, then each CNAME target
    addresses: list[str] = field(default_factory=list)
    ttl: int | None = None  # of the first record of the answer (the record a cut-over changes)
    error: str | None = None
    error_kind: Failure | None = None  # a DNS kind (Failure.is_dns) when error
    seconds: float = 0.0


def _query(server: Nameserver, name: str, rdtype: dns.rdatatype.RdataType, timeout: float) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags |= dns.flags.RD  # a recursive resolver follows the chain; an authoritative one ignores the bit
    response = dns.query.udp(query, server.address, timeout=timeout, port=server.port, ignore_unexpected=True)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, server.address, timeout=timeout, port=server.port)
    return response


def resolve(name: str, servers: Sequence[Nameserver], timeout: float) -> DnsAnswer:
    """Resolve ``name`` to addresses (A, then AAAA when there is no A), following CNAMEs.

    Works with recursive resolvers (the chain comes in one answer) and with authoritative-only
    servers such as the lab's knotd (the chain is followed here, one query per missing link)."""
    started = time.monotonic()
    deadline = started + timeout
    answer = DnsAnswer(chain=[name.lower().rstrip(".")])
    try:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer.chain = answer.chain[:1]
            _follow(answer, servers, rdtype, deadline)
            if answer.addresses:
                break
        if not answer.addresses and answer.error is None:
            answer.error = "no address (the name has no A or AAAA record at the end of its chain)"
            answer.error_kind = Failure.DNS_ERROR
    except _DnsError as exc:
        answer.error = str(exc)
        answer.error_kind = exc.kind
    answer.seconds = round(time.monotonic() - started, 4)
    return answer


class _DnsError(Exception):
    def __init__(self, message: str, kind: Failure = Failure.DNS_ERROR) -> None:
        super().__init__(message)
        self.kind = kind


def _follow(answer: DnsAnswer, servers: Sequence[Nameserver], rdtype: dns.rdatatype.RdataType, deadline: float) -> None:
    asked: set[str] = set()
    while len(answer.chain) <= MAX_CHAIN:
        current = answer.chain[-1]
        if current in asked:
            return  # the server has nothing more to say about the end of the chain
        asked.add(current)
        response = _ask_any(servers, current, rdtype, deadline)
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN and current == answer.chain[0]:
            raise _DnsError(f"NXDOMAIN: {current} does not exist", Failure.DNS_NXDOMAIN)
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _DnsError(f"DNS error {dns.rcode.to_text(rcode)} for {current}")
        records = {(rrset.name.to_text(omit_final_dot=True).lower(), rrset.rdtype): rrset for rrset in response.answer}
        while True:  # the answer may hold (part of) the chain already: walk it before asking again
            cname = records.get((current, dns.rdatatype.CNAME))
            if cname is None:
                break
            if answer.ttl is None:
                answer.ttl = cname.ttl
            target = cname[0].target.to_text(omit_final_dot=True).lower()
            if target in answer.chain:
                raise _DnsError(f"CNAME loop at {target}")
            answer.chain.append(target)
            current = target
        final = records.get((current, rdtype))
        if final is not None:
            if answer.ttl is None:
                answer.ttl = final.ttl
            answer.addresses = sorted({rdata.address for rdata in final})
            return
        if rcode == dns.rcode.NXDOMAIN:
            raise _DnsError(
                f"NXDOMAIN: {current} (CNAME target of {answer.chain[0]}) does not exist", Failure.DNS_NXDOMAIN
            )
    raise _DnsError(f"CNAME chain longer than {MAX_CHAIN}")


def _ask_any(
    servers: Sequence[Nameserver], name: str, rdtype: dns.rdatatype.RdataType, deadline: float
) -> dns.message.Message:
    if not servers:
        raise _DnsError("no DNS resolver (none in /etc/resolv.conf; give --resolver IP[:port])")
    errors = []
    timeouts = 0
    for server in servers:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return _query(server, name, rdtype, left)
        except dns.exception.Timeout:
            errors.append(f"{server}: timeout")
            timeouts += 1
        except (OSError, dns.exception.DNSException) as exc:
            errors.append(f"{server}: {exc}")
    raise _DnsError(
        "no DNS answer for " + name + (" (" + "; ".join(errors) + ")" if errors else " (timeout)"),
        Failure.DNS_TIMEOUT if timeouts == len(errors) else Failure.DNS_ERROR,
    )


# -------------------------------------------------------------------------------------------- HTTPS


@dataclass
class HttpsResult:
    address: str
    status: int | None = None
    latency_ms: float | None = None
    cert_days_left: float | None = None
    cert_trusted: bool | None = None
    cert_pinned: bool = False  # trusted by its pinned fingerprint (see https_get), not by a CA
    body: str = ""
    error: str | None = None
    error_kind: Failure | None = None  # a connection, TLS or HTTP kind when error


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifying context: the system's trust store, or only ``ca_file`` when given."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def days_left(not_after: datetime) -> float:
    return round((not_after - datetime.now(UTC)).total_seconds() / 86400, 2)


def https_get(
    host: str,
    address: str,
    port: int,
    path: str,
    context: ssl.SSLContext,
    timeout: float,
    pinned: Collection[str] = (),
) -> HttpsResult:
    """GET https://host/path from ``address``: SNI, Host and verification are the hostname's.

    ``pinned``: SHA-256 fingerprints of certificates taken although no CA of ``context`` signed them,
    while valid and for this name: the stack's own Origin CA certificate, which only Cloudflare's edge
    trusts (no browser and no system store does), yet is what the VPS serves through the edge.
    """
    result = HttpsResult(address=address)
    started = time.monotonic()
    tls = _handshake(host, address, port, context, timeout, result)
    if tls is None and result.error_kind == Failure.CERT_UNTRUSTED:
        tls = _untrusted_handshake(host, address, port, timeout, pinned, result)
    if tls is None:
        return result
    try:
        peer = tls.getpeercert(binary_form=True)
        if peer and result.cert_days_left is None:
            result.cert_days_left = days_left(x509.load_der_x509_certificate(peer).not_valid_after_utc)
        connection = http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
        connection.sock = tls
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if port == 443 else f"{host}:{port}")
        connection.putheader("User-Agent", "mana-infra-check")
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        result.latency_ms = round((time.monotonic() - started) * 1000, 1)
        result.status = response.status
        result.body = response.read(BODY_LIMIT).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        result.error = f"HTTPS request to {_hostport(address, port)} failed: {_reason(exc)}"
        result.error_kind = Failure.HTTP_ERROR
    finally:
        tls.close()
    return result


def _handshake(
    host: str, address: str, port: int, context: ssl.SSLContext, timeout: float, result: HttpsResult
) -> ssl.SSLSocket | None:
    """A TLS connection to ``address`` for ``host``, or None with ``result``'s error and kind set."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        result.error = f"cannot connect to {_hostport(address, port)}: {_reason(exc)}"
        result.error_kind = (
            Failure.CONNECT_TIMEOUT
            if isinstance(exc, socket.timeout | TimeoutError)
            else (Failure.CONNECT_REFUSED if isinstance(exc, ConnectionRefusedError) else Failure.CONNECT_ERROR)
        )
        return None
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        result.cert_trusted = False
        result.error = f"certificate not trusted: {exc.verify_message or exc.reason}"
        result.error_kind = Failure.CERT_UNTRUSTED
        return None
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        result.error = f"TLS handshake with {_hostport(address, port)} failed: {_reason(exc)}"
        result.error_kind = Failure.TLS_ERROR
        return None
    result.cert_trusted = True
    return tls


def _untrusted_handshake(
    host: str, address: str, port: int, timeout: float, pinned: Collection[str], result: HttpsResult
) -> ssl.SSLSocket | None:
    """The connection again without a CA: the days left of the certificate that failed verification,
    and the connection itself when that certificate is pinned, valid now and names ``host`` (``result``
    then says so instead of its verification error)."""
    tls = _handshake(host, address, port, _unverifying_context(), timeout, HttpsResult(address=address))
    if tls is None:
        return None
    peer = tls.getpeercert(binary_form=True)
    if peer:
        certificate = x509.load_der_x509_certificate(peer)
        result.cert_days_left = days_left(certificate.not_valid_after_utc)
        now = datetime.now(UTC)
        if (
            hashlib.sha256(peer).hexdigest() in pinned
            and certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
            and _names(certificate, host)
        ):
            result.cert_trusted, result.cert_pinned, result.error, result.error_kind = True, True, None, None
            return tls
    tls.close()
    return None


def _names(certificate: x509.Certificate, host: str) -> bool:
    """Does the certificate name ``host`` (exactly, or by a wildcard for one label)?"""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = host.lower().rstrip(".")
    parent = host.split(".", 1)[1] if "." in host else ""
    for name in (n.lower().rstrip(".") for n in names.get_values_for_type(x509.DNSName)):
        if name == host or (name.startswith("*.") and parent and name[2:] == parent):
            return True
    return False


def _unverifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ------------------------------------------------------------------------------ the VPS over SSH

VpsRunner = Callable[[str, float], "RunResult"]
"""Runs a POSIX shell script (bash) on the VPS; (script, timeout in s) -> RunResult. Injectable."""


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


def command_runner(argv: Sequence[str]) -> VpsRunner:
    """A runner that starts ``argv`` and hands it the script on stdin (``ssh ... bash -s``, ``bash``,
    ``ip netns exec mlab-vps bash``)."""

    def run(script: str, timeout: float) -> RunResult:
        try:
            done = subprocess.run(
                list(argv), input=script, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return RunResult(124, "", f"timed out after {timeout:g} s: {shlex.join(argv)}")
        except OSError as exc:
            return RunResult(127, "", f"cannot run {argv[0]}: {exc.strerror or exc}")
        return RunResult(done.returncode, done.stdout, done.stderr)

    return run


def ssh_argv(
    host: str, user: str, key: str | None, port: int | None, connect_timeout: float, options: Sequence[str] = ()
) -> list[str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if port:
        argv += ["-p", str(port)]
    for option in options:
        argv += ["-o", option]
    return [*argv, f"{user}@{host}", "bash", "-s"]


def vps_script(wg_interface: str) -> str:
    """One script, one SSH session: WireGuard's latest handshake with each peer.

    Output lines: ``now <epoch>``, then ``wg <peer> <epoch>`` per peer, or ``wgerr <text>``. (The
    standby path itself is checked over HTTPS through the VPS, not from inside it.)"""
    lines = [
        "set +e",
        'echo "now $(date +%s)"',
        f"if out=$(wg show {shlex.quote(wg_interface)} latest-handshakes 2>&1); then",
        '  printf \'%s\\n\' "$out" | while read -r peer ts; do [ -n "$peer" ] && echo "wg $peer $ts"; done',
        "else",
        '  echo "wgerr $(printf \'%s\' "$out" | head -n 1)"',
        "fi",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class VpsReport:
    ran: bool = False
    error: str | None = None
    now: int | None = None
    handshakes: dict[str, int] = field(default_factory=dict)  # peer public key -> epoch (0: never)
    wg_error: str | None = None
    seconds: float = 0.0


def parse_vps_output(text: str) -> VpsReport:
    report = VpsReport(ran=True)
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "now" and len(parts) == 2 and parts[1].isdigit():
            report.now = int(parts[1])
        elif parts[0] == "wg" and len(parts) == 3 and parts[2].isdigit():
            report.handshakes[parts[1]] = int(parts[2])
        elif parts[0] == "wgerr":
            report.wg_error = line[len("wgerr") :].strip() or "wg failed"
    return report


def run_vps_script(runner: VpsRunner, script: str, timeout: float) -> VpsReport:
    started = time.monotonic()
    try:
        result = runner(script, timeout)
    except Exception as exc:
        report = VpsReport(error=f"{type(exc).__name__}: {exc}")
    else:
        report = parse_vps_output(result.stdout)
        if report.now is None:
            detail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            report = VpsReport(error=f"the VPS script did not run ({detail})")
    report.seconds = round(time.monotonic() - started, 3)
    return report


# ------------------------------------------------------------------------------- the Cloudflare API


@dataclass(frozen=True)
class CloudflareApi:
    """Where to ask whether Cloudflare's API takes the token: ``CLOUDFLARE_BASE_URL`` (what the Pulumi
    provider reads too) or the public API. The token is never shown (repr, report, messages)."""

    base_url: str
    token: str = field(repr=False)

    @property
    def verify_url(self) -> str:
        return self.base_url.rstrip("/") + "/user/tokens/verify"


@dataclass
class ApiResult:
    state: str  # "ok", "refused" (401/403, success false, token not active), "unreachable", "error"
    error: str | None = None
    seconds: float = 0.0


def verify_token(api: CloudflareApi, context: ssl.SSLContext, timeout: float) -> ApiResult:
    """``GET {base}/user/tokens/verify`` with the bearer token: does the API take it?"""
    started = time.monotonic()
    result = _verify_token(api, context, timeout)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _verify_token(api: CloudflareApi, context: ssl.SSLContext, timeout: float) -> ApiResult:
    request = urllib.request.Request(
        api.verify_url,
        headers={
            "Authorization": f"Bearer {api.token}",
            "User-Agent": "mana-infra-check",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, raw = response.status, response.read(BODY_LIMIT)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(BODY_LIMIT)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return ApiResult(
            "unreachable", f"{api.verify_url}: {_reason(reason) if isinstance(reason, BaseException) else reason}"
        )
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    answer = body if isinstance(body, dict) else {}
    errors = "; ".join(f"{e.get('code')} {e.get('message')}" for e in answer.get("errors") or [] if isinstance(e, dict))
    detail = f"HTTP {status}" + (f": {errors}" if errors else "")
    if status in (401, 403) or answer.get("success") is False:
        return ApiResult("refused", detail)
    if status >= 500:
        return ApiResult("unreachable", f"{detail} from {api.verify_url}")
    if not 200 <= status < 300 or body is None:
        return ApiResult("error", f"{detail} from {api.verify_url}" + ("" if body is not None else " (not JSON)"))
    token_status = (answer.get("result") or {}).get("status") if isinstance(answer.get("result"), dict) else None
    if answer.get("success") is True and token_status == "active":
        return ApiResult("ok")
    return ApiResult("refused", f"the token is {token_status or 'not active'}")
