"""apply-caddyfile.sh with a real Caddy, in a network namespace of its own (its admin port is
per namespace): what the remote command does on the VPS, every path of it."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mana_infra.render.remote import caddy_command
from mana_lab.machine import machine_environment

from .support import require_root_and_tools

ETC_NETNS = Path("/etc/netns")


class Vps:
    """A namespace whose /etc/caddy is ``caddy_dir`` (ip netns exec bind-mounts /etc/netns/<ns>/caddy
    over it), with the lab's systemctl running Caddy: the script runs as on the VPS, unchanged."""

    def __init__(self, namespace: str, caddy_dir: Path, run_dir: Path) -> None:
        self.namespace, self.caddy_dir, self.run_dir = namespace, caddy_dir, run_dir

    def push(
        self, content: str, target: str = "Caddyfile", action: str = "install", *, first_boot: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """first_boot: a folder of stub commands (cloud-init, wg) first on PATH, and a /var/lib of its own
        with cloud-init's instance folder: how a server looks right after its first boot."""
        argv = ["ip", "netns", "exec", self.namespace, "sh", "-c", caddy_command(target, action)]
        # The machine's environment, with Caddy's data in the test's folder (no root of its own here).
        env = {
            **machine_environment(self.run_dir),
            "XDG_DATA_HOME": str(self.run_dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(self.run_dir / "xdg-config"),
        }
        if first_boot is not None:
            (first_boot / "var-lib" / "cloud" / "instance").mkdir(parents=True, exist_ok=True)
            mount = f'mount --bind {first_boot / "var-lib"} /var/lib && exec "$@"'
            argv = ["unshare", "--mount", "sh", "-c", mount, "sh", *argv]
            env["PATH"] = f"{first_boot}:{env['PATH']}"
        return subprocess.run(argv, input=content, capture_output=True, text=True, timeout=60, env=env)

    def get(self, port: int) -> str:
        command = [
            "ip",
            "netns",
            "exec",
            self.namespace,
            "python3",
            "-c",
            "import sys, urllib.request; "
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2).read().decode())",
        ]
        deadline = time.monotonic() + 5
        while True:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if result.returncode == 0 or time.monotonic() > deadline:
                return result.stdout.strip() if result.returncode == 0 else "unreachable"
            time.sleep(0.1)


@pytest.fixture
def vps(tmp_path: Path) -> Iterator[Vps]:
    require_root_and_tools("caddy", "ip")
    namespace = f"mitest-{uuid.uuid4().hex[:8]}"
    caddy_dir = tmp_path / "caddy"
    caddy_dir.mkdir()
    etc = ETC_NETNS / namespace
    etc.mkdir(parents=True)
    (etc / "caddy").symlink_to(caddy_dir)
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True)
    try:
        yield Vps(namespace, caddy_dir, tmp_path / "run")
    finally:
        pidfile = tmp_path / "run" / "caddy.pid"
        if pidfile.is_file():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        subprocess.run(["ip", "netns", "del", namespace], check=False)
        (etc / "caddy").unlink()
        etc.rmdir()


def caddyfile(vps: Vps, body: str) -> str:
    return (
        "{\n\tadmin localhost:2019\n\timport /etc/caddy/global.d/*.caddy\n}\n\n"
        f'http://:8080 {{\n\trespond "{body}"\n}}\n\nimport /etc/caddy/sites.d/*.caddy\n'
    )


def test_install_reject_and_unchanged(vps: Vps) -> None:
    first = vps.push(caddyfile(vps, "one"))
    assert first.returncode == 0, first.stderr
    assert vps.get(8080) == "one"

    second = vps.push(caddyfile(vps, "two"))
    assert second.returncode == 0 and vps.get(8080) == "two"
    assert "one" in (vps.caddy_dir / "Caddyfile.previous").read_text()

    broken = vps.push(caddyfile(vps, "three").replace("respond", "respnd"))
    assert broken.returncode == 1
    assert "unrecognized directive: respnd" in broken.stderr and "running configuration keeps serving" in broken.stderr
    assert vps.get(8080) == "two" and "two" in (vps.caddy_dir / "Caddyfile").read_text()
    assert not (vps.caddy_dir / "Caddyfile.next").exists()

    again = vps.push(caddyfile(vps, "two"))
    assert again.returncode == 0 and "(unchanged)" in again.stdout


def test_site_files_install_reject_and_remove(vps: Vps) -> None:
    assert vps.push(caddyfile(vps, "main")).returncode == 0
    site = "sites.d/rehearsal.caddy"
    installed = vps.push('http://:8081 {\n\trespond "rehearsal"\n}\n', site)
    assert installed.returncode == 0, installed.stderr
    assert vps.get(8081) == "rehearsal" and vps.get(8080) == "main"

    broken = vps.push('http://:8081 {\n\trespnd "x"\n}\n', site)
    assert broken.returncode == 1 and "respnd" in broken.stderr
    assert vps.get(8081) == "rehearsal"
    assert "rehearsal" in (vps.caddy_dir / site).read_text()

    removed = vps.push("", site, "remove")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert vps.get(8081) == "unreachable" and vps.get(8080) == "main"
    assert not (vps.caddy_dir / site).exists()
    assert "already gone" in vps.push("", site, "remove").stdout


def stub(folder: Path, name: str, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n" + script)
    (folder / name).chmod(0o755)


def test_a_failed_first_boot_does_not_block_caddy_for_good(vps: Vps, tmp_path: Path) -> None:
    """cloud-init's verdict is final for the server's life: one apt glitch at first boot and it says
    error forever. The apply goes on when what it needs is there, and says what is wrong."""
    boot = tmp_path / "first-boot"
    stub(boot, "cloud-init", 'case "$*" in\n  "status --long") echo "status: error"\n'
         '    echo "errors: Failed to install packages: [unattended-upgrades]";;\nesac\nexit 1\n')  # fmt: skip
    stub(boot, "wg", "exit 1\n")  # wg0 is not up
    result = vps.push(caddyfile(vps, "served"), first_boot=boot)
    assert result.returncode == 0, result.stderr
    assert "/etc/caddy/Caddyfile is live" in result.stdout and vps.get(8080) == "served"
    assert "warning: cloud-init finished with errors (exit 1)" in result.stderr
    assert "Failed to install packages: [unattended-upgrades]" in result.stderr
    assert "warning: WireGuard wg0 is not up" in result.stderr


def test_a_site_file_needs_the_caddyfile_first(vps: Vps) -> None:
    result = vps.push('http://:8081 {\n\trespond "x"\n}\n', "sites.d/rehearsal.caddy")
    assert result.returncode == 1 and "must be installed first" in result.stderr
