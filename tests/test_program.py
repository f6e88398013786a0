"""The real program under Pulumi's mock engine, with the real Pulumi.prod.yaml: what it asks the clouds for."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pulumi
import pytest

from mana_infra import plan as offline
from mana_infra.components.standby_server import ssh_fingerprint
from mana_infra.inventory import load_inventory
from mana_infra.program import Standby
from mana_infra.render.remote import apply_script

from .support import PROJECT_DIR, STATES, by_name, plan_in, plan_of, require_tools, with_standby

SERVICES = load_inventory(PROJECT_DIR / "services.yaml", "mana.how")
COMPONENTS = {"standby": "StandbyServer", "dns": "FailoverDns", "caddy": "CaddyConfig", "wireguard": "WireGuardKeys"}
TUNNEL_TARGET = "00000000-0000-4000-8000-000000000000.cfargotunnel.com"


RECORD = {
    # state: an inventory record's (content, proxied, ttl)
    "tunnel": (TUNNEL_TARGET, True, 1),
    "failover": ("vps.mana.how", True, 1),  # through the edge: still proxied, only the target moves
    "failover-dns": ("vps.mana.how", False, 60),
}


@pytest.mark.parametrize("state", list(STATES))
def test_every_host_has_one_cname_for_its_state(state: str) -> None:
    result = plan_in(state)
    resources = by_name(result)
    for service in SERVICES:
        record = resources[f"dns-{service.host}"]
        assert record.type == "cloudflare:index/dnsRecord:DnsRecord"
        assert record.inputs["name"] == service.host and record.inputs["type"] == "CNAME"
        # The zone the program looked up by name, the one it reports for the emergency.
        assert record.inputs["zoneId"] == result.outputs["cloudflareZoneId"]
        assert "mana-infra" in record.inputs["comment"]
        assert (record.inputs["content"], record.inputs["proxied"], record.inputs["ttl"]) == RECORD[state]
    dns_records = [r for r in resources.values() if r.type.endswith("DnsRecord")]
    assert len(dns_records) == len(SERVICES) + 3  # the origin's A and AAAA, the tunnel's probe


@pytest.mark.parametrize("state", list(STATES))
def test_the_tunnel_probe_stays_on_the_tunnel_in_every_state(state: str) -> None:
    """No flip moves it, and no Caddy site serves it: while the hosts point at the VPS it still tells
    whether the tunnel would serve them."""
    result = plan_in(state)
    probe = by_name(result)["tunnel-probe"]
    assert (probe.inputs["name"], probe.inputs["type"], probe.inputs["content"], probe.inputs["proxied"]) == (
        "tunnel-probe.mana.how", "CNAME", TUNNEL_TARGET, True
    )  # fmt: skip
    assert result.outputs["tunnelProbe"] == "tunnel-probe.mana.how"
    assert "tunnel-probe" not in result.artifacts["Caddyfile"]
    # Cloudflare refuses a comment over 100 characters (Free plan; the stand-in keeps the rule).
    comments = [r.inputs.get("comment", "") for r in result.resources if r.type.endswith("dnsRecord:DnsRecord")]
    assert max(map(len, comments)) <= 100


def test_origin_name_points_at_the_vps_dns_only_in_both_modes() -> None:
    for mode in ("tunnel", "failover"):
        resources = by_name(plan_of("prod", mode))
        for name, record_type, address in (
            ("dns-origin-a", "A", offline.OFFLINE_IPV4),
            ("dns-origin-aaaa", "AAAA", offline.OFFLINE_IPV6),
        ):
            inputs = resources[name].inputs
            assert (inputs["name"], inputs["type"], inputs["content"], inputs["proxied"]) == (
                "vps.mana.how",
                record_type,
                address,
                False,
            )


@pytest.mark.parametrize(
    ("state", "fields"), [("failover", ("content",)), ("failover-dns", ("content", "proxied", "ttl"))]
)
def test_the_flip_changes_only_dns_records_and_the_caddy_command(state: str, fields: tuple[str, ...]) -> None:
    """Through the edge only the records' target moves; DNS-only, their proxying and TTL too."""
    tunnel, failover = plan_in("tunnel"), plan_in(state)
    changes = offline.diff(tunnel, failover)
    changed = {(change["resource"], change["field"]) for change in changes}
    inventory = {f"dns-{service.host}" for service in SERVICES}
    expected = {(name, field) for name in inventory for field in fields}
    expected |= {("caddy-apply", "stdin"), ("caddy-apply", "triggers[0]"), ("caddy-apply", "triggers[1]")}
    assert changed == expected
    # Same resources on both sides, and no record changes type.
    assert [r.name for r in tunnel.resources] == [r.name for r in failover.resources]
    for before, after in zip(tunnel.resources, failover.resources, strict=True):
        assert before.type == after.type and before.inputs.get("type") == after.inputs.get("type")
        if before.name not in inventory and before.name != "caddy-apply":
            assert before.revealed == after.revealed, before.name


