"""What every transformation function is: its check at save, its runs at copy time.

A function (``filter``, ``select`` …) is one class in its own module of this
package, registered in ``registry.FUNCTIONS``. It holds:

- ``check``: the parameters' validation when a definition is saved (through
  ``core.checker.Checker``, with paths and messages), and the columns after
  the step as far as they are known then (``Columns``);
- ``reads``: the source columns it reads (for ``needed_columns``);
- ``sql``, ``batch``, ``text``: the step as SQL pushed into the source query,
  as an operation on batches of rows, and on PostgreSQL COPY text lines.

The run-time methods trust the parameters' shape: the definition was checked
when it was saved, and a task run carries that normalized definition. What
only the run can know — the source's columns, the values of parameters — is
checked there once per step (``Step.need``, ``resolve``).
"""

from __future__ import annotations

import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import ConnectorError, Dialect
from connectors.types import Column, parser_for
from core.checker import Checker, listing, quoted


class Columns:
    """What is known about the columns of the rows at one point of a copy, at save time.

    ``known`` is the exact list once a select, rename of a known list or
    aggregate fixed it; None before (a table source's columns are unknown
    when a definition is checked). ``gone`` remembers names a rename removed
    while the list was unknown, so a later use of the old name is still
    caught.
    """

    def __init__(self, known: list[str] | None = None) -> None:
        self.known = known
        self.gone: dict[str, str] = {}
        # Name -> index in ``known``, kept in step with it: a lookup or a rename
        # costs O(1) per name, not a scan of a list that may hold 100,000 names.
        self.positions = {name: i for i, name in enumerate(known or ())}

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a column here, or None when it is (or may be)."""
        if self.known is not None:
            if name not in self.positions:
                return f"unknown column {quoted(name)} (columns here: {listing(self.known)})"
        elif name in self.gone:
            return f"unknown column {quoted(name)} ({self.gone[name]})"
        return None


class NotPushable(Exception):
    """This step cannot be expressed in the dialect: run it on batches."""


@dataclass(frozen=True)
class Step:
    """Transformation ``index`` of a copy as it runs: its normalized definition."""

    index: int
    spec: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.get("params") or {}

    @property
    def label(self) -> str:
        """How errors name the step: ``transformations[1] (pick)``."""
        return (
            f"transformations[{self.index}] ({self.spec.get('name') or self.spec.get('function')})"
        )

    def need(self, columns: list[Column], names: list[str]) -> list[str]:
        """``names``, each a column of the rows reaching this step (known only at run time)."""
        known = {c.name for c in columns}
        for name in names:
            if name not in known:
                raise ConnectorError(f"{self.label}: unknown column {name!r}")
        return list(names)


# The rows of a batch, and one COPY text line split into its fields.
Rows = list[tuple]
Row = list[bytes]
# A step on COPY text lines: the fields after it, or None to drop the line.
TextFunc = Callable[[Row], Row | None]


class BatchOp:
    """A step applied to batches of rows; ``columns`` are the columns after it."""

    columns: list[Column]

    def apply(self, rows: Rows) -> Rows:
        return rows

    def finish(self) -> Rows:
        """Rows held back until every batch was seen (aggregates)."""
        return []


@dataclass
class TextOp:
    """A step on COPY text lines: its function (None: fields unchanged), the
    columns after it, the fields it reads, and whether it reorders fields."""

    func: TextFunc | None
    columns: list[Column]
    touched: list[int]
    reorders: bool = False


class Binder:
    """Binds a value as a fresh ``%(name)s`` parameter of the compiled query."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def __call__(self, value: Any) -> str:
        name = f"_dd_p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"


@dataclass
class Pushdown:
    """What compiling a step into the source query needs."""

    dialect: Dialect
    bind: Binder
    run_params: dict[str, Any]


# A step compiled: ``SELECT … FROM (<inner>)`` and the columns it gives.
Sql = tuple[str, list[Column]]
# A step checked at save: its normalized params and the columns after it.
Checked = tuple[dict[str, Any], Columns]


