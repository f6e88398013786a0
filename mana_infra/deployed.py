"""The deployed mode, one fact in one place: the stack's own outputs say which mode and way it is in,
since when and by what (`mode`, `failoverVia`, `modeSince`, `modeChangedBy`).

The program writes them (a run that changes the mode records the time and who ran it, from
MANA_CHANGED_AT and MANA_CHANGED_BY when a mana-infra command runs `pulumi up`, else the clock and the
user); `mana-infra deploy` (the unattended weekly run) reads them and keeps the deployed mode whatever
the checkout's Pulumi.<stack>.yaml says; a `pulumi up` or preview that changes the mode says so. Plain
Python: the commands and the watch import it without pulumi.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .model import VIA_WORDS
from .outputs import Output

CHANGED_BY_VARIABLE = "MANA_CHANGED_BY"  # who runs this `pulumi up` (a mana-infra command sets it)
CHANGED_AT_VARIABLE = "MANA_CHANGED_AT"  # when (the offline plan sets a placeholder)

# The self-reference's resource name: the program reads its own last outputs through it.
DEPLOYED_REFERENCE = "deployed"


@dataclass(frozen=True)
class ModeRecord:
    """A stack's mode and way as deployed, since when and by what (None: not recorded)."""

    mode: str
    via: str | None  # the way, in failover only
    since: str | None = None
    by: str | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> ModeRecord | None:
        """The record in a stack's outputs, or None before the stack's first `pulumi up`."""
        mode = outputs.get(Output.MODE)
        if not isinstance(mode, str):
            return None
        via = outputs.get(Output.FAILOVER_VIA)
        since, by = outputs.get(Output.MODE_SINCE), outputs.get(Output.MODE_CHANGED_BY)
        return cls(
            mode,
            str(via) if mode == "failover" and via else None,
            str(since) if since else None,
            str(by) if by else None,
        )

    @property
    def state(self) -> tuple[str, str | None]:
        return self.mode, self.via

    @property
    def words(self) -> str:
        """`failover through the edge`, `failover DNS-only`, `tunnel`."""
        if self.mode != "failover":
            return self.mode
        return "failover " + VIA_WORDS.get(self.via or "edge", VIA_WORDS["edge"])

    def text(self) -> str:
        """`failover through the edge since 2026-12-07T03:00:00Z (by mana-infra cutover by op@laptop)`."""
        since = f" since {self.since}" if self.since else " (since when is not recorded)"
        by = f" (by {self.by})" if self.by else ""
        return f"{self.words}{since}{by}"


def changed_by() -> str:
    """Who runs this `pulumi up`: the mana-infra command that runs it, else the user on this machine."""
    return os.environ.get(CHANGED_BY_VARIABLE) or f"a pulumi up by {getpass.getuser()}@{socket.gethostname()}"


def changed_at() -> str:
    return os.environ.get(CHANGED_AT_VARIABLE) or datetime.now(UTC).isoformat(timespec="seconds")


def after_run(previous: ModeRecord | None, mode: str, via: str) -> tuple[ModeRecord, str | None]:
    """The record this run leaves, and what to say when it changes the mode or the way (None: nothing
    changes, or the stack's first run)."""
    now = ModeRecord(mode, via if mode == "failover" else None)
    if previous is not None and previous.state == now.state:
        return ModeRecord(mode, now.via, previous.since, previous.by), None
    record = ModeRecord(mode, now.via, changed_at(), changed_by())
    if previous is None:
        return record, None
    return record, f"this run changes the stack's mode: it is {previous.text()}; after it, {record.words}"
