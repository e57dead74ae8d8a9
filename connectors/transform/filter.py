"""``filter``: drop rows with a null in ``columns`` and/or failing ``where``."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import ConnectorError
from connectors.transform.base import (
    COMPARE,
    NULL,
    BatchOp,
    Checked,
    Columns,
    Function,
    Pushdown,
    Rows,
    Sql,
    Step,
    TextOp,
    coerce,
    like,
    resolve,
    unescape,
)
from connectors.types import Column
from core.checker import Checker, at, idx, is_scalar, kind, ordered

WHERE_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "like")
# SQL for the comparison operators whose SQL spelling differs.
_SQL_OPS = {"=": "=", "!=": "<>", "like": "LIKE"}


class Filter(Function):
    name: ClassVar[str] = "filter"

    # -- at save --------------------------------------------------------

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, optional=("columns", "where"))
        if params is None:
            return {}, cols
        if "columns" not in params and "where" not in params:
            c.add(path, "needs columns, where or both")
        out: dict[str, Any] = {}
        if "columns" in params:
            out["columns"] = c.column_list(at(path, "columns"), params["columns"], cols)
        if "where" in params:
            items = c.list_of(at(path, "where"), params["where"], nonempty=True) or []
            out["where"] = [
                _condition(c, idx(at(path, "where"), i), item, cols) for i, item in enumerate(items)
            ]
        return ordered(params, out), cols

    def reads(self, params: dict[str, Any]) -> list[str]:
        return [*(params.get("columns") or []), *(cond[0] for cond in params.get("where") or [])]

    # -- at run ---------------------------------------------------------

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        parts = []
        for name, op, raw in _conditions(step, cols):
            col = q.dialect.quote(name)
            if op == "is_null":
                parts.append(f"{col} IS NULL")
            elif op == "not_null":
                parts.append(f"{col} IS NOT NULL")
            elif op in ("in", "not_in"):
                values = _listed(step, op, resolve(raw, q.run_params))
                if not values:
                    parts.append("1 = 0" if op == "in" else "1 = 1")
                else:
                    marks = ", ".join(q.bind(v) for v in values)
                    parts.append(f"{col} {'IN' if op == 'in' else 'NOT IN'} ({marks})")
            else:
                parts.append(f"{col} {_SQL_OPS.get(op, op)} {q.bind(resolve(raw, q.run_params))}")
        where = " AND ".join(parts) or "1 = 1"
        star = ", ".join(q.dialect.quote(c.name) for c in cols)
        return f"SELECT {star} FROM ({inner}) AS _dd_t{step.index} WHERE {where}", cols  # nosec B608

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        position = {c.name: n for n, c in enumerate(cols)}
        return _FilterOp(
            step,
            cols,
            [
                (position[n], op, coerce(resolve(v, run_params), cols[position[n]]))
                for n, op, v in _conditions(step, cols)
            ],
        )

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp | None:
        position = {c.name: n for n, c in enumerate(cols)}
        tests = []
        for name, op, raw in _conditions(step, cols):
            test = _text_test(step, cols[position[name]], op, raw, run_params)
            if test is None:
                return None
            tests.append((position[name], test))
        return TextOp(
            lambda r, tests=tests: r if all(test(r[k]) for k, test in tests) else None,  # type: ignore[misc]
            cols,
            [k for k, _test in tests],
        )


# ------------------------------------------------------------------ at save


def _condition(c: Checker, path: str, value: Any, columns: Columns) -> list[Any] | None:
    """One where condition: ``[column, op, value]`` or ``[column, is_null|not_null]``."""
    if not isinstance(value, list) or len(value) not in (2, 3):
        c.add(path, "expected [column, operator, value] or [column, is_null|not_null]")
        return None
    column = c.column(idx(path, 0), value[0], columns)
    op = c.choice(idx(path, 1), value[1], WHERE_OPERATORS, "operator")
    if op is None:
        return None
    if op in ("is_null", "not_null"):
        if len(value) == 3:
            c.add(idx(path, 2), f"operator '{op}' takes no value")
        return [column, op]
    if len(value) == 2:
        c.add(path, f"operator '{op}' needs a value")
        return None
    return [column, op, _operand(c, idx(path, 2), op, value[2])]


def _operand(c: Checker, path: str, op: str, value: Any) -> Any:
    """The value of a where condition: a literal or a ``{param: name}``."""
    if isinstance(value, dict):
        return c.param_ref(path, value)
    if op in ("in", "not_in"):
        items = value if isinstance(value, list) else None
        if not items:
            c.add(path, f"operator '{op}' takes a non-empty list of values or a {{param: name}}")
            return None
        return [_single_operand(c, idx(path, i), op, item) for i, item in enumerate(items)]
    return _single_operand(c, path, op, value)


def _single_operand(c: Checker, path: str, op: str, value: Any) -> Any:
    """One literal (or ``{param: name}``) compared with a column."""
    if isinstance(value, dict):
        return c.param_ref(path, value)
    if value is None:
        # `col = NULL` is never true in SQL; say what works instead.
        c.add(path, "cannot compare with null: use is_null or not_null")
        return None
    if isinstance(value, list):
        c.add(path, f"operator '{op}' takes a single value, got list")
        return None
    if not is_scalar(value):
        c.add(path, f"expected a string, number or boolean, got {kind(value)}")
        return None
    if op == "like" and not isinstance(value, str):
        c.add(path, f"operator 'like' takes a string pattern, got {kind(value)}")
        return None
    return value


# ------------------------------------------------------------------- at run


def _conditions(step: Step, cols: list[Column]) -> list[tuple[str, str, Any]]:
    """``[(column, op, value)]`` of the step (``columns`` means not-null)."""
    p = step.params
    conditions = [(name, "not_null", None) for name in step.need(cols, p.get("columns") or [])]
    for cond in p.get("where") or []:
        step.need(cols, [cond[0]])
        conditions.append((cond[0], cond[1], cond[2] if len(cond) == 3 else None))
    return conditions


def _listed(step: Step, op: str, value: Any) -> list[Any]:
    """The values of an ``in`` / ``not_in``: a ``{param: name}`` must hold a list."""
    if not isinstance(value, list):
        raise ConnectorError(f"{step.label}: {op} needs a list")
    return value


class _FilterOp(BatchOp):
    def __init__(
        self, step: Step, cols: list[Column], conditions: list[tuple[int, str, Any]]
    ) -> None:
        self.columns = cols
        self.tests: list[tuple[int, Callable[[Any], bool]]] = []
        for pos, op, value in conditions:
            if op == "is_null":
                self.tests.append((pos, lambda v: v is None))
            elif op == "not_null":
                self.tests.append((pos, lambda v: v is not None))
            elif op == "in":
                allowed = _listed(step, op, value)
                self.tests.append((pos, lambda v, a=allowed: v is not None and v in a))  # type: ignore[misc]
            elif op == "not_in":
                banned = _listed(step, op, value)
                self.tests.append((pos, lambda v, b=banned: v is not None and v not in b))  # type: ignore[misc]
            elif op == "like":
                self.tests.append((pos, like(str(value))))
            else:
                compare = COMPARE[op]
                # SQL semantics: a comparison with NULL is not true.
                self.tests.append(
                    (pos, lambda v, c=compare, x=value: v is not None and x is not None and c(v, x))  # type: ignore[misc]
                )

    def apply(self, rows: Rows) -> Rows:
        # Columnar: one pass per condition over the surviving rows.
        for pos, test in self.tests:
            rows = [r for r in rows if test(r[pos])]
            if not rows:
                break
        return rows


# How to read one COPY text field for a comparison, per canonical type.
_TEXT_READERS: dict[str, Callable[[bytes], Any]] = {
    "integer": int,
    "bigint": int,
    "numeric": lambda b: Decimal(b.decode()),
    "float": float,
    "boolean": lambda b: b == b"t",
    "text": lambda b: unescape(b).decode(),
    "uuid": lambda b: b.decode(),
}


def _text_test(
    step: Step, column: Column, op: str, raw: Any, run_params: dict[str, Any]
) -> Callable[[bytes], bool] | None:
    """A test of one COPY text field for a filter condition; None when it needs typed values."""
    if op == "is_null":
        return lambda v: v == NULL
    if op == "not_null":
        return lambda v: v != NULL
    read = _TEXT_READERS.get(column.type)
    if read is None:
        return None  # dates, timestamps, JSON: compared on typed values
    value = coerce(resolve(raw, run_params), column)
    if column.type == "numeric" and isinstance(value, int | float) and not isinstance(value, bool):
        value = Decimal(str(value))
    if op in ("in", "not_in"):
        allowed = set(_listed(step, op, value))
        if op == "in":
            return lambda v: v != NULL and read(v) in allowed
        return lambda v: v != NULL and read(v) not in allowed
    if value is None:
        return lambda v: False  # SQL: a comparison with NULL is not true
    if op == "like":
        match = like(str(value))
        return lambda v: v != NULL and match(read(v))
    compare = COMPARE[op]
    return lambda v: v != NULL and compare(read(v), value)
