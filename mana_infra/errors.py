"""One error type for every kind of bad input: it carries all problems found, not just the first."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is, what is wrong, and how to fix it."""

    where: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class InputError(pulumi.RunError):
    """Bad configuration or inventory.

    A subclass of ``pulumi.RunError`` because Pulumi prints such an error's message and stops
    cleanly, without the Python traceback an operator has no use for.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"mana-infra: {count} problem{'s' if count != 1 else ''} in the input, nothing was changed:"
        super().__init__("\n".join([heading, *(f"  - {problem}" for problem in self.problems)]))


def raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)
