"""One error type for every kind of bad input: it carries all problems found, not just the first.

Plain Python: the check (all the off-site watch box runs) imports it without pulumi. Inside a Pulumi
program the same errors reach the engine as `pulumi.RunError`s (see `program.run`), which it prints
without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is, what is wrong, and how to fix it."""

    where: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class InputError(Exception):
    """Bad configuration or inventory: every problem, each with where it is and how to fix it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"mana-infra: {count} problem{'s' if count != 1 else ''} in the input, nothing was changed:"
        super().__init__("\n".join([heading, *(f"  - {problem}" for problem in self.problems)]))


def raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)


# The clouds whose answers the program reads while it runs (invokes), and what to check when one fails.
CLOUD_APIS = {
    "hcloud": (
        "the Hetzner Cloud API",
        "check the token (pulumi config set --secret hcloud:token <read & write token>) and, if set, "
        "hcloud:endpoint; Hetzner's status: https://status.hetzner.com",
    ),
    "cloudflare": (
        "Cloudflare's API",
        "check the token (pulumi config set --secret cloudflare:apiToken <token>) and, if set, "
        "cloudflare:baseUrl; if Cloudflare itself is down or the token revoked, the stack's emergencyCutover "
        "output is the way that needs no Cloudflare call",
    ),
}


class CloudError(Exception):
    """A cloud's API did not answer a question the program asked it (an invoke): said in one
    paragraph, with what to check, and without the Python traceback Pulumi would print otherwise."""

    def __init__(self, token: str, reason: str) -> None:
        package = token.split(":", 1)[0]
        api, fix = CLOUD_APIS.get(package, (f"the {package} provider", "check its configuration"))
        function = token.rsplit(":", 1)[-1]
        super().__init__(f"mana-infra: {api} did not answer ({function}): {reason}\n    fix: {fix}")


def cloud_error(error: Exception) -> CloudError | None:
    """The CloudError for a failed invoke (Pulumi raises a plain Exception "invoke of TOKEN failed: ...")."""
    text = str(error)
    if not text.startswith("invoke of "):
        return None
    token = text.removeprefix("invoke of ").split(" ", 1)[0]
    # The provider's own last words carry the reason (e.g. "dial tcp ...: connection refused").
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return CloudError(token, lines[-1] if lines else text)


class ExitCode(IntEnum):
    """What every `mana-infra` command exits with."""

    OK = 0  # healthy, green, safe to go on
    NOT_OK = 1  # degraded, not green, conflicts to resolve first, or declined at the prompt
    BAD_INPUT = 2  # bad input: every problem said, nothing changed
    INTERRUPTED = 130  # Ctrl-C before a first result