def test_resource_options_as_the_engine_receives_them() -> None:
    resources = by_name(plan_of("prod"))
    server = resources["standby-server"]
    # The server is replaceable (a new image, key or user data replaces it, the old one first: it holds
    # the primary IPs); what must survive it is protected, in Pulumi and at Hetzner.
    assert server.options["deleteBeforeReplace"] is True and server.options["protect"] is False
    assert "deleteProtection" not in server.inputs and "rebuildProtection" not in server.inputs
    for name in ("standby-ipv4", "standby-ipv6", "secondary-dns-zone"):
        assert resources[name].options["protect"] is True
        assert resources[name].inputs["deleteProtection"] is True
    for name in ("standby-ipv4", "standby-ipv6"):
        # Unassigned until the server takes it: no assignee_type the API would answer differently.
        assert resources[name].inputs["autoDelete"] is False and "assigneeType" not in resources[name].inputs
    assert all(not r.options["ignoreChanges"] and not r.options["importId"] for r in resources.values())
    for name in COMPONENTS:
        assert resources[name].type == f"mana-infra:index:{COMPONENTS[name]}"
    for resource in resources.values():
        if not resource.type.startswith("mana-infra:"):
            assert resource.parent_type.startswith("mana-infra:index:"), resource.name


@pytest.mark.parametrize("state", list(STATES))
def test_the_order_follows_the_mode(state: str) -> None:
    """On a cut-over the VPS serves every host before DNS sends anyone there; on the way back DNS leaves
    the VPS before it stops serving the public. The certificates are in place before any Caddyfile."""
    resources = by_name(plan_in(state))
    name_of = {r.urn: r.name for r in resources.values()}

    def waits_for(name: str) -> set[str]:
        return {name_of[urn] for urn in resources[name].options["dependsOn"]}

    inventory = {f"dns-{service.host}" for service in SERVICES}
    certificates = {"certificate-public-apply", "certificate-origin-apply"}
    assert waits_for("caddy-apply") >= {"standby-server", *certificates}
    assert all(waits_for(name) >= {"standby-server"} for name in certificates)
    if state == "tunnel":
        assert waits_for("caddy-apply") >= inventory
        assert not any("caddy-apply" in waits_for(name) for name in inventory)
    else:
        assert all("caddy-apply" in waits_for(name) for name in inventory)
        assert not waits_for("caddy-apply") & inventory


def test_protection_is_config() -> None:
    resources = by_name(plan_of("prod", protect="false"))
    for name in ("standby-ipv4", "standby-ipv6", "secondary-dns-zone"):
        assert resources[name].options["protect"] is False and resources[name].inputs["deleteProtection"] is False


def test_remote_commands_send_no_environment_sshd_would_refuse() -> None:
    """pulumi-command sends the last output as PULUMI_COMMAND_STDOUT/_STDERR unless told not to, and
    Ubuntu's sshd accepts only LANG and LC_*: every update would warn."""
    for stack in ("prod", "failover"):
        commands = [r for r in plan_of(stack).resources if r.type == "command:remote:Command"]
        assert commands and all(c.inputs["addPreviousOutputInEnv"] is False for c in commands), stack


