"""``sql`` task: statements on a SQL connection, parameters bound."""

from __future__ import annotations

from typing import ClassVar

from pipelines.tasktypes.base import TaskContext, TaskFailed, TaskType


class SqlTask(TaskType):
    """Run ``sql`` (a string or a list) in one transaction on ``connection``.

    Parameters reach the SQL only as bound values (``%(name)s``); the
    statement timeout is what is left of the task's timeout; a cancel stops
    the running statement in the database and rolls the transaction back.
    """

    name: ClassVar[str] = "sql"

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        connector = ctx.connection(task["connection"])
        if not getattr(connector, "speaks_sql", False):
            raise TaskFailed(
                f"connection {task['connection']!r} ({connector.kind}) does not run SQL"
            )
        statements = task["sql"] if isinstance(task["sql"], list) else [task["sql"]]
        counts = connector.run_statements(list(statements), ctx.params, ctx)  # type: ignore[attr-defined]
        for number, count in enumerate(counts, start=1):
            ctx.log(f"statement {number}/{len(counts)}: {count} row(s) affected")
        ctx.metrics["statements"] = len(counts)
        ctx.metrics["rows_affected"] = sum(counts)
