"""The Hetzner stand-in's shared part: state, authentication, routes, actions, pages (see __init__)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict, cast

from ..common import ApiError, Handler, Router, StateStore, run_locked
from ..server import InvalidBodyError, Request, Response, iso_time

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


Route = tuple[str, str, "str | Callable[[Any], Handler]"]
Item = dict[str, Any]  # one resource as the API shows it (JSON)
Collection = Literal["ssh_keys", "primary_ips", "firewalls", "servers", "zones"]


class HetznerState(TypedDict):
    """The stand-in's whole state: a JSON document (see StateStore), keyed by id as text."""

    version: int
    next_id: int
    next_action_id: int
    ssh_keys: dict[str, Item]
    primary_ips: dict[str, Item]
    firewalls: dict[str, Item]
    servers: dict[str, Item]
    zones: dict[str, Item]
    rrsets: dict[str, dict[str, Item]]  # zone id -> "name/type" -> RRSet
    actions: dict[str, Item]


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


class HetznerBase:
    """What every resource family shares: the state (typed, saved after every change to `state_path`),
    authentication, the route table each family adds its ROUTES to, actions, pages and filters."""

    name = "hetzner"
    # The actions' own endpoints; each family's class adds its routes (method, path, handler name or
    # a function of the cloud that makes the handler). The actions come first: /{resource}/actions is
    # not a resource id.
    ROUTES: ClassVar[tuple[Route, ...]] = (
        *(
            route
            for resource in ("ssh_keys", "primary_ips", "firewalls", "servers", "zones")
            for route in (
                ("GET", f"/{resource}/actions", "_list_actions"),
                ("GET", f"/{resource}/actions/{{action_id}}", "_get_action"),
            )
        ),
        ("GET", "/actions", "_list_actions"),
        ("GET", "/actions/{action_id}", "_get_action"),
    )

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
    def state(self) -> HetznerState:
        return cast(HetznerState, self.store.data)

    def _routes(self) -> None:
        """Every family's routes, the base's first (see ROUTES)."""
        for cls in reversed(type(self).__mro__):
            for method, pattern, handler in cls.__dict__.get("ROUTES", ()):
                self.router.add(method, pattern, getattr(self, handler) if isinstance(handler, str) else handler(self))

    # ----------------------------------------------------------------------------------------- plumbing

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
            if left == 1:
                self._action_finished(action)
        return {**action, "status": "running", "progress": 0, "finished": None}

    def _action_finished(self, action: dict[str, Any]) -> None:
        """What the API's state shows once an action is done (a family's class overrides it)."""

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

    # ------------------------------------------------------------------------------ lookups all share

    def _server(self, key: Any) -> dict[str, Any]:
        if key is None:
            raise invalid("assignee_id", "Missing data for required field.")
        item = self.state["servers"].get(str(_int(key, "id")))
        if item is None:
            raise not_found("server", key)
        assert isinstance(item, dict)
        return item

    def _zone(self, key: str) -> dict[str, Any]:
        zones = self.state["zones"]
        item = zones.get(key) if key.isdigit() else next((z for z in zones.values() if z["name"] == key), None)
        if item is None:
            raise HetznerError("not_found", f"zone with ID or name '{key}' not found")
        assert isinstance(item, dict)
        return item

    def _name_taken(self, collection: Collection, name: str, except_id: Any = None) -> bool:
        items: dict[str, Item] = self.state[collection]
        return any(item["name"] == name and item["id"] != except_id for item in items.values())
