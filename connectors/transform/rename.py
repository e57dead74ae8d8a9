"""``rename``: ``mapping`` of old name -> new name."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.base import ConnectorError, check_identifier
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
from core.checker import Checker, at, quoted


class Rename(Function):
    name: ClassVar[str] = "rename"

    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        params = c.keys(path, raw, required=("mapping",))
        if params is None or "mapping" not in params:
            return {}, Columns()
        mpath = at(path, "mapping")
        raw_mapping = c.mapping(mpath, params["mapping"], nonempty=True) or {}
        mapping: dict[str, str] = {}
        ok = bool(raw_mapping)
        for old, new in raw_mapping.items():
            if not isinstance(old, str):
                ok = False
                continue
            old_ok = c.column(at(mpath, old), old, cols)
            new_ok = c.column(at(mpath, old), new)
            if old_ok is None or new_ok is None:
                ok = False
            else:
                mapping[old_ok] = new_ok
        if not ok:
            return {"mapping": mapping}, Columns()
        fine, after = _renamed(c, mpath, mapping, cols)
        return {"mapping": mapping}, after if fine else Columns()

    def reads(self, params: dict[str, Any]) -> None:
        return None  # later steps name the new columns: stop the analysis here

    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        mapping = _mapping(step, cols)
        quote = q.dialect.quote
        renamed = ", ".join(
            f"{quote(c.name)} AS {quote(mapping[c.name])}" if c.name in mapping else quote(c.name)
            for c in cols
        )
        return f"SELECT {renamed} FROM ({inner}) AS _dd_t{step.index}", _after(cols, mapping)  # nosec B608

    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        return ProjectOp(cols, list(range(len(cols))), _after(cols, _mapping(step, cols)))

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp:
        return TextOp(None, _after(cols, _mapping(step, cols)), [])


def _renamed(c: Checker, path: str, mapping: dict[str, str], cols: Columns) -> tuple[bool, Columns]:
    """The columns after applying ``mapping``; reports names that would collide.

    Every old name is a column here (the caller checked). ``cols`` is changed
    in place, in time proportional to the mapping: the columns of a step are
    only ever read by the next step, and copying them at every rename would
    make many renames of many columns quadratic.
    """
    olds_of: dict[str, list[str]] = {}
    for old, new in mapping.items():
        olds_of.setdefault(new, []).append(old)
    where = cols.positions
    if cols.known is not None:
        # A name clashes when several columns are renamed to it, or one is
        # renamed to a column that stays; reported in column order.
        def copies(new: str) -> int:
            return len(olds_of[new]) + (new in where and new not in mapping)

        def first(new: str) -> int:
            stays = [where[new]] if new in where and new not in mapping else []
            return min([*(where[old] for old in olds_of[new]), *stays])

        clashes = sorted((new for new in olds_of if copies(new) > 1), key=first)
    else:
        clashes = [new for new, olds in olds_of.items() if len(olds) > 1]
    for new in clashes:
        c.add(at(path, olds_of[new][0]), f"column {quoted(new)} would appear twice")
    if clashes:
        return False, cols
    if cols.known is not None:
        moved = {where.pop(old): new for old, new in mapping.items()}
        for i, new in moved.items():
            cols.known[i] = new
            where[new] = i
        return True, cols
    cols.gone.update({old: f"renamed to {quoted(new)} earlier" for old, new in mapping.items()})
    for new in mapping.values():
        cols.gone.pop(new, None)
    return True, cols


def _mapping(step: Step, cols: list[Column]) -> dict[str, str]:
    """The step's mapping, once the source's columns are known: no two columns get one name."""
    mapping: dict[str, str] = step.params["mapping"]
    step.need(cols, list(mapping))
    for new in mapping.values():
        check_identifier(new)  # the new names reach a destination's SQL
    names = [mapping.get(c.name, c.name) for c in cols]
    if len(set(names)) != len(names):
        raise ConnectorError(f"{step.label}: rename gives two columns the same name")
    return mapping


def _after(cols: list[Column], mapping: dict[str, str]) -> list[Column]:
    return [c.renamed(mapping.get(c.name, c.name)) for c in cols]
