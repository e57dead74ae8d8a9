"""``dedupe``: keep one row per value of ``keys`` (of whole rows without keys)."""

from __future__ import annotations

import operator
from typing import Any, ClassVar

from connectors.transform.base import (
    BatchOp,
    Checked,
    Columns,
    Function,
    Pushdown,
    Row,
    Rows,
    Sql,
    Step,
    TextOp,
    hashable,
)
from connectors.types import Column
from core.checker import Checker, at


class Dedupe(Function):
    name: ClassVar[str] = "dedupe"

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("keys",))
        if params is None or "keys" not in params:
            return {}, cols
        return {"keys": c.column_list(at(path, "keys"), params["keys"], cols)}, cols

    def reads(self, params: dict[str, Any]) -> list[str] | None:
        return list(params["keys"]) if params.get("keys") else None

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        alias = f"_dd_t{step.index}"
        star = ", ".join(q.dialect.quote(c.name) for c in cols)
        if not step.params.get("keys"):
            return f"SELECT DISTINCT {star} FROM ({inner}) AS {alias}", cols  # nosec B608
        part = ", ".join(q.dialect.quote(k) for k in _keys(step, cols))
        ranked = (
            f"SELECT {star}, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {part}) AS _dd_rn"  # nosec B608
            f" FROM ({inner}) AS {alias}"
        )
        return f"SELECT {star} FROM ({ranked}) AS {alias}r WHERE _dd_rn = 1", cols  # nosec B608

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        position = {c.name: n for n, c in enumerate(cols)}
        return _DedupeOp(cols, [position[k] for k in _keys(step, cols)])

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp:
        position = {c.name: n for n, c in enumerate(cols)}
        keys = [position[k] for k in _keys(step, cols)]
        return TextOp(_text_dedupe(keys), cols, keys)


def _keys(step: Step, cols: list[Column]) -> list[str]:
    keys = step.params.get("keys")
    return step.need(cols, keys) if keys else [c.name for c in cols]


class _DedupeOp(BatchOp):
    def __init__(self, cols: list[Column], keys: list[int]) -> None:
        self.columns = cols
        self.key = operator.itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: r[k])
        self.seen: set[Any] = set()

    def apply(self, rows: Rows) -> Rows:
        out = []
        seen, key = self.seen, self.key
        for row in rows:
            k = hashable(key(row))
            if k not in seen:
                seen.add(k)
                out.append(row)
        return out


def _text_dedupe(idx: list[int]) -> Any:
    seen: set[tuple[bytes, ...]] = set()

    def dedupe(r: Row) -> Row | None:
        key = tuple(r[k] for k in idx)
        if key in seen:
            return None
        seen.add(key)
        return r

    return dedupe
