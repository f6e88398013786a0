"""DNS zones and their RRSets."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..server import Request, Response, iso_time
from .base import (
    RRSET_NAME,
    RRSET_TYPES,
    TXT_VALUE,
    ZONE_NAME,
    HetznerBase,
    HetznerError,
    Route,
    _bool,
    _int,
    _labels,
    _string,
    invalid,
)


class Zones(HetznerBase):
    """DNS zones and their RRSets."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/zones", "_list_zones"),
        ("POST", "/zones", "_create_zone"),
        ("GET", "/zones/{zone}", "_get_zone"),
        ("PUT", "/zones/{zone}", "_update_zone"),
        ("DELETE", "/zones/{zone}", "_delete_zone"),
        ("GET", "/zones/{zone}/zonefile", "_export_zonefile"),
        ("GET", "/zones/{zone}/actions", lambda cloud: cloud._resource_actions("zone")),
        ("POST", "/zones/{zone}/actions/{action}", "_zone_action"),
        ("GET", "/zones/{zone}/rrsets", "_list_rrsets"),
        ("POST", "/zones/{zone}/rrsets", "_create_rrset"),
        ("GET", "/zones/{zone}/rrsets/{name}/{type}", "_get_rrset"),
        ("PUT", "/zones/{zone}/rrsets/{name}/{type}", "_update_rrset"),
        ("DELETE", "/zones/{zone}/rrsets/{name}/{type}", "_delete_rrset"),
        ("POST", "/zones/{zone}/rrsets/{name}/{type}/actions/{action}", "_rrset_action"),
    )

    # -------------------------------------------------------------------------------------------- zones

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
        if name == zone["name"] or name.endswith("." + zone["name"]):
            # Hetzner's API reference (Zone RRSets, name): "must not end with a dot or the Zone name".
            raise invalid("name", "must not end with a dot or the Zone name")
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
