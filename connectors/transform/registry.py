"""Transformation function name -> its class. A new function is one module and one line here."""

from __future__ import annotations

from typing import Any

from connectors.transform.aggregate import Aggregate
from connectors.transform.base import Columns, Function, Step
from connectors.transform.cast import Cast
from connectors.transform.dedupe import Dedupe
from connectors.transform.filter import Filter
from connectors.transform.mask import Mask
from connectors.transform.rename import Rename
from connectors.transform.select import Select
from core.checker import Checker, at, idx, ordered

FUNCTIONS: dict[str, Function] = {
    "filter": Filter(),
    "select": Select(),
    "rename": Rename(),
    "cast": Cast(),
    "dedupe": Dedupe(),
    "mask": Mask(),
    "aggregate": Aggregate(),
}


def check_transformations(c: Checker, path: str, raw: Any) -> tuple[list[Any], Columns]:
    """The steps of a copy checked when it is saved, tracking the columns through them."""
    cols = Columns()
    items = c.list_of(path, raw)
    if items is None:
        return [], cols
    steps = []
    for i, item in enumerate(items):
        step, cols = _check_step(c, idx(path, i), item, cols)
        steps.append(step)
    return steps, cols


def _check_step(
    c: Checker, path: str, raw: Any, cols: Columns
) -> tuple[dict[str, Any] | None, Columns]:
    """One ``{name?, function, params}`` step; returns it and the columns after it."""
    step = c.keys(path, raw, required=("function", "params"), optional=("name",))
    if step is None:
        return None, Columns()
    name = None
    if "function" in step:
        name = c.choice(at(path, "function"), step["function"], FUNCTIONS, "function")
    label = c.name(at(path, "name"), step["name"]) if "name" in step else name
    if name is None or "params" not in step:
        return None, Columns()
    params, after = FUNCTIONS[name].check(c, at(path, "params"), step["params"], cols)
    return ordered(step, {"name": label, "function": name, "params": params}), after


def steps(transformations: list[dict[str, Any]], offset: int = 0) -> list[tuple[Function, Step]]:
    """Each step of a copy with its function, numbered from ``offset`` for messages."""
    return [
        (FUNCTIONS[spec["function"]], Step(i, spec))
        for i, spec in enumerate(transformations, start=offset)
    ]
