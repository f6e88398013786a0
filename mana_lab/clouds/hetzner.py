"""A stand-in for the Hetzner Cloud API (https://api.hetzner.cloud/v1) for the resources mana-infra uses.

Point the provider at it with ``hcloud:endpoint`` (or ``HCLOUD_ENDPOINT``) = ``http://HOST:PORT/v1``:
hcloud-go appends the resource path to the endpoint (``/v1/servers``, ``/v1/zones/{id}/rrsets``), and
so does this stand-in, which answers under ``/v1`` only. Any 64-character bearer token is accepted
(or only the ones given), as the provider insists on exactly 64 characters.

Endpoints, with the JSON shapes of hcloud-go's ``schema`` package (read: hcloud-go v2.47.0, the
terraform provider's go.mod; terraform-provider-hcloud at v1.68.0+ / master of 2026-08-17):

- ``/ssh_keys`` list (name, fingerprint, label_selector), create, get, update, delete.
- ``/primary_ips`` list (name, ip, label_selector), create (location or assignee), get, update, delete;
  actions assign, unassign, change_protection, change_dns_ptr.
- ``/firewalls`` list, create (rules, apply_to), get, update, delete; actions set_rules,
  apply_to_resources, remove_from_resources.
- ``/servers`` list (name, status, label_selector), create (public_net with primary IPs, firewalls,
  ssh_keys, user_data), get, update, delete; actions poweron, poweroff, shutdown, reboot, reset,
  change_protection, rebuild, change_type, enable_backup, disable_backup, enable_rescue,
  disable_rescue, change_dns_ptr.
- ``/zones`` list (name, mode, label_selector), create (default SOA and NS RRSets), get by id or name,
  update, delete, zonefile export; actions change_protection, change_ttl.
- ``/zones/{id_or_name}/rrsets`` list (name, type, label_selector), create, get ("name/type" ids as
  the API gives them), update, delete; actions change_protection, change_ttl, set_records,
  add_records, update_records, remove_records.
- ``/actions`` (``?id=`` repeated, as hcloud-go's waiter polls), ``/actions/{id}``, and each
  resource's ``/{resource}/actions``, ``/{resource}/actions/{id}`` and ``/{resource}/{id}/actions``.
- ``/locations``, ``/datacenters``, ``/server_types``, ``/images`` (name, architecture, type): see
  `hetzner_catalog`.

Lists paginate with ``page``/``per_page`` (25 by default, 50 at most) and answer ``meta.pagination``
(page, per_page, previous_page, next_page, last_page, total_entries): hcloud-go follows ``next_page``.
Actions finish at once as ``success`` (``action_polls=N`` keeps each one ``running`` for N polls, to
exercise the clients' waiting). Errors are ``{"error": {"code", "message", "details"}}`` with the status
the API documents for the code.

Control surface (no token): ``GET /_stand-in/state``, ``GET /_stand-in/health``,
``POST /_stand-in/servers/{id}/status`` ``{"status": "off"|"running"}`` (a crash or a power cut).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import hetzner_catalog as catalog
from .common import ApiError, Router, StateStore, run_locked
from .server import InvalidBodyError, Request, Response, iso_time

API_PREFIX = "/v1"
TOKEN_LENGTH = 64
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 50
USER_DATA_LIMIT = 32 * 1024

DEFAULT_IPV4_POOL = ("203.0.113.10-203.0.113.254",)
"""Addresses handed out to IPv4 primary IPs, lowest free first: the lab's VPS address comes first."""
DEFAULT_IPV6_POOL = ("2001:db8::/56",)
"""Split into /64 networks for IPv6 primary IPs, lowest free first (the server's address is ::1)."""
DEFAULT_NAMESERVERS = ("hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de.")

STATUS_BY_CODE = {
    "unauthorized": 401,
    "forbidden": 403,
    "token_readonly": 403,
    "invalid_input": 400,
    "json_error": 400,
    "unsupported_error": 400,
    "locked": 423,
    "protected": 423,
    "not_found": 404,
    "rate_limit_exceeded": 429,
    "resource_limit_exceeded": 403,
    "resource_unavailable": 503,
    "uniqueness_error": 409,
    "conflict": 409,
    "maintenance": 503,
    "service_error": 503,
    "server_error": 500,
}
"""HTTP status by error code, as the API reference lists them; operation-specific codes are 422."""

SSH_KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-ed25519",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
RRSET_TYPES = frozenset(
    {"A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV", "SVCB", "TLSA", "TXT"}
)
FIREWALL_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "esp", "gre"})
LABEL_KEY = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
ZONE_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
RRSET_NAME = re.compile(
    r"^(@|(\*\.)?([a-z0-9_*]([-a-z0-9_]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)*)$"
)
TXT_VALUE = re.compile(r'^"(?:[^"\\]|\\.){0,255}"(?: "(?:[^"\\]|\\.){0,255}")*$')

ServerHook = Callable[[dict[str, Any]], None]
FirewallHook = Callable[[int, list[dict[str, Any]]], None]
"""Called with a server's id and every rule of the firewalls now applied to it (the lab's machine
enforces them)."""
ZoneHook = Callable[[str, list[dict[str, Any]]], None]


class HetznerError(ApiError):
    """An API error: rendered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.status = status or STATUS_BY_CODE.get(code, 422)

    def response(self) -> Response:
        return Response(self.status, {"error": {"code": self.code, "message": self.message, "details": self.details}})


def invalid(field: str, message: str) -> HetznerError:
    return HetznerError(
        "invalid_input",
        f"invalid input in field '{field}'",
        {"fields": [{"name": field, "messages": [message]}]},
    )


def not_found(kind: str, key: Any) -> HetznerError:
    return HetznerError("not_found", f"{kind} with ID '{key}' not found")


def ssh_fingerprint(public_key: str) -> str:
    """The MD5 fingerprint Hetzner shows (aa:bb:...), or `invalid_input` for a malformed key."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise invalid("public_key", "invalid public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("public_key", "invalid public key") from None
    if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != parts[0].encode():
        raise invalid("public_key", "invalid public key")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _selector_test(key: str, operator: str, values: frozenset[str]) -> Callable[[Mapping[str, str]], bool]:
    def test(labels: Mapping[str, str]) -> bool:
        if operator == "exists":
            return key in labels
        if operator == "!exists":
            return key not in labels
        if operator in ("=", "==", "in"):
            return labels.get(key) in values
        return labels.get(key) not in values  # "!=", "notin"

    return test


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A matcher for Hetzner's label selector syntax: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
    ``k in (a,b)``, ``k notin (a,b)``, comma-separated (all must hold)."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for expression in _split_selector(text):
        found = re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)", expression)
        if found:
            values = frozenset(v.strip() for v in found[3].split(",") if v.strip())
            tests.append(_selector_test(found[1], found[2], values))
            continue
        found = re.fullmatch(r"([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)", expression)
        if found:
            tests.append(_selector_test(found[1], found[2], frozenset({found[3]})))
            continue
        found = re.fullmatch(r"(!?)\s*([^\s!=(),]+)", expression)
        if found:
            tests.append(_selector_test(found[2], "!exists" if found[1] else "exists", frozenset()))
            continue
        raise invalid("label_selector", f"invalid label selector: {expression}")
    return lambda labels: all(test(labels) for test in tests)


def _labels(value: Any, field: str = "labels") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    for key, item in value.items():
        if not isinstance(item, str) or not LABEL_KEY.match(key) or not LABEL_VALUE.match(item):
            raise invalid(field, f"invalid label {key!r}")
    return dict(value)


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(field, "must be an integer")
    try:
        return int(value)
    except ValueError:
        raise invalid(field, "must be an integer") from None


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "must be a boolean")
    return value


