"""An asset's name: ``<connection>.<schema>.<table>``, the schema always written.

The schema a table given without one lives in depends on the connection's
kind: ``public`` on PostgreSQL, the connection's database on MySQL, ``main``
on SQLite. A csv or jsonl "table" is a file in the connection's folder: its
name is ``<connection>.<folder>/<file>`` (the folder as in ``config.path``,
relative to DATA_ROOT), so the same file reached through two connections
is told apart by its connection, like a table.
"""

from __future__ import annotations

import posixpath
from typing import Any

FILE_KINDS = frozenset({"csv", "jsonl"})

# The schema of a table named without one, by connection kind; MySQL's is
# the connection's database (``config.database``).
DEFAULT_SCHEMA = {"postgresql": "public", "sqlite": "main"}


def split_asset(name: str) -> tuple[str, str]:
    """``(connection, rest)`` of an asset name: connection names hold no dot."""
    connection, _, rest = name.partition(".")
    return connection, rest


def _folder(config: dict[str, Any]) -> str:
    folder = posixpath.normpath(str(config.get("path") or "."))
    return "" if folder == "." else folder.strip("/")


def asset_name(connection: str, kind: str, config: dict[str, Any], table: str) -> str:
    """The asset ``table`` is on connection ``connection`` (its ``kind`` and ``config``)."""
    if kind in FILE_KINDS:
        folder = _folder(config)
        if "/" in table:  # already carries its folder
            return f"{connection}.{table}"
        return f"{connection}.{folder}/{table}" if folder else f"{connection}.{table}"
    if "." in table:
        return f"{connection}.{table}"
    schema = config.get("database") if kind == "mysql" else DEFAULT_SCHEMA.get(kind)
    return f"{connection}.{schema}.{table}" if schema else f"{connection}.{table}"
