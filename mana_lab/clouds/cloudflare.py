"""A stand-in for the Cloudflare API v4 (https://api.cloudflare.com/client/v4) for what mana-infra uses.

Point the provider at it with ``cloudflare:baseUrl`` (or ``CLOUDFLARE_BASE_URL``) =
``http://HOST:PORT/client/v4``: cloudflare-go (v6/v7, Stainless) joins relative paths such as
``zones/{id}/dns_records`` to the base URL after adding a trailing slash, so requests arrive under
``/client/v4/``, the only prefix this stand-in answers. A bearer token matching
``^[0-9A-Za-z_-]{40,80}$`` is accepted (or only the ones given); the provider checks the same pattern.

Endpoints (read: terraform-provider-cloudflare main of 2026-07-10 after v5.22.0, cloudflare-go v7.9.0):

- ``GET /zones`` (name with ``contains:``/``starts_with:``/``ends_with:`` operators, status, match,
  account.id, page, per_page) and ``GET /zones/{id}``: the provider's ``get_zone(filter=...)`` lists
  by name, insists on exactly one result, then reads the zone.
- ``/zones/{id}/dns_records``: list (type, name / name.exact / .contains / .startswith / .endswith,
  content / content.exact, proxied, comment.present / comment.absent, match, order, direction, page,
  per_page), create, get, update (PUT, what the provider sends, overwrites), edit (PATCH, merges),
  delete, so import (a plain GET) too.
- ``GET /zones/{id}/settings/ssl`` (and other settings: ``always_use_https``, ``min_tls_version``,
  ``tls_1_3``); a PATCH answers 403 (10000): the stand-in's token is no zone-settings token; the
  zone owner sets them through the control surface.
- ``GET /ips`` (``?networks=jdcloud`` adds ``jdcloud_cidrs``).
- ``/certificates`` (Origin CA): create from a CSR, list (``zone_id``), get, revoke (DELETE).
- ``GET /user/tokens/verify``.

Rules of the real API it keeps: names come back fully qualified (``@`` and relative names get the
zone appended); proxied records get TTL 1 ("automatic") whatever was sent; only A, AAAA and CNAME
can be proxied (1004/9004), and not to non-public addresses (1004/9003); TTL 1 or 60..86400
(1004/9021); an A/AAAA/CNAME name clash 81053 (a new CNAME) or 81054 (beside a CNAME); an identical
record 81058; a comment over 100 characters 9313; an unknown record 81044 (404). Every answer uses the
envelope ``{"success", "errors", "messages", "result"}`` (``result_info`` on lists), errors
``{"code", "message"}`` (``error_chain`` for DNS validation errors).

Control surface (no token): ``GET /_stand-in/state``, ``GET /_stand-in/health``,
``POST /_stand-in/zones`` ``{"name"}``, ``PUT /_stand-in/zones/{name}/settings/{setting}``
``{"value"}``, ``POST /_stand-in/zones/{name}/dns_records`` (a record or a list: seeds records the way
the dashboard would), ``GET /_stand-in/origin-ca.pem`` (the stand-in Origin CA's certificate).
"""

from __future__ import annotations

import collections
import copy
import hashlib
import ipaddress
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mana_infra.model import CLOUDFLARE_IP_RANGES, absolute_name, in_zone

from . import origin_ca
from .common import ApiError, Router, StateStore, run_locked
from .server import InvalidBodyError, Request, Response

API_PREFIX = "/client/v4"
TOKEN_PATTERN = re.compile(r"^[0-9A-Za-z_-]{40,80}$")
RECORD_TYPES = frozenset(
    {
        "A",
        "AAAA",
        "CAA",
        "CERT",
        "CNAME",
        "DNSKEY",
        "DS",
        "HTTPS",
        "LOC",
        "MX",
        "NAPTR",
        "NS",
        "OPENPGPKEY",
        "PTR",
        "SMIMEA",
        "SRV",
        "SSHFP",
        "SVCB",
        "TLSA",
        "TXT",
        "URI",
    }
)
PROXIABLE_TYPES = frozenset({"A", "AAAA", "CNAME"})
ADDRESS_TYPES = frozenset({"A", "AAAA", "CNAME"})
SAME_NAME_HELP = (
    "For more details, refer to "
    "<https://developers.cloudflare.com/dns/manage-dns-records/troubleshooting/records-with-same-name/>."
)
VALIDITY_DAYS = frozenset({7, 30, 90, 365, 730, 1095, 5475})
REQUEST_TYPES = frozenset({"origin-rsa", "origin-ecc", "keyless-certificate"})
DEFAULT_SETTINGS = {"ssl": "full", "always_use_https": "off", "min_tls_version": "1.0", "tls_1_3": "on"}
SETTING_VALUES = {
    "ssl": frozenset({"off", "flexible", "full", "strict"}),
    "always_use_https": frozenset({"on", "off"}),
    "min_tls_version": frozenset({"1.0", "1.1", "1.2", "1.3"}),
    "tls_1_3": frozenset({"on", "off", "zrt"}),
}

