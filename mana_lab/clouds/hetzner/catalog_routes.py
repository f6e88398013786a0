"""Locations, datacenters, server types and images (read-only, from hetzner_catalog)."""

from __future__ import annotations

import copy
from typing import ClassVar

from .. import hetzner_catalog as catalog
from ..server import Request, Response
from .base import HetznerBase, Route, not_found


class Catalog(HetznerBase):
    """Locations, datacenters, server types and images (read-only, from hetzner_catalog)."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/actions", "_list_actions"),
        ("GET", "/actions/{action_id}", "_get_action"),
        ("GET", "/locations", "_list_locations"),
        ("GET", "/locations/{id}", "_get_location"),
        ("GET", "/datacenters", "_list_datacenters"),
        ("GET", "/datacenters/{id}", "_get_datacenter"),
        ("GET", "/server_types", "_list_server_types"),
        ("GET", "/server_types/{id}", "_get_server_type"),
        ("GET", "/images", "_list_images"),
        ("GET", "/images/{id}", "_get_image"),
    )

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
