"""Where the commands print: a console as wide as the terminal, or, in a pipe, as COLUMNS says (else
a width that reads well in a log), never wider than what the operator can see."""

from __future__ import annotations

import os
import sys
from typing import Any

PIPE_WIDTH = 100


def console_for(stderr: bool = False) -> Any:
    """A rich console on stdout (or stderr); markup off by default is the callers' to choose."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) >= 40 else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False)


def count(number: int, noun: str) -> str:
    """`1 host`, `2 hosts`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
