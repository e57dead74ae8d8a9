"""``check`` task: data-quality assertions on a table."""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters. A source `query` or a
# `sql` check is the pipeline author's own SQL, run on a connection they may
# use (SPEC §5), so it is not an injection.
from typing import Any, ClassVar

from pipelines.tasktypes.base import TaskContext, TaskFailed, TaskType


def run_checks(connector: Any, table: str, checks: list[dict[str, Any]], ctx: Any) -> list[str]:
    """Run every check; the failure messages (empty when all pass).

    Each message says which check failed and how many rows. Every check
    runs even after one fails, so one run reports every problem.
    """
    d = connector.dialect
    qualified = d.table(table)
    params = dict(getattr(ctx, "params", {}) or {})
    failures: list[str] = []

    def count(sql: str, bound: dict[str, Any] | None = None) -> int:
        ctx.check()
        _names, rows = connector.query(sql, bound, ctx)
        return int(rows[0][0] or 0)

    for number, check in enumerate(checks):
        ((kind, spec),) = check.items()
        label = f"checks[{number}] {kind}"
        if kind == "row_count":
            n = count(f"SELECT COUNT(*) FROM {qualified}")  # nosec B608
            low, high = spec.get("min"), spec.get("max")
            if low is not None and n < low:
                failures.append(f"{label}: {n} rows, fewer than min {low}")
            elif high is not None and n > high:
                failures.append(f"{label}: {n} rows, more than max {high}")
            else:
                ctx.log(f"{label}: ok ({n} rows)")
        elif kind == "not_null":
            for column in spec:
                n = count(f"SELECT COUNT(*) FROM {qualified} WHERE {d.quote(column)} IS NULL")  # nosec B608
                if n:
                    failures.append(f"{label} {column}: {n} rows with NULL")
                else:
                    ctx.log(f"{label} {column}: ok")
        elif kind == "unique":
            cols = ", ".join(d.quote(c) for c in spec)
            not_null = " AND ".join(f"{d.quote(c)} IS NOT NULL" for c in spec)
            n = count(
                f"SELECT COUNT(*) FROM (SELECT {cols} FROM {qualified} WHERE {not_null}"  # nosec B608
                f" GROUP BY {cols} HAVING COUNT(*) > 1) AS _dd_dup"
            )
            if n:
                failures.append(f"{label} [{', '.join(spec)}]: {n} values appear more than once")
            else:
                ctx.log(f"{label} [{', '.join(spec)}]: ok")
        elif kind == "sql":
            query = str(spec).strip().rstrip(";")
            n = count(f"SELECT COUNT(*) FROM ({query}) AS _dd_check", params)  # nosec B608
            if n:
                failures.append(f"{label}: returned {n} rows (expected none)")
            else:
                ctx.log(f"{label}: ok")
        else:
            raise TaskFailed(f"{label}: unknown check")
    return failures


class CheckTask(TaskType):
    """Fail when any of ``checks`` fails on ``table`` of ``connection``."""

    name: ClassVar[str] = "check"

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        connector = ctx.connection(task["connection"])
        if not getattr(connector, "speaks_sql", False):
            raise TaskFailed(
                f"connection {task['connection']!r} ({connector.kind}) does not run SQL"
            )
        checks = list(task.get("checks") or [])
        failures = run_checks(connector, task["table"], checks, ctx)
        ctx.metrics["checks_passed"] = len(checks) - len(failures) if failures else len(checks)
        ctx.metrics["checks_failed"] = len(failures)
        if failures:
            raise TaskFailed("; ".join(failures))
