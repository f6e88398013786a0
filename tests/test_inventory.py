"""services.yaml: the seed's inventory, exactly, and every kind of bad entry reported at once."""

from __future__ import annotations

import re

import pytest

from mana_infra.errors import InputError
from mana_infra.inventory import ALLOWED_KEYS, load_inventory, parse_inventory

from .support import FIXTURES, PROJECT_DIR

# The operator's own Caddyfile from the seed document (see tests/fixtures/README.md).
SEED_CADDYFILE = FIXTURES / "seed-Caddyfile"


def seed_sites() -> list[tuple[str, int]]:
    text = SEED_CADDYFILE.read_text(encoding="utf-8")
    return [
        (host, int(port))
        for host, port in re.findall(r"^([a-z0-9.-]+) \{\n\s+reverse_proxy 10\.0\.0\.2:(\d+)", text, re.M)
    ]


def test_inventory_is_the_seed_caddyfile_exactly() -> None:
    sites = seed_sites()
    assert len(sites) == 27
    services = load_inventory(PROJECT_DIR / "services.yaml", "mana.how")
    assert [(service.host, service.port) for service in services] == sites
    assert all(service.health == "/" and service.name == service.host for service in services)


def problems_of(text: str, zone: str = "mana.how") -> list[str]:
    with pytest.raises(InputError) as caught:
        parse_inventory(text, "services.yaml", zone)
    return [str(problem) for problem in caught.value.problems]


def test_every_problem_is_reported_at_once_with_file_line_and_entry() -> None:
    problems = problems_of(
        "services:\n"
        "  - host: a.mana.how\n"  # line 2: port out of range and a typo'd key
        "    port: 70000\n"
        "    helth: /up\n"
        "  - host: a.mana.how\n"  # line 5: duplicate
        "    port: 1\n"
        "  - host: b.example.com\n"  # line 7: outside the zone, no port
        "  - port: 5\n"  # line 8: no host
        "  - host: -x.mana.how\n"  # line 9: bad label, port not an integer
        "    port: eighty\n"
        "  - host: " + "a" * 64 + ".mana.how\n"
        "    port: 80\n"
        "  - host: c.mana.how\n"
        "    port: 0\n"
        "  - host: d.mana.how\n"
        "    port: true\n"
    )
    expected = [
        ("services.yaml:2: entry 1 (a.mana.how)", "unknown key helth", ", ".join(ALLOWED_KEYS)),
        ("services.yaml:2: entry 1 (a.mana.how)", "port 70000 is not an integer in 1-65535", ""),
        ("services.yaml:5: entry 2 (a.mana.how)", "duplicate host a.mana.how (first at line 2)", ""),
        ("services.yaml:7: entry 3 (b.example.com)", "outside the zone mana.how", ""),
        ("services.yaml:7: entry 3 (b.example.com)", "has no `port`", ""),
        ("services.yaml:8: entry 4", "has no `host`", ""),
        ("services.yaml:9: entry 5 (-x.mana.how)", "invalid label '-x'", ""),
        ("services.yaml:9: entry 5 (-x.mana.how)", "port 'eighty' is not an integer", ""),
        ("services.yaml:11: entry 6", "invalid label '" + "a" * 64 + "'", ""),
        ("services.yaml:13: entry 7 (c.mana.how)", "port 0 is not an integer in 1-65535", ""),
        ("services.yaml:15: entry 8 (d.mana.how)", "port is a yes/no value, not a port number", ""),
    ]
    assert len(problems) == len(expected)
    for problem, (where, what, fix) in zip(problems, expected, strict=True):
        assert problem.startswith(where) and what in problem and fix in problem and "fix:" in problem


@pytest.mark.parametrize(
    "text, message",
    [
        ("services: [\n  - host: x\n", "services.yaml:2: YAML syntax error: expected the node content"),
        ("", "no services"),
        ("services: []\n", "no services"),
        ("other: 1\n", "no services"),
        ("services:\n  - just-a-string\n", "entry 1: is not a mapping"),
    ],
)
def test_structural_problems(text: str, message: str) -> None:
    assert any(message in problem for problem in problems_of(text))


def test_the_zone_apex_and_optional_keys_are_accepted() -> None:
    services = parse_inventory(
        "services:\n  - host: Mana.How\n    port: 5000\n    name: landing\n    health: /health\n",
        "services.yaml",
        "mana.how",
    )
    assert [(s.host, s.port, s.name, s.health) for s in services] == [("mana.how", 5000, "landing", "/health")]


def test_a_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot read the inventory"):
        load_inventory(tmp_path / "nope.yaml", "mana.how")


def test_a_host_no_certificate_covers_is_refused_with_a_name_that_is_covered() -> None:
    """Both certificates and Cloudflare's edge certificate are for the zone and *.zone: a wildcard covers
    one level, so a.b.mana.how would get a TLS error from every path."""
    [problem] = problems_of("services:\n  - host: a.b.mana.how\n    port: 5000\n  - host: b.mana.how\n    port: 5001\n")
    assert "a.b.mana.how is two or more levels below mana.how" in problem
    assert (
        "a wildcard covers one level" in problem
        and "fix: use a name one level below the zone, e.g. a-b.mana.how" in problem
    )


def test_the_tunnel_probe_name_is_no_app() -> None:
    with pytest.raises(InputError) as caught:
        parse_inventory("services:\n  - host: tunnel-probe.mana.how\n    port: 80\n", "services.yaml", "mana.how")
    assert "tunnel-probe.mana.how is the tunnel's probe name: mana-infra keeps it on the tunnel" in str(caught.value)
    assert "services.yaml:2" in str(caught.value)


def test_what_a_new_user_tripped_over_is_said_plainly() -> None:
    """A top-level list, an internationalised name, the rehearsal's test hostname: each said as what it is."""
    assert problems_of("- host: mana.how\n  port: 5000\n") == [
        "services.yaml: its top level is a list: the entries belong under `services:`\n"
        "    fix: add a first line `services:` and indent the entries beneath it"
    ]
    [idn] = problems_of("services:\n  - host: bücher.mana.how\n    port: 5000\n")
    assert "is not ASCII" in idn and "xn--bcher-kva.mana.how" in idn, idn
    [rehearsal] = problems_of("services:\n  - host: failover-test.mana.how\n    port: 5000\n")
    assert rehearsal.startswith("services.yaml:2: entry 1 (failover-test.mana.how): failover-test.mana.how is the")
    assert "rehearsal's test hostname" in rehearsal and "give the app another name" in rehearsal