OPERATOR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNvbWUtb3BlcmF0b3Ita2V5LWJ5dGVzLWZvci10ZXN0 op@home"


def plan_with_keys(*keys: dict[str, object]) -> offline.PlanResult:
    return offline.plan("prod", overrides={"sshPublicKey": OPERATOR_KEY}, clouds=offline.OfflineClouds(ssh_keys=keys))


def test_the_fingerprint_is_the_one_ssh_keygen_and_hetzner_show() -> None:
    require_tools("ssh-keygen")
    done = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", "-"], input=OPERATOR_KEY, capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    assert done.stdout.split()[1] == "MD5:" + ssh_fingerprint(OPERATOR_KEY)


def test_an_ssh_key_already_in_the_hetzner_project_is_used_not_uploaded_again() -> None:
    fingerprint = ssh_fingerprint(OPERATOR_KEY)
    # Hetzner takes a key once per project: uploading it again would fail with uniqueness_error.
    uploaded = by_name(plan_with_keys({"id": 4711, "name": "laptop", "fingerprint": fingerprint, "labels": {}}))
    assert "standby-ssh-key" not in uploaded and uploaded["standby-server"].inputs["sshKeys"] == ["4711"]
    # The program's own key (labelled with its stack) stays the program's, managed as before.
    ours = {"id": 99, "name": "mana-prod-operator", "fingerprint": fingerprint,
            "labels": {"project": "mana-infra", "stack": "prod", "role": "standby"}}  # fmt: skip
    managed = by_name(plan_with_keys(ours))
    assert managed["standby-server"].inputs["sshKeys"] == [managed["standby-ssh-key"].id]
    # Its name changes with the key: a rotation creates the new key before deleting the old one.
    assert managed["standby-ssh-key"].inputs["name"] == f"mana-prod-operator-{fingerprint.replace(':', '')[:8]}"


def test_adopted_records_are_imported_ignoring_comment_and_ttl() -> None:
    import_id = "a" * 32 + "/" + "b" * 32
    resources = by_name(plan_of("prod", adoptRecords=json.dumps({"chat.mana.how": import_id})))
    assert resources["dns-chat.mana.how"].options["importId"] == import_id
    assert resources["dns-chat.mana.how"].options["ignoreChanges"] == ["comment", "ttl"]
    assert resources["dns-todo.mana.how"].options["importId"] == ""
    # Said, so that a forgotten `pulumi config rm adoptRecords` shows in the plan and in check.
    assert plan_of("prod", adoptRecords=json.dumps({"chat.mana.how": import_id})).outputs["adoptRecordsLeft"] == [
        "chat.mana.how"
    ]
    assert plan_of("prod").outputs["adoptRecordsLeft"] == []


def test_firewall_opens_ssh_only_to_the_configured_networks() -> None:
    rules = by_name(plan_of("prod", sshAllowedCidrs='["198.51.100.7/32"]'))["standby-firewall"].inputs["rules"]
    by_port = {(rule["protocol"], rule.get("port")): rule["sourceIps"] for rule in rules}
    assert by_port[("tcp", "22")] == ["198.51.100.7/32"]
    for key in (("udp", "51820"), ("tcp", "80"), ("tcp", "443"), ("icmp", None)):
        assert by_port[key] == ["0.0.0.0/0", "::/0"]
    assert len(rules) == 5


