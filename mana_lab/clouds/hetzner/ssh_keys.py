"""SSH keys."""

from __future__ import annotations

from typing import Any, ClassVar

from ..server import Request, Response, iso_time
from .base import HetznerBase, HetznerError, Route, _int, _labels, _string, invalid, not_found, ssh_fingerprint


class SshKeys(HetznerBase):
    """SSH keys."""

    ROUTES: ClassVar[tuple[Route, ...]] = (
        ("GET", "/ssh_keys", "_list_ssh_keys"),
        ("POST", "/ssh_keys", "_create_ssh_key"),
        ("GET", "/ssh_keys/{id}", "_get_ssh_key"),
        ("PUT", "/ssh_keys/{id}", "_update_ssh_key"),
        ("DELETE", "/ssh_keys/{id}", "_delete_ssh_key"),
    )

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
