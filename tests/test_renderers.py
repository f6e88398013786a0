"""The rendered files: reviewed golden copies, and the real tools that will read them."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from mana_infra import names
from mana_infra import plan as offline
from mana_infra.model import CLOUDFLARE_IP_RANGES
from mana_infra.wgkeys import wireguard_public_key

from .support import PROJECT_DIR, STATES, caddy_with, etc_caddy, plan_in, plan_of, require_tools

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def artifacts() -> dict[str, dict[str, str]]:
    """The offline plan's artifacts in the standby's three states: what the real program renders, with
    offline keys."""
    return {state: plan_in(state).artifacts for state in STATES}


# Only the Caddyfile differs between the two ways of failing over.
GOLDEN_FILES = [(state, name) for state in ("tunnel", "failover") for name in names.ARTIFACT_NAMES]
GOLDEN_FILES.append(("failover-dns", "Caddyfile"))


@pytest.mark.parametrize("state, name", GOLDEN_FILES)
def test_artifacts_match_their_reviewed_golden_copy(
    artifacts: dict[str, dict[str, str]], state: str, name: str
) -> None:
    golden = GOLDEN / f"{state}.{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(artifacts[state][name], encoding="utf-8")
    assert artifacts[state][name] == golden.read_text(encoding="utf-8"), (
        f"regenerate with UPDATE_GOLDEN=1 and review {golden}"
    )
    if state == "failover-dns":
        assert artifacts[state].keys() == artifacts["failover"].keys()
        assert all(artifacts[state][n] == artifacts["failover"][n] for n in names.ARTIFACT_NAMES if n != name)


def test_every_artifact_is_marked_as_offline(artifacts: dict[str, dict[str, str]]) -> None:
    for files in artifacts.values():
        assert set(files) == set(names.ARTIFACT_NAMES)
        for text in files.values():
            assert offline.OFFLINE_MARK in text


SERVED = {
    # state: the certificate the inventory hosts serve, who else reaches them (None: everyone), health
    "tunnel": ("public_certificate", ("192.0.2.0/24",), "ok mode=tunnel"),
    "failover": ("origin_certificate", (*CLOUDFLARE_IP_RANGES[0], *CLOUDFLARE_IP_RANGES[1], "192.0.2.0/24"),
                 "ok mode=failover via=edge"),
    "failover-dns": ("public_certificate", None, "ok mode=failover via=dns"),
}  # fmt: skip


@pytest.mark.parametrize("state", list(STATES))
def test_every_host_is_served_warm_in_every_state(artifacts: dict[str, dict[str, str]], state: str) -> None:
    """Every inventory host has its site at all times, with an installed certificate (no ACME anywhere):
    only who gets through changes. While the tunnel serves the hosts: the operator's networks (the
    placeholder sshAllowedCidrs); through the edge: Cloudflare's and the operator's; DNS-only: everyone."""
    from mana_infra.inventory import load_inventory

    caddyfile = artifacts[state]["Caddyfile"]
    certificate, allowed, health = SERVED[state]
    refused = "\timport elsewhere_refused\n" if allowed else ""
    for service in load_inventory(PROJECT_DIR / "services.yaml", "mana.how"):
        site = (f"\n{service.host} {{\n\timport {certificate}\n{refused}\timport visitor\n"
                f"\treverse_proxy 10.0.0.2:{service.port} {{\n\t\timport mac_mini\n\t}}\n}}")  # fmt: skip
        assert site in caddyfile, service.host
    if allowed:
        assert f"\t@elsewhere not remote_ip {' '.join(allowed)}\n\trespond @elsewhere" in caddyfile
    else:
        assert "elsewhere" not in caddyfile
    assert (
        f'vps.mana.how {{\n\timport public_certificate\n\thandle /healthz {{\n\t\trespond "{health}" 200' in caddyfile
    )
    assert "(public_certificate) {\n\ttls /etc/caddy/certs/public.pem /etc/caddy/certs/public.pem\n}" in caddyfile
    assert "(origin_certificate) {\n\ttls /etc/caddy/certs/origin.pem /etc/caddy/certs/origin.pem\n}" in caddyfile
    assert "\ttransport http {\n\t\tdial_timeout 3s" in caddyfile
    # HTTP/3 is not offered (UDP 443 stays closed): no Alt-Svc that browsers would try.
    assert "{\n\tservers {\n\t\tprotocols h1 h2\n\t}\n" in caddyfile
    assert caddyfile.rstrip().endswith("import /etc/caddy/sites.d/*.caddy")
    assert "\timport /etc/caddy/global.d/*.caddy" in caddyfile and "acme" not in caddyfile.lower().replace(
        "no site asks acme", ""
    )


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


VALIDATE = "validate --config /etc/caddy/Caddyfile --adapter caddyfile"


@pytest.mark.parametrize("state", list(STATES))
def test_caddy_validates_the_caddyfile_of_every_state(
    artifacts: dict[str, dict[str, str]], state: str, tmp_path: Path
) -> None:
    """With the certificates where the VPS has them (Caddy loads them as it validates)."""
    result = caddy_with(etc_caddy(tmp_path, {"Caddyfile": artifacts[state]["Caddyfile"]}), VALIDATE)
    assert result.returncode == 0, result.stderr[-2000:]


def test_caddy_rejects_a_broken_caddyfile_and_a_missing_certificate(
    artifacts: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    broken = etc_caddy(tmp_path, {"Caddyfile": "example.org {\n\treverse_prox 10.0.0.2:1\n}\n"})
    result = caddy_with(broken, VALIDATE)
    assert result.returncode != 0 and "reverse_prox" in result.stderr
    without = etc_caddy(tmp_path, {"Caddyfile": artifacts["tunnel"]["Caddyfile"]})
    (without / "certs" / "public.pem").unlink()
    result = caddy_with(without, VALIDATE)
    assert result.returncode != 0 and "public.pem" in result.stderr


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
