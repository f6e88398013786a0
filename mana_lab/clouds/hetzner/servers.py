"""Servers: created on primary IPs behind firewalls, booted by the lab; their power and other actions."""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .. import hetzner_catalog as catalog
from ..common import run_locked
from ..server import Request, Response, iso_time
from .base import HOSTNAME, USER_DATA_LIMIT, HetznerError, Item, Route, _bool, _int, _labels, _string, invalid
from .catalog_routes import Catalog
from .firewalls import Firewalls
from .primary_ips import PrimaryIps
from .ssh_keys import SshKeys

ServerAction = Callable[[str, Item, dict[str, Any], list[tuple[int, str]]], Response]


class Servers(PrimaryIps, Firewalls, SshKeys, Catalog):
    """Servers: created on primary IPs behind firewalls, booted by the lab; their power and other actions."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/servers", "_list_servers"),
        ("POST", "/servers", "_create_server"),
        ("GET", "/servers/{id}", "_get_server"),
        ("PUT", "/servers/{id}", "_update_server"),
        ("DELETE", "/servers/{id}", "_delete_server"),
        ("GET", "/servers/{id}/actions", lambda cloud: cloud._resource_actions("server")),
        ("POST", "/servers/{id}/actions/{action}", "_server_action"),
    )

    # ------------------------------------------------------------------------------------------ servers

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
            # A new server initializes until its start action is done (with action_polls, as the API
            # shows it: GET /servers/{id} says "initializing", then "running").
            "status": ("initializing" if self.action_polls > 0 else "running") if start else "off",
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

    # Power actions: (the action's command, the status it leaves; None: as it was).
    POWER: ClassVar[dict[str, tuple[str, str | None]]] = {
        "poweron": ("start_server", "running"),
        "poweroff": ("stop_server", "off"),
        "shutdown": ("shutdown_server", "off"),
        "reboot": ("reboot_server", None),
        "reset": ("reset_server", None),
    }
    # Every other action, by name: a method (server, body, resources) -> Response.
    ACTIONS: ClassVar[dict[str, str]] = {
        "change_protection": "_change_server_protection",
        "rebuild": "_rebuild_server",
        "change_type": "_change_server_type",
        "enable_backup": "_set_backup",
        "disable_backup": "_set_backup",
        "enable_rescue": "_set_rescue",
        "disable_rescue": "_set_rescue",
        "change_dns_ptr": "_change_server_dns_ptr",
    }

    def _action_finished(self, action: dict[str, Any]) -> None:
        super()._action_finished(action)
        if action["command"] == "start_server":
            for resource in action["resources"]:
                server = self.state["servers"].get(str(resource["id"]))
                if server is not None and server["status"] == "initializing":
                    server["status"] = "running"

    def _server_action(self, request: Request, params: dict[str, str]) -> Response:
        server = self._server(params["id"])
        body = self._body(request)
        name = params["action"]
        resources = [(server["id"], "server")]
        if name in self.POWER:
            command, status = self.POWER[name]
            if status is not None:
                server["status"] = status
            return Response(201, {"action": self._action(command, resources)})
        if name not in self.ACTIONS:
            raise HetznerError("not_found", f"action '{name}' not found")
        act: ServerAction = getattr(self, self.ACTIONS[name])
        return act(name, server, body, resources)

    def _change_server_protection(
        self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]
    ) -> Response:
        for key in ("delete", "rebuild"):
            if body.get(key) is not None:
                server["protection"][key] = _bool(body[key], key)
        return Response(201, {"action": self._action("change_protection", resources)})

    def _rebuild_server(
        self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]
    ) -> Response:
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

    def _change_server_type(
        self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]
    ) -> Response:
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

    def _set_backup(self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]) -> Response:
        server["backup_window"] = "22-02" if name == "enable_backup" else None
        return Response(201, {"action": self._action(name, resources)})

    def _set_rescue(self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]) -> Response:
        server["rescue_enabled"] = name == "enable_rescue"
        payload: dict[str, Any] = {"action": self._action(name, resources)}
        if name == "enable_rescue":
            payload["root_password"] = secrets.token_urlsafe(12)
        return Response(201, payload)

    def _change_server_dns_ptr(
        self, name: str, server: Item, body: dict[str, Any], resources: list[tuple[int, str]]
    ) -> Response:
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
