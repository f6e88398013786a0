"""Lab tests need root, Linux and the lab's tools: they skip without them, and fail in CI (CI=true),
where a skipped lab test would hide a broken set-up."""

from __future__ import annotations

from typing import Any

import pytest

from mana_lab.lab import REQUIRED_TOOLS

from ..support import require_root_and_tools


@pytest.fixture(scope="session")
def plan_inputs() -> dict[str, Any]:
    """The lab's inputs from the offline plan of prod (both modes), evaluated once per test run."""
    require_root_and_tools(*REQUIRED_TOOLS)
    from mana_lab.inputs import inputs_from_plan

    return inputs_from_plan("prod")
