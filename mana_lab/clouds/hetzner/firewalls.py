"""Firewalls: rules, and the servers they apply to (the lab enforces them)."""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ..server import Request, Response, iso_time
from .base import FIREWALL_PROTOCOLS, HetznerBase, HetznerError, Route, _int, _labels, _string, invalid, not_found


class Firewalls(HetznerBase):
    """Firewalls: rules, and the servers they apply to (the lab enforces them)."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/firewalls", "_list_firewalls"),
        ("POST", "/firewalls", "_create_firewall"),
        ("GET", "/firewalls/{id}", "_get_firewall"),
        ("PUT", "/firewalls/{id}", "_update_firewall"),
        ("DELETE", "/firewalls/{id}", "_delete_firewall"),
        ("GET", "/firewalls/{id}/actions", lambda cloud: cloud._resource_actions("firewall")),
        ("POST", "/firewalls/{id}/actions/{action}", "_firewall_action"),
    )

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
