"""What the Hetzner stand-in offers without being asked: locations, datacenters, server types, images.

Names, locations and shapes follow the public API; the numeric ids of server types and images are the
stand-in's own (the real ones are not needed by any client: they look types and images up by name).
"""

from __future__ import annotations

from typing import Any

LOCATIONS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "fsn1",
        "description": "Falkenstein DC Park 1",
        "country": "DE",
        "city": "Falkenstein",
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central",
    },
    {
        "id": 2,
        "name": "nbg1",
        "description": "Nuremberg DC Park 1",
        "country": "DE",
        "city": "Nuremberg",
        "latitude": 49.452102,
        "longitude": 11.076665,
        "network_zone": "eu-central",
    },
    {
        "id": 3,
        "name": "hel1",
        "description": "Helsinki DC Park 1",
        "country": "FI",
        "city": "Helsinki",
        "latitude": 60.169855,
        "longitude": 24.938379,
        "network_zone": "eu-central",
    },
]

DATACENTERS: list[dict[str, Any]] = [
    {"id": 4, "name": "fsn1-dc14", "description": "Falkenstein 1 virtual DC 14", "location": "fsn1"},
    {"id": 2, "name": "nbg1-dc3", "description": "Nuremberg 1 virtual DC 3", "location": "nbg1"},
    {"id": 3, "name": "hel1-dc2", "description": "Helsinki 1 virtual DC 2", "location": "hel1"},
]


def _server_type(
    type_id: int, name: str, cores: int, memory: float, disk: int, architecture: str, cpu_type: str, category: str
) -> dict[str, Any]:
    return {
        "id": type_id,
        "name": name,
        "description": name.upper(),
        "category": category,
        "cores": cores,
        "memory": memory,
        "disk": disk,
        "deprecated": False,
        "deprecation": None,
        "prices": [
            {
                "location": location["name"],
                "price_hourly": {"net": "0.0060000000", "gross": "0.0071400000000000"},
                "price_monthly": {"net": "3.4900000000", "gross": "4.1531000000000000"},
                "included_traffic": 21990232555520,
                "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000000000"},
            }
            for location in LOCATIONS
        ],
        "storage_type": "local",
        "cpu_type": cpu_type,
        "architecture": architecture,
        "locations": [
            {
                "id": location["id"],
                "name": location["name"],
                "deprecation": None,
                "available": True,
                "recommended": True,
            }
            for location in LOCATIONS
        ],
    }


SERVER_TYPES: list[dict[str, Any]] = [
    _server_type(114, "cx23", 2, 4.0, 40, "x86", "shared", "cost_optimized"),
    _server_type(115, "cx33", 4, 8.0, 80, "x86", "shared", "cost_optimized"),
    _server_type(116, "cx43", 8, 16.0, 160, "x86", "shared", "cost_optimized"),
    _server_type(108, "cpx22", 2, 4.0, 80, "x86", "shared", "regular_purpose"),
    _server_type(45, "cax11", 2, 4.0, 40, "arm", "shared", "cost_optimized"),
    _server_type(96, "ccx13", 2, 8.0, 80, "x86", "dedicated", "general_purpose"),
]


def _image(
    image_id: int, flavor: str, version: str, description: str, architecture: str, created: str
) -> dict[str, Any]:
    return {
        "id": image_id,
        "type": "system",
        "status": "available",
        "name": f"{flavor}-{version}",
        "description": description,
        "image_size": None,
        "disk_size": 5,
        "created": created,
        "created_from": None,
        "bound_to": None,
        "os_flavor": flavor,
        "os_version": version,
        "rapid_deploy": True,
        "protection": {"delete": False},
        "deprecated": None,
        "deleted": None,
        "labels": {},
        "architecture": architecture,
    }


IMAGES: list[dict[str, Any]] = [
    _image(67794396, "ubuntu", "22.04", "Ubuntu 22.04", "x86", "2022-04-21T13:32:38+00:00"),
    _image(103908070, "ubuntu", "22.04", "Ubuntu 22.04", "arm", "2023-01-11T10:00:00+00:00"),
    _image(161547269, "ubuntu", "24.04", "Ubuntu 24.04", "x86", "2024-04-25T12:00:00+00:00"),
    _image(161547270, "ubuntu", "24.04", "Ubuntu 24.04", "arm", "2024-04-25T12:00:00+00:00"),
    _image(114690387, "debian", "12", "Debian 12", "x86", "2023-06-13T06:00:02+00:00"),
    _image(114690389, "debian", "12", "Debian 12", "arm", "2023-06-13T06:00:02+00:00"),
    _image(310557660, "debian", "13", "Debian 13", "x86", "2025-08-12T06:00:00+00:00"),
    _image(310557661, "debian", "13", "Debian 13", "arm", "2025-08-12T06:00:00+00:00"),
]


def location(name: str) -> dict[str, Any] | None:
    return next((dict(item) for item in LOCATIONS if item["name"] == name), None)


def datacenter_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["id"],
        "name": entry["name"],
        "description": entry["description"],
        "location": location(entry["location"]),
        "server_types": {
            "supported": [item["id"] for item in SERVER_TYPES],
            "available": [item["id"] for item in SERVER_TYPES],
            "available_for_migration": [item["id"] for item in SERVER_TYPES],
        },
    }


def datacenter_for(location_name: str) -> dict[str, Any] | None:
    entry = next((item for item in DATACENTERS if item["location"] == location_name), None)
    return datacenter_view(entry) if entry else None


def server_type(id_or_name: Any) -> dict[str, Any] | None:
    for item in SERVER_TYPES:
        if str(id_or_name) in (str(item["id"]), item["name"]):
            return item
    return None


def image(id_or_name: Any, architecture: str | None = None) -> dict[str, Any] | None:
    for item in IMAGES:
        if str(id_or_name) == str(item["id"]):
            return item
        if str(id_or_name) == item["name"] and (architecture is None or item["architecture"] == architecture):
            return item
    return None
