"""Stack configuration: every bad value named with the command that fixes it, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mana_infra import plan as offline
from mana_infra.config import PROVIDER_TOKENS, parse_stack_config, read_stack_config
from mana_infra.errors import InputError
from mana_infra.project import Project

from .support import PROJECT


def prod_values(**changes: str | None) -> dict[str, str | None]:
    """The values the CLI would hand the program for prod (defaults, stack file, placeholders)."""
    values, _, _ = offline.stack_config(PROJECT, "prod", {})
    plain = {key.split(":", 1)[1]: value for key, value in values.items() if key.startswith("mana-infra:")}
    plain.update(changes)
    return plain


def parse(
    values: dict[str, str | None],
    *,
    ssh_private_key: str | None = "key",
    tokens: set[str] | None = None,
    project: Project = PROJECT,
):
    return parse_stack_config(
        values,
        stack="prod",
        ssh_private_key=ssh_private_key,
        tokens_present=set(PROVIDER_TOKENS) if tokens is None else tokens,
        project=project,
    )


def problems(values: dict[str, str | None], **kwargs) -> list[str]:
    with pytest.raises(InputError) as caught:
        parse(values, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_the_prod_stack_with_its_placeholders_is_valid() -> None:
    config = parse(prod_values())
    assert config.mode == "tunnel" and config.zone == "mana.how" and config.origin_name == "vps.mana.how"
    assert config.server_type == "cx23" and config.location == "nbg1" and config.image == "ubuntu-24.04"
    assert str(config.wireguard.subnet) == "10.0.0.0/24"
    assert (str(config.wireguard.server_address), str(config.wireguard.macmini_address)) == ("10.0.0.1", "10.0.0.2")
    assert config.failover_ttl == 60 and config.failover_via == "edge" and config.protect is True
    assert config.check_allowed_cidrs == config.ssh_allowed_cidrs == ("192.0.2.0/24",)
    assert len(config.services) == 27


def test_a_wrong_mode_names_the_allowed_values() -> None:
    [problem] = problems(prod_values(mode="failsafe"))
    assert "mana-infra:mode: 'failsafe' is not a mode: the allowed values are tunnel and failover" in problem
    assert "pulumi config set --stack prod mode failover" in problem


def test_all_problems_at_once_each_with_its_fix() -> None:
    found = problems(
        prod_values(
            tunnelId=None,
            sshPublicKey="not a key",
            sshAllowedCidrs=None,
            failoverTtl="10",
            wireguardMacMiniAddress="10.9.9.9",
            failoverVia="proxy",
            zone="mana.how",
        ),
        ssh_private_key=None,
        tokens=set(),
    )
    expected = {
        "mana-infra:tunnelId: is not set": "pulumi config set --stack prod tunnelId",
        "mana-infra:sshPublicKey: is not an OpenSSH public key": "pulumi config set --stack prod sshPublicKey",
        "mana-infra:sshPrivateKey: is not set": "pulumi config set --stack prod --secret sshPrivateKey",
        "mana-infra:sshAllowedCidrs: is not set": "pulumi config set --stack prod --path 'sshAllowedCidrs[0]'",
        "mana-infra:failoverTtl: '10' is not an integer in 60-300": "pulumi config set --stack prod failoverTtl 60",
        "mana-infra:wireguardMacMiniAddress: 10.9.9.9 is not a host address": (
            "pulumi config set --stack prod wireguardMacMiniAddress 10.0.0.2"
        ),
        "mana-infra:failoverVia: 'proxy' is not a way to fail over": "pulumi config set --stack prod failoverVia edge",
        "hcloud:token: is not set": "pulumi config set --stack prod --secret hcloud:token",
        "cloudflare:apiToken: is not set": "pulumi config set --stack prod --secret cloudflare:apiToken",
    }
    assert len(found) == len(expected)
    for what, fix in expected.items():
        assert any(what in problem and f"fix: {fix}" in problem for problem in found), what


@pytest.mark.parametrize("cidrs", [["0.0.0.0/0"], ["::/0"], ["198.51.100.7/32", "0.0.0.0/0"]])
def test_ssh_is_never_opened_to_the_world(cidrs: list[str]) -> None:
    [problem] = problems(prod_values(sshAllowedCidrs=json.dumps(cidrs)))
    assert "opens SSH to the whole internet" in problem


def test_ssh_cidrs_must_be_a_list_of_networks() -> None:
    assert "is not a list of networks" in problems(prod_values(sshAllowedCidrs="198.51.100.7/32"))[0]
    assert "'nonsense' is not a network" in problems(prod_values(sshAllowedCidrs='["nonsense"]'))[0]


def test_inventory_problems_join_the_config_problems(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text("services:\n  - host: x.example.com\n    port: 1\n")
    (tmp_path / "Pulumi.yaml").write_text("name: mana-infra\nruntime: python\n")
    found = problems(prod_values(services="services.yaml", mode="x"), project=Project.at(tmp_path))
    assert any("mana-infra:mode" in problem for problem in found)
    assert any("services.yaml:2: entry 1 (x.example.com): host x.example.com is outside the zone" in p for p in found)


def test_origin_name_must_be_its_own_name_inside_the_zone() -> None:
    assert "is also an inventory host" in problems(prod_values(originName="auth.mana.how"))[0]
    assert "is outside the zone" in problems(prod_values(originName="vps.example.org"))[0]


@pytest.mark.parametrize(
    "key",
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9mZmxpbmUtcGxhY2Vob2xkZXItc3NoLWtleQ op",  # bad padding
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIG4ANPKer0n1FQ5JlpAqofs+I7+rol/Mq/dDNS0gSAyC op",  # an ed25519 blob
    ],
)
def test_an_ssh_public_key_must_decode_to_the_type_it_names(key: str) -> None:
    [problem] = problems(prod_values(sshPublicKey=key))
    assert "mana-infra:sshPublicKey: is not an OpenSSH public key" in problem


def test_macmini_public_key_and_adoption_ids_are_checked() -> None:
    assert "is not a WireGuard key" in problems(prod_values(macMiniPublicKey="abc"))[0]
    [problem] = problems(prod_values(adoptRecords=json.dumps({"nothere.mana.how": "a" * 32 + "/" + "b" * 32})))
    assert "nothere.mana.how is not an inventory host" in problem
    [problem] = problems(prod_values(adoptRecords=json.dumps({"auth.mana.how": "123"})))
    assert "'123' is not `<zoneId>/<recordId>`" in problem


def test_provider_tokens_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real reader, under the engine: no token in the stack config, one in the environment."""
    without_tokens: dict[str, str | None] = dict.fromkeys(PROVIDER_TOKENS)
    read: list[str] = []

    def program(project: Project) -> None:
        read.append(read_stack_config(project).zone)

    monkeypatch.setenv("HCLOUD_TOKEN", "x")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "y")
    offline.evaluate("prod", project=PROJECT, overrides=without_tokens, program_fn=program)
    assert read == ["mana.how"]
    monkeypatch.delenv("HCLOUD_TOKEN")
    with pytest.raises(InputError, match="hcloud:token: is not set"):
        offline.evaluate("prod", project=PROJECT, overrides=without_tokens, program_fn=program)


