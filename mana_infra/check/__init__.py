"""`mana-infra check`: the operator's health view of both paths (the tunnel and the standby VPS).

Its parts: .cli (the arguments, the endpoints they and the stack's outputs give, the watch loop and
its alert), .core (``run_check(endpoints, options)``: every probe in parallel, each result a typed
check; the probes themselves in .probes), .assess (what the checks add up to), .decision (the verdict:
the way to fail over that fits, whether the standby is ready — what every caller asks), .report (the
types, and the JSON both ways) with .schema (the JSON's schema), and .view (the table).

Importing it loads no pulumi module: the off-site watch box runs it alone.
"""

from .core import Endpoints, Options, run_check
from .report import Report
from .schema import JSON_SCHEMA

__all__ = ["JSON_SCHEMA", "Endpoints", "Options", "Report", "run_check"]
