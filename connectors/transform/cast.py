"""``cast``: ``columns`` of column -> type (``connectors.types.CAST_TYPES``)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from connectors.transform.base import (
    BatchOp,
    Checked,
    Columns,
    Function,
    MapOp,
    Pushdown,
    Sql,
    Step,
)
from connectors.types import CAST_TYPES, Column, parser_for, text_of
from core.checker import Checker, at


class Cast(Function):
    name: ClassVar[str] = "cast"

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("columns",))
        if params is None or "columns" not in params:
            return {}, cols
        cpath = at(path, "columns")
        mapping = c.mapping(cpath, params["columns"], nonempty=True) or {}
        out: dict[str, Any] = {}
        for column, type_ in mapping.items():
            if isinstance(column, str):
                c.column(at(cpath, column), column, cols)
                out[column] = c.choice(at(cpath, column), type_, CAST_TYPES, "type")
        return {"columns": out}, cols

    def reads(self, params: dict[str, Any]) -> list[str]:
        return list(params.get("columns") or {})

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        targets = _targets(step, cols)
        d = q.dialect
        exprs = [
            f"{d.cast(d.quote(c.name), targets[c.name], c.type)} AS {d.quote(c.name)}"
            if c.name in targets
            else d.quote(c.name)
            for c in cols
        ]
        select = f"SELECT {', '.join(exprs)} FROM ({inner}) AS _dd_t{step.index}"  # nosec B608 - quoted names, dialect casts
        return select, _after(cols, targets)

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        targets = _targets(step, cols)
        position = {c.name: n for n, c in enumerate(cols)}
        return MapOp({position[n]: _caster(ty) for n, ty in targets.items()}, _after(cols, targets))


def _targets(step: Step, cols: list[Column]) -> dict[str, str]:
    targets: dict[str, str] = step.params["columns"]
    step.need(cols, list(targets))
    return targets


def _after(cols: list[Column], targets: dict[str, str]) -> list[Column]:
    return [c.retyped(CAST_TYPES[targets[c.name]]) if c.name in targets else c for c in cols]


def _caster(type_: str) -> Callable[[Any], Any]:
    target = CAST_TYPES[type_]
    parse = parser_for(target)

    def cast(value: Any) -> Any:
        if value is None:
            return None
        if target == "text":
            return text_of(value)
        if target in ("integer", "bigint"):
            # Half away from zero, as PostgreSQL and MySQL round a cast.
            number = Decimal(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float):
                number = Decimal(repr(number))
            if isinstance(number, Decimal):
                return int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            return int(number)
        if target == "numeric":
            return Decimal(str(value)) if not isinstance(value, Decimal) else value
        if target == "boolean" and not isinstance(value, str):
            return bool(value)
        if target == "json" and not isinstance(value, str):
            return value
        if target == "date" and hasattr(value, "date") and callable(value.date):
            return value.date()
        return parse(str(value)) if parse else value

    return cast
