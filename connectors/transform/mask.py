"""``mask``: replace ``columns`` by their sha256 hex digest, or by NULL (redact)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from connectors.transform.base import (
    NULL,
    BatchOp,
    Checked,
    Columns,
    Function,
    MapOp,
    NotPushable,
    Pushdown,
    Row,
    Sql,
    Step,
    TextFunc,
    TextOp,
    unescape,
)
from connectors.types import Column, text_of
from core.checker import Checker, at, ordered

MASK_METHODS = ("sha256", "redact")


class Mask(Function):
    name: ClassVar[str] = "mask"

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("columns", "method"))
        if params is None:
            return {}, cols
        out: dict[str, Any] = {}
        if "columns" in params:
            out["columns"] = c.column_list(at(path, "columns"), params["columns"], cols)
        if "method" in params:
            out["method"] = c.choice(at(path, "method"), params["method"], MASK_METHODS, "method")
        return ordered(params, out), cols

    def reads(self, params: dict[str, Any]) -> list[str]:
        return list(params.get("columns") or [])

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        masked = set(step.need(cols, step.params["columns"]))
        method = step.params["method"]
        if method == "sha256" and not q.dialect.has_sha256:
            raise NotPushable
        d = q.dialect
        exprs = []
        for c in cols:
            if c.name not in masked:
                exprs.append(d.quote(c.name))
            else:
                value = d.sha256(d.quote(c.name)) if method == "sha256" else d.null_of(c)
                exprs.append(f"{value} AS {d.quote(c.name)}")
        sql = f"SELECT {', '.join(exprs)} FROM ({inner}) AS _dd_t{step.index}"  # nosec B608
        return sql, _after(cols, masked, method)

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        names = step.need(cols, step.params["columns"])
        method = step.params["method"]
        position = {c.name: n for n, c in enumerate(cols)}
        func = _sha256 if method == "sha256" else (lambda v: None)
        return MapOp({position[n]: func for n in names}, _after(cols, set(names), method))

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp:
        names = step.need(cols, step.params["columns"])
        method = step.params["method"]
        position = {c.name: n for n, c in enumerate(cols)}
        touched = [position[n] for n in names]
        return TextOp(_text_mask(touched, method), _after(cols, set(names), method), touched)


def _after(cols: list[Column], masked: set[str], method: str) -> list[Column]:
    """A sha256 digest is text; a redacted column keeps its type (all NULL)."""
    return [c.retyped("text") if c.name in masked and method == "sha256" else c for c in cols]


def _sha256(value: Any) -> str | None:
    text = text_of(value)
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def _text_mask(idx: list[int], method: str) -> TextFunc:
    sha = hashlib.sha256
    if method == "redact":

        def redact(r: Row) -> Row:
            for k in idx:
                r[k] = NULL
            return r

        return redact
    if len(idx) == 1:
        k = idx[0]

        def mask_one(r: Row) -> Row:
            v = r[k]
            if v != NULL:
                r[k] = sha(unescape(v) if b"\\" in v else v).hexdigest().encode()
            return r

        return mask_one

    def mask(r: Row) -> Row:
        for k in idx:
            v = r[k]
            if v != NULL:
                r[k] = sha(unescape(v) if b"\\" in v else v).hexdigest().encode()
        return r

    return mask
