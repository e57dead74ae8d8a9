"""Name rules every layer shares: object names and SQL identifiers.

One copy of each rule: the definition checker (pipelines) refuses a bad name
before a pipeline is saved, and the connectors refuse it again right before
building SQL, with the same answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

# Pipeline, task, connection, transformation and parameter names. Anchored
# with \A...\Z (not ^...$, which lets a trailing newline through) so .match,
# .search and .fullmatch agree.
NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,99}\Z")
NAME_RULE = "must match [A-Za-z_][A-Za-z0-9_-]{0,99}"

# PostgreSQL silently truncates identifiers past 63 bytes (NAMEDATALEN - 1);
# two long names could then collide, so refuse them instead.
MAX_IDENTIFIER_BYTES = 63


def identifier_problem(name: Any) -> str | None:
    """Why ``name`` cannot be quoted safely as one SQL identifier part, or None.

    Spaces, ``;`` and any other printable text are fine: every identifier is
    quoted. What quoting cannot make safe is refused: the quote characters
    themselves, NUL and control characters, and ``%`` (read as a pyformat
    placeholder in SQL that carries bound parameters).
    """
    if not isinstance(name, str):
        return "must be a string"
    if name == "":
        return "must not be empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES:
        return f"is longer than {MAX_IDENTIFIER_BYTES} bytes"
    if "\x00" in name:
        return "must not contain NUL"
    if '"' in name:
        return "must not contain a double quote"
    if "`" in name:
        return "must not contain a backtick"
    if "%" in name:
        return "must not contain %"
    # Cc: C0/C1 controls and DEL; Cs: lone surrogates, which no database
    # encodes; Zl/Zp: line and paragraph separators, which break log lines.
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in name):
        return "must not contain control characters or line breaks"
    return None


def table_problem(table: Any) -> str | None:
    """Why ``table`` is not a safe ``name`` or ``schema.name``, or None.

    For csv/jsonl connections the table is a file name (``orders.csv``), which
    reads as schema ``orders``, name ``csv`` — harmless. Path separators and
    ``..`` are refused everywhere so a file name cannot leave its directory.
    """
    if not isinstance(table, str):
        return "must be a string"
    if any(bad in table for bad in ("/", "\\", "..")):
        return "must not contain '/', '\\' or '..'"
    parts = table.split(".")
    if len(parts) > 2:
        return "expected name or schema.name"
    labels = ("schema", "name") if len(parts) == 2 else ("name",)
    for label, part in zip(labels, parts, strict=True):
        problem = identifier_problem(part)
        if problem:
            return f"{label} part {problem}" if len(parts) == 2 else problem
    return None


# Bound parameters in task SQL: ``%(name)s`` (psycopg's ``%(name)b``/``%(name)t``
# too); ``%%`` is a literal percent sign. The definition checker and the
# connectors that bind the values read placeholders with this one rule.
_SQL_PARAM_RE = re.compile(r"%(?:%|\((?P<name>[^)]*)\)[sbt])")


def sql_parameters(sql: str) -> list[str]:
    """Names of the ``%(name)s`` placeholders in ``sql``, in order, each once."""
    names = (m.group("name") for m in _SQL_PARAM_RE.finditer(sql))
    return list(dict.fromkeys(name for name in names if name is not None))


def replace_sql_parameters(sql: str, replace: Callable[[str], str]) -> str:
    """``sql`` with each ``%(name)s`` placeholder as ``replace(name)`` and ``%%`` as ``%``.

    For drivers with another placeholder style (sqlite3's ``:name``).
    """

    def one(match: re.Match[str]) -> str:
        name = match.group("name")
        return "%" if name is None else replace(name)

    return _SQL_PARAM_RE.sub(one, sql)