def _string(body: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise invalid(field, "Missing data for required field.")
        return None
    if not isinstance(value, str):
        raise invalid(field, "Not a valid string.")
    return value


def _sort_key(field: str) -> Callable[[Mapping[str, Any]], str]:
    def key(item: Mapping[str, Any]) -> str:
        value = str(item.get(field, ""))
        return value.zfill(20) if field == "id" else value

    return key


def _address_pool(entries: Sequence[str]) -> Iterator[str]:
    for entry in entries:
        if "-" in entry:
            first, last = (ipaddress.ip_address(part.strip()) for part in entry.split("-", 1))
            for number in range(int(first), int(last) + 1):
                yield str(ipaddress.ip_address(number))
        elif "/" in entry:
            yield from (str(host) for host in ipaddress.ip_network(entry, strict=False).hosts())
        else:
            yield str(ipaddress.ip_address(entry))


def _network_pool(entries: Sequence[str]) -> Iterator[str]:
    for entry in entries:
        network = ipaddress.IPv6Network(entry, strict=False)
        subnets = [network] if network.prefixlen >= 64 else network.subnets(new_prefix=64)
        yield from (str(subnet) for subnet in subnets)


def _reverse_ptr(ip: str) -> str:
    return "static." + ".".join(reversed(ip.split("."))) + ".clients.your-server.de"


def _initial_state() -> dict[str, Any]:
    return {
        "version": 1,
        "next_id": 100001,
        "next_action_id": 4200001,
        "ssh_keys": {},
        "primary_ips": {},
        "firewalls": {},
        "servers": {},
        "zones": {},
        "rrsets": {},
        "actions": {},
    }


class HetznerCloud:
    """The Hetzner Cloud API stand-in: state in plain dicts, saved after every change to `state_path`."""

    name = "hetzner"

    def __init__(
        self,
        state_path: Path | None = None,
        *,
        tokens: Sequence[str] | None = None,
        on_server_created: ServerHook | None = None,
        on_server_deleted: ServerHook | None = None,
        on_zone_changed: ZoneHook | None = None,
        on_firewall_changed: FirewallHook | None = None,
        ipv4_pool: Sequence[str] = DEFAULT_IPV4_POOL,
        ipv6_pool: Sequence[str] = DEFAULT_IPV6_POOL,
        nameservers: Sequence[str] = DEFAULT_NAMESERVERS,
        action_polls: int = 0,
    ) -> None:
        self.store = StateStore(state_path, _initial_state)
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.on_server_created = on_server_created
        self.on_server_deleted = on_server_deleted
        self.on_zone_changed = on_zone_changed
        self.on_firewall_changed = on_firewall_changed
        self.ipv4_pool = tuple(ipv4_pool)
        self.ipv6_pool = tuple(ipv6_pool)
        self.nameservers = [ns if ns.endswith(".") else ns + "." for ns in nameservers]
        self.action_polls = action_polls
        self._polls_left: dict[int, int] = {}
        self.router = Router()
        self._routes()

    @property
    def state(self) -> dict[str, Any]:
        return self.store.data

    # ----------------------------------------------------------------------------------------- plumbing

    def _routes(self) -> None:
        add = self.router.add
        for resource in ("ssh_keys", "primary_ips", "firewalls", "servers", "zones"):
            add("GET", f"/{resource}/actions", self._list_actions)
            add("GET", f"/{resource}/actions/{{action_id}}", self._get_action)
        add("GET", "/actions", self._list_actions)
        add("GET", "/actions/{action_id}", self._get_action)
        add("GET", "/locations", self._list_locations)
        add("GET", "/locations/{id}", self._get_location)
        add("GET", "/datacenters", self._list_datacenters)
        add("GET", "/datacenters/{id}", self._get_datacenter)
        add("GET", "/server_types", self._list_server_types)
        add("GET", "/server_types/{id}", self._get_server_type)
        add("GET", "/images", self._list_images)
        add("GET", "/images/{id}", self._get_image)

        add("GET", "/ssh_keys", self._list_ssh_keys)
        add("POST", "/ssh_keys", self._create_ssh_key)
        add("GET", "/ssh_keys/{id}", self._get_ssh_key)
        add("PUT", "/ssh_keys/{id}", self._update_ssh_key)
        add("DELETE", "/ssh_keys/{id}", self._delete_ssh_key)

        add("GET", "/primary_ips", self._list_primary_ips)
        add("POST", "/primary_ips", self._create_primary_ip)
        add("GET", "/primary_ips/{id}", self._get_primary_ip)
        add("PUT", "/primary_ips/{id}", self._update_primary_ip)
        add("DELETE", "/primary_ips/{id}", self._delete_primary_ip)
        add("GET", "/primary_ips/{id}/actions", self._resource_actions("primary_ip"))
        add("POST", "/primary_ips/{id}/actions/{action}", self._primary_ip_action)

        add("GET", "/firewalls", self._list_firewalls)
        add("POST", "/firewalls", self._create_firewall)
        add("GET", "/firewalls/{id}", self._get_firewall)
        add("PUT", "/firewalls/{id}", self._update_firewall)
        add("DELETE", "/firewalls/{id}", self._delete_firewall)
        add("GET", "/firewalls/{id}/actions", self._resource_actions("firewall"))
        add("POST", "/firewalls/{id}/actions/{action}", self._firewall_action)

        add("GET", "/servers", self._list_servers)
        add("POST", "/servers", self._create_server)
        add("GET", "/servers/{id}", self._get_server)
        add("PUT", "/servers/{id}", self._update_server)
        add("DELETE", "/servers/{id}", self._delete_server)
        add("GET", "/servers/{id}/actions", self._resource_actions("server"))
        add("POST", "/servers/{id}/actions/{action}", self._server_action)

        add("GET", "/zones", self._list_zones)
        add("POST", "/zones", self._create_zone)
        add("GET", "/zones/{zone}", self._get_zone)
        add("PUT", "/zones/{zone}", self._update_zone)
        add("DELETE", "/zones/{zone}", self._delete_zone)
        add("GET", "/zones/{zone}/zonefile", self._export_zonefile)
        add("GET", "/zones/{zone}/actions", self._resource_actions("zone"))
        add("POST", "/zones/{zone}/actions/{action}", self._zone_action)
        add("GET", "/zones/{zone}/rrsets", self._list_rrsets)
        add("POST", "/zones/{zone}/rrsets", self._create_rrset)
        add("GET", "/zones/{zone}/rrsets/{name}/{type}", self._get_rrset)
        add("PUT", "/zones/{zone}/rrsets/{name}/{type}", self._update_rrset)
        add("DELETE", "/zones/{zone}/rrsets/{name}/{type}", self._delete_rrset)
        add("POST", "/zones/{zone}/rrsets/{name}/{type}/actions/{action}", self._rrset_action)

    def handle(self, request: Request) -> Response:
        if request.path != API_PREFIX and not request.path.startswith(API_PREFIX + "/"):
            return HetznerError("not_found", "not found").response()
        if not self._authorized(request):
            return HetznerError("unauthorized", "unable to authenticate").response()
        path = request.path[len(API_PREFIX) :] or "/"
        found = self.router.match(request.method, path)
        if not found:
            return HetznerError("not_found", "not found").response()
        assert not isinstance(found, bool)
        handler, params = found

        return run_locked(self.store, lambda: handler(request, params), save=request.method != "GET")

    def _authorized(self, request: Request) -> bool:
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or len(token.strip()) != TOKEN_LENGTH:
            return False
        return self.tokens is None or token.strip() in self.tokens

    def control(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/_stand-in/health":
            return Response(200, {"ok": True, "api": self.name})
        if request.method == "GET" and path == "/_stand-in/state":
            with self.store.lock:
                return Response(200, copy.deepcopy(self.state))
        found = re.fullmatch(r"/_stand-in/servers/(\d+)/status", path)
        if request.method == "POST" and found:

            def work() -> Response:
                body = self._body(request)
                server = self._server(found[1])
                if body.get("status") not in ("off", "running"):
                    raise invalid("status", "must be off or running")
                server["status"] = body["status"]
                return Response(200, {"server": self._server_view(server)})

            return run_locked(self.store, work, save=True)
        return Response(404, {"error": {"code": "not_found", "message": "no such control endpoint"}})

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except InvalidBodyError:
            raise HetznerError("json_error", "unable to parse JSON") from None
        if not isinstance(body, dict):
            raise HetznerError("json_error", "the request body must be a JSON object")
        return body

    def _new_id(self) -> int:
        value = int(self.state["next_id"])
        self.state["next_id"] = value + 1
        return value

    # ------------------------------------------------------------------------------------------ actions

    def _action(self, command: str, resources: Sequence[tuple[int, str]]) -> dict[str, Any]:
        action_id = int(self.state["next_action_id"])
        self.state["next_action_id"] = action_id + 1
        now = iso_time()
        action = {
            "id": action_id,
            "command": command,
            "status": "success",
            "progress": 100,
            "started": now,
            "finished": now,
            "resources": [{"id": rid, "type": kind} for rid, kind in resources],
            "error": None,
        }
        self.state["actions"][str(action_id)] = action
        if self.action_polls > 0:
            self._polls_left[action_id] = self.action_polls
        return self._action_view(action, poll=False)

    def _action_view(self, action: dict[str, Any], *, poll: bool) -> dict[str, Any]:
        left = self._polls_left.get(int(action["id"]), 0)
        if left <= 0:
            return dict(action)
        if poll:
            self._polls_left[int(action["id"])] = left - 1
        return {**action, "status": "running", "progress": 0, "finished": None}

    def _list_actions(self, request: Request, params: dict[str, str]) -> Response:
        wanted = {_int(value, "id") for value in request.args("id")}
        statuses = set(request.args("status"))
        actions = [action for action in self.state["actions"].values() if (not wanted or int(action["id"]) in wanted)]
        views = [self._action_view(action, poll=True) for action in actions]
        views = [view for view in views if not statuses or view["status"] in statuses]
        return self._page(request, "actions", views)

    def _get_action(self, request: Request, params: dict[str, str]) -> Response:
        action = self.state["actions"].get(str(_int(params["action_id"], "id")))
        if action is None:
            raise not_found("action", params["action_id"])
        return Response(200, {"action": self._action_view(action, poll=True)})

    def _resource_actions(self, kind: str) -> Callable[[Request, dict[str, str]], Response]:
        def handler(request: Request, params: dict[str, str]) -> Response:
            key = params.get("id") or params.get("zone") or ""
            resource_id = int(self._zone(key)["id"]) if kind == "zone" else _int(key, "id")
            actions = [
                self._action_view(action, poll=True)
                for action in self.state["actions"].values()
                if {"id": resource_id, "type": kind} in action["resources"]
            ]
            return self._page(request, "actions", actions)

        return handler

    # -------------------------------------------------------------------------------- lists and filters

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Response:
        page = _int(request.arg("page") or "1", "page")
        per_page = _int(request.arg("per_page") or str(DEFAULT_PER_PAGE), "per_page")
        if page < 1:
            raise invalid("page", "must be at least 1")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise invalid("per_page", f"must be between 1 and {MAX_PER_PAGE}")
        items = self._sorted(request, items)
        total = len(items)
        last_page = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        pagination = {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last_page else None,
            "last_page": last_page,
            "total_entries": total,
        }
        return Response(200, {key: chunk, "meta": {"pagination": pagination}})

    @staticmethod
    def _sorted(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ordered = sorted(items, key=lambda item: str(item.get("id")).zfill(20))
        for spec in reversed(request.args("sort")):
            field, _, direction = spec.partition(":")
            if direction not in ("", "asc", "desc"):
                raise invalid("sort", f"invalid sort direction {direction!r}")
            ordered.sort(key=_sort_key(field), reverse=direction == "desc")
        return ordered

    @staticmethod
    def _filtered(
        request: Request, items: list[dict[str, Any]], fields: Sequence[str] = ("name",)
    ) -> list[dict[str, Any]]:
        selector = request.arg("label_selector")
        matcher = label_selector(selector) if selector else None
        result = []
        for item in items:
            if matcher is not None and not matcher(item.get("labels") or {}):
                continue
            if any(request.arg(field) is not None and str(item.get(field)) != request.arg(field) for field in fields):
                continue
            result.append(item)
        return result

    # ---------------------------------------------------------------------------------------- catalogue

    def _list_locations(self, request: Request, params: dict[str, str]) -> Response:
        return self._page(request, "locations", self._filtered(request, [dict(x) for x in catalog.LOCATIONS]))

    def _get_location(self, request: Request, params: dict[str, str]) -> Response:
        item = next((x for x in catalog.LOCATIONS if str(x["id"]) == params["id"]), None)
        if item is None:
            raise not_found("location", params["id"])
        return Response(200, {"location": dict(item)})

    def _list_datacenters(self, request: Request, params: dict[str, str]) -> Response:
        views = [catalog.datacenter_view(x) for x in catalog.DATACENTERS]
        return self._page(request, "datacenters", self._filtered(request, views))

    def _get_datacenter(self, request: Request, params: dict[str, str]) -> Response:
        item = next((x for x in catalog.DATACENTERS if str(x["id"]) == params["id"]), None)
        if item is None:
            raise not_found("datacenter", params["id"])
        return Response(200, {"datacenter": catalog.datacenter_view(item)})

    def _list_server_types(self, request: Request, params: dict[str, str]) -> Response:
        return self._page(request, "server_types", self._filtered(request, copy.deepcopy(catalog.SERVER_TYPES)))

    def _get_server_type(self, request: Request, params: dict[str, str]) -> Response:
        item = next((x for x in catalog.SERVER_TYPES if str(x["id"]) == params["id"]), None)
        if item is None:
            raise not_found("server_type", params["id"])
        return Response(200, {"server_type": copy.deepcopy(item)})

    def _list_images(self, request: Request, params: dict[str, str]) -> Response:
        images = self._filtered(request, copy.deepcopy(catalog.IMAGES))
        architectures, types = set(request.args("architecture")), set(request.args("type"))
        images = [
            image
            for image in images
            if (not architectures or image["architecture"] in architectures) and (not types or image["type"] in types)
        ]
        return self._page(request, "images", images)

    def _get_image(self, request: Request, params: dict[str, str]) -> Response:
        item = next((x for x in catalog.IMAGES if str(x["id"]) == params["id"]), None)
        if item is None:
            raise not_found("image", params["id"])
        return Response(200, {"image": copy.deepcopy(item)})

    # ----------------------------------------------------------------------------------------- ssh keys

    def _ssh_key(self, key: str) -> dict[str, Any]:
        item = self.state["ssh_keys"].get(str(_int(key, "id")))
        if item is None:
            raise not_found("ssh_key", key)
        return dict(item)

    def _list_ssh_keys(self, request: Request, params: dict[str, str]) -> Response:
        items = self._filtered(request, list(self.state["ssh_keys"].values()), ("name", "fingerprint"))
        return self._page(request, "ssh_keys", items)

    def _create_ssh_key(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        name = _string(body, "name") or ""
        public_key = (_string(body, "public_key") or "").strip()
        if not name.strip():
            raise invalid("name", "must not be empty")
        fingerprint = ssh_fingerprint(public_key)
        labels = _labels(body.get("labels"))
        for key in self.state["ssh_keys"].values():
            if key["name"] == name:
                raise HetznerError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
            if key["fingerprint"] == fingerprint:
                raise HetznerError(
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                    {"fields": [{"name": "public_key"}]},
                )
        key_id = self._new_id()
        item = {
            "id": key_id,
            "name": name,
            "fingerprint": fingerprint,
            "public_key": public_key,
            "labels": labels,
            "created": iso_time(),
        }
        self.state["ssh_keys"][str(key_id)] = item
        return Response(201, {"ssh_key": dict(item)})

    def _get_ssh_key(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"ssh_key": self._ssh_key(params["id"])})

    def _update_ssh_key(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        item = self.state["ssh_keys"][str(self._ssh_key(params["id"])["id"])]
        name = _string(body, "name", required=False)
        if name is not None:
            if any(k["name"] == name and k["id"] != item["id"] for k in self.state["ssh_keys"].values()):
                raise HetznerError(
                    "uniqueness_error", "SSH key with the same name already exists", {"fields": [{"name": "name"}]}
                )
            item["name"] = name
        if "labels" in body:
            item["labels"] = _labels(body["labels"])
        return Response(200, {"ssh_key": dict(item)})

    def _delete_ssh_key(self, request: Request, params: dict[str, str]) -> Response:
        key = self._ssh_key(params["id"])
        del self.state["ssh_keys"][str(key["id"])]
        return Response(204)

    # ------------------------------------------------------------------------------------- primary IPs

    def _primary_ip(self, key: Any) -> dict[str, Any]:
        item = self.state["primary_ips"].get(str(_int(key, "id")))
        if item is None:
            raise not_found("primary_ip", key)
        assert isinstance(item, dict)
        return item

    def _primary_ip_view(self, item: Mapping[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(dict(item))
        view["location"] = catalog.location(item["location"])
        view["datacenter"] = catalog.datacenter_for(item["location"])
        return view

    def _allocate(self, family: str) -> str:
        used = {ip["ip"] for ip in self.state["primary_ips"].values()}
        pool = _address_pool(self.ipv4_pool) if family == "ipv4" else _network_pool(self.ipv6_pool)
        for candidate in pool:
            if candidate not in used:
                return candidate
        raise HetznerError("resource_unavailable", f"no free {family} address left in the stand-in's pool")

    def _new_primary_ip(
        self, name: str, family: str, location: str, labels: dict[str, str], auto_delete: bool
    ) -> dict[str, Any]:
        address = self._allocate(family)
        ip_id = self._new_id()
        item = {
            "id": ip_id,
            "name": name,
            "ip": address,
            "type": family,
            "assignee_id": None,
            "assignee_type": "server",
            "auto_delete": auto_delete,
            "blocked": False,
            "created": iso_time(),
            "labels": labels,
            "protection": {"delete": False},
            "dns_ptr": [{"ip": address, "dns_ptr": _reverse_ptr(address)}] if family == "ipv4" else [],
            "location": location,
        }
        self.state["primary_ips"][str(ip_id)] = item
        return item

    def _list_primary_ips(self, request: Request, params: dict[str, str]) -> Response:
        items = self._filtered(request, list(self.state["primary_ips"].values()), ("name", "ip"))
        return self._page(request, "primary_ips", [self._primary_ip_view(item) for item in items])

    def _create_primary_ip(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        name = _string(body, "name") or ""
        family = _string(body, "type") or ""
        if family not in ("ipv4", "ipv6"):
            raise invalid("type", "must be one of: ipv4, ipv6")
        if self._name_taken("primary_ips", name):
            raise HetznerError("uniqueness_error", "name is already used", {"fields": [{"name": "name"}]})
        assignee_type = _string(body, "assignee_type", required=False) or "server"
        if assignee_type != "server":
            raise invalid("assignee_type", "must be server")
        location_name = _string(body, "location", required=False)
        datacenter_name = _string(body, "datacenter", required=False)
        if datacenter_name is not None and location_name is None:
            dc = next((d for d in catalog.DATACENTERS if d["name"] == datacenter_name), None)
            if dc is None:
                raise invalid("datacenter", "datacenter not found")
            location_name = dc["location"]
        assignee_id = body.get("assignee_id")
        if (location_name is None) == (assignee_id is None):
            raise invalid("location", "exactly one of location and assignee_id is required")
        server = None
        if assignee_id is not None:
            server = self._server(assignee_id)
            self._check_can_assign(server, family)
            location_name = server["location"]
        assert location_name is not None
        if catalog.location(location_name) is None:
            raise invalid("location", "location not found")
        auto_delete = _bool(body["auto_delete"], "auto_delete") if body.get("auto_delete") is not None else False
        item = self._new_primary_ip(name, family, location_name, _labels(body.get("labels")), auto_delete)
        resources = [(item["id"], "primary_ip")]
        if server is not None:
            self._assign(item, server)
            resources.append((server["id"], "server"))
        action = self._action("create_primary_ip", resources)
        return Response(201, {"primary_ip": self._primary_ip_view(item), "action": action})

    def _name_taken(self, collection: str, name: str, except_id: Any = None) -> bool:
        return any(item["name"] == name and item["id"] != except_id for item in self.state[collection].values())

    def _get_primary_ip(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"primary_ip": self._primary_ip_view(self._primary_ip(params["id"]))})

    def _update_primary_ip(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        item = self._primary_ip(params["id"])
        name = _string(body, "name", required=False)
        if name is not None:
            if self._name_taken("primary_ips", name, item["id"]):
                raise HetznerError("uniqueness_error", "name is already used", {"fields": [{"name": "name"}]})
            item["name"] = name
        if "labels" in body:
            item["labels"] = _labels(body["labels"])
        if body.get("auto_delete") is not None:
            item["auto_delete"] = _bool(body["auto_delete"], "auto_delete")
        return Response(200, {"primary_ip": self._primary_ip_view(item)})

    def _delete_primary_ip(self, request: Request, params: dict[str, str]) -> Response:
        item = self._primary_ip(params["id"])
        if item["protection"]["delete"]:
            raise HetznerError("protected", "Primary IP deletion is protected")
        if item["assignee_id"] is not None:
            raise HetznerError("must_be_unassigned", "Primary IP is still assigned to a server: unassign it first")
        del self.state["primary_ips"][str(item["id"])]
        return Response(204)

    def _check_can_assign(self, server: Mapping[str, Any], family: str) -> None:
        if server["status"] != "off":
            raise HetznerError("server_not_stopped", "the server is running, but needs to be powered off")
        if server[family] is not None:
            raise HetznerError(f"server_has_{family}", f"the server already has an {family} address")

    def _assign(self, item: dict[str, Any], server: dict[str, Any]) -> None:
        item["assignee_id"] = server["id"]
        item["assignee_type"] = "server"
        server[item["type"]] = item["id"]

    def _primary_ip_action(self, request: Request, params: dict[str, str]) -> Response:
        item = self._primary_ip(params["id"])
        body = self._body(request)
        name = params["action"]
        if name == "assign":
            if body.get("assignee_type", "server") != "server":
                raise invalid("assignee_type", "must be server")
            server = self._server(body.get("assignee_id"))
            if item["assignee_id"] is not None and item["assignee_id"] != server["id"]:
                raise HetznerError(
                    "primary_ip_already_assigned", "Primary IP is already assigned to a different server"
                )
            if item["assignee_id"] == server["id"]:
                return Response(201, {"action": self._action("assign_primary_ip", [(item["id"], "primary_ip")])})
            self._check_can_assign(server, item["type"])
            if server["location"] != item["location"]:
                raise HetznerError("primary_ip_datacenter_mismatch", "the Primary IP is in a different location")
            self._assign(item, server)
            action = self._action("assign_primary_ip", [(item["id"], "primary_ip"), (server["id"], "server")])
            return Response(201, {"action": action})
        if name == "unassign":
            resources = [(item["id"], "primary_ip")]
            if item["assignee_id"] is not None:
                server = self.state["servers"].get(str(item["assignee_id"]))
                if server is not None:
                    if server["status"] != "off":
                        raise HetznerError("server_not_stopped", "the server is running, but needs to be powered off")
                    server[item["type"]] = None
                    resources.append((server["id"], "server"))
                item["assignee_id"] = None
            return Response(201, {"action": self._action("unassign_primary_ip", resources)})
        if name == "change_protection":
            if "delete" in body:
                item["protection"]["delete"] = _bool(body["delete"], "delete")
            return Response(201, {"action": self._action("change_protection", [(item["id"], "primary_ip")])})
        if name == "change_dns_ptr":
            self._change_dns_ptr(item["dns_ptr"], body, item["ip"], item["type"])
            return Response(201, {"action": self._action("change_dns_ptr", [(item["id"], "primary_ip")])})
        raise HetznerError("not_found", f"action '{name}' not found")

    @staticmethod
    def _change_dns_ptr(entries: list[dict[str, Any]], body: Mapping[str, Any], ip: str, family: str) -> None:
        address = _string(body, "ip") or ""
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise invalid("ip", "invalid IP address") from None
        inside = str(parsed) == ip if family == "ipv4" else parsed in ipaddress.ip_network(ip, strict=False)
        if not inside:
            raise invalid("ip", "the IP address does not belong to this resource")
        entries[:] = [entry for entry in entries if entry["ip"] != str(parsed)]
        if body.get("dns_ptr") is not None:
            entries.append({"ip": str(parsed), "dns_ptr": str(body["dns_ptr"])})

    # ---------------------------------------------------------------------------------------- firewalls

    def _firewall(self, key: Any) -> dict[str, Any]:
        item = self.state["firewalls"].get(str(_int(key, "id")))
        if item is None:
            raise not_found("firewall", key)
        assert isinstance(item, dict)
        return item

    @staticmethod
    def _rules(value: Any) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid("rules", "must be a list")
        rules = []
        for index, rule in enumerate(value):
            field = f"rules[{index}]"
            if not isinstance(rule, dict):
                raise invalid(field, "must be an object")
            direction, protocol = rule.get("direction"), rule.get("protocol")
            if direction not in ("in", "out"):
                raise invalid(f"{field}.direction", "must be one of: in, out")
            if protocol not in FIREWALL_PROTOCOLS:
                raise invalid(f"{field}.protocol", f"must be one of: {', '.join(sorted(FIREWALL_PROTOCOLS))}")
            port = rule.get("port")
            if protocol in ("tcp", "udp"):
                if not isinstance(port, str) or not re.fullmatch(r"(any|\d{1,5}(-\d{1,5})?)", port):
                    raise invalid(f"{field}.port", "a port or port range is required for tcp and udp")
                bounds = [int(part) for part in port.split("-")] if port != "any" else [1, 65535]
                if not all(1 <= bound <= 65535 for bound in bounds) or bounds[0] > bounds[-1]:
                    raise invalid(f"{field}.port", "invalid port range")
            elif port is not None:
                raise invalid(f"{field}.port", "port is only allowed for tcp and udp")
            ips = {}
            for key in ("source_ips", "destination_ips"):
                entries = rule.get(key) or []
                if not isinstance(entries, list):
                    raise invalid(f"{field}.{key}", "must be a list")
                for entry in entries:
                    try:
                        network = ipaddress.ip_network(str(entry), strict=True)
                    except ValueError:
                        raise invalid(f"{field}.{key}", f"invalid CIDR {entry!r}") from None
                    del network
                ips[key] = [str(entry) for entry in entries]
            if direction == "in" and not ips["source_ips"]:
                raise invalid(f"{field}.source_ips", "required for direction in")
            if direction == "out" and not ips["destination_ips"]:
                raise invalid(f"{field}.destination_ips", "required for direction out")
            description = rule.get("description")
            if description is not None and (not isinstance(description, str) or len(description) > 255):
                raise invalid(f"{field}.description", "must be a string of at most 255 characters")
            rules.append(
                {
                    "direction": direction,
                    "protocol": protocol,
                    "port": port,
                    "source_ips": ips["source_ips"],
                    "destination_ips": ips["destination_ips"],
                    "description": description,
                }
            )
        return rules

    def _list_firewalls(self, request: Request, params: dict[str, str]) -> Response:
        items = self._filtered(request, list(self.state["firewalls"].values()))
        return self._page(request, "firewalls", copy.deepcopy(items))

    def _create_firewall(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        name = _string(body, "name") or ""
        if self._name_taken("firewalls", name):
            raise HetznerError("uniqueness_error", "name is already used", {"fields": [{"name": "name"}]})
        rules = self._rules(body.get("rules"))
        labels = _labels(body.get("labels"))
        servers = [self._firewall_target(entry) for entry in body.get("apply_to") or []]
        firewall_id = self._new_id()
        item = {
            "id": firewall_id,
            "name": name,
            "labels": labels,
            "created": iso_time(),
            "rules": rules,
            "applied_to": [],
        }
        self.state["firewalls"][str(firewall_id)] = item
        actions = [self._action("set_firewall_rules", [(firewall_id, "firewall")])]
        for server in servers:
            self._apply_firewall(item, server)
            actions.append(self._action("apply_firewall", [(firewall_id, "firewall"), (server["id"], "server")]))
        return Response(201, {"firewall": copy.deepcopy(item), "actions": actions})

    def _firewall_target(self, entry: Any) -> dict[str, Any]:
        if not isinstance(entry, dict) or entry.get("type") != "server" or not isinstance(entry.get("server"), dict):
            raise invalid("apply_to", "only servers are supported by the stand-in")
        server = self.state["servers"].get(str(entry["server"].get("id")))
        if server is None:
            raise HetznerError(
                "firewall_resource_not_found", "the resource the firewall should be applied to is missing"
            )
        assert isinstance(server, dict)
        return server

    def _apply_firewall(self, firewall: dict[str, Any], server: dict[str, Any]) -> None:
        if firewall["id"] in server["firewalls"]:
            raise HetznerError("firewall_already_applied", "firewall was already applied on resource")
        server["firewalls"].append(firewall["id"])
        firewall["applied_to"].append({"type": "server", "server": {"id": server["id"]}})
        self._firewall_changed(server)

    def _server_rules(self, server: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every rule of every firewall applied to the server: what its traffic meets."""
        return [
            copy.deepcopy(rule)
            for firewall_id in server["firewalls"]
            for rule in self.state["firewalls"].get(str(firewall_id), {}).get("rules", [])
        ]

    def _firewall_changed(self, server: Mapping[str, Any]) -> None:
        if self.on_firewall_changed is not None:
            callback, server_id, rules = self.on_firewall_changed, int(server["id"]), self._server_rules(server)
            self.store.after_unlock(lambda: callback(server_id, rules))

    def _remove_firewall(self, firewall: dict[str, Any], server: dict[str, Any]) -> None:
        if firewall["id"] not in server["firewalls"]:
            raise HetznerError("firewall_already_removed", "firewall was already removed from the resource")
        server["firewalls"].remove(firewall["id"])
        firewall["applied_to"] = [
            entry for entry in firewall["applied_to"] if entry.get("server", {}).get("id") != server["id"]
        ]
        self._firewall_changed(server)

    def _get_firewall(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"firewall": copy.deepcopy(self._firewall(params["id"]))})

    def _update_firewall(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        item = self._firewall(params["id"])
        name = _string(body, "name", required=False)
        if name is not None:
            if self._name_taken("firewalls", name, item["id"]):
                raise HetznerError("uniqueness_error", "name is already used", {"fields": [{"name": "name"}]})
            item["name"] = name
        if "labels" in body:
            item["labels"] = _labels(body["labels"])
        return Response(200, {"firewall": copy.deepcopy(item)})

    def _delete_firewall(self, request: Request, params: dict[str, str]) -> Response:
        item = self._firewall(params["id"])
        if item["applied_to"]:
            raise HetznerError("resource_in_use", "firewall must not be in use to be deleted")
        del self.state["firewalls"][str(item["id"])]
        return Response(204)

    def _firewall_action(self, request: Request, params: dict[str, str]) -> Response:
        item = self._firewall(params["id"])
        body = self._body(request)
        name = params["action"]
        if name == "set_rules":
            if "rules" not in body:
                raise invalid("rules", "Missing data for required field.")
            item["rules"] = self._rules(body["rules"])
            actions = [self._action("set_firewall_rules", [(item["id"], "firewall")])]
            for entry in item["applied_to"]:
                server = self.state["servers"].get(str(entry["server"]["id"]))
                if server is not None:
                    self._firewall_changed(server)
                actions.append(
                    self._action("apply_firewall", [(item["id"], "firewall"), (entry["server"]["id"], "server")])
                )
            return Response(201, {"actions": actions})
        if name in ("apply_to_resources", "remove_from_resources"):
            key = "apply_to" if name == "apply_to_resources" else "remove_from"
            entries = body.get(key)
            if not isinstance(entries, list):
                raise invalid(key, "Missing data for required field.")
            servers = [self._firewall_target(entry) for entry in entries]
            actions = []
            for server in servers:
                if name == "apply_to_resources":
                    self._apply_firewall(item, server)
                    command = "apply_firewall"
                else:
                    self._remove_firewall(item, server)
                    command = "remove_firewall"
                actions.append(self._action(command, [(item["id"], "firewall"), (server["id"], "server")]))
            return Response(201, {"actions": actions})
        raise HetznerError("not_found", f"action '{name}' not found")

    # ------------------------------------------------------------------------------------------ servers

    def _server(self, key: Any) -> dict[str, Any]:
        if key is None:
            raise invalid("assignee_id", "Missing data for required field.")
        item = self.state["servers"].get(str(_int(key, "id")))
        if item is None:
            raise not_found("server", key)
        assert isinstance(item, dict)
        return item

    def _server_view(self, server: Mapping[str, Any]) -> dict[str, Any]:
        server_type = copy.deepcopy(catalog.server_type(server["server_type"]) or {})
        image = copy.deepcopy(catalog.image(server["image"]))
        ipv4 = self.state["primary_ips"].get(str(server["ipv4"])) if server["ipv4"] is not None else None
        ipv6 = self.state["primary_ips"].get(str(server["ipv6"])) if server["ipv6"] is not None else None
        return {
            "id": server["id"],
            "name": server["name"],
            "status": server["status"],
            "created": server["created"],
            "public_net": {
                "ipv4": (
                    {"id": ipv4["id"], "ip": ipv4["ip"], "blocked": False, "dns_ptr": ipv4["dns_ptr"][0]["dns_ptr"]}
                    if ipv4 and ipv4["dns_ptr"]
                    else ({"id": ipv4["id"], "ip": ipv4["ip"], "blocked": False, "dns_ptr": ""} if ipv4 else None)
                ),
                "ipv6": (
                    {"id": ipv6["id"], "ip": ipv6["ip"], "blocked": False, "dns_ptr": copy.deepcopy(ipv6["dns_ptr"])}
                    if ipv6
                    else None
                ),
                "floating_ips": [],
                "firewalls": [{"id": firewall_id, "status": "applied"} for firewall_id in server["firewalls"]],
            },
            "private_net": [],
            "server_type": server_type,
            "datacenter": catalog.datacenter_for(server["location"]),
            "location": catalog.location(server["location"]),
            "image": image,
            "iso": None,
            "rescue_enabled": server["rescue_enabled"],
            "locked": False,
            "backup_window": server["backup_window"],
            "outgoing_traffic": 0,
            "ingoing_traffic": 0,
            "included_traffic": 21990232555520,
            "protection": dict(server["protection"]),
            "labels": dict(server["labels"]),
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": server_type.get("disk", 0),
            "placement_group": None,
        }

    def _server_hook_view(self, server: Mapping[str, Any]) -> dict[str, Any]:
        view = self._server_view(server)
        view["user_data"] = server["user_data"]
        view["ssh_keys"] = [key["public_key"] for key in server["ssh_keys"]]
        view["ssh_key_ids"] = [key["id"] for key in server["ssh_keys"]]
        view["firewall_rules"] = self._server_rules(server)
        return view

    def _list_servers(self, request: Request, params: dict[str, str]) -> Response:
        items = self._filtered(request, list(self.state["servers"].values()), ("name", "status"))
        return self._page(request, "servers", [self._server_view(item) for item in items])

    def _create_server(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        name = _string(body, "name") or ""
        if not HOSTNAME.match(name):
            raise invalid("name", "must be a valid hostname")
        if self._name_taken("servers", name):
            raise HetznerError("uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})
        server_type = catalog.server_type(body.get("server_type"))
        if server_type is None:
            raise invalid("server_type", "server type not found")
        image = catalog.image(body.get("image"), server_type["architecture"])
        if image is None:
            raise invalid("image", "image not found")
        if image["architecture"] != server_type["architecture"]:
            raise invalid("image", "the image's architecture does not fit the server type")
        user_data = _string(body, "user_data", required=False) or ""
        if len(user_data.encode()) > USER_DATA_LIMIT:
            raise invalid("user_data", f"must be at most {USER_DATA_LIMIT} bytes")
        keys = []
        for reference in body.get("ssh_keys") or []:
            key = next(
                (k for k in self.state["ssh_keys"].values() if str(reference) in (str(k["id"]), k["name"])), None
            )
            if key is None:
                raise invalid("ssh_keys", f"SSH key {reference!r} not found")
            keys.append({k: key[k] for k in ("id", "name", "public_key", "fingerprint")})
        firewalls = []
        for entry in body.get("firewalls") or []:
            if not isinstance(entry, dict):
                raise invalid("firewalls", "must be a list of objects")
            firewalls.append(self._firewall(entry.get("firewall")))
        public_net = body.get("public_net") or {}
        if not isinstance(public_net, dict):
            raise invalid("public_net", "must be an object")
        primaries: dict[str, dict[str, Any] | None] = {}
        for family in ("ipv4", "ipv6"):
            reference = public_net.get(family)
            if reference is None:
                primaries[family] = None
                continue
            item = self.state["primary_ips"].get(str(_int(reference, f"public_net.{family}")))
            if item is None:
                raise invalid(f"public_net.{family}", "primary IP not found")
            if item["type"] != family:
                raise HetznerError("primary_ip_version_mismatch", "the specified Primary IP has the wrong IP version")
            if item["assignee_id"] is not None:
                raise HetznerError("primary_ip_assigned", "the specified Primary IP is already assigned to a server")
            primaries[family] = item
        location_name = _string(body, "location", required=False)
        datacenter_name = _string(body, "datacenter", required=False)
        if location_name is None and datacenter_name is not None:
            dc = next((d for d in catalog.DATACENTERS if d["name"] == datacenter_name), None)
            if dc is None:
                raise invalid("datacenter", "datacenter not found")
            location_name = dc["location"]
        if location_name is None:
            given = [item["location"] for item in primaries.values() if item is not None]
            location_name = given[0] if given else catalog.LOCATIONS[0]["name"]
        if catalog.location(location_name) is None:
            raise invalid("location", "location not found")
        for item in primaries.values():
            if item is not None and item["location"] != location_name:
                raise HetznerError(
                    "primary_ip_datacenter_mismatch", "the specified Primary IP is in a different location"
                )
        labels = _labels(body.get("labels"))
        start = body.get("start_after_create")
        start = True if start is None else _bool(start, "start_after_create")
        enable = {
            family: (
                True
                if public_net.get(f"enable_{family}") is None
                else _bool(public_net[f"enable_{family}"], f"public_net.enable_{family}")
            )
            for family in ("ipv4", "ipv6")
        }
        server_id = self._new_id()
        server: dict[str, Any] = {
            "id": server_id,
            "name": name,
            "status": "running" if start else "off",
            "created": iso_time(),
            "server_type": server_type["name"],
            "image": image["id"],
            "location": location_name,
            "labels": labels,
            "protection": {"delete": False, "rebuild": False},
            "backup_window": None,
            "rescue_enabled": False,
            "ipv4": None,
            "ipv6": None,
            "firewalls": [],
            "user_data": user_data,
            "ssh_keys": keys,
        }
        self.state["servers"][str(server_id)] = server
        for family in ("ipv4", "ipv6"):
            chosen: dict[str, Any] | None = primaries[family]
            if chosen is None and enable[family]:
                chosen = self._new_primary_ip(f"primary_ip-{self._new_id()}", family, location_name, {}, True)
            if chosen is not None:
                self._assign(chosen, server)
        for firewall in firewalls:
            self._apply_firewall(firewall, server)
        action = self._action("create_server", [(server_id, "server")])
        next_actions = [self._action("start_server", [(server_id, "server")])] if start else []
        hook_view = self._server_hook_view(server)
        if self.on_server_created is not None:
            callback = self.on_server_created
            self.store.after_unlock(lambda: callback(hook_view))
        return Response(
            201,
            {
                "server": self._server_view(server),
                "action": action,
                "next_actions": next_actions,
                "root_password": None if keys else secrets.token_urlsafe(12),
            },
        )

    def _get_server(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"server": self._server_view(self._server(params["id"]))})

    def _update_server(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        server = self._server(params["id"])
        name = _string(body, "name", required=False)
        if name is not None:
            if not HOSTNAME.match(name):
                raise invalid("name", "must be a valid hostname")
            if self._name_taken("servers", name, server["id"]):
                raise HetznerError("uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})
            server["name"] = name
        if "labels" in body:
            server["labels"] = _labels(body["labels"])
        return Response(200, {"server": self._server_view(server)})

    def _delete_server(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        if server["protection"]["delete"]:
            raise HetznerError("protected", "server deletion is protected")
        hook_view = self._server_hook_view(server)
        for family in ("ipv4", "ipv6"):
            if server[family] is None:
                continue
            item = self.state["primary_ips"].get(str(server[family]))
            if item is None:
                continue
            if item["auto_delete"]:
                del self.state["primary_ips"][str(item["id"])]
            else:
                item["assignee_id"] = None
        for firewall_id in list(server["firewalls"]):
            firewall = self.state["firewalls"].get(str(firewall_id))
            if firewall is not None:
                self._remove_firewall(firewall, server)
        del self.state["servers"][str(server["id"])]
        action = self._action("delete_server", [(server["id"], "server")])
        if self.on_server_deleted is not None:
            callback = self.on_server_deleted
            self.store.after_unlock(lambda: callback(hook_view))
        return Response(200, {"action": action})

    def _server_action(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        body = self._body(request)
        name = params["action"]
        resources = [(server["id"], "server")]
        power = {
            "poweron": ("start_server", "running"),
            "poweroff": ("stop_server", "off"),
            "shutdown": ("shutdown_server", "off"),
            "reboot": ("reboot_server", None),
            "reset": ("reset_server", None),
        }
        if name in power:
            command, status = power[name]
            if status is not None:
                server["status"] = status
            return Response(201, {"action": self._action(command, resources)})
        if name == "change_protection":
            for key in ("delete", "rebuild"):
                if body.get(key) is not None:
                    server["protection"][key] = _bool(body[key], key)
            return Response(201, {"action": self._action("change_protection", resources)})
        if name == "rebuild":
            if server["protection"]["rebuild"]:
                raise HetznerError("protected", "server rebuild is protected")
            server_type = catalog.server_type(server["server_type"]) or {}
            image = catalog.image(body.get("image"), server_type.get("architecture"))
            if image is None:
                raise invalid("image", "image not found")
            server["image"] = image["id"]
            if body.get("user_data") is not None:
                server["user_data"] = str(body["user_data"])
            server["status"] = "running"
            return Response(201, {"action": self._action("rebuild_server", resources), "root_password": None})
        if name == "change_type":
            if server["status"] != "off":
                raise HetznerError("server_not_stopped", "the server is running, but needs to be powered off")
            new_type = catalog.server_type(body.get("server_type"))
            if new_type is None:
                raise invalid("server_type", "server type not found")
            current = catalog.server_type(server["server_type"]) or {}
            if new_type["architecture"] != current.get("architecture"):
                raise HetznerError("invalid_server_type", "the server type does not fit the server's architecture")
            if not body.get("upgrade_disk", False) and new_type["disk"] < current.get("disk", 0):
                raise HetznerError("invalid_server_type", "the server type's disk is smaller than the server's")
            server["server_type"] = new_type["name"]
            return Response(201, {"action": self._action("change_server_type", resources)})
        if name in ("enable_backup", "disable_backup"):
            server["backup_window"] = "22-02" if name == "enable_backup" else None
            return Response(201, {"action": self._action(name, resources)})
        if name in ("enable_rescue", "disable_rescue"):
            server["rescue_enabled"] = name == "enable_rescue"
            payload: dict[str, Any] = {"action": self._action(name, resources)}
            if name == "enable_rescue":
                payload["root_password"] = secrets.token_urlsafe(12)
            return Response(201, payload)
        if name == "change_dns_ptr":
            address = _string(body, "ip") or ""
            for family in ("ipv4", "ipv6"):
                item = self.state["primary_ips"].get(str(server[family])) if server[family] is not None else None
                if item is None:
                    continue
                try:
                    self._change_dns_ptr(item["dns_ptr"], body, item["ip"], family)
                except HetznerError:
                    continue
                return Response(201, {"action": self._action("change_dns_ptr", resources)})
            raise invalid("ip", f"{address} does not belong to this server")
        raise HetznerError("not_found", f"action '{name}' not found")

    # -------------------------------------------------------------------------------------------- zones

    def _zone(self, key: str) -> dict[str, Any]:
        zones = self.state["zones"]
        item = zones.get(key) if key.isdigit() else next((z for z in zones.values() if z["name"] == key), None)
        if item is None:
            raise HetznerError("not_found", f"zone with ID or name '{key}' not found")
        assert isinstance(item, dict)
        return item

    def _rrsets(self, zone: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        rrsets = self.state["rrsets"].setdefault(str(zone["id"]), {})
        assert isinstance(rrsets, dict)
        return rrsets

    def _zone_view(self, zone: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": zone["id"],
            "name": zone["name"],
            "created": zone["created"],
            "mode": zone["mode"],
            "primary_nameservers": copy.deepcopy(zone["primary_nameservers"]),
            "labels": dict(zone["labels"]),
            "protection": dict(zone["protection"]),
            "ttl": zone["ttl"],
            "status": "ok",
            "record_count": sum(len(rrset["records"]) for rrset in self._rrsets(zone).values()),
            "registrar": "other",
            "authoritative_nameservers": {
                "assigned": list(self.nameservers),
                "delegated": [],
                "delegation_last_check": None,
                "delegation_status": "unknown",
            },
        }

    def _soa(self, zone: dict[str, Any]) -> str:
        return f"{self.nameservers[0]} dns.hetzner.com. {zone['serial']} 86400 10800 3600000 3600"

    def _zone_touched(self, zone: dict[str, Any]) -> None:
        """Bump the SOA serial (as the API does on every change) and queue the zone hook."""
        today = int(datetime.now(UTC).strftime("%Y%m%d00"))
        zone["serial"] = max(int(zone["serial"]) + 1, today + 1)
        soa = self._rrsets(zone).get("@/SOA")
        if soa is not None:
            soa["records"] = [{"value": self._soa(zone), "comment": ""}]
        if self.on_zone_changed is not None:
            callback, name = self.on_zone_changed, zone["name"]
            rrsets = [copy.deepcopy(rrset) for rrset in self._rrsets(zone).values()]
            self.store.after_unlock(lambda: callback(name, rrsets))

    def _list_zones(self, request: Request, params: dict[str, str]) -> Response:
        items = self._filtered(request, list(self.state["zones"].values()), ("name", "mode"))
        return self._page(request, "zones", [self._zone_view(item) for item in items])

    def _create_zone(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        name = (_string(body, "name") or "").rstrip(".")
        if not ZONE_NAME.match(name):
            raise invalid("name", "invalid zone name (lowercase, IDNA/punycode, no trailing dot)")
        mode = _string(body, "mode") or ""
        if mode not in ("primary", "secondary"):
            raise invalid("mode", "must be one of: primary, secondary")
        if any(zone["name"] == name for zone in self.state["zones"].values()):
            raise HetznerError("uniqueness_error", "zone name is already used", {"fields": [{"name": "name"}]})
        ttl = _int(body["ttl"], "ttl") if body.get("ttl") is not None else 3600
        if not 60 <= ttl <= 2147483647:
            raise invalid("ttl", "must be between 60 and 2147483647")
        primaries = body.get("primary_nameservers") or []
        if mode == "secondary" and not primaries:
            raise invalid("primary_nameservers", "required for secondary zones")
        if mode == "primary" and primaries:
            raise invalid("primary_nameservers", "only allowed for secondary zones")
        zone_id = self._new_id()
        zone: dict[str, Any] = {
            "id": zone_id,
            "name": name,
            "created": iso_time(),
            "mode": mode,
            "ttl": ttl,
            "labels": _labels(body.get("labels")),
            "protection": {"delete": False},
            "primary_nameservers": [
                {
                    "address": p.get("address"),
                    "port": p.get("port", 53),
                    "tsig_algorithm": p.get("tsig_algorithm"),
                    "tsig_key": p.get("tsig_key"),
                }
                for p in primaries
                if isinstance(p, dict)
            ],
            "serial": int(datetime.now(UTC).strftime("%Y%m%d01")),
        }
        self.state["zones"][str(zone_id)] = zone
        rrsets = self._rrsets(zone)
        rrsets["@/SOA"] = self._new_rrset(zone, "@", "SOA", None, {}, [{"value": self._soa(zone), "comment": ""}])
        rrsets["@/NS"] = self._new_rrset(
            zone, "@", "NS", None, {}, [{"value": ns, "comment": ""} for ns in self.nameservers]
        )
        for index, entry in enumerate(body.get("rrsets") or []):
            if not isinstance(entry, dict):
                raise invalid(f"rrsets[{index}]", "must be an object")
            self._add_rrset(zone, entry)
        action = self._action("create_zone", [(zone_id, "zone")])
        self._zone_touched(zone)
        return Response(201, {"zone": self._zone_view(zone), "action": action})

    def _get_zone(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"zone": self._zone_view(self._zone(params["zone"]))})

    def _update_zone(self, request: Request, params: dict[str, str]) -> Response:
        body = self._body(request)
        zone = self._zone(params["zone"])
        if "labels" in body:
            zone["labels"] = _labels(body["labels"])
        return Response(200, {"zone": self._zone_view(zone)})

    def _delete_zone(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        if zone["protection"]["delete"]:
            raise HetznerError("protected", "zone deletion is protected")
        del self.state["zones"][str(zone["id"])]
        self.state["rrsets"].pop(str(zone["id"]), None)
        action = self._action("delete_zone", [(zone["id"], "zone")])
        if self.on_zone_changed is not None:
            callback, name = self.on_zone_changed, zone["name"]
            self.store.after_unlock(lambda: callback(name, []))
        return Response(200, {"action": action})

    def _export_zonefile(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        lines = [f"$ORIGIN {zone['name']}.", f"$TTL {zone['ttl']}"]
        for rrset in sorted(self._rrsets(zone).values(), key=lambda r: (r["name"] != "@", r["name"], r["type"])):
            ttl = "" if rrset["ttl"] is None else f" {rrset['ttl']}"
            for record in rrset["records"]:
                lines.append(f"{rrset['name']}{ttl} IN {rrset['type']} {record['value']}")
        return Response(200, {"zonefile": "\n".join(lines) + "\n"})

    def _zone_action(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        body = self._body(request)
        name = params["action"]
        if name == "change_protection":
            if body.get("delete") is not None:
                zone["protection"]["delete"] = _bool(body["delete"], "delete")
            return Response(201, {"action": self._action("change_protection", [(zone["id"], "zone")])})
        if name == "change_ttl":
            ttl = _int(body.get("ttl"), "ttl")
            if not 60 <= ttl <= 2147483647:
                raise invalid("ttl", "must be between 60 and 2147483647")
            zone["ttl"] = ttl
            self._zone_touched(zone)
            return Response(201, {"action": self._action("change_ttl", [(zone["id"], "zone")])})
        if name == "change_primary_nameservers":
            if zone["mode"] != "secondary":
                raise HetznerError("unsupported_error", "only secondary zones have primary nameservers")
            zone["primary_nameservers"] = copy.deepcopy(body.get("primary_nameservers") or [])
            return Response(201, {"action": self._action("change_primary_nameservers", [(zone["id"], "zone")])})
        raise HetznerError("not_found", f"action '{name}' not found")

    # ------------------------------------------------------------------------------------------- rrsets

    @staticmethod
    def _new_rrset(
        zone: Mapping[str, Any], name: str, kind: str, ttl: int | None, labels: dict[str, str], records: list[Any]
    ) -> dict[str, Any]:
        return {
            "id": f"{name}/{kind}",
            "name": name,
            "type": kind,
            "ttl": ttl,
            "labels": labels,
            "protection": {"change": False},
            "records": records,
            "zone": zone["id"],
        }

    @staticmethod
    def _records(kind: str, value: Any, field: str = "records") -> list[dict[str, str]]:
        if not isinstance(value, list) or not value:
            raise invalid(field, "at least one record is required")
        records: list[dict[str, str]] = []
        for index, record in enumerate(value):
            if not isinstance(record, dict) or not isinstance(record.get("value"), str) or not record["value"]:
                raise invalid(f"{field}[{index}].value", "Missing data for required field.")
            text, comment = record["value"], record.get("comment") or ""
            if not isinstance(comment, str):
                raise invalid(f"{field}[{index}].comment", "Not a valid string.")
            try:
                if kind == "A":
                    ipaddress.IPv4Address(text)
                elif kind == "AAAA":
                    ipaddress.IPv6Address(text)
            except ValueError:
                raise invalid(f"{field}[{index}].value", f"invalid {kind} record value {text!r}") from None
            if kind == "TXT" and not TXT_VALUE.match(text):
                raise invalid(
                    f"{field}[{index}].value",
                    "TXT record values must consist of one or more quoted strings of at most 255 characters",
                )
            if any(existing["value"] == text for existing in records):
                raise invalid(f"{field}[{index}].value", "duplicate record value")
            records.append({"value": text, "comment": comment})
        if kind == "CNAME" and len(records) > 1:
            raise invalid(field, "a CNAME RRSet holds exactly one record")
        return records

    def _rrset_key(self, zone: Mapping[str, Any], name: str, kind: str) -> str:
        key = f"{name}/{kind.upper()}"
        if key not in self._rrsets(zone):
            raise HetznerError("not_found", f"rrset with ID '{key}' not found")
        return key

    def _add_rrset(self, zone: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        name = _string(body, "name") or ""
        kind = _string(body, "type") or ""
        if not RRSET_NAME.match(name):
            raise invalid("name", "must be @ or a lowercase name relative to the zone, without a trailing dot")
        if kind not in RRSET_TYPES:
            raise invalid("type", f"must be one of: {', '.join(sorted(RRSET_TYPES))}")
        if kind == "SOA" or (kind == "NS" and name == "@"):
            raise invalid("type", "the zone's SOA and apex NS records are managed by the API")
        ttl = _int(body["ttl"], "ttl") if body.get("ttl") is not None else None
        if ttl is not None and not 60 <= ttl <= 2147483647:
            raise invalid("ttl", "must be between 60 and 2147483647")
        records = self._records(kind, body.get("records"))
        rrsets = self._rrsets(zone)
        if f"{name}/{kind}" in rrsets:
            raise HetznerError(
                "uniqueness_error", "an RRSet with this name and type already exists", {"fields": [{"name": "name"}]}
            )
        others = {rrset["type"] for rrset in rrsets.values() if rrset["name"] == name}
        if (kind == "CNAME" and others) or "CNAME" in others:
            raise invalid("type", "a CNAME RRSet cannot coexist with other RRSets of the same name")
        rrset = self._new_rrset(zone, name, kind, ttl, _labels(body.get("labels")), records)
        rrsets[rrset["id"]] = rrset
        return rrset

    def _list_rrsets(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        items = self._filtered(request, list(self._rrsets(zone).values()))
        types = set(request.args("type"))
        items = [copy.deepcopy(item) for item in items if not types or item["type"] in types]
        return self._page(request, "rrsets", items)

    def _create_rrset(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        if zone["mode"] != "primary":
            raise HetznerError("dns_zone_is_secondary_zone", "RRSets of a secondary zone come from its primary")
        rrset = self._add_rrset(zone, self._body(request))
        action = self._action("create_rrset", [(zone["id"], "zone")])
        self._zone_touched(zone)
        return Response(201, {"rrset": copy.deepcopy(rrset), "action": action})

    def _get_rrset(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        key = self._rrset_key(zone, params["name"], params["type"])
        return Response(200, {"rrset": copy.deepcopy(self._rrsets(zone)[key])})

    def _update_rrset(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        rrset = self._rrsets(zone)[self._rrset_key(zone, params["name"], params["type"])]
        body = self._body(request)
        if "labels" in body:
            rrset["labels"] = _labels(body["labels"])
        return Response(200, {"rrset": copy.deepcopy(rrset)})

    def _delete_rrset(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        key = self._rrset_key(zone, params["name"], params["type"])
        rrset = self._rrsets(zone)[key]
        if rrset["type"] == "SOA" or (rrset["type"] == "NS" and rrset["name"] == "@"):
            raise invalid("type", "the zone's SOA and apex NS records are managed by the API")
        if rrset["protection"]["change"]:
            raise HetznerError("protected", "RRSet is change protected")
        del self._rrsets(zone)[key]
        action = self._action("delete_rrset", [(zone["id"], "zone")])
        self._zone_touched(zone)
        return Response(200, {"action": action})

    def _rrset_action(self, request: Request, params: dict[str, str]) -> Response:
        zone = self._zone(params["zone"])
        rrsets = self._rrsets(zone)
        body = self._body(request)
        name = params["action"]
        resources = [(zone["id"], "zone")]
        if name == "add_records" and f"{params['name']}/{params['type'].upper()}" not in rrsets:
            # "For convenience, the RRSet will be automatically created if it doesn't exist" (API
            # reference, Zone RRSet Actions: Add Records to an RRSet): how lego's DNS-01 adds its TXT record.
            self._add_rrset(zone, {**body, "name": params["name"], "type": params["type"].upper(), "labels": {}})
            action = self._action("add_rrset_records", resources)
            self._zone_touched(zone)
            return Response(201, {"action": action})
        key = self._rrset_key(zone, params["name"], params["type"])
        rrset = rrsets[key]
        if name == "change_protection":
            if body.get("change") is not None:
                rrset["protection"]["change"] = _bool(body["change"], "change")
            return Response(201, {"action": self._action("change_rrset_protection", resources)})
        if rrset["protection"]["change"]:
            raise HetznerError("protected", "RRSet is change protected")
        if name == "change_ttl":
            if "ttl" not in body:
                raise invalid("ttl", "Missing data for required field.")
            ttl = None if body["ttl"] is None else _int(body["ttl"], "ttl")
            if ttl is not None and not 60 <= ttl <= 2147483647:
                raise invalid("ttl", "must be between 60 and 2147483647")
            rrset["ttl"] = ttl
            command = "change_rrset_ttl"
        elif name == "set_records":
            rrset["records"] = self._records(rrset["type"], body.get("records"))
            command = "set_rrset_records"
        elif name == "add_records":
            added = self._records(rrset["type"], body.get("records"))
            known = {record["value"] for record in rrset["records"]}
            merged = rrset["records"] + [record for record in added if record["value"] not in known]
            # "If set, and the RRSet being updated already has a TTL, the values must be the same."
            ttl = _int(body["ttl"], "ttl") if body.get("ttl") is not None else None
            if ttl is not None and rrset["ttl"] is not None and ttl != rrset["ttl"]:
                raise invalid("ttl", f"must be the RRSet's TTL ({rrset['ttl']})")
            rrset["records"] = self._records(rrset["type"], merged)
            if ttl is not None:
                rrset["ttl"] = ttl
            command = "add_rrset_records"
        elif name == "update_records":
            updates = self._records(rrset["type"], body.get("records"))
            for update in updates:
                match = next((r for r in rrset["records"] if r["value"] == update["value"]), None)
                if match is None:
                    raise invalid("records", f"record {update['value']!r} not found")
                match["comment"] = update["comment"]
            command = "update_rrset_records"
        elif name == "remove_records":
            removed = {record["value"] for record in self._records(rrset["type"], body.get("records"))}
            rrset["records"] = [record for record in rrset["records"] if record["value"] not in removed]
            if not rrset["records"]:
                del rrsets[key]
            command = "remove_rrset_records"
        else:
            raise HetznerError("not_found", f"action '{name}' not found")
        action = self._action(command, resources)
        self._zone_touched(zone)
        return Response(201, {"action": action})
