"""The service files the stack exports: the Mac Mini's WireGuard at boot, and the watch off-site."""

from __future__ import annotations

import plistlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from mana_infra.check import cli as check
from mana_infra.render.services import (
    WATCH_OUTPUTS,
    macmini_wireguard_plist,
    watch_command,
    watch_launchd_agent,
    watch_systemd_unit,
    watchdog_command,
    watchdog_systemd_unit,
)

from .support import plan_of, require_tools


def test_the_mac_minis_wireguard_comes_up_at_boot() -> None:
    plist = plistlib.loads(macmini_wireguard_plist().encode())
    assert plist["Label"] == "how.mana.wireguard" and plist["RunAtLoad"] is True
    # Homebrew's bash runs wg-quick (macOS's own bash 3 cannot), on the file the README installs.
    assert plist["ProgramArguments"] == ["/opt/homebrew/bin/bash", "/opt/homebrew/bin/wg-quick", "up",
                                         "/etc/wireguard/wg0.conf"]  # fmt: skip
    assert plan_of("prod").outputs["macminiLaunchdPlist"] == macmini_wireguard_plist()


def test_the_watch_runs_check_on_copied_outputs_with_the_webhook_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit = watch_systemd_unit("prod")
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv == ["/usr/local/bin/mana-infra", "check", "--stack", "prod", "--watch", "60", "--no-ssh",
                    "--metrics-listen", "127.0.0.1:9817", "--outputs", WATCH_OUTPUTS]  # fmt: skip
    assert "EnvironmentFile=/etc/mana-infra/watch.env" in unit and "Restart=always" in unit
    # check takes every flag, and the webhook from the environment file: never in argv, where `ps` shows it.
    monkeypatch.setenv("MANA_WATCH_WEBHOOK", "https://hooks.example.net/x")
    args = check.parse_args(argv[2:])
    assert (args.watch, args.outputs, args.webhook, args.no_ssh, args.metrics_listen) == (
        60.0,
        WATCH_OUTPUTS,
        "https://hooks.example.net/x",
        True,
        "127.0.0.1:9817",  # loopback: nothing the watch knows is served to the world by default
    )
    assert check.parse_args(["--outputs", WATCH_OUTPUTS]).webhook is None  # no watch, no alert
    agent = plistlib.loads(watch_launchd_agent("prod").encode())
    assert agent["KeepAlive"] is True and agent["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert shlex.join(watch_command("prod", 60)) in agent["ProgramArguments"][2]
    outputs = plan_of("prod").outputs
    assert outputs["watchSystemdUnit"] == unit and outputs["watchLaunchdAgent"] == watch_launchd_agent("prod")


def test_the_unit_is_one_systemd_takes(tmp_path: Path) -> None:
    require_tools("systemd-analyze")
    path = tmp_path / "mana-watch.service"
    path.write_text(watch_systemd_unit("prod"))
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)
    problems = [
        line for line in done.stderr.splitlines() if "mana-watch.service" in line and "/usr/local/bin" not in line
    ]
    assert not problems, done.stderr


def test_the_watchdogs_unit_runs_mana_infra_watch_from_the_checkout_with_its_state_kept(tmp_path: Path) -> None:
    unit = watchdog_systemd_unit("prod")
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv == watchdog_command("prod") and argv[1:4] == ["watch", "--stack", "prod"]
    assert "StateDirectory=mana-infra" in unit and "WorkingDirectory=/opt/mana-infra" in unit
    assert "--state" in argv and argv[argv.index("--state") + 1].startswith("/var/lib/mana-infra/")
    assert plan_of("prod").outputs["watchdogSystemdUnit"] == unit
    # Every flag it runs with is one `mana-infra watch` takes.
    from mana_infra import cli

    parser = cli.COMMANDS["watch"].parser("watch", argv[2:])
    assert parser.parse_args(argv[2:]).ssh_key == "/etc/mana-infra/id_ed25519"
    if shutil.which("systemd-analyze"):
        path = tmp_path / "mana-watchdog.service"
        path.write_text(unit)
        done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)
        problems = [
            line for line in done.stderr.splitlines() if "mana-watchdog.service" in line and "/opt/" not in line
        ]
        assert not problems, done.stderr