CLOUDFLARE_IPV4, CLOUDFLARE_IPV6 = CLOUDFLARE_IP_RANGES
JDCLOUD_CIDRS = ("116.196.89.0/24", "116.198.0.0/16", "2402:db40:5100::/44")

RecordsHook = Callable[[str, list[dict[str, Any]]], None]


class CloudflareError(ApiError):
    """An API error: rendered in the v4 envelope with ``success: false``."""

    def __init__(self, status: int, code: int, message: str, chain: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors: list[dict[str, Any]] = [{"code": code, "message": message}]
        if chain:
            self.errors[0]["error_chain"] = [{"code": c, "message": m} for c, m in chain]

    def response(self) -> Response:
        return Response(self.status, {"result": None, "success": False, "errors": self.errors, "messages": []})


def dns_validation(code: int, message: str) -> CloudflareError:
    return CloudflareError(400, 1004, "DNS Validation Error", [(code, message)])


def envelope(result: Any, status: int = 200, result_info: Mapping[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"result": result, "success": True, "errors": [], "messages": []}
    if result_info is not None:
        body["result_info"] = dict(result_info)
    return Response(status, body)


def cf_time(moment: datetime | None = None) -> str:
    """Cloudflare's timestamps: RFC 3339 with microseconds and Z."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return uuid.uuid4().hex


def _initial_state() -> dict[str, Any]:
    key_pem, cert_pem = origin_ca.new_ca()
    return {
        "version": 1,
        "account": {"id": _new_id(), "name": "mana-lab"},
        "zones": {},
        "certificates": {},
        "origin_ca": {"key_pem": key_pem, "cert_pem": cert_pem},
    }


# Cloudflare's API limit per user or account token (see CloudflareApi._over_the_limit).
RATE_LIMIT = (1200, 300.0)


def _rate_limited(limit: int, window: float) -> CloudflareError:
    message = f"More than {limit} requests per {window:g} seconds reached. "
    message += "Please wait and consider throttling your request speed"
    return CloudflareError(429, 971, message)


class CloudflareApi:
    """The Cloudflare API v4 stand-in: state in plain dicts, saved after every change to `state_path`."""

    name = "cloudflare"

    def __init__(
        self,
        state_path: Path | None = None,
        *,
        zones: Sequence[str] = (),
        tokens: Sequence[str] | None = None,
        on_records_changed: RecordsHook | None = None,
        ip_ranges: Mapping[str, Sequence[str]] | None = None,
        comment_max_length: int = 100,
        allow_proxied_private: bool = False,
        nameservers: Sequence[str] = ("ada.ns.cloudflare.com", "bob.ns.cloudflare.com"),
        rate_limit: tuple[int, float] = RATE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = StateStore(state_path, _initial_state)
        self.rate_limit, self.clock = rate_limit, clock
        self._requests: dict[str, collections.deque[float]] = {}  # per token: the times of its requests
        self._blocked_until: dict[str, float] = {}
        self._rate_lock = threading.Lock()
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.on_records_changed = on_records_changed
        ranges = dict(ip_ranges or {})
        self.ipv4_cidrs = list(ranges.get("ipv4_cidrs", CLOUDFLARE_IPV4))
        self.ipv6_cidrs = list(ranges.get("ipv6_cidrs", CLOUDFLARE_IPV6))
        self.comment_max_length = comment_max_length
        self.allow_proxied_private = allow_proxied_private
        self.nameservers = list(nameservers)
        self.router = Router()
        self._routes()
        with self.store.lock:
            for zone in zones:
                self._ensure_zone(zone)
            self.store.save()

    @property
    def state(self) -> dict[str, Any]:
        return self.store.data

    # ----------------------------------------------------------------------------------------- plumbing

    def _routes(self) -> None:
        add = self.router.add
        add("GET", "/zones", self._list_zones)
        add("GET", "/zones/{zone_id}", self._get_zone)
        add("GET", "/zones/{zone_id}/dns_records", self._list_records)
        add("POST", "/zones/{zone_id}/dns_records", self._create_record)
        add("GET", "/zones/{zone_id}/dns_records/{record_id}", self._get_record)
        add("PUT", "/zones/{zone_id}/dns_records/{record_id}", self._put_record)
        add("PATCH", "/zones/{zone_id}/dns_records/{record_id}", self._patch_record)
        add("DELETE", "/zones/{zone_id}/dns_records/{record_id}", self._delete_record)
        add("GET", "/zones/{zone_id}/settings/{setting}", self._get_setting)
        add("PATCH", "/zones/{zone_id}/settings/{setting}", self._patch_setting)
        add("GET", "/ips", self._ips)
        add("POST", "/certificates", self._create_certificate)
        add("GET", "/certificates", self._list_certificates)
        add("GET", "/certificates/{certificate_id}", self._get_certificate)
        add("DELETE", "/certificates/{certificate_id}", self._revoke_certificate)
        add("GET", "/user/tokens/verify", self._verify_token)

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX + "/"):
            return CloudflareError(400, 7000, "No route for that URI").response()
        refusal = self._refuse(request) or self._over_the_limit(request)
        if refusal is not None:
            return refusal.response()
        path = request.path[len(API_PREFIX) :]
        found = self.router.match(request.method, path)
        if found is None:
            return CloudflareError(
                400,
                7003,
                f"Could not route to {request.path}, perhaps your object identifier is invalid?",
                [(7000, "No route for that URI")],
            ).response()
        if found is False:
            return CloudflareError(405, 10405, "Method not allowed for this endpoint").response()
        assert not isinstance(found, bool)
        handler, params = found

        return run_locked(self.store, lambda: handler(request, params), save=request.method != "GET")

    def _refuse(self, request: Request) -> CloudflareError | None:
        header = request.header("Authorization")
        if header is None:
            if request.header("X-Auth-User-Service-Key") and request.path.startswith(API_PREFIX + "/certificates"):
                return None  # an Origin CA key, which the certificate endpoints take
            return CloudflareError(400, 9106, "Missing X-Auth-Email header", [(9107, "Missing X-Auth-Key header")])
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme != "Bearer" or not TOKEN_PATTERN.match(token):
            return CloudflareError(
                400, 6003, "Invalid request headers", [(6111, "Invalid format for Authorization header")]
            )
        if self.tokens is not None and token not in self.tokens:
            return CloudflareError(403, 10000, "Authentication error")
        return None

    def _over_the_limit(self, request: Request) -> CloudflareError | None:
        """1,200 requests per 5 minutes per token; past that every call is refused for 5 minutes
        (developers.cloudflare.com/fundamentals/api/reference/limits: "all API calls for the next five
        minutes will be blocked, receiving a HTTP 429 response"; the answer's words as clients report
        them, lablabs/cloudflare-exporter#74). A refused call does not count."""
        header = request.header("Authorization") or ""
        token = header.partition(" ")[2].strip() or (request.header("X-Auth-User-Service-Key") or "")
        limit, window = self.rate_limit
        now = self.clock()
        with self._rate_lock:
            if self._blocked_until.get(token, float("-inf")) > now:
                return _rate_limited(limit, window)
            times = self._requests.setdefault(token, collections.deque())
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) >= limit:
                self._blocked_until[token] = now + window
                times.clear()
                return _rate_limited(limit, window)
            times.append(now)
        return None

    def requests_in_window(self, token: str) -> int:
        """How many of the token's requests count towards the limit now (for the tests)."""
        window = self.rate_limit[1]
        with self._rate_lock:
            return sum(1 for t in self._requests.get(token, ()) if t > self.clock() - window)

    def control(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/_stand-in/health":
            return Response(200, {"ok": True, "api": self.name})
        if request.method == "GET" and path == "/_stand-in/state":
            with self.store.lock:
                state = copy.deepcopy(self.state)
            state["origin_ca"].pop("key_pem", None)
            return Response(200, state)
        if request.method == "GET" and path == "/_stand-in/origin-ca.pem":
            with self.store.lock:
                return Response(200, self.state["origin_ca"]["cert_pem"], content_type="application/x-pem-file")

        def work() -> Response:
            body = self._body(request)
            if request.method == "POST" and path == "/_stand-in/zones":
                name = str(body.get("name") or "")
                if not name:
                    raise CloudflareError(400, 1099, "name is required")
                return envelope(self._zone_view(self._ensure_zone(name)))
            found = re.fullmatch(r"/_stand-in/zones/([^/]+)/settings/([^/]+)", path)
            if request.method == "PUT" and found:
                zone = self._zone_by_name(found[1])
                setting, value = found[2], body.get("value")
                if setting not in SETTING_VALUES or value not in SETTING_VALUES[setting]:
                    raise CloudflareError(400, 1007, f"Invalid value for zone setting {setting}")
                zone["settings"][setting] = {"value": value, "modified_on": cf_time()}
                return envelope(self._setting_view(zone, setting))
            found = re.fullmatch(r"/_stand-in/zones/([^/]+)/dns_records", path)
            if request.method == "POST" and found:
                zone = self._zone_by_name(found[1])
                entries = body if isinstance(body, list) else [body]
                before = dict(zone["records"])
                try:
                    created = [self._add_record(zone, entry) for entry in entries]
                except CloudflareError:
                    zone["records"] = before  # all or nothing
                    raise
                self._records_changed(zone)
                return envelope(created)
            return Response(404, {"error": "no such control endpoint"})

        return run_locked(self.store, work, save=True)

    @staticmethod
    def _body(request: Request) -> Any:
        try:
            return request.json()
        except InvalidBodyError:
            raise CloudflareError(400, 9207, "Request body is invalid.") from None

    def _object_body(self, request: Request) -> dict[str, Any]:
        body = self._body(request)
        if not isinstance(body, dict):
            raise CloudflareError(400, 9207, "Request body is invalid.")
        return body

    def _paged(self, request: Request, items: list[Any], default: int, maximum: int) -> Response:
        try:
            page = int(request.arg("page") or 1)
            per_page = int(request.arg("per_page") or default)
        except ValueError:
            raise CloudflareError(400, 1004, "Invalid pagination parameters") from None
        page = max(page, 1)
        per_page = min(max(per_page, 1), maximum)
        chunk = items[(page - 1) * per_page : page * per_page]
        total_pages = -(-len(items) // per_page)
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        }
        return envelope(chunk, result_info=info)

    # -------------------------------------------------------------------------------------------- zones

    def _ensure_zone(self, name: str) -> dict[str, Any]:
        name = name.lower().rstrip(".")
        existing = next((z for z in self.state["zones"].values() if z["name"] == name), None)
        if existing is not None:
            assert isinstance(existing, dict)
            return existing
        now = cf_time()
        zone = {
            "id": _new_id(),
            "name": name,
            "created_on": now,
            "modified_on": now,
            "activated_on": now,
            "settings": {key: {"value": value, "modified_on": now} for key, value in DEFAULT_SETTINGS.items()},
            "records": {},
        }
        self.state["zones"][zone["id"]] = zone
        return zone

    def _zone(self, zone_id: str) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{32}", zone_id):
            raise CloudflareError(
                400,
                7003,
                f"Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?",
                [(7000, "No route for that URI")],
            )
        zone = self.state["zones"].get(zone_id)
        if zone is None:
            raise CloudflareError(403, 10000, "Authentication error")
        assert isinstance(zone, dict)
        return zone

    def _zone_by_name(self, name: str) -> dict[str, Any]:
        zone = next((z for z in self.state["zones"].values() if z["name"] == name.lower().rstrip(".")), None)
        if zone is None:
            raise CloudflareError(404, 1001, f"no zone {name} in the stand-in")
        assert isinstance(zone, dict)
        return zone

    def _zone_view(self, zone: Mapping[str, Any]) -> dict[str, Any]:
        account = self.state["account"]
        return {
            "id": zone["id"],
            "name": zone["name"],
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": list(self.nameservers),
            "original_name_servers": None,
            "original_registrar": None,
            "original_dnshost": None,
            "modified_on": zone["modified_on"],
            "created_on": zone["created_on"],
            "activated_on": zone["activated_on"],
            "vanity_name_servers": [],
            "meta": {
                "step": 2,
                "custom_certificate_quota": 0,
                "page_rule_quota": 3,
                "phishing_detected": False,
                "cdn_only": False,
                "dns_only": False,
                "foundation_dns": False,
            },
            "owner": {"id": None, "type": "user", "email": None},
            "account": {"id": account["id"], "name": account["name"]},
            "tenant": {"id": None, "name": None},
            "tenant_unit": {"id": None},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read", "#ssl:edit"],
            "plan": {
                "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
                "name": "Free Website",
                "price": 0,
                "currency": "USD",
                "frequency": "",
                "is_subscribed": False,
                "can_subscribe": False,
                "legacy_id": "free",
                "legacy_discount": False,
                "externally_managed": False,
            },
        }

    def _list_zones(self, request: Request, params: dict[str, str]) -> Response:
        zones = list(self.state["zones"].values())
        wanted = request.arg("name")
        if wanted:
            operator, _, value = wanted.partition(":") if ":" in wanted else ("equal", "", wanted)
            tests: dict[str, Callable[[str], bool]] = {
                "equal": lambda name: name == value.lower(),
                "contains": lambda name: value.lower() in name,
                "starts_with": lambda name: name.startswith(value.lower()),
                "ends_with": lambda name: name.endswith(value.lower()),
            }
            if operator not in tests:
                operator, value = "equal", wanted
            zones = [zone for zone in zones if tests[operator](zone["name"])]
        status = request.arg("status")
        if status and status != "active":
            zones = []
        account = request.arg("account.id")
        if account and account != self.state["account"]["id"]:
            zones = []
        zones.sort(key=lambda zone: zone["name"], reverse=request.arg("direction") == "desc")
        return self._paged(request, [self._zone_view(zone) for zone in zones], 20, 50)

    def _get_zone(self, request: Request, params: dict[str, str]) -> Response:
        return envelope(self._zone_view(self._zone(params["zone_id"])))

    # ------------------------------------------------------------------------------------------ records

    def _fqdn(self, zone: Mapping[str, Any], raw: Any) -> str:
        if not isinstance(raw, str):
            raise dns_validation(9000, "DNS name is invalid.")
        name = absolute_name(raw.strip(), str(zone["name"]))
        labels = name.split(".")
        if len(name) > 253 or any(not label or len(label) > 63 for label in labels):
            raise dns_validation(9000, "DNS name is invalid.")
        return name

    def _public(self, kind: str, content: str) -> bool:
        if kind not in ("A", "AAAA"):
            return True
        return ipaddress.ip_address(content).is_global or self.allow_proxied_private

    def _validated(self, zone: Mapping[str, Any], body: Mapping[str, Any], record_id: str | None) -> dict[str, Any]:
        """The stored form of a record from a full request body, or the API's error."""
        kind = body.get("type")
        if not isinstance(kind, str) or kind.upper() not in RECORD_TYPES:
            raise dns_validation(9020, "Invalid DNS record type")
        kind = kind.upper()
        name = self._fqdn(zone, body.get("name"))
        content = body.get("content")
        data = body.get("data")
        if content is None and isinstance(data, dict):
            content = " ".join(str(value) for value in data.values())
        if not isinstance(content, str) or not content:
            raise dns_validation(9005 if kind == "A" else 9006 if kind == "AAAA" else 9007, "Content is required.")
        if kind == "A":
            try:
                content = str(ipaddress.IPv4Address(content))
            except ValueError:
                raise dns_validation(9005, "Content for A record must be a valid IPv4 address.") from None
        elif kind == "AAAA":
            try:
                content = str(ipaddress.IPv6Address(content))
            except ValueError:
                raise dns_validation(9006, "Content for AAAA record must be a valid IPv6 address.") from None
        elif kind in ("CNAME", "NS", "PTR"):
            content = content.strip().rstrip(".").lower()
            if not content or any(not label or len(label) > 63 for label in content.split(".")):
                raise dns_validation(9007, f"Content for {kind} record is invalid.")
        proxied = body.get("proxied", False)
        if proxied is None:
            proxied = False
        if not isinstance(proxied, bool):
            raise dns_validation(9002, "proxied must be a boolean.")
        if proxied and kind not in PROXIABLE_TYPES:
            raise dns_validation(9004, "This record type cannot be proxied.")
        if proxied and not self._public(kind, content):
            raise dns_validation(9003, f"Target {content} is not allowed for a proxied record.")
        ttl = body.get("ttl", 1)
        if ttl is None:
            ttl = 1
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or int(ttl) != ttl:
            raise dns_validation(9021, "TTL must be between 60 and 86400 seconds, or 1 for Automatic.")
        ttl = int(ttl)
        if ttl != 1 and not 60 <= ttl <= 86400:
            raise dns_validation(9021, "TTL must be between 60 and 86400 seconds, or 1 for Automatic.")
        if proxied:
            ttl = 1  # Cloudflare controls the TTL of proxied records
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise dns_validation(9312, "comment must be a string.")
        if comment == "":
            comment = None
        if comment is not None and len(comment) > self.comment_max_length:
            raise CloudflareError(
                400, 9313, f"DNS record comment exceeds the maximum length of {self.comment_max_length} characters."
            )
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise dns_validation(9314, "tags must be a list of strings.")
        priority = body.get("priority")
        if kind == "MX" and priority is None:
            raise dns_validation(9100, "MX records need a priority.")
        record: dict[str, Any] = {
            "name": name,
            "type": kind,
            "content": content,
            "proxied": proxied,
            "ttl": ttl,
            "comment": comment,
            "tags": sorted(set(tags)),
        }
        if priority is not None:
            record["priority"] = priority
        if isinstance(data, dict):
            record["data"] = copy.deepcopy(data)
        if isinstance(body.get("settings"), dict) and body["settings"]:
            record["settings"] = copy.deepcopy(body["settings"])
        self._check_conflicts(zone, record, record_id)
        return record

    @staticmethod
    def _check_conflicts(zone: Mapping[str, Any], record: Mapping[str, Any], record_id: str | None) -> None:
        for other in zone["records"].values():
            if other["id"] == record_id or other["name"] != record["name"]:
                continue
            if (other["type"], other["content"]) == (record["type"], record["content"]) and (
                other.get("priority") == record.get("priority")
            ):
                raise CloudflareError(400, 81058, "An identical record already exists.")
            if record["type"] == "CNAME" and other["type"] in ADDRESS_TYPES:
                raise CloudflareError(
                    400, 81053, f"An A, AAAA, or CNAME record with that host already exists. {SAME_NAME_HELP}"
                )
            if other["type"] == "CNAME" and record["type"] in ADDRESS_TYPES:
                raise CloudflareError(400, 81054, f"A CNAME record with that host already exists. {SAME_NAME_HELP}")

    def _record_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": record["id"],
            "name": record["name"],
            "type": record["type"],
            "content": record["content"],
            "proxiable": record["type"] in PROXIABLE_TYPES and self._public(record["type"], record["content"]),
            "proxied": record["proxied"],
            "ttl": record["ttl"],
            "meta": {},
            "comment": record["comment"],
            "tags": list(record["tags"]),
            "created_on": record["created_on"],
            "modified_on": record["modified_on"],
        }
        for key in ("priority", "data", "settings", "comment_modified_on", "tags_modified_on"):
            if record.get(key) is not None:
                view[key] = copy.deepcopy(record[key])
        return view

    def _add_record(self, zone: dict[str, Any], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise CloudflareError(400, 9207, "Request body is invalid.")
        record = self._validated(zone, body, None)
        now = cf_time()
        record.update(id=_new_id(), created_on=now, modified_on=now)
        if record["comment"] is not None:
            record["comment_modified_on"] = now
        if record["tags"]:
            record["tags_modified_on"] = now
        zone["records"][record["id"]] = record
        return self._record_view(record)

    def _record(self, zone: Mapping[str, Any], record_id: str) -> dict[str, Any]:
        record = zone["records"].get(record_id)
        if record is None:
            raise CloudflareError(404, 81044, "Record does not exist.")
        assert isinstance(record, dict)
        return record

    def _records_changed(self, zone: Mapping[str, Any]) -> None:
        if self.on_records_changed is None:
            return
        callback, name = self.on_records_changed, str(zone["name"])
        records = [self._record_view(record) for record in self._ordered(zone["records"].values())]
        self.store.after_unlock(lambda: callback(name, records))

    @staticmethod
    def _ordered(records: Any) -> list[dict[str, Any]]:
        return sorted(records, key=lambda r: (r["type"], r["name"], r["content"], r["created_on"]))

    def _list_records(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        tests: list[Callable[[Mapping[str, Any]], bool]] = []
        kinds = {kind.upper() for kind in request.args("type")}
        if kinds:
            tests.append(lambda r: r["type"] in kinds)
        for key in ("name", "content"):
            for operator in ("", ".exact", ".contains", ".startswith", ".endswith"):
                value = request.arg(key + operator)
                if value is None:
                    continue
                tests.append(_text_test(key, operator.lstrip(".") or "exact", value.lower().rstrip(".")))
        proxied = request.arg("proxied")
        if proxied is not None:
            tests.append(lambda r: r["proxied"] == (proxied == "true"))
        if request.arg("comment.present") is not None:
            tests.append(lambda r: r["comment"] is not None)
        if request.arg("comment.absent") is not None:
            tests.append(lambda r: r["comment"] is None)
        match_any = request.arg("match") == "any"
        records = [
            self._record_view(record)
            for record in self._ordered(zone["records"].values())
            if not tests or (any if match_any else all)(test(record) for test in tests)
        ]
        order = request.arg("order")
        if order in ("type", "name", "content", "ttl", "proxied"):
            records.sort(key=lambda r: str(r[order]), reverse=request.arg("direction") == "desc")
        return self._paged(request, records, 100, 5000000)

    def _create_record(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        view = self._add_record(zone, self._object_body(request))
        self._records_changed(zone)
        return envelope(view)

    def _get_record(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        return envelope(self._record_view(self._record(zone, params["record_id"])))

    def _replace(self, zone: dict[str, Any], current: dict[str, Any], body: Mapping[str, Any]) -> Response:
        record = self._validated(zone, body, current["id"])
        now = cf_time()
        if record["comment"] != current["comment"]:
            record["comment_modified_on"] = now if record["comment"] is not None else None
        else:
            record["comment_modified_on"] = current.get("comment_modified_on")
        if record["tags"] != current["tags"]:
            record["tags_modified_on"] = now
        else:
            record["tags_modified_on"] = current.get("tags_modified_on")
        record.update(id=current["id"], created_on=current["created_on"], modified_on=now)
        zone["records"][current["id"]] = record
        self._records_changed(zone)
        return envelope(self._record_view(record))

    def _put_record(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        current = self._record(zone, params["record_id"])
        return self._replace(zone, current, self._object_body(request))

    def _patch_record(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        current = self._record(zone, params["record_id"])
        merged = {
            key: copy.deepcopy(current[key])
            for key in ("name", "type", "content", "proxied", "ttl", "comment", "tags", "priority", "data", "settings")
            if current.get(key) is not None
        }
        merged.update(self._object_body(request))
        return self._replace(zone, current, merged)

    def _delete_record(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        record = self._record(zone, params["record_id"])
        del zone["records"][record["id"]]
        self._records_changed(zone)
        return envelope({"id": record["id"]})

    # ----------------------------------------------------------------------------------------- settings

    @staticmethod
    def _setting_view(zone: Mapping[str, Any], setting: str) -> dict[str, Any]:
        entry = zone["settings"][setting]
        return {"id": setting, "value": entry["value"], "editable": True, "modified_on": entry["modified_on"]}

    def _get_setting(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone_id"])
        if params["setting"] not in zone["settings"]:
            raise CloudflareError(400, 1003, f"Invalid or missing zone setting: {params['setting']}")
        return envelope(self._setting_view(zone, params["setting"]))

    def _patch_setting(self, request: Request, params: dict[str, str]) -> Response:
        self._zone(params["zone_id"])
        raise CloudflareError(403, 10000, "Authentication error")

    # --------------------------------------------------------------------------------------- IP ranges

    def _ips(self, request: Request, params: dict[str, str]) -> Response:
        result: dict[str, Any] = {"ipv4_cidrs": list(self.ipv4_cidrs), "ipv6_cidrs": list(self.ipv6_cidrs)}
        if request.arg("networks") == "jdcloud":
            result["jdcloud_cidrs"] = list(JDCLOUD_CIDRS)
        digest = hashlib.sha1(repr(sorted(result.items())).encode(), usedforsecurity=False).hexdigest()
        result["etag"] = digest[:32]
        return envelope(result)

    # ---------------------------------------------------------------------------------------- Origin CA

    def _certificate_view(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        view = {
            key: copy.deepcopy(entry[key])
            for key in ("id", "certificate", "csr", "expires_on", "hostnames", "request_type", "requested_validity")
        }
        if entry.get("revoked_at"):
            view["revoked_at"] = entry["revoked_at"]
        return view

    def _create_certificate(self, request: Request, params: dict[str, str]) -> Response:
        body = self._object_body(request)
        csr, hostnames = body.get("csr"), body.get("hostnames")
        request_type = body.get("request_type")
        validity = body.get("requested_validity", 5475)
        if not isinstance(csr, str) or not csr.strip():
            raise CloudflareError(400, 1001, "CSR is required.")
        if not isinstance(hostnames, list) or not hostnames or not all(isinstance(h, str) for h in hostnames):
            raise CloudflareError(400, 1002, "At least one hostname is required.")
        if request_type not in REQUEST_TYPES:
            raise CloudflareError(400, 1012, f"Invalid request_type {request_type!r}.")
        if isinstance(validity, bool) or not isinstance(validity, int | float) or int(validity) not in VALIDITY_DAYS:
            raise CloudflareError(400, 1013, f"requested_validity must be one of {sorted(VALIDITY_DAYS)}.")
        zone_names = [zone["name"] for zone in self.state["zones"].values()]
        for hostname in hostnames:
            if not any(in_zone(hostname.lower().removeprefix("*."), zone) for zone in zone_names):
                raise CloudflareError(
                    400,
                    1010,
                    f"Failed to validate requested hostname {hostname}: This zone is either not part of your account, "
                    "or you do not have access to it. Please contact support if using a multi-user organization.",
                )
        ca = self.state["origin_ca"]
        try:
            pem, serial, expires = origin_ca.sign(
                csr, hostnames, str(request_type), int(validity), ca["key_pem"], ca["cert_pem"]
            )
        except origin_ca.CsrError as error:
            raise CloudflareError(400, 1014, f"Failed to read certificate signing request: {error}") from None
        entry = {
            "id": str(serial),
            "certificate": pem,
            "csr": csr,
            "expires_on": expires.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
            # Cloudflare keeps (and answers) the hostnames in its own order, not the request's: sorted,
            # so a wildcard comes first. cloudflare/terraform-provider-cloudflare#6239 and #5392 (the
            # provider's Read takes this order and forces a replacement when the program's differs);
            # its own import test, internal/services/origin_ca_certificate, expects ["*.d", "d"].
            "hostnames": sorted(hostnames),
            "request_type": request_type,
            "requested_validity": int(validity),
            "revoked_at": None,
        }
        self.state["certificates"][entry["id"]] = entry
        return envelope(self._certificate_view(entry))

    def _certificate(self, certificate_id: str) -> dict[str, Any]:
        entry = self.state["certificates"].get(certificate_id)
        if entry is None:
            raise CloudflareError(404, 1003, "The requested certificate was not found.")
        assert isinstance(entry, dict)
        return entry

    def _list_certificates(self, request: Request, params: dict[str, str]) -> Response:
        zone_id = request.arg("zone_id")
        if not zone_id:
            raise CloudflareError(400, 1001, "zone_id is required.")
        zone = self._zone(zone_id)
        entries = [
            self._certificate_view(entry)
            for entry in self.state["certificates"].values()
            if not entry.get("revoked_at")
            and any(in_zone(h.lower().removeprefix("*."), zone["name"]) for h in entry["hostnames"])
        ]
        return self._paged(request, entries, 20, 50)

    def _get_certificate(self, request: Request, params: dict[str, str]) -> Response:
        return envelope(self._certificate_view(self._certificate(params["certificate_id"])))

    def _revoke_certificate(self, request: Request, params: dict[str, str]) -> Response:
        entry = self._certificate(params["certificate_id"])
        if not entry.get("revoked_at"):
            entry["revoked_at"] = cf_time()
        return envelope({"id": entry["id"], "revoked_at": entry["revoked_at"]})

    # ------------------------------------------------------------------------------------------- tokens

    def _verify_token(self, request: Request, params: dict[str, str]) -> Response:
        token = (request.header("Authorization") or "").partition(" ")[2].strip()
        token_id = hashlib.sha256(token.encode()).hexdigest()[:32]
        response = envelope({"id": token_id, "status": "active"})
        response.body["messages"] = [{"code": 10000, "message": "This API Token is valid and active", "type": None}]
        return response


def _text_test(key: str, operator: str, value: str) -> Callable[[Mapping[str, Any]], bool]:
    def test(record: Mapping[str, Any]) -> bool:
        text = str(record[key]).lower()
        if operator == "contains":
            return value in text
        if operator == "startswith":
            return text.startswith(value)
        if operator == "endswith":
            return text.endswith(value)
        return text == value

    return test
