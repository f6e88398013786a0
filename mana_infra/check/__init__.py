"""`mana-infra check`: the operator's health view of both paths (the tunnel and the standby VPS).

Three parts: .cli (the arguments, the endpoints they and the stack's outputs give, the watch loop
and its alert), .core (``run_check(endpoints, options)``: every probe in parallel, the verdict as
a JSON-ready report: the public path's state, the way to fail over that fits, the budget) with its
probes in .probes, and .view (the table).
"""

from .core import JSON_SCHEMA, Endpoints, Options, run_check

__all__ = ["JSON_SCHEMA", "Endpoints", "Options", "run_check"]
