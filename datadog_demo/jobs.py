"""Functions the demo's python tasks call: each does what a team's job would."""

from __future__ import annotations

from typing import Any


def summarize_drop(ctx: Any, rows: int) -> dict[str, Any]:
    """Total the dropped orders per status into ``drop_summary`` on the warehouse.

    ``rows`` is the upstream copy's ``rows_written`` (an ``{output: ...}``
    reference in the definition); the output says what was summarized.
    """
    with ctx.connection("demo_warehouse") as conn:
        cur = conn.cursor()
        cur.execute(
            "CREATE TABLE IF NOT EXISTS drop_summary "
            "(status TEXT PRIMARY KEY, orders INTEGER, total NUMERIC)"
        )
        cur.execute("DELETE FROM drop_summary")
        cur.execute(
            "INSERT INTO drop_summary SELECT status, count(*), sum(amount) "
            "FROM drop_orders GROUP BY status"
        )
        cur.execute("SELECT count(*) FROM drop_summary")
        (statuses,) = cur.fetchone()
    ctx.log(f"{rows} dropped orders summarized into {statuses} statuses")
    return {"rows": rows, "statuses": statuses}