def test_server_uses_its_primary_ips_firewall_and_key() -> None:
    resources = by_name(plan_of("prod"))
    server = resources["standby-server"].inputs
    assert (server["serverType"], server["location"], server["image"]) == ("cx23", "nbg1", "ubuntu-24.04")
    [public_net] = server["publicNets"]
    # Hetzner's numeric ids of the resources the program made for it.
    assert public_net["ipv4"] == int(resources["standby-ipv4"].id)
    assert public_net["ipv6"] == int(resources["standby-ipv6"].id)
    assert server["firewallIds"] == [int(resources["standby-firewall"].id)]
    assert server["sshKeys"] == [resources["standby-ssh-key"].id]
    assert server["labels"] == {"project": "mana-infra", "stack": "prod", "role": "standby"}
    assert resources["standby-ipv4"].inputs["type"] == "ipv4" and resources["standby-ipv6"].inputs["type"] == "ipv6"


def test_caddy_command_runs_the_shipped_script_with_the_caddyfile() -> None:
    result = plan_of("prod", "failover")
    command = by_name(result)["caddy-apply"]
    caddyfile = command.inputs["stdin"]
    assert command.inputs["create"] == apply_script()
    assert "delete" not in command.inputs  # a delete would run after the new create and undo it
    assert command.inputs["triggers"][:2] == [hashlib.sha256(caddyfile.encode()).hexdigest(), "failover"]
    assert command.inputs["triggers"][2] == by_name(result)["standby-server"].id  # a new server gets it again
    assert command.inputs["connection"] == offline.SECRET
    assert result.artifacts["Caddyfile"].endswith(caddyfile)


def test_secrets_stay_secret_in_what_the_engine_receives() -> None:
    result = plan_of("prod")
    resources = by_name(result)
    assert resources["standby-server"].inputs["userData"] == offline.SECRET
    assert resources["caddy-apply"].inputs["connection"] == offline.SECRET
    assert result.outputs["macminiWireguardConfig"] == offline.SECRET
    assert result.outputs["wireguardServerPublicKey"] != offline.SECRET
    printed = json.dumps(result.as_json()["resources"]) + json.dumps(result.outputs)
    # WireGuard keys, certificate keys, the SSH key and the tokens: never in what the plan prints.
    for secret in (
        "PrivateKey = ",
        "PRIVATE KEY-----",
        "offline-placeholder-ssh-private-key",
        "offline-placeholder-cloudflare-token",
        "offline-placeholder-hcloud-token",
    ):
        assert secret not in printed


def test_no_resource_id_is_a_secret() -> None:
    """Resource ids are never secret, and the offline cloud gives them as the providers do (pulumi-random
    makes a RandomBytes' id its base64 value): no WireGuard private key may be one."""
    result = plan_of("prod")
    keys = {
        line.split(" = ", 1)[1]
        for name in ("wg0-server.conf", "wg0-macmini.conf")
        for line in result.artifacts[name].splitlines()
        if line.startswith("PrivateKey = ")
    }
    assert len(keys) == 2
    ids = {resource.name: resource.id for resource in result.resources}
    assert not {name for name, resource_id in ids.items() if resource_id in keys}
    assert ids["wireguard-vps"] == ids["wireguard-macmini"] == "none"


def test_secret_outputs_awaited_from_the_program() -> None:
    async def check(standby: Standby) -> None:
        assert await standby.user_data.is_secret()
        assert await standby.macmini_wireguard_config.is_secret()
        assert await standby.keys.server_private_key.is_secret()
        assert standby.keys.macmini_private_key is not None and await standby.keys.macmini_private_key.is_secret()
        assert not await standby.keys.server_public_key.is_secret()
        assert not await standby.server.ipv4_address.is_secret()
        user_data = await standby.user_data.future()
        assert user_data is not None and "PrivateKey = " in user_data

    with_standby(check)


def test_a_given_macmini_public_key_keeps_its_private_key_out_of_the_state() -> None:
    public_key = "kTsYWxMeQyWeupcvqAL0vYLBxi3OZs435CBu0wPmPWk="

    async def check(standby: Standby) -> str:
        assert standby.keys.macmini_private_key is None
        config = await standby.macmini_wireguard_config.future()
        assert config is not None
        return config

    config = with_standby(check, macMiniPublicKey=public_key)
    assert "PrivateKey" not in config
    assert "PostUp = wg set %i private-key /etc/wireguard/client_private.key" in config
    resources = by_name(plan_of("prod", macMiniPublicKey=public_key))
    assert "wireguard-macmini" not in resources and "wireguard-vps" in resources


