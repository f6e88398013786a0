"""The rendered files: reviewed golden copies, and the real tools that will read them."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from mana_infra import plan as offline
from mana_infra.wgkeys import wireguard_public_key

from .support import PROJECT_DIR, plan_of, require_tools

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def artifacts() -> dict[str, dict[str, str]]:
    """The offline plan's artifacts for both modes: what the real program renders, with offline keys."""
    return {mode: plan_of("prod", mode).artifacts for mode in ("tunnel", "failover")}


@pytest.mark.parametrize(
    "mode, name", [(mode, name) for mode in ("tunnel", "failover") for name in offline.ARTIFACT_NAMES]
)
def test_artifacts_match_their_reviewed_golden_copy(artifacts: dict[str, dict[str, str]], mode: str, name: str) -> None:
    golden = GOLDEN / f"{mode}.{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(artifacts[mode][name], encoding="utf-8")
    assert artifacts[mode][name] == golden.read_text(encoding="utf-8"), (
        f"regenerate with UPDATE_GOLDEN=1 and review {golden}"
    )


def test_every_artifact_is_marked_as_offline(artifacts: dict[str, dict[str, str]]) -> None:
    for files in artifacts.values():
        assert set(files) == set(offline.ARTIFACT_NAMES)
        for text in files.values():
            assert offline.OFFLINE_MARK in text


def test_failover_caddyfile_routes_every_host_and_tunnel_caddyfile_none(artifacts: dict[str, dict[str, str]]) -> None:
    from mana_infra.inventory import load_inventory

    services = load_inventory(PROJECT_DIR / "services.yaml", "mana.how")
    failover, tunnel = artifacts["failover"]["Caddyfile"], artifacts["tunnel"]["Caddyfile"]
    for service in services:
        assert (
            f"\n{service.host} {{\n\treverse_proxy 10.0.0.2:{service.port} {{\n\t\timport mac_mini\n\t}}\n}}"
            in failover
        )
        assert f"\n{service.host} {{" not in tunnel
    assert "(mac_mini) {\n\ttransport http {\n\t\tdial_timeout 3s" in failover
    for caddyfile, mode in ((failover, "failover"), (tunnel, "tunnel")):
        assert f'vps.mana.how {{\n\thandle /healthz {{\n\t\trespond "ok mode={mode}" 200' in caddyfile
        assert caddyfile.rstrip().endswith("import /etc/caddy/sites.d/*.caddy")
        assert "\timport /etc/caddy/global.d/*.caddy" in caddyfile


def test_cloud_init_writes_wireguard_and_hardens_ssh(artifacts: dict[str, dict[str, str]]) -> None:
    document = yaml.safe_load(artifacts["tunnel"]["cloud-init.yaml"])
    files = {item["path"]: item for item in document["write_files"]}
    wireguard = files["/etc/wireguard/wg0.conf"]
    assert wireguard["permissions"] == "0600" and wireguard["owner"] == "root:root"
    assert wireguard["content"] in artifacts["tunnel"]["wg0-server.conf"]
    assert ["systemctl", "enable", "--now", "wg-quick@wg0"] in document["runcmd"]
    assert {"wireguard", "caddy", "unattended-upgrades"} <= set(document["packages"])
    assert document["ssh_pwauth"] is False
    assert "PasswordAuthentication no" in files["/etc/ssh/sshd_config.d/60-mana-infra.conf"]["content"]
    assert 'Unattended-Upgrade "1"' in files["/etc/apt/apt.conf.d/20auto-upgrades"]["content"]


def test_the_two_wireguard_ends_fit_together(artifacts: dict[str, dict[str, str]]) -> None:
    server, macmini = (parse_wireguard(artifacts["tunnel"][name]) for name in ("wg0-server.conf", "wg0-macmini.conf"))
    assert wireguard_public_key(server["Interface"]["PrivateKey"]) == macmini["Peer"]["PublicKey"]
    assert wireguard_public_key(macmini["Interface"]["PrivateKey"]) == server["Peer"]["PublicKey"]
    assert macmini["Peer"]["Endpoint"] == f"{offline.OFFLINE_IPV4}:51820"
    assert macmini["Peer"]["PersistentKeepalive"] == "25"
    assert server["Interface"]["ListenPort"] == "51820" and server["Peer"]["AllowedIPs"] == "10.0.0.2/32"


def parse_wireguard(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return sections


# The real tools, on the real rendered files.


def caddy_validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = ["caddy", "validate", "--config", str(path), "--adapter", "caddyfile"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_caddy_validates_both_caddyfiles(artifacts: dict[str, dict[str, str]], tmp_path: Path) -> None:
    require_tools("caddy")
    for mode, files in artifacts.items():
        path = tmp_path / f"{mode}.Caddyfile"
        path.write_text(files["Caddyfile"])
        result = caddy_validate(path)
        assert result.returncode == 0, result.stderr[-2000:]


def test_caddy_rejects_a_broken_caddyfile(tmp_path: Path) -> None:
    require_tools("caddy")
    path = tmp_path / "Caddyfile"
    path.write_text("example.org {\n\treverse_prox 10.0.0.2:1\n}\n")
    result = caddy_validate(path)
    assert result.returncode != 0 and "reverse_prox" in result.stderr


def test_cloud_init_schema_accepts_the_user_data(artifacts: dict[str, dict[str, str]], tmp_path: Path) -> None:
    require_tools("cloud-init")
    for mode, files in artifacts.items():
        path = tmp_path / f"{mode}.yaml"
        path.write_text(files["cloud-init.yaml"])
        result = subprocess.run(
            ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr


def test_wg_quick_strip_reads_both_configs(artifacts: dict[str, dict[str, str]], tmp_path: Path) -> None:
    require_tools("wg-quick", "wg")
    for name in ("wg0-server.conf", "wg0-macmini.conf"):
        path = tmp_path / "mlabstrip.conf"
        path.write_text(artifacts["tunnel"][name])
        path.chmod(0o600)
        stripped = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, timeout=30)
        assert stripped.returncode == 0, stripped.stderr
        # What is left is for `wg setconf`: keys and peers stay, wg-quick's own keys (Address) go.
        assert "PrivateKey" in stripped.stdout and "[Peer]" in stripped.stdout and "Address" not in stripped.stdout


def test_public_keys_agree_with_wg_pubkey() -> None:
    require_tools("wg")
    for _ in range(20):
        private_key = base64.b64encode(os.urandom(32)).decode()
        wg = subprocess.run(["wg", "pubkey"], input=private_key, capture_output=True, text=True, check=True)
        assert wireguard_public_key(private_key) == wg.stdout.strip()


def test_the_plans_keys_agree_with_wg_pubkey(artifacts: dict[str, dict[str, str]]) -> None:
    require_tools("wg")
    outputs = plan_of("prod").outputs
    server_private = parse_wireguard(artifacts["tunnel"]["wg0-server.conf"])["Interface"]["PrivateKey"]
    wg = subprocess.run(["wg", "pubkey"], input=server_private, capture_output=True, text=True, check=True)
    assert outputs["wireguardServerPublicKey"] == wg.stdout.strip()
