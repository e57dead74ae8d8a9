"""Request parsers of the API.

Kept apart from ``core.api``: DRF resolves the parser setting while
defining ``APIView``, which ``core.api`` imports (a cycle otherwise).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers

from core.errors import InvalidInput


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (lone surrogate)"
    return None


def text_problems(data: Any) -> list[tuple[str, str]]:
    """Strings (keys included) that no database can store, with their paths.

    PostgreSQL refuses NUL in text and JSON, and no driver can encode a lone
    surrogate, which JSON's ``\\udxxx`` escapes can produce: both would be a
    500 deep in a service instead of a 400 here. Iterative, so any depth is fine.
    """
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack and len(problems) < 20:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                problems.append((path, problem))
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                problem = _text_problem(str(key))
                if problem:
                    problems.append((path, f"key: {problem}"))
                    continue
                stack.append((sub, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return problems


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing what would fail later as a 500.

    Text no database can store (NUL, lone surrogates) and nesting too deep
    for Python's JSON decoder answer 400 with the offending path.
    """

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        problems = text_problems(data)
        if problems:
            raise InvalidInput("invalid input", problems)
        return data
