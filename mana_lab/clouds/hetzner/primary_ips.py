"""Primary IPs: allocated from the pools, assigned to servers, reverse DNS."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar

from .. import hetzner_catalog as catalog
from ..server import Request, Response, iso_time
from .base import (
    HetznerBase,
    HetznerError,
    Route,
    _address_pool,
    _bool,
    _int,
    _labels,
    _network_pool,
    _reverse_ptr,
    _string,
    invalid,
    not_found,
)


class PrimaryIps(HetznerBase):
    """Primary IPs: allocated from the pools, assigned to servers, reverse DNS."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/primary_ips", "_list_primary_ips"),
        ("POST", "/primary_ips", "_create_primary_ip"),
        ("GET", "/primary_ips/{id}", "_get_primary_ip"),
        ("PUT", "/primary_ips/{id}", "_update_primary_ip"),
        ("DELETE", "/primary_ips/{id}", "_delete_primary_ip"),
        ("GET", "/primary_ips/{id}/actions", lambda cloud: cloud._resource_actions("primary_ip")),
        ("POST", "/primary_ips/{id}/actions/{action}", "_primary_ip_action"),
    )

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
                holder = self.state["servers"].get(str(item["assignee_id"]))
                if holder is not None:
                    if holder["status"] != "off":
                        raise HetznerError("server_not_stopped", "the server is running, but needs to be powered off")
                    holder[item["type"]] = None
                    resources.append((holder["id"], "server"))
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