def test_stack_outputs() -> None:
    for mode, target in (("tunnel", TUNNEL_TARGET), ("failover", "vps.mana.how")):
        outputs = plan_of("prod", mode).outputs
        assert outputs["mode"] == mode
        assert (outputs["originIpv4"], outputs["originIpv6"]) == (offline.OFFLINE_IPV4, offline.OFFLINE_IPV6)
        assert outputs["originName"] == "vps.mana.how"
        assert outputs["healthUrl"] == "https://vps.mana.how/healthz"
        assert [(h["host"], h["port"], h["type"], h["target"]) for h in outputs["hosts"]] == [
            (s.host, s.port, "CNAME", target) for s in SERVICES
        ]


def test_bad_config_stops_the_program_with_every_problem() -> None:
    from mana_infra.errors import InputError

    with pytest.raises(InputError) as caught:
        offline.evaluate("prod", overrides={"mode": "sideways", "failoverTtl": "1"})
    assert len(caught.value.problems) == 2
    # What the engine prints without a Python traceback: a RunError (InputError itself loads no pulumi).
    assert isinstance(caught.value, pulumi.RunError)


def test_the_plan_warns_while_adopt_records_is_set(capsys: pytest.CaptureFixture[str]) -> None:
    from mana_infra.plan_view import print_plan

    print_plan(plan_of("prod", adoptRecords=json.dumps({"chat.mana.how": "a" * 32 + "/" + "b" * 32})))
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "warning: adoptRecords is set for 1 host: right for the first `pulumi up` (it imports them); after it their "
        "records ignore TTL and comment changes until it is removed: pulumi config rm --stack prod adoptRecords"
    ) in out


DEPLOYED = {
    "mode": "failover",
    "failoverVia": "edge",
    "modeSince": "2026-12-01T03:00:00+00:00",
    "modeChangedBy": "mana-infra cutover by op@laptop",
}


def test_a_run_that_changes_the_deployed_mode_says_since_when_and_by_what(caplog: pytest.LogCaptureFixture) -> None:
    """The stack's own last outputs say it is in failover (a cut-over from another machine); this
    checkout's config says tunnel: the run says so plainly, and records the new mode's time and author."""
    outputs = offline.evaluate("prod", clouds=offline.OfflineClouds(DEPLOYED)).monitor.stack_outputs
    assert (outputs["mode"], outputs["modeSince"], outputs["modeChangedBy"]) == (
        "tunnel",
        offline.OFFLINE_CHANGED_AT,
        offline.OFFLINE_CHANGED_BY,
    )
    assert (
        "stack prod: this run changes the stack's mode: it is failover through the edge since "
        "2026-12-01T03:00:00+00:00 (by mana-infra cutover by op@laptop); after it, tunnel"
    ) in caplog.text


def test_a_run_in_the_deployed_mode_keeps_its_record_and_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    deployed = {**DEPLOYED, "mode": "tunnel"}
    outputs = offline.evaluate("prod", clouds=offline.OfflineClouds(deployed)).monitor.stack_outputs
    assert (outputs["modeSince"], outputs["modeChangedBy"]) == (DEPLOYED["modeSince"], DEPLOYED["modeChangedBy"])
    assert "changes the stack's mode" not in caplog.text
    # A change of the way while in failover is a change too.
    evaluation = offline.evaluate("prod", overrides={"mode": "failover", "failoverVia": "dns"},
                                  clouds=offline.OfflineClouds(DEPLOYED))  # fmt: skip
    assert evaluation.monitor.stack_outputs["modeSince"] == offline.OFFLINE_CHANGED_AT
    assert "after it, failover DNS-only" in caplog.text
