"""check's report as types: the JSON schema beside them says what they write, the JSON reads back into
them unchanged, and the check (all the off-site watch box runs) imports without pulumi."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from mana_infra.check import JSON_SCHEMA, report
from mana_infra.check.decision import TABLE, NoWay, PublicFailure, StandbyState


def _keys(cls: type) -> set[str]:
    """The JSON keys a report class always writes (a field left out while None is optional)."""
    return {f.name for f in dataclasses.fields(cls) if not f.metadata.get("omit_none")}


def _at(*path: str) -> dict[str, Any]:
    node: Any = JSON_SCHEMA
    for step in path:
        node = node[step]
    return dict(node)


SECTIONS = [
    (report.EndpointsSeen, ("properties", "endpoints")),
    (report.HostReport, ("properties", "hosts", "items")),
    (report.DnsCheck, ("properties", "hosts", "items", "properties", "dns")),
    (report.HttpsCheck, ("$defs", "https")),
    (report.MirrorCheck, ("properties", "hosts", "items", "properties", "mirror")),
    (report.VpsChecks, ("properties", "vps")),
    (report.WireguardCheck, ("properties", "vps", "properties", "wireguard")),
    (report.SshCheck, ("properties", "vps", "properties", "ssh")),
    (report.ApiCheck, ("properties", "cloudflare_api")),
    (report.TunnelProbe, ("properties", "tunnel_probe")),
    (report.CertificateDate, ("properties", "certificates", "additionalProperties")),
    (report.PublicPath, ("properties", "public_path")),
    (report.Diagnosis, ("properties", "diagnosis")),
    (report.Budget, ("properties", "budget")),
    (report.BudgetText, ("properties", "budget", "properties", "text")),
]


@pytest.mark.parametrize(("cls", "path"), SECTIONS, ids=[cls.__name__ for cls, _ in SECTIONS])
def test_the_schema_requires_what_each_type_writes(cls: type, path: tuple[str, ...]) -> None:
    assert set(_at(*path)["required"]) == _keys(cls)


def test_the_schema_requires_what_the_report_writes() -> None:
    assert set(JSON_SCHEMA["required"]) == _keys(report.Report) | set(report.Report.DERIVED)
    standby, health = (
        _at("properties", "hosts", "items", "properties", "standby")["allOf"][1],
        _at("properties", "vps", "properties", "health")["allOf"][1],
    )
    https = _keys(report.HttpsCheck)
    assert set(standby["required"]) == _keys(report.StandbyCheck) - https
    assert set(health["required"]) == _keys(report.HealthCheck) - https


def test_the_schemas_words_are_the_types_enums() -> None:
    failure = _at("$defs", "https", "properties", "failure")["enum"]
    assert failure == [*(kind.value for kind in report.Failure), None]
    cases = _at("properties", "diagnosis", "properties", "case")["enum"]
    no_way = {"mac-mini-down", "vps-down"}
    home = {f"{p}/{s}/home" for p in PublicFailure for s in StandbyState if s in no_way}
    assert set(cases) == {*(f"{p}/{s}" for p in PublicFailure for s in StandbyState), *home, None}
    assert all(isinstance(outcome, report.Way | NoWay) for outcome in TABLE.values())


def test_importing_check_loads_no_pulumi_or_grpc() -> None:
    """The watch box runs only the check: pulumi and grpc cost it about 0.7 s and 573 modules a start."""
    code = (
        "import sys, mana_infra.check, mana_infra.check.cli;"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'grpc')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
