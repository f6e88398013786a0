"""The JSON schema of check's report (`mana-infra check --json`), beside the types it describes.

Its enums are the types' own (.report), the diagnosis's cases the decision table's (.decision); a test
checks that every field the types write is required here and every report the tests make validates.
"""

from __future__ import annotations

from typing import Any

from ..model import MODES
from .core import CERTIFICATE_OUTPUTS
from .decision import TABLE, NoWay
from .report import REPORT_VERSION, AnsweredBy, ApiState, DnsPath, Failure, PathState, Subject, TunnelState, Way

_NULLABLE_STRING = {"type": ["string", "null"]}
_KINDS = [kind.value for kind in Failure]
# The cells where no way through the VPS helps, answered by the home's direct way (decision.DIRECT).
HOME_CASES = [f"{p}/{s}/home" for (p, s), outcome in TABLE.items() if isinstance(outcome, NoWay)]

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mana-infra check report",
    "type": "object",
    "required": [
        "version",
        "checked_at",
        "seconds",
        "mode",
        "stack",
        "endpoints",
        "hosts",
        "vps",
        "cloudflare_api",
        "certificates",
        "home",
        "tunnel_probe",
        "paths",
        "public_path",
        "diagnosis",
        "budget",
        "problems",
        "notes",
        "healthy",
        "exit_code",
        "tunnel_down",
        "findings",
    ],
    "properties": {
        "version": {"const": REPORT_VERSION},
        "checked_at": {"type": "string"},
        "seconds": {"type": "number"},
        "mode": {"enum": list(MODES)},
        "stack": _NULLABLE_STRING,
        "endpoints": {
            "type": "object",
            "required": [
                "origin_name",
                "origin_ips",
                "tunnel_target",
                "tunnel_addresses",
                "health_url",
                "https_port",
                "resolvers",
            ],
        },
        "hosts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["host", "name", "port", "health", "dns", "live", "standby"],
                "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer"},
                    "dns": {
                        "type": "object",
                        "required": [
                            "path",
                            "expected",
                            "detail",
                            "chain",
                            "addresses",
                            "ttl",
                            "error",
                            "failure",
                            "ms",
                        ],
                        "properties": {
                            "path": {"enum": [p.value for p in DnsPath]},
                            "expected": {"enum": ["tunnel", "origin", "home"]},
                            "chain": {"type": "array", "items": {"type": "string"}},
                            "addresses": {"type": "array", "items": {"type": "string"}},
                            "ttl": {"type": ["integer", "null"]},
                            "failure": {"enum": [*_KINDS, None]},
                        },
                    },
                    "live": {"$ref": "#/$defs/https"},
                    "standby": {
                        "allOf": [
                            {"$ref": "#/$defs/https"},
                            {
                                "type": "object",
                                "required": ["kind", "proven", "unproven", "answered_by"],
                                "properties": {
                                    "kind": {"const": "https-via-vps"},
                                    "answered_by": {"enum": [a.value for a in AnsweredBy]},
                                },
                            },
                        ]
                    },
                    "mirror": {
                        "type": "object",
                        "required": ["path", "detail", "ok"],
                        "properties": {"ok": {"type": "boolean"}},
                    },
                    "direct": {"$ref": "#/$defs/https"},
                },
            },
        },
        "vps": {
            "type": "object",
            "required": ["health", "wireguard", "ssh"],
            "properties": {
                "health": {
                    "allOf": [
                        {"$ref": "#/$defs/https"},
                        {"type": "object", "required": ["url", "body", "served_mode", "mode_matches"]},
                    ]
                },
                "wireguard": {
                    "type": "object",
                    "required": [
                        "checked",
                        "ok",
                        "interface",
                        "latest_handshake",
                        "age_seconds",
                        "max_age_seconds",
                        "error",
                    ],
                },
                "ssh": {
                    "type": "object",
                    "required": ["checked", "ok", "error", "via", "seconds", "why_not_checked"],
                    "properties": {"why_not_checked": _NULLABLE_STRING},
                },
            },
        },
        "cloudflare_api": {
            "type": "object",
            "required": ["checked", "ok", "state", "error", "why_not_checked", "url", "seconds"],
            "properties": {
                "checked": {"type": "boolean"},
                "ok": {"type": ["boolean", "null"]},
                "state": {"enum": [s.value for s in ApiState]},
                "error": _NULLABLE_STRING,
                "why_not_checked": _NULLABLE_STRING,
            },
        },
        "tunnel_probe": {
            "type": "object",
            "required": ["host", "state", "status", "error"],
            "properties": {
                "host": _NULLABLE_STRING,
                "state": {"enum": [s.value for s in TunnelState]},
                "status": {"type": ["integer", "null"]},
                "error": _NULLABLE_STRING,
            },
        },
        # The home's name at each of its addresses (Plan C); empty when the stack has none.
        "home": {
            "type": "array",
            "items": {
                "allOf": [
                    {"$ref": "#/$defs/https"},
                    {
                        "type": "object",
                        "required": ["family", "url", "body", "serving"],
                        "properties": {"family": {"enum": [4, 6]}, "serving": {"type": "boolean"}},
                    },
                ]
            },
        },
        "certificates": {
            "type": "object",
            "propertyNames": {"enum": list(CERTIFICATE_OUTPUTS)},
            "additionalProperties": {
                "type": "object",
                "required": ["output", "what", "expires_on", "days_left", "expired", "expiring"],
                "properties": {
                    "output": {"enum": [output for output, _ in CERTIFICATE_OUTPUTS.values()]},
                    "days_left": {"type": "number"},
                    "expired": {"type": "boolean"},
                    "expiring": {"type": "boolean"},
                },
            },
        },
        "paths": {
            "type": "object",
            "required": ["dns", "live_tunnel", "live_origin", "live_other", "standby", "vps", "wireguard"],
            "additionalProperties": {
                "type": "object",
                "required": ["state"],
                "properties": {"state": {"enum": [s.value for s in PathState]}},
            },
        },
        "public_path": {
            "type": "object",
            "required": ["state", "total", "failed", "failures"],
            "properties": {
                "state": {"enum": ["up", "degraded", "down", "unused"]},
                "failures": {
                    "type": "object",
                    "propertyNames": {"enum": _KINDS},
                    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
            },
        },
        "diagnosis": {
            "type": "object",
            "required": ["way", "why", "command", "case"],
            "properties": {
                "way": {"enum": [*(w.value for w in Way), None]},
                "why": {"type": "string"},
                "command": _NULLABLE_STRING,
                # decision.TABLE's row/column when the public path fails in tunnel mode.
                # With /home: no way through the VPS helped, the home's direct way does.
                "case": {"enum": [*(f"{p}/{s}" for p, s in TABLE), *HOME_CASES, None]},
            },
        },
        "budget": {
            "type": "object",
            "required": ["edge_seconds", "dns_seconds", "acme", "text"],
            "properties": {
                "edge_seconds": {"type": "integer"},
                "dns_seconds": {"type": ["integer", "null"]},
                "acme": {"oneOf": [{"const": "none"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
                "text": {"type": "object", "required": ["edge", "dns", "certificates"]},
            },
        },
        "problems": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "healthy": {"type": "boolean"},
        "exit_code": {"enum": [0, 1]},
        "tunnel_down": {"type": "boolean"},
        # The problems again, each with what it is about (Subject): what a program asks instead of the words.
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["subject", "text"],
                "properties": {"subject": {"enum": [s.value for s in Subject]}, "text": {"type": "string"}},
            },
        },
    },
    "$defs": {
        "https": {
            "type": "object",
            "required": [
                "path",
                "ok",
                "address",
                "status",
                "latency_ms",
                "cert_days_left",
                "cert_trusted",
                "cert_pinned",
                "cert_expiring",
                "error",
                "failure",
                "refused",
            ],
            "properties": {
                "ok": {"type": "boolean"},
                "refused": _NULLABLE_STRING,
                "status": {"type": ["integer", "null"]},
                "latency_ms": {"type": ["number", "null"]},
                "cert_days_left": {"type": ["number", "null"]},
                "cert_trusted": {"type": ["boolean", "null"]},
                # Trusted by the stack's pinned Origin CA certificate (the standby path through the edge).
                "cert_pinned": {"type": "boolean"},
                "error": _NULLABLE_STRING,
                "failure": {"enum": [*_KINDS, None]},
            },
        },
    },
}
