"""Reading the files an operator hands us, one way: text that must be UTF-8, YAML that must not say a
key twice, JSON. Every failure is bad input naming the file, where in it, and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Problem

LINE_KEY = "__line__"
"""Where a mapping starts (1-based), recorded by load_yaml(lines=True) for messages that point into the file."""


def read_text(path: Path | str, what: str, fix: str) -> str:
    """The file's text. Unreadable or not UTF-8: an InputError naming the file (and the first bad byte)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read {what}: {exc.strerror or exc}", fix)]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            [
                Problem(
                    str(path),
                    f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason})",
                    "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.new`)",
                )
            ]
        ) from None


class _DuplicateKeyError(yaml.MarkedYAMLError):
    """A key said twice in one mapping."""


class _StrictLoader(yaml.SafeLoader):
    """Refuses a key said twice in one mapping (YAML would silently keep the last) and can record the
    line of every mapping."""

    record_lines = False

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKeyError(
                    problem=f"the key {key!r} is given twice (lines {seen[key]} and {line}): YAML keeps only the last",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = line
        mapping = super().construct_mapping(node, deep=deep)
        if self.record_lines:
            mapping[LINE_KEY] = node.start_mark.line + 1
        return mapping


class _LineLoader(_StrictLoader):
    record_lines = True


def load_yaml(text: str, source: str, *, lines: bool = False) -> Any:
    """Parse YAML; a syntax error or a duplicate key is an InputError pointing at the line.
    lines: every mapping gets LINE_KEY, the line it starts on."""
    try:
        return yaml.load(text, Loader=_LineLoader if lines else _StrictLoader)
    except _DuplicateKeyError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise InputError([Problem(where, str(exc.problem), "keep the one you mean and delete the other")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise InputError(
            [Problem(where, f"YAML syntax error: {exc.problem}", "fix the YAML syntax at that line")]
        ) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(source, f"YAML syntax error: {exc}", "fix the file's syntax")]) from None


def read_yaml_mapping(path: Path, what: str, fix: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty mapping)."""
    document = load_yaml(read_text(path, what, fix), str(path))
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError([Problem(str(path), f"is not a YAML mapping ({what})", fix)])
    return document


def read_json(path: Path | str, what: str, fix: str) -> Any:
    """A JSON file; unreadable, not UTF-8 or not JSON: an InputError naming the file and where."""
    text = read_text(path, what, fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError([Problem(str(path), f"is not JSON: {exc.msg} at {where}", fix)]) from None
