"""The connection browser: tables, columns and sample rows (SPEC §6).

Only for users who may use the connection (view-only users are refused):
the look reads data with the stored credentials. Bounded and read-only
(``connectors.browse``); the page never shows a secret.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from accounts.actor import Actor
from accounts.permissions import Action
from connectors.browse import MAX_COLUMNS, MAX_TABLES, SAMPLE_ROWS, connection_browse
from connectors.selectors import connection_for
from core.ui import render_ui, ui_view


@ui_view
@require_GET
def connection_browse_view(request: HttpRequest, connection_id: Any) -> HttpResponse:
    """The connection's tables; with ``?table=`` also its columns and first rows."""
    conn = connection_for(request.user, connection_id, Action.USE)
    table = (request.GET.get("table") or "").strip()[:200] or None
    result = connection_browse(connection=conn, table=table, actor=Actor.from_request(request))
    context = {
        "nav": "connections",
        "connection": conn,
        "browse": result,
        "schemas": _by_schema(result["tables"]) if conn.kind == "postgresql" else None,
        "max_tables": MAX_TABLES,
        "max_columns": MAX_COLUMNS,
        "sample_rows": SAMPLE_ROWS,
    }
    return render_ui(request, "connectors/browse.html", context, fragment="browser")


def _by_schema(names: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``schema.table`` names as ``[(schema, [(name, table), ...]), ...]`` in their order."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        schema, _, table = name.partition(".")
        groups.setdefault(schema, []).append((name, table))
    return list(groups.items())
