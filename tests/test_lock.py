"""One writer at a time: a second cutover, failback, deploy or watchdog on the same machine waits,
then refuses naming the first; one from another machine meets Pulumi's lock, and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mana_infra import cutover
from mana_infra.errors import InputError
from mana_infra.lock import lock_path, stack_lock

from .test_cutover import OUTPUTS, Checks, FakeEngine, report, switch_with


def test_a_second_writer_waits_then_refuses_naming_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from mana_infra.lock import stack_lock\n"
         "with stack_lock(Path(sys.argv[1]), 'prod', 'mana-infra cutover'):\n"
         "    print('held', flush=True); time.sleep(30)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(InputError) as refused, stack_lock(tmp_path, "prod", "mana-infra deploy", wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5
        [problem] = refused.value.problems
        assert problem.where == "stack prod"
        assert problem.message.startswith(f"is being changed by mana-infra cutover (pid {holder.pid} on ")
        assert "one writer at a time, nothing was changed" in problem.message
    finally:
        holder.kill()
        holder.wait()
    with stack_lock(tmp_path, "prod", "mana-infra deploy", wait=0):  # free again once the holder is gone
        assert "mana-infra deploy (pid" in lock_path(tmp_path, "prod").read_text()
    assert lock_path(tmp_path, "prod").read_text() == ""


def test_pulumis_lock_from_another_machine_leaves_the_configuration_as_it_was() -> None:
    engine = FakeEngine(dict(OUTPUTS), fail="the stack is currently locked by 1 lock(s)")
    verdict, lines = switch_with(engine, Checks(report()), cutover.Switch("failover", "dns"))
    assert verdict.exit_code == 1 and engine.config == {"mode": "tunnel"}
    assert "another update of stack prod is running (Pulumi's lock on the stack): nothing changed" in lines[-1]
