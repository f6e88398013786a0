"""Writes files inside a lab machine (run there, by the machine's python): a JSON list on stdin of
{"path", "content", "permissions" (octal text, default 0644), "owner" ("user:group", default root:root)},
as cloud-init's write_files does: parents created, the mode set before the content is in place."""

from __future__ import annotations

import json
import os
import shutil
import sys


def main() -> None:
    for entry in json.load(sys.stdin):
        path = entry["path"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = int(str(entry.get("permissions") or "0644"), 8)
        temporary = f"{path}.lab-tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(entry.get("content") or "")
        os.chmod(temporary, mode)
        user, _, group = str(entry.get("owner") or "root:root").partition(":")
        shutil.chown(temporary, user or "root", group or "root")
        os.replace(temporary, path)


if __name__ == "__main__":
    main()
