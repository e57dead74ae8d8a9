"""Small reads of a SQL source inside the copy's snapshot."""

from __future__ import annotations

# Security review (bandit B608): the SQL built here wraps SQL the engine
# generated from quoted identifiers; values travel as bound parameters.
from typing import Any

from connectors.base import SqlConnector


def where_sql(base_sql: str, conditions: list[str]) -> str:
    """``base_sql`` restricted by ``conditions`` (all of them)."""
    if not conditions:
        return base_sql
    return f"SELECT * FROM ({base_sql}) AS _dd_w WHERE {' AND '.join(conditions)}"  # nosec B608


def first_row(source: SqlConnector, conn: Any, sql: str, params: dict[str, Any]) -> tuple:
    """The first row of ``sql`` (NULLs when it has none)."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        row = cur.fetchone()
    finally:
        cur.close()
    if not source.typed_values and row is not None:
        return tuple(row)
    return tuple(row) if row is not None else (None, None)


def scalar(source: SqlConnector, conn: Any, sql: str, params: dict[str, Any]) -> Any:
    """The first value of ``sql``'s first row."""
    return first_row(source, conn, sql, params)[0]
