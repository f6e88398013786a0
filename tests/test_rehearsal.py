"""The rehearsal stack (Pulumi.failover.yaml): test hostnames through the prod VPS, production untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from mana_infra import cli
from mana_infra import plan as offline
from mana_infra.components.rehearsal import SITE_FILE
from mana_infra.errors import InputError
from mana_infra.inventory import load_inventory
from mana_infra.program import PROD_OUTPUTS_READ
from mana_infra.render.remote import caddy_command

from .support import PROJECT_DIR, caddy_with, etc_caddy, plan_of

INVENTORY = {service.host for service in load_inventory(PROJECT_DIR / "services.yaml", "mana.how")}


def test_the_rehearsal_reads_only_outputs_the_prod_stack_really_exports() -> None:
    prod_outputs = plan_of("prod").outputs
    assert set(PROD_OUTPUTS_READ) <= set(prod_outputs)
    assert prod_outputs["macminiAddress"] == "10.0.0.2"


def test_rehearsal_builds_records_and_a_site_file_and_no_server() -> None:
    result = plan_of("failover")
    by_type: dict[str, list[offline.Recorded]] = {}
    for resource in result.resources:
        by_type.setdefault(resource.type, []).append(resource)
    assert not [t for t in by_type if t.startswith("hcloud:") or t.startswith("random:")]
    [record] = by_type["cloudflare:index/dnsRecord:DnsRecord"]
    assert (record.inputs["name"], record.inputs["type"], record.inputs["content"]) == (
        "failover-test.mana.how", "CNAME", "vps.mana.how"
    )  # fmt: skip
    assert record.inputs["proxied"] is False and record.inputs["ttl"] == 60
    [command] = by_type["command:remote:Command"]
    assert command.inputs["create"] == caddy_command(SITE_FILE)
    assert command.inputs["delete"] == caddy_command(SITE_FILE, "remove")
    assert command.options["deleteBeforeReplace"] is True and command.inputs["connection"] == offline.SECRET
    site = (
        "failover-test.mana.how {\n\timport public_certificate\n\timport visitor\n"
        "\treverse_proxy 10.0.0.2:5000 {\n\t\timport mac_mini"
    )
    assert site in command.inputs["stdin"]
    assert list(result.artifacts) == [SITE_FILE]


def test_the_site_file_follows_a_replaced_prod_server() -> None:
    """The primary IPs survive a replacement, so only the server's id tells the rehearsal that the site
    file must go onto a new server: it is the command's trigger (a change replaces the command)."""
    [command] = [r for r in plan_of("failover").resources if r.type == "command:remote:Command"]
    assert command.inputs["triggers"] == [plan_of("prod").outputs["serverId"]]


