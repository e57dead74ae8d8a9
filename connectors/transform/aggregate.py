"""``aggregate``: ``group_by`` columns and ``metrics`` {out: [function, column]}."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import check_identifier
from connectors.transform.base import (
    BatchOp,
    Checked,
    Columns,
    Function,
    Pushdown,
    Rows,
    Sql,
    Step,
    hashable,
)
from connectors.types import Column
from core.checker import Checker, at, idx, ordered, quoted

AGGREGATE_FUNCTIONS = ("count", "sum", "min", "max", "avg")


class Aggregate(Function):
    name: ClassVar[str] = "aggregate"
    narrows: ClassVar[bool] = True

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("metrics",), optional=("group_by",))
        if params is None:
            return {}, Columns()
        group_by: list[str] | None = []
        if "group_by" in params:
            group_by = c.column_list(at(path, "group_by"), params["group_by"], cols, nonempty=False)
        metrics: dict[str, Any] = {}
        mpath = at(path, "metrics")
        raw_metrics = (
            c.mapping(mpath, params.get("metrics"), nonempty=True) if "metrics" in params else None
        )
        ok = bool(raw_metrics) and group_by is not None
        grouped = set(group_by or ())
        for out_name, spec in (raw_metrics or {}).items():
            if not isinstance(out_name, str):
                ok = False
                continue
            metric = _metric(c, at(mpath, out_name), spec, cols)
            if c.column(at(mpath, out_name), out_name) is None or metric is None:
                ok = False
            elif out_name in grouped:
                c.add(at(mpath, out_name), f"column {quoted(out_name)} is also in group_by")
                ok = False
            metrics[out_name] = metric
        out = ordered(params, {"group_by": group_by, "metrics": metrics})
        after = Columns(known=[*(group_by or []), *metrics]) if ok else Columns()
        return out, after

    def reads(self, params: dict[str, Any]) -> list[str]:
        columns = [column for _func, column in (params.get("metrics") or {}).values()]
        return [*(params.get("group_by") or []), *(c for c in columns if c != "*")]

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        group_by, metrics = _spec(step, cols)
        quote = q.dialect.quote
        exprs = [quote(g) for g in group_by] + [
            f"{func.upper()}({'*' if column == '*' else quote(column)}) AS {quote(out_name)}"
            for out_name, (func, column) in metrics.items()
        ]
        group = f" GROUP BY {', '.join(quote(g) for g in group_by)}" if group_by else ""
        sql = f"SELECT {', '.join(exprs)} FROM ({inner}) AS _dd_t{step.index}{group}"  # nosec B608
        return sql, _after(cols, group_by, metrics)

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        group_by, metrics = _spec(step, cols)
        position = {c.name: n for n, c in enumerate(cols)}
        return _AggregateOp(
            _after(cols, group_by, metrics),
            [position[g] for g in group_by],
            [(func, None if col == "*" else position[col]) for func, col in metrics.values()],
        )


def _metric(c: Checker, path: str, value: Any, cols: Columns) -> list[str] | None:
    """One aggregate metric: ``[func, column]`` (``[count, "*"]`` counts rows)."""
    if not isinstance(value, list) or len(value) != 2:
        c.add(path, "expected [function, column]")
        return None
    func = c.choice(idx(path, 0), value[0], AGGREGATE_FUNCTIONS, "aggregate function")
    if value[1] == "*":
        if func == "count":
            return [func, "*"]
        c.add(idx(path, 1), "'*' only works with count")
        return None
    column = c.column(idx(path, 1), value[1], cols)
    if func is None or column is None:
        return None
    return [func, column]


def _spec(step: Step, cols: list[Column]) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """``group_by`` and ``{out: (func, column)}``, their columns present at run time."""
    group_by = step.need(cols, step.params.get("group_by") or [])
    metrics = {out: (func, column) for out, (func, column) in step.params["metrics"].items()}
    for out in metrics:
        check_identifier(out)  # the metric names reach a destination's SQL
    step.need(cols, [column for _func, column in metrics.values() if column != "*"])
    return group_by, metrics


def _after(
    cols: list[Column], group_by: list[str], metrics: dict[str, tuple[str, str]]
) -> list[Column]:
    by_name = {c.name: c for c in cols}
    return [by_name[g] for g in group_by] + [
        Column(out, _type(func, by_name.get(column))) for out, (func, column) in metrics.items()
    ]


def _type(func: str, column: Column | None) -> str:
    """The type of a metric over ``column`` (None: rows counted)."""
    if func == "count":
        return "bigint"
    source = column.type if column else "bigint"
    if func in ("min", "max"):
        return source
    if source == "float":
        return "float"
    return "numeric"


class _AggregateOp(BatchOp):
    def __init__(
        self, out: list[Column], group: list[int], metrics: list[tuple[str, int | None]]
    ) -> None:
        self.columns = out
        self.group = group
        self.metrics = metrics
        self.groups: dict[tuple, list[Any]] = {}

    def apply(self, rows: Rows) -> Rows:
        groups, group, metrics = self.groups, self.group, self.metrics
        for row in rows:
            key = tuple(hashable(row[g]) for g in group)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [tuple(row[g] for g in group)] + [[0, None, 0] for _ in metrics]
            for n, (func, pos) in enumerate(metrics, start=1):
                state = acc[n]
                value = 1 if pos is None else row[pos]
                if value is None:
                    continue
                state[2] += 1
                if func in ("sum", "avg"):
                    state[1] = value if state[1] is None else state[1] + value
                elif func == "min":
                    state[1] = value if state[1] is None or value < state[1] else state[1]
                elif func == "max":
                    state[1] = value if state[1] is None or value > state[1] else state[1]
        return []

    def finish(self) -> Rows:
        out = []
        if not self.groups and not self.group:
            # SQL: an aggregate without GROUP BY over no rows gives one row.
            self.groups[()] = [()] + [[0, None, 0] for _ in self.metrics]
        for acc in self.groups.values():
            values = list(acc[0])
            for n, (func, _pos) in enumerate(self.metrics, start=1):
                _, total, count = acc[n]
                if func == "count":
                    values.append(count)
                elif func == "avg":
                    values.append(
                        None
                        if not count
                        else (
                            Decimal(total) / count
                            if not isinstance(total, float)
                            else total / count
                        )
                    )
                else:
                    values.append(total)
            out.append(tuple(values))
        self.groups = {}
        return out
