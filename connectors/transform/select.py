"""``select``: keep these columns, in this order; from here the columns are known."""

from __future__ import annotations

import operator
from typing import Any, ClassVar

from connectors.transform.base import (
    BatchOp,
    Checked,
    Columns,
    Function,
    ProjectOp,
    Pushdown,
    Sql,
    Step,
    TextOp,
)
from connectors.types import Column
from core.checker import Checker, at


class Select(Function):
    name: ClassVar[str] = "select"
    narrows: ClassVar[bool] = True

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("columns",))
        if params is None or "columns" not in params:
            return {}, Columns()
        columns = c.column_list(at(path, "columns"), params["columns"], cols)
        # On a mistake the column list is unreliable: forget it rather than
        # report every later use of a column as unknown.
        after = Columns(known=list(columns)) if columns is not None else Columns()
        return {"columns": columns}, after

    def reads(self, params: dict[str, Any]) -> list[str]:
        return list(params.get("columns") or [])

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        names = step.need(cols, step.params["columns"])
        by_name = {c.name: c for c in cols}
        picked = ", ".join(q.dialect.quote(n) for n in names)
        sql = f"SELECT {picked} FROM ({inner}) AS _dd_t{step.index}"  # nosec B608
        return sql, [by_name[n] for n in names]

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        names = step.need(cols, step.params["columns"])
        position = {c.name: n for n, c in enumerate(cols)}
        return ProjectOp(cols, [position[n] for n in names], [cols[position[n]] for n in names])

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp:
        names = step.need(cols, step.params["columns"])
        position = {c.name: n for n, c in enumerate(cols)}
        picked = [position[n] for n in names]
        get = operator.itemgetter(*picked)
        if len(names) == 1:
            func = lambda r, get=get: [get(r)]  # noqa: E731
        else:
            func = lambda r, get=get: list(get(r))  # noqa: E731
        return TextOp(func, [cols[k] for k in picked], picked, reorders=True)
