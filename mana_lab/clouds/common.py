"""Small pieces both stand-ins use: a regex router and the state file with its lock."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .server import Hook, Request, Response, load_json, run_hooks, save_json_atomically

Handler = Callable[[Request, dict[str, str]], Response]


class Router:
    """Routes (method, path) to a handler; path patterns use `{name}` for one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"
        self._routes.append((method, re.compile(regex), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | bool | None:
        """(handler, path parameters); False when the path exists for other methods; None when unknown."""
        path_known = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method:
                return handler, found.groupdict()
            path_known = True
        return False if path_known else None


class StateStore:
    """A JSON document guarded by one lock, saved atomically after every mutation (when a path is given)
    and reloaded from that path on start: stopping and restarting the stand-in loses nothing."""

    def __init__(self, path: Path | None, initial: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self.lock = threading.RLock()
        loaded = load_json(path)
        self.data: dict[str, Any] = loaded if isinstance(loaded, dict) else initial()
        self._hooks: list[Hook] = []

    def save(self) -> None:
        if self.path is not None:
            save_json_atomically(self.path, self.data)

    def after_unlock(self, hook: Hook) -> None:
        """Queue a callback to run once the current request released the lock."""
        self._hooks.append(hook)

    def take_hooks(self) -> list[Hook]:
        hooks, self._hooks = self._hooks, []
        return hooks


class ApiError(Exception):
    """An error the API answers with, in its own shape (``response``)."""

    def response(self) -> Response:
        raise NotImplementedError


def run_locked(store: StateStore, work: Callable[[], Response], *, save: bool) -> Response:
    """Run `work` under the store's lock (an ApiError it raises is its answer), save the state if asked
    (after any change), then run the hooks it queued, outside the lock."""
    with store.lock:
        try:
            try:
                response = work()
            except ApiError as error:
                response = error.response()
            if save:
                store.save()
        finally:
            hooks = store.take_hooks()
    run_hooks(hooks)
    return response
