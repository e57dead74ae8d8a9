"""A look at a connection's data from the connection page (SPEC §6).

Read-only and bounded: every statement runs in a read-only snapshot under
the connector's ``browse_timeout_s``; at most ``MAX_TABLES`` names,
``MAX_COLUMNS`` columns and ``SAMPLE_ROWS`` rows, each value cut to
``MAX_VALUE_CHARS`` characters. Errors are the connector's own words (a host
and a cause, never a secret) or an exception's class name. Each look is
recorded in the audit trail: it reads data with the stored credentials.
"""

from __future__ import annotations

from typing import Any

from accounts.actor import SYSTEM, Actor
from accounts.services import audit_record
from connectors.base import ConnectorError
from connectors.models import Connection
from connectors.paths import connection_path_problem

MAX_TABLES = 500
MAX_COLUMNS = 50
SAMPLE_ROWS = 20
MAX_VALUE_CHARS = 200


def shown(value: Any) -> str | None:
    """A value as the browser shows it: text, cut; bytes by their size; NULL as None."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        return text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def connection_browse(
    *, connection: Connection, table: str | None = None, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """``{tables, more_tables, table, columns, rows, error}`` of ``connection``.

    ``tables`` always (the names, sorted); with ``table`` also its columns
    (``{name, type}``) and first rows (lists of shown values).
    """
    result: dict[str, Any] = {
        "tables": [],
        "more_tables": False,
        "table": table,
        "columns": [],
        "rows": [],
        "error": None,
    }
    overlap = connection_path_problem(
        kind=connection.kind, config=connection.config, exclude=connection.pk
    )
    try:
        if overlap:
            raise ConnectorError(f"config.path {overlap}")
        connector = connection.connector()
        names = connector.list_tables(MAX_TABLES + 1)
        result["tables"] = names[:MAX_TABLES]
        result["more_tables"] = len(names) > MAX_TABLES
        if table is not None:
            columns, rows = connector.sample(table, MAX_COLUMNS, SAMPLE_ROWS)
            result["columns"] = [{"name": c.name, "type": c.native or c.type} for c in columns]
            result["rows"] = [[shown(v) for v in row] for row in rows]
    except ConnectorError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - shown by class name: its text may hold a DSN
        result["error"] = type(exc).__name__
    audit_record(
        action="browse",
        obj=connection,
        by=actor,
        details={"kind": connection.kind, "table": table, "ok": result["error"] is None},
    )
    return result