def test_rehearsal_plan_touches_no_inventory_host() -> None:
    result = plan_of("failover")
    names = {r.inputs["name"] for r in result.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"}
    assert names and not names & INVENTORY


def test_rehearsal_outputs_let_check_verify_the_test_hostnames() -> None:
    outputs = plan_of("failover").outputs
    assert outputs["mode"] == "failover" and outputs["originName"] == "vps.mana.how"
    assert outputs["originIpv4"] == offline.OFFLINE_IPV4
    assert outputs["rehearsalUrls"] == ["https://failover-test.mana.how/"]
    assert outputs["checkCommand"] == "mana-infra check --stack failover"
    assert outputs["hosts"] == [
        {"host": "failover-test.mana.how", "port": 5000, "health": "/", "service": "mana.how", "type": "CNAME",
         "target": "vps.mana.how", "proxied": False, "ttl": 60}
    ]  # fmt: skip
    # What check needs besides the hosts: the zone, the SSH user, the Mac Mini's address (prod's).
    assert (outputs["zone"], outputs["sshUser"], outputs["macminiAddress"]) == ("mana.how", "root", "10.0.0.2")


def test_a_missing_prod_output_is_a_clear_error() -> None:
    prod = plan_of("prod").outputs
    without = {name: value for name, value in prod.items() if name != "macminiAddress"}
    with pytest.raises(InputError) as caught:
        offline.evaluate("failover", clouds=offline.OfflineClouds(without))
    assert "stack prod: has no output macminiAddress" in str(caught.value)
    assert "pulumi up --stack prod" in str(caught.value)
    # Raised inside an apply: still a RunError, which the engine prints without a traceback.
    assert isinstance(caught.value, pulumi.RunError)


@pytest.mark.parametrize(
    "hosts, message",
    [
        (
            [{"host": "auth.mana.how", "service": "mana.how"}],
            "auth.mana.how collides with the inventory host auth.mana.how",
        ),
        ([{"host": "test.example.org", "service": "mana.how"}], "test.example.org is outside the zone mana.how"),
        ([{"host": "t.mana.how", "service": "nope.mana.how"}], "service 'nope.mana.how' is not an inventory host"),
        ([{"host": "t.mana.how", "service": "mana.how", "port": 1}], "unknown key port"),
        ([{"host": "t.mana.how", "service": "mana.how"}] * 2, "duplicate rehearsal host t.mana.how"),
    ],
)
def test_bad_rehearsal_hosts_are_named(hosts: list[dict[str, object]], message: str) -> None:
    with pytest.raises(InputError) as caught:
        offline.plan("failover", overrides={"rehearsalHosts": json.dumps(hosts)})
    assert message in str(caught.value) and "rehearsalHosts[" in str(caught.value)


def test_a_clash_suggests_a_name_that_is_free(tmp_path: Path) -> None:
    """A test hostname that is an inventory host: the hint must not suggest it again. (The default,
    failover-test.<zone>, the inventory itself refuses: see test_inventory.)"""
    inventory = tmp_path / "services.yaml"
    inventory.write_text(
        "services:\n  - host: mana.how\n    port: 5000\n  - host: failover-test-2.mana.how\n    port: 1\n"
    )
    hosts = json.dumps([{"host": "failover-test-2.mana.how", "service": "mana.how"}])
    with pytest.raises(InputError) as caught:
        offline.plan("failover", overrides={"services": str(inventory), "rehearsalHosts": hosts})
    [problem] = caught.value.problems
    assert "failover-test-2.mana.how collides with the inventory host" in problem.message
    assert problem.fix == "pick a name of its own, e.g. failover-test.mana.how"


def test_the_default_rehearsal_host_is_failover_test_to_the_landing_page() -> None:
    outputs = offline.plan("failover", overrides={"rehearsalHosts": "[]"}).outputs
    assert [(h["host"], h["service"], h["port"]) for h in outputs["hosts"]] == [
        ("failover-test.mana.how", "mana.how", 5000)
    ]


def test_the_site_file_validates_with_prods_tunnel_caddyfile(tmp_path: Path) -> None:
    """The site goes live while prod is in tunnel mode: Caddy must accept the two together, and the test
    hostname serves the public certificate a DNS-only cut-over serves (no ACME for it either)."""
    files = {
        "Caddyfile": plan_of("prod", "tunnel").artifacts["Caddyfile"],
        SITE_FILE: plan_of("failover").artifacts[SITE_FILE],
    }
    caddy_dir = etc_caddy(tmp_path, files)
    validated = caddy_with(caddy_dir, "validate --config /etc/caddy/Caddyfile --adapter caddyfile")
    assert validated.returncode == 0, validated.stderr[-2000:]
    adapted = caddy_with(caddy_dir, "adapt --config /etc/caddy/Caddyfile --adapter caddyfile")
    assert "failover-test.mana.how" in adapted.stdout and "10.0.0.2:5000" in adapted.stdout
    assert "failover-test.mana.how {\n\timport public_certificate\n" in files[SITE_FILE]


def test_check_reads_the_rehearsal_outputs_as_failover_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mana-infra check --stack failover` reads these outputs; here from a file, against a resolver
    that does not answer (a closed port on loopback), so only the reading and the verdict are real."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(plan_of("failover").outputs))
    code = cli.main(["check", "--outputs", str(outputs), "--no-pulumi", "--no-ssh", "--resolver", "127.0.0.1:9",
                     "--timeout", "0.3", "--json"])  # fmt: skip
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "failover" and report["endpoints"]["tunnel_target"] is None
    assert [host["host"] for host in report["hosts"]] == ["failover-test.mana.how"]


def test_the_rehearsal_plan_states_its_real_mode_and_refuses_mode(capsys: pytest.CaptureFixture[str]) -> None:
    from mana_infra import cli

    assert plan_of("failover").mode == "failover"
    assert cli.main(["plan", "--stack", "failover", "--mode", "tunnel", "--project-dir", str(PROJECT_DIR)]) == 2
    assert "--mode: does not apply to stack failover: a rehearsal is always failover" in capsys.readouterr().err
