"""``check`` task: data-quality assertions on a table."""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters. A source `query` or a
# `sql` check is the pipeline author's own SQL, run on a connection they may
# use (SPEC §5), so it is not an injection.
from collections.abc import Callable
from typing import Any, ClassVar

from core.checker import NAME_SCHEMA, Checker, at, idx, ordered
from pipelines.tasktypes.base import (
    VALUES_SCHEMA,
    Key,
    TaskContext,
    TaskFailed,
    TaskType,
    bind_values,
    bound_beside,
)

# A row count bound: a non-negative 64-bit integer.
_MAX_COUNT = 2**63 - 1
_COUNT = {"type": "integer", "minimum": 0, "maximum": _MAX_COUNT}
_COLUMNS = {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True}


def _check_row_count(c: Checker, path: str, raw: Any) -> dict[str, int] | None:
    """``{min?, max?}``: bounds on the number of rows."""
    bounds = c.keys(path, raw, optional=("min", "max"))
    if bounds is None:
        return None
    if "min" not in bounds and "max" not in bounds:
        c.add(path, "needs min, max or both")
        return None
    out: dict[str, Any] = {
        key: c.integer(at(path, key), bounds[key], 0, _MAX_COUNT)
        for key in ("min", "max")
        if key in bounds
    }
    low, high = out.get("min"), out.get("max")
    if low is not None and high is not None and low > high:
        c.add(at(path, "max"), "must not be less than min")
    return ordered(bounds, out)


def _check_columns(c: Checker, path: str, raw: Any) -> list[str] | None:
    """``not_null`` / ``unique``: a list of columns."""
    return c.column_list(path, raw)


# Check kind -> the checker of its value, and what the value is (its schema).
_CHECKS: dict[str, tuple[Callable[[Checker, str, Any], Any], dict[str, Any]]] = {
    "row_count": (
        _check_row_count,
        {
            "type": "object",
            "properties": {"min": _COUNT, "max": _COUNT},
            "minProperties": 1,
            "additionalProperties": False,
        },
    ),
    "not_null": (_check_columns, _COLUMNS),
    "unique": (_check_columns, _COLUMNS),
    # A query returning the offending rows: the check fails if it returns any.
    "sql": (Checker.sql, {"type": "string", "minLength": 1}),
}


def _check_item(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """One data-quality check: an object with exactly one known key."""
    item = c.keys(path, raw, optional=tuple(_CHECKS))
    if item is None:
        return None
    kinds = [key for key in item if key in _CHECKS]
    if len(kinds) != 1:
        if len(kinds) > 1 or not item:
            c.add(path, "expected exactly one of: " + ", ".join(sorted(_CHECKS)))
        return None
    kind = kinds[0]
    check, _schema = _CHECKS[kind]
    return {kind: check(c, at(path, kind), item[kind])}


def run_checks(
    connector: Any,
    table: str,
    checks: list[dict[str, Any]],
    ctx: Any,
    params: dict[str, Any] | None = None,
) -> list[str]:
    """Run every check; the failure messages (empty when all pass).

    Each message says which check failed and how many rows. Every check
    runs even after one fails, so one run reports every problem. ``params``
    are bound in ``sql`` checks (default: the run's parameters).
    """
    d = connector.dialect
    qualified = d.table(table)
    params = dict(params if params is not None else getattr(ctx, "params", {}) or {})
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
    """Fail when any of ``checks`` fails on ``table`` of ``connection``.

    ``params`` are bound in ``sql`` checks beside the pipeline's parameters.
    """

    name: ClassVar[str] = "check"
    output_metrics: ClassVar[tuple[str, ...]] = ("checks_passed", "checks_failed")
    keys: ClassVar[dict[str, Key]] = {
        "connection": Key(NAME_SCHEMA, required=True),
        "table": Key({"type": "string"}, required=True),
        "checks": Key(
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {kind: schema for kind, (_, schema) in _CHECKS.items()},
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                },
            },
            required=True,
        ),
        "params": Key(VALUES_SCHEMA),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """``checks`` on ``table`` of ``connection``."""
        out: dict[str, Any] = {"connection": None, "table": None, "checks": None}
        if "connection" in task:
            out["connection"] = c.connection(at(path, "connection"), task["connection"])
        if "table" in task:
            out["table"] = c.table(at(path, "table"), task["table"])
        with bound_beside(c, at(path, "params"), task, out):
            if "checks" in task:
                cpath = at(path, "checks")
                items = c.list_of(cpath, task["checks"], nonempty=True) or []
                out["checks"] = [
                    _check_item(c, idx(cpath, i), item) for i, item in enumerate(items)
                ]
        return out

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        connector = ctx.connection(task["connection"])
        if not getattr(connector, "speaks_sql", False):
            raise TaskFailed(
                f"connection {task['connection']!r} ({connector.kind}) does not run SQL"
            )
        checks = list(task.get("checks") or [])
        params = {**ctx.params, **bind_values(task.get("params") or {}, ctx.params)}
        failures = run_checks(connector, task["table"], checks, ctx, params)
        ctx.metrics["checks_passed"] = len(checks) - len(failures) if failures else len(checks)
        ctx.metrics["checks_failed"] = len(failures)
        if failures:
            raise TaskFailed("; ".join(failures))
