"""Transformations compiled into the source query, as far as the dialect can go.

``compile_pushdown`` wraps the source query once per transformation
(``SELECT … FROM (<previous>) AS _dd_tN``), which keeps every step's meaning
independent of the others; PostgreSQL, MariaDB and SQLite all flatten such
subqueries. It stops at the first step the dialect cannot express (sha256
on SQLite); that step and everything after it runs in Python on batches.
Values (filter operands, ``{param: name}``) are always bound parameters,
identifiers always quoted by the dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import Dialect
from connectors.transform.base import Binder, NotPushable, Pushdown
from connectors.transform.registry import FUNCTIONS, steps
from connectors.types import Column


@dataclass
class Compiled:
    """A source query with the pushed-down steps, and the steps left for batches."""

    sql: str
    params: dict[str, Any]
    columns: list[Column]
    rest: list[dict[str, Any]] = field(default_factory=list)


def compile_pushdown(
    dialect: Dialect,
    base_sql: str,
    base_params: dict[str, Any],
    columns: list[Column],
    transformations: list[dict[str, Any]],
    run_params: dict[str, Any],
    *,
    enabled: bool | int = True,
) -> Compiled:
    """Push as many leading steps as the dialect can express into ``base_sql``.

    ``enabled`` False pushes none; an int pushes at most that many (tests
    and benchmarks use it to force steps onto batches).
    """
    params = dict(base_params)
    q = Pushdown(dialect, Binder(params), run_params)
    sql, cols = base_sql, list(columns)
    limit = len(transformations) if enabled is True else int(enabled)
    for function, step in steps(transformations):
        if step.index >= limit:
            return Compiled(sql, params, cols, list(transformations[step.index :]))
        try:
            sql, cols = function.sql(q, step, sql, cols)
        except NotPushable:
            return Compiled(sql, params, cols, list(transformations[step.index :]))
    return Compiled(sql, params, cols, [])


def needed_columns(
    columns: list[Column], transformations: list[dict[str, Any]]
) -> list[str] | None:
    """The source columns the steps can ever read, or None when they may read all.

    Steps before the first ``select`` or ``aggregate`` read what they name;
    that step then drops the rest. A ``rename`` or a key-less ``dedupe``
    before it stops the analysis (None: read every column).
    """
    known = {c.name for c in columns}
    used: set[str] = set()
    for t in transformations:
        function = FUNCTIONS[t["function"]]
        names = function.reads(t.get("params") or {})
        if names is None:
            return None
        used.update(names)
        if function.narrows:
            return [c.name for c in columns if c.name in used] if used <= known else None
    return None