class Function(ABC):
    """One transformation function (SPEC §2)."""

    name: ClassVar[str]
    # Keeps only the columns it names (select, aggregate): the source
    # columns the steps read are known once a copy reaches it.
    narrows: ClassVar[bool] = False

    @abstractmethod
    def check(self, c: Checker, path: str, raw: Any, cols: Columns) -> Checked:
        """The normalized ``params`` at ``path`` and the columns after the step."""

    @abstractmethod
    def reads(self, params: dict[str, Any]) -> list[str] | None:
        """The columns the step reads; None when it may read all (or renames them)."""

    @abstractmethod
    def sql(self, q: Pushdown, step: Step, inner: str, cols: list[Column]) -> Sql:
        """``SELECT … FROM (inner)`` doing the step, and its columns; NotPushable when it can't."""

    @abstractmethod
    def batch(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> BatchOp:
        """The step on batches of rows whose columns are ``cols``."""

    def text(self, step: Step, cols: list[Column], run_params: dict[str, Any]) -> TextOp | None:
        """The step on COPY text lines, or None when it needs typed values."""
        return None


def resolve(value: Any, run_params: dict[str, Any]) -> Any:
    """A filter operand: literals as given, ``{param: name}`` from the run's parameters."""
    if isinstance(value, dict) and set(value) == {"param"}:
        name = value["param"]
        if name not in run_params:
            raise ConnectorError(f"unknown parameter {name!r}")
        return run_params[name]
    if isinstance(value, list):
        return [resolve(v, run_params) for v in value]
    return value


def coerce(value: Any, column: Column) -> Any:
    """A filter operand as the column's Python type, so comparisons work (dates, decimals)."""
    if isinstance(value, list):
        return [coerce(v, column) for v in value]
    if isinstance(value, str) and column.type not in ("text", "uuid", "json"):
        parse = parser_for(column.type)
        if parse is not None:
            try:
                return parse(value)
            except (ValueError, ArithmeticError):
                return value
    if isinstance(value, float) and column.type == "numeric":
        return Decimal(str(value))
    return value


def like(pattern: str) -> Callable[[Any], bool]:
    """SQL LIKE (``%`` any run, ``_`` one character) as a test of a value."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    match = re.compile(regex, re.S).fullmatch
    return lambda v: v is not None and match(str(v)) is not None


COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def hashable(value: Any) -> Any:
    """``value`` usable as a set member or dict key (JSON values by their text)."""
    if isinstance(value, dict | list):
        return repr(value)
    if isinstance(value, tuple):
        return tuple(hashable(v) for v in value)
    return value


# --------------------------------------------------------- COPY text fields

NULL = b"\\N"
_UNESCAPE = {
    b"\\\\": b"\\",
    b"\\t": b"\t",
    b"\\n": b"\n",
    b"\\r": b"\r",
    b"\\b": b"\b",
    b"\\f": b"\f",
    b"\\v": b"\v",
}
_ESCAPE_RE = re.compile(rb"\\[\\tnrbfv]")


def unescape(field: bytes) -> bytes:
    """A COPY text field's bytes with its backslash escapes undone."""
    return _ESCAPE_RE.sub(lambda m: _UNESCAPE[m.group(0)], field) if b"\\" in field else field


class MapOp(BatchOp):
    """A batch step that replaces the values of some columns (cast, mask)."""

    def __init__(self, funcs: dict[int, Callable[[Any], Any]], out: list[Column]) -> None:
        self.columns = out
        self.funcs = funcs

    def apply(self, rows: Rows) -> Rows:
        # Columnar: transpose, map the touched columns, transpose back.
        columns = list(zip(*rows, strict=True))
        for pos, func in self.funcs.items():
            columns[pos] = tuple(map(func, columns[pos]))
        return list(zip(*columns, strict=True))


class ProjectOp(BatchOp):
    """A batch step that keeps columns at ``positions`` (select, rename)."""

    def __init__(self, cols: list[Column], positions: list[int], out: list[Column]) -> None:
        self.columns = out
        self.identity = positions == list(range(len(cols)))
        self.get = operator.itemgetter(*positions) if len(positions) > 1 else None
        self.positions = positions

    def apply(self, rows: Rows) -> Rows:
        if self.identity:
            return rows
        if self.get is None:
            pos = self.positions[0]
            return [(r[pos],) for r in rows]
        return list(map(self.get, rows))
