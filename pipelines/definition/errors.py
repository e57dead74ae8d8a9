"""The error a definition that cannot be parsed or is invalid raises."""

from __future__ import annotations

from core.checker import Problem


class DefinitionError(Exception):
    """A definition that cannot be parsed or is invalid; ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        # The list itself is the only argument, so the exception pickles
        # (django-q2 pickles task results and errors).
        super().__init__(list(problems))
        self.problems: list[Problem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
