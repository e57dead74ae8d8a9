"""``sql`` task: statements on a SQL connection, parameters bound."""

from __future__ import annotations

from typing import Any, ClassVar

from core.checker import NAME_SCHEMA, Checker, at, idx, kind
from pipelines.tasktypes.base import (
    VALUES_SCHEMA,
    Key,
    TaskContext,
    TaskFailed,
    TaskType,
    bind_values,
    bound_beside,
)

_STATEMENT = {"type": "string", "minLength": 1}


class SqlTask(TaskType):
    """Run ``sql`` (a string or a list) in one transaction on ``connection``.

    Parameters reach the SQL only as bound values (``%(name)s``); the
    statement timeout is what is left of the task's timeout; a cancel stops
    the running statement in the database and rolls the transaction back.
    ``params`` are bound beside the pipeline's parameters (an upstream
    task's output among them).
    """

    name: ClassVar[str] = "sql"
    output_metrics: ClassVar[tuple[str, ...]] = ("rows_affected",)
    keys: ClassVar[dict[str, Key]] = {
        "connection": Key(NAME_SCHEMA, required=True),
        "sql": Key(
            {"oneOf": [_STATEMENT, {"type": "array", "items": _STATEMENT, "minItems": 1}]},
            required=True,
        ),
        "params": Key(VALUES_SCHEMA),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """One statement or a list of statements, their ``%(name)s`` known parameters."""
        out: dict[str, Any] = {"connection": None, "sql": None}
        if "connection" in task:
            out["connection"] = c.connection(at(path, "connection"), task["connection"])
        with bound_beside(c, at(path, "params"), task, out):
            self._check_sql(c, path, task, out)
        return out

    def _check_sql(self, c: Checker, path: str, task: dict[str, Any], out: dict[str, Any]) -> None:
        if "sql" in task:
            spath, value = at(path, "sql"), task["sql"]
            if isinstance(value, list):
                items = c.list_of(spath, value, nonempty=True) or []
                out["sql"] = [c.sql(idx(spath, i), item) for i, item in enumerate(items)]
            elif isinstance(value, str):
                out["sql"] = c.sql(spath, value)
            else:
                c.add(spath, f"expected a string or a list of strings, got {kind(value)}")

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        connector = ctx.connection(task["connection"])
        if not getattr(connector, "speaks_sql", False):
            raise TaskFailed(
                f"connection {task['connection']!r} ({connector.kind}) does not run SQL"
            )
        statements = task["sql"] if isinstance(task["sql"], list) else [task["sql"]]
        params = {**ctx.params, **bind_values(task.get("params") or {}, ctx.params)}
        counts = connector.run_statements(list(statements), params, ctx)  # type: ignore[attr-defined]
        for number, count in enumerate(counts, start=1):
            ctx.log(f"statement {number}/{len(counts)}: {count} row(s) affected")
        ctx.metrics["statements"] = len(counts)
        ctx.metrics["rows_affected"] = sum(counts)