def test_unknown_hetzner_names_and_a_shared_port_are_warnings_not_errors(tmp_path: Path) -> None:
    """Hetzner adds locations and server types: another name is a warning naming the known ones, and the
    API decides. Two hosts on one Mac Mini port: a warning naming both and their lines."""
    result = offline.plan("prod", overrides={"location": "fra9", "serverType": "cx99"})
    warnings = result.outputs["configWarnings"]
    assert warnings[0].startswith("Pulumi.prod.yaml: mana-infra:location: 'fra9' is none of the locations Hetzner "
                                  "had (fsn1, nbg1, hel1, ash, hil, sin)")  # fmt: skip
    assert "mana-infra:serverType: 'cx99' is none of the server types Hetzner had" in warnings[1]
    inventory = tmp_path / "services.yaml"
    inventory.write_text("services:\n  - host: a.mana.how\n    port: 8080\n  - host: b.mana.how\n    port: 8080\n")
    result = offline.plan("prod", services=str(inventory))
    assert result.outputs["configWarnings"] == [
        "the inventory's a.mana.how (line 2), b.mana.how (line 4) share the Mac Mini's port 8080: one app behind "
        "every name"
    ]
    assert offline.plan("prod").outputs["configWarnings"] == []


def test_the_vps_name_in_the_inventory_is_blamed_on_the_inventory(tmp_path: Path) -> None:
    """originName is not set in Pulumi.prod.yaml: vps.mana.how in services.yaml is the inventory's
    mistake, at its line, not the stack file's."""
    inventory = tmp_path / "services.yaml"
    inventory.write_text("services:\n  - host: a.mana.how\n    port: 8080\n  - host: vps.mana.how\n    port: 8081\n")
    with pytest.raises(InputError) as caught:
        offline.plan("prod", services=str(inventory))
    [problem] = [str(p) for p in caught.value.problems]
    # Named like every other inventory problem: the line and the entry's number.
    assert problem.startswith(f"{inventory}:4: entry 2 (vps.mana.how): vps.mana.how is the VPS's own name"), problem
    assert "Pulumi.prod.yaml" not in problem


def test_the_wireguard_subnet_is_private_and_apart_from_the_operators_networks() -> None:
    """The VPS routes the whole subnet into WireGuard: a public one, or one that holds an allowed
    network, would send the VPS's answers into the tunnel."""
    [public] = problems(prod_values(wireguardSubnet="198.18.0.0/24", wireguardVpsAddress="198.18.0.1",
                                    wireguardMacMiniAddress="198.18.0.2"))  # fmt: skip
    assert "mana-infra:wireguardSubnet: 198.18.0.0/24 is not a private network" in public
    fix = "pulumi config set-all --stack prod --plaintext wireguardSubnet=10.77.0.0/24 --plaintext wireguardVpsAddress"
    assert fix in public
    overlap = problems(
        prod_values(
            sshAllowedCidrs='["198.51.100.7/32", "10.0.0.128/25"]', checkAllowedCidrs='["10.0.0.0/16", "2001:db8::/32"]'
        )
    )
    assert [p.split(": the VPS")[0] for p in overlap] == [
        "Pulumi.prod.yaml: mana-infra:wireguardSubnet: 10.0.0.0/24 overlaps sshAllowedCidrs[1] 10.0.0.128/25",
        "Pulumi.prod.yaml: mana-infra:wireguardSubnet: 10.0.0.0/24 overlaps checkAllowedCidrs[0] 10.0.0.0/16",
    ]
    assert all(fix in p for p in overlap)
    config = parse(prod_values(wireguardSubnet="10.77.0.0/24", wireguardVpsAddress="10.77.0.1",
                               wireguardMacMiniAddress="10.77.0.2", sshAllowedCidrs='["10.0.0.0/16"]'))  # fmt: skip
    assert str(config.wireguard.subnet) == "10.77.0.0/24"
