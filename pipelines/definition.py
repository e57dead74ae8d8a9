"""Pipeline definitions (SPEC §2): parse, validate, normalize, dump. Imports no Django.

A definition arrives as JSON (API) or YAML (files, the UI editor). ``validate``
checks it completely and returns either the *normalized* definition — a plain
JSON-able dict with every default filled in — or every problem found, each
with the path of the offending value (``tasks[1].depends_on[0]``), so the API
can answer with all errors at once and the editor can point at each.

Task types are validated through the ``TASK_TYPES`` registry (one validator
per type), transformation functions through ``_TRANSFORM_VALIDATORS`` and
data-quality checks through ``_CHECK_VALIDATORS``; a new kind is one function
and one table entry.

What this module cannot know (whether a connection exists, whether a table
has a column) is left to the callers: ``connection_refs`` lists the
connections a definition uses so the Django side can check them.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import json
import math
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import yaml
from croniter import croniter
from croniter.croniter import CroniterError

from core.names import NAME_RE, identifier_problem, sql_parameters, table_problem
from pipelines.dag import find_cycles

# ---------------------------------------------------------------------------
# Public vocabulary
# ---------------------------------------------------------------------------

# Parameters every run has, whatever the definition declares.
BUILTIN_PARAMETERS = frozenset(
    {"execution_id", "logical_date", "data_interval_start", "data_interval_end"}
)

WHERE_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "like")
CAST_TYPES = ("integer", "bigint", "numeric", "text", "boolean", "date", "timestamp", "json")
AGGREGATE_FUNCTIONS = ("count", "sum", "min", "max", "avg")
MASK_METHODS = ("sha256", "redact")
DESTINATION_MODES = ("append", "replace", "upsert")

DEFAULT_BATCH_SIZE = 50_000

# Keys every task has, whatever its type.
TASK_COMMON_KEYS = ("name", "type", "depends_on", "retries", "retry_delay", "timeout")

# Guards against hostile or runaway input: the API and the editor feed user
# text straight in, and YAML aliases can expand a small text into a huge tree.
MAX_TEXT_CHARS = 1 << 20  # 1 MiB: SPEC §10 answers a definition this large within 2 s
MAX_NODES = 100_000
MAX_DEPTH = 64
# Past this many problems the rest is noise; one more problem says how many
# were left out (SPEC §10: the answer to a hostile definition stays small).
MAX_PROBLEMS = 100
# Names listed in one message ("columns here: ...") before "and N more".
MAX_LISTED = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, at ``path`` ("" = the whole document)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def capped(problems: Sequence[Problem]) -> list[Problem]:
    """At most ``MAX_PROBLEMS`` problems, then one saying how many were left out."""
    if len(problems) <= MAX_PROBLEMS:
        return list(problems)
    more = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], Problem("", f"… and {more} more problems")]


class DefinitionError(Exception):
    """A definition that cannot be parsed or is invalid; ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        # The list itself is the only argument, so the exception pickles
        # (django-q2 pickles task results and errors).
        super().__init__(list(problems))
        self.problems: list[Problem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large tree is built and checked.

    Parsing and checking 1 MiB makes hundreds of thousands of objects, and
    the collector, triggered by the allocations, walked that growing heap
    again and again: more than half the time of such a request. Nothing
    built here forms a cycle (reference counting frees it all), so pausing
    loses nothing; other threads only see cycles collected a moment later.
    Callers that keep working on such a tree (binding its connections,
    finding lines) may hold the pause over that work too; pauses nest.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _at(path: str, key: object) -> str:
    """The path of ``key`` inside the object at ``path``."""
    return f"{path}.{key}" if path else str(key)


def _idx(path: str, index: int) -> str:
    """The path of item ``index`` of the list at ``path``."""
    return f"{path}[{index}]"


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _q(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message: short, and escaped when not printable."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return repr(text)


def _listing(names: Sequence[str]) -> str:
    """``names`` joined by commas, the first ``MAX_LISTED`` only: a message stays short
    however many columns a definition declares (one message per unknown column
    would otherwise cost time and memory in the product of the two)."""
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _unknown(what: str, value: str, choices: Iterable[str]) -> str:
    """``unknown <what> 'value'`` with a suggestion or the list of choices."""
    options = sorted(choices)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "expected one of: " + ", ".join(options)
    return f"unknown {what} {_q(value)} ({hint})"


def _ordered(raw: Mapping[Any, Any], out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the user's keys first, in the user's order, then the defaults.

    Keeping the user's order makes a dumped definition look like what was
    written; the defaults follow in their canonical order.
    """
    first = [key for key in raw if isinstance(key, str) and key in out]
    rest = [key for key in out if key not in raw]
    return {key: out[key] for key in (*first, *rest)}


def _is_scalar(value: object) -> bool:
    """A JSON scalar (finite numbers only: NaN and infinities are not JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


# ---------------------------------------------------------------------------
# Column tracking through transformations
# ---------------------------------------------------------------------------


@dataclass
class _Columns:
    """What is known about the columns of the rows at one point of a copy.

    ``known`` is the exact list once a select, rename of a known list or
    aggregate fixed it; None before (a table source's columns are unknown
    here). ``gone`` remembers names a rename removed while the list was
    unknown, so a later use of the old name is still caught.
    """

    known: list[str] | None = None
    gone: dict[str, str] = field(default_factory=dict)
    # Name -> index in ``known``, kept in step with it: a lookup or a rename
    # costs O(1) per name, not a scan of a list that may hold 100,000 names.
    positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.positions = {name: i for i, name in enumerate(self.known or ())}

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a column here, or None when it is (or may be)."""
        if self.known is not None:
            if name not in self.positions:
                return f"unknown column {_q(name)} (columns here: {_listing(self.known)})"
        elif name in self.gone:
            return f"unknown column {_q(name)} ({self.gone[name]})"
        return None


# ---------------------------------------------------------------------------
# The checker: collects problems, one helper per kind of value
# ---------------------------------------------------------------------------


class Checker:
    """Collects problems while validating one definition.

    Each helper checks one kind of value at a path, records what is wrong,
    and returns the normalized value (or None when it is invalid: the whole
    result is discarded as soon as there is one problem, so callers need not
    care what an invalid part normalizes to). Task type validators in
    ``TASK_TYPES`` receive the checker and use these helpers.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Parameter names a {param: name} or %(name)s may use.
        self.parameters: frozenset[str] = BUILTIN_PARAMETERS

    def add(self, path: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(path, message))

    def result(self) -> list[Problem]:
        """The problems found, capped at ``MAX_PROBLEMS`` (with a last one saying so)."""
        return capped(self.problems)

    # -- containers ---------------------------------------------------------

    def mapping(self, path: str, value: Any, *, nonempty: bool = False) -> dict[str, Any] | None:
        """An object with string keys (free-form: any key allowed)."""
        if not isinstance(value, dict):
            self.add(path, f"expected an object, got {_kind(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.add(_at(path, key), "keys must be strings")
        if nonempty and not value:
            self.add(path, "must not be empty")
        return value

    def keys(
        self,
        path: str,
        value: Any,
        *,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """An object whose keys are all in ``required`` + ``optional``."""
        obj = self.mapping(path, value)
        if obj is None:
            return None
        allowed = (*required, *optional)
        for key in obj:
            if isinstance(key, str) and key not in allowed:
                self.add(_at(path, key), _unknown("key", key, allowed))
        for key in required:
            if key not in obj:
                self.add(_at(path, key), f"missing required key '{key}'")
        return obj

    def task_keys(
        self,
        path: str,
        task: Any,
        *,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """``keys`` for a task: the common task keys are allowed too."""
        return self.keys(path, task, required=required, optional=(*TASK_COMMON_KEYS, *optional))

    def list_of(self, path: str, value: Any, *, nonempty: bool = False) -> list[Any] | None:
        """A list (optionally at least one item)."""
        if not isinstance(value, list):
            self.add(path, f"expected a list, got {_kind(value)}")
            return None
        if nonempty and not value:
            self.add(path, "must not be empty")
            return None
        return value

    # -- scalars ------------------------------------------------------------

    def string(self, path: str, value: Any, *, nonempty: bool = False) -> str | None:
        """A string (optionally not blank)."""
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {_kind(value)}")
            return None
        if nonempty and not value.strip():
            self.add(path, "must not be empty")
            return None
        return value

    def integer(self, path: str, value: Any, low: int, high: int) -> int | None:
        """An integer in ``low..high``; a boolean is not an integer."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected an integer, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}")
            return None
        return value

    def boolean(self, path: str, value: Any) -> bool | None:
        """true or false."""
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def choice(self, path: str, value: Any, choices: Iterable[str], what: str) -> str | None:
        """One of ``choices`` (``what`` names the thing in the message)."""
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {_kind(value)}")
            return None
        options = tuple(choices)
        if value not in options:
            self.add(path, _unknown(what, value, options))
            return None
        return value

    def name(self, path: str, value: Any) -> str | None:
        """A pipeline, task, connection, transformation or parameter name (``NAME_RE``)."""
        text = self.string(path, value)
        if text is None:
            return None
        if not NAME_RE.match(text):
            self.add(
                path,
                f"invalid name {_q(text)}: use 1 to 100 letters, digits, '_' or '-', "
                "starting with a letter or '_'",
            )
            return None
        return text

    def connection(self, path: str, value: Any) -> str | None:
        """The name of a connection (whether it exists is checked elsewhere)."""
        return self.name(path, value)

    def table(self, path: str, value: Any) -> str | None:
        """A table name (``name``, ``schema.name`` or a file name) safe to quote."""
        text = self.string(path, value)
        if text is None:
            return None
        problem = table_problem(text)
        if problem:
            self.add(path, f"invalid table name {_q(text)}: {problem}")
            return None
        return text

    def column(self, path: str, value: Any, columns: _Columns | None = None) -> str | None:
        """A column name safe to quote, and present in ``columns`` when that is known."""
        text = self.string(path, value)
        if text is None:
            return None
        problem = identifier_problem(text)
        if problem:
            self.add(path, f"invalid column name {_q(text)}: {problem}")
            return None
        missing = columns.problem(text) if columns is not None else None
        if missing:
            self.add(path, missing)
            return None
        return text

    def column_list(
        self,
        path: str,
        value: Any,
        columns: _Columns | None = None,
        *,
        nonempty: bool = True,
    ) -> list[str] | None:
        """A list of distinct column names; None if any of them is wrong."""
        items = self.list_of(path, value, nonempty=nonempty)
        if items is None:
            return None
        result: dict[str, None] = {}  # ordered, and O(1) to test for a repeat
        ok = True
        for i, item in enumerate(items):
            column = self.column(_idx(path, i), item, columns)
            if column is None:
                ok = False
            elif column in result:
                self.add(_idx(path, i), f"column {_q(column)} is listed twice")
                ok = False
            else:
                result[column] = None
        return list(result) if ok else None

    def sql(self, path: str, value: Any) -> str | None:
        """SQL text whose ``%(name)s`` placeholders are all known parameters."""
        text = self.string(path, value, nonempty=True)
        if text is None:
            return None
        for name in sql_parameters(text):
            if name not in self.parameters:
                self.add(path, f"unknown parameter {_q(name)} in %({name})s")
        return text

    def param_ref(self, path: str, value: Any) -> dict[str, str] | None:
        """``{param: name}`` naming a declared or built-in parameter."""
        ref = self.keys(path, value, required=("param",))
        if ref is None or "param" not in ref:
            return None
        name = self.string(_at(path, "param"), ref["param"])
        if name is None:
            return None
        if name not in self.parameters:
            self.add(_at(path, "param"), f"unknown parameter {_q(name)}")
            return None
        return {"param": name}


# ---------------------------------------------------------------------------
# Transformations: one validator per function
# ---------------------------------------------------------------------------

TransformValidator = Callable[[Checker, str, Any, _Columns], tuple[dict[str, Any], _Columns]]


def _operand(c: Checker, path: str, op: str, value: Any) -> Any:
    """The value of a where condition: a literal or a ``{param: name}``."""
    if isinstance(value, dict):
        return c.param_ref(path, value)
    if op in ("in", "not_in"):
        items = value if isinstance(value, list) else None
        if not items:
            c.add(path, f"operator '{op}' takes a non-empty list of values or a {{param: name}}")
            return None
        return [_single_operand(c, _idx(path, i), op, item) for i, item in enumerate(items)]
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
    if not _is_scalar(value):
        c.add(path, f"expected a string, number or boolean, got {_kind(value)}")
        return None
    if op == "like" and not isinstance(value, str):
        c.add(path, f"operator 'like' takes a string pattern, got {_kind(value)}")
        return None
    return value


def _condition(c: Checker, path: str, value: Any, columns: _Columns) -> list[Any] | None:
    """One where condition: ``[column, op, value]`` or ``[column, is_null|not_null]``."""
    if not isinstance(value, list) or len(value) not in (2, 3):
        c.add(path, "expected [column, operator, value] or [column, is_null|not_null]")
        return None
    column = c.column(_idx(path, 0), value[0], columns)
    op = c.choice(_idx(path, 1), value[1], WHERE_OPERATORS, "operator")
    if op is None:
        return None
    if op in ("is_null", "not_null"):
        if len(value) == 3:
            c.add(_idx(path, 2), f"operator '{op}' takes no value")
        return [column, op]
    if len(value) == 2:
        c.add(path, f"operator '{op}' needs a value")
        return None
    return [column, op, _operand(c, _idx(path, 2), op, value[2])]


def _filter(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``filter``: drop rows with a null in ``columns`` and/or failing ``where``."""
    params = c.keys(path, raw, optional=("columns", "where"))
    if params is None:
        return {}, cols
    if "columns" not in params and "where" not in params:
        c.add(path, "needs columns, where or both")
    out: dict[str, Any] = {}
    if "columns" in params:
        out["columns"] = c.column_list(_at(path, "columns"), params["columns"], cols)
    if "where" in params:
        items = c.list_of(_at(path, "where"), params["where"], nonempty=True) or []
        out["where"] = [
            _condition(c, _idx(_at(path, "where"), i), item, cols) for i, item in enumerate(items)
        ]
    return _ordered(params, out), cols


def _select(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``select``: keep these columns, in this order; from here the columns are known."""
    params = c.keys(path, raw, required=("columns",))
    if params is None or "columns" not in params:
        return {}, _Columns()
    columns = c.column_list(_at(path, "columns"), params["columns"], cols)
    # On a mistake the column list is unreliable: forget it rather than
    # report every later use of a column as unknown.
    after = _Columns(known=list(columns)) if columns is not None else _Columns()
    return {"columns": columns}, after


def _renamed(
    c: Checker, path: str, mapping: dict[str, str], cols: _Columns
) -> tuple[bool, _Columns]:
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
        c.add(_at(path, olds_of[new][0]), f"column {_q(new)} would appear twice")
    if clashes:
        return False, cols
    if cols.known is not None:
        moved = {where.pop(old): new for old, new in mapping.items()}
        for i, new in moved.items():
            cols.known[i] = new
            where[new] = i
        return True, cols
    cols.gone.update({old: f"renamed to {_q(new)} earlier" for old, new in mapping.items()})
    for new in mapping.values():
        cols.gone.pop(new, None)
    return True, cols


def _rename(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``rename``: ``mapping`` of old name -> new name."""
    params = c.keys(path, raw, required=("mapping",))
    if params is None or "mapping" not in params:
        return {}, _Columns()
    mpath = _at(path, "mapping")
    raw_mapping = c.mapping(mpath, params["mapping"], nonempty=True) or {}
    mapping: dict[str, str] = {}
    ok = bool(raw_mapping)
    for old, new in raw_mapping.items():
        if not isinstance(old, str):
            ok = False
            continue
        old_ok = c.column(_at(mpath, old), old, cols)
        new_ok = c.column(_at(mpath, old), new)
        if old_ok is None or new_ok is None:
            ok = False
        else:
            mapping[old_ok] = new_ok
    if not ok:
        return {"mapping": mapping}, _Columns()
    fine, after = _renamed(c, mpath, mapping, cols)
    return {"mapping": mapping}, after if fine else _Columns()


def _cast(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``cast``: ``columns`` of column -> SQL type."""
    params = c.keys(path, raw, required=("columns",))
    if params is None or "columns" not in params:
        return {}, cols
    cpath = _at(path, "columns")
    mapping = c.mapping(cpath, params["columns"], nonempty=True) or {}
    out: dict[str, Any] = {}
    for column, type_ in mapping.items():
        if isinstance(column, str):
            c.column(_at(cpath, column), column, cols)
            out[column] = c.choice(_at(cpath, column), type_, CAST_TYPES, "type")
    return {"columns": out}, cols


def _dedupe(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``dedupe``: keep one row per value of ``keys``."""
    params = c.keys(path, raw, required=("keys",))
    if params is None or "keys" not in params:
        return {}, cols
    return {"keys": c.column_list(_at(path, "keys"), params["keys"], cols)}, cols


def _mask(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``mask``: replace ``columns`` by their sha256 hex digest, or by NULL (redact)."""
    params = c.keys(path, raw, required=("columns", "method"))
    if params is None:
        return {}, cols
    out: dict[str, Any] = {}
    if "columns" in params:
        out["columns"] = c.column_list(_at(path, "columns"), params["columns"], cols)
    if "method" in params:
        out["method"] = c.choice(_at(path, "method"), params["method"], MASK_METHODS, "method")
    return _ordered(params, out), cols


def _metric(c: Checker, path: str, value: Any, cols: _Columns) -> list[str] | None:
    """One aggregate metric: ``[func, column]`` (``[count, "*"]`` counts rows)."""
    if not isinstance(value, list) or len(value) != 2:
        c.add(path, "expected [function, column]")
        return None
    func = c.choice(_idx(path, 0), value[0], AGGREGATE_FUNCTIONS, "aggregate function")
    if value[1] == "*":
        if func == "count":
            return [func, "*"]
        c.add(_idx(path, 1), "'*' only works with count")
        return None
    column = c.column(_idx(path, 1), value[1], cols)
    if func is None or column is None:
        return None
    return [func, column]


def _aggregate(c: Checker, path: str, raw: Any, cols: _Columns) -> tuple[dict[str, Any], _Columns]:
    """``aggregate``: ``group_by`` columns and ``metrics`` {out: [func, column]}."""
    params = c.keys(path, raw, required=("metrics",), optional=("group_by",))
    if params is None:
        return {}, _Columns()
    group_by: list[str] | None = []
    if "group_by" in params:
        group_by = c.column_list(_at(path, "group_by"), params["group_by"], cols, nonempty=False)
    metrics: dict[str, Any] = {}
    mpath = _at(path, "metrics")
    raw_metrics = (
        c.mapping(mpath, params.get("metrics"), nonempty=True) if "metrics" in params else None
    )
    ok = bool(raw_metrics) and group_by is not None
    grouped = set(group_by or ())
    for out_name, spec in (raw_metrics or {}).items():
        if not isinstance(out_name, str):
            ok = False
            continue
        metric = _metric(c, _at(mpath, out_name), spec, cols)
        if c.column(_at(mpath, out_name), out_name) is None or metric is None:
            ok = False
        elif out_name in grouped:
            c.add(_at(mpath, out_name), f"column {_q(out_name)} is also in group_by")
            ok = False
        metrics[out_name] = metric
    out = _ordered(params, {"group_by": group_by, "metrics": metrics})
    after = _Columns(known=[*(group_by or []), *metrics]) if ok else _Columns()
    return out, after


_TRANSFORM_VALIDATORS: dict[str, TransformValidator] = {
    "filter": _filter,
    "select": _select,
    "rename": _rename,
    "cast": _cast,
    "dedupe": _dedupe,
    "mask": _mask,
    "aggregate": _aggregate,
}
TRANSFORMATIONS: frozenset[str] = frozenset(_TRANSFORM_VALIDATORS)


def _transformation(
    c: Checker, path: str, raw: Any, cols: _Columns
) -> tuple[dict[str, Any] | None, _Columns]:
    """One ``{name?, function, params}`` step; returns it and the columns after it."""
    step = c.keys(path, raw, required=("function", "params"), optional=("name",))
    if step is None:
        return None, _Columns()
    function = None
    if "function" in step:
        function = c.choice(_at(path, "function"), step["function"], TRANSFORMATIONS, "function")
    name = c.name(_at(path, "name"), step["name"]) if "name" in step else function
    if function is None or "params" not in step:
        return None, _Columns()
    params, after = _TRANSFORM_VALIDATORS[function](c, _at(path, "params"), step["params"], cols)
    return _ordered(step, {"name": name, "function": function, "params": params}), after


# ---------------------------------------------------------------------------
# Task types: one validator per type, registered in TASK_TYPES
# ---------------------------------------------------------------------------

# A task type validator gets the checker, the task's path and the raw task
# (an object). It checks the task's keys with ``c.task_keys`` and returns the
# normalized type-specific keys (defaults filled); the common keys
# (TASK_COMMON_KEYS) are handled by the caller.
TaskValidator = Callable[[Checker, str, dict[str, Any]], dict[str, Any]]


def _source(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """``{connection, table}`` or ``{connection, query}``."""
    source = c.keys(path, raw, required=("connection",), optional=("table", "query"))
    if source is None:
        return None
    if "table" in source and "query" in source:
        c.add(path, "give either table or query, not both")
    elif "table" not in source and "query" not in source:
        c.add(path, "needs a table or a query")
    out: dict[str, Any] = {}
    if "connection" in source:
        out["connection"] = c.connection(_at(path, "connection"), source["connection"])
    if "table" in source:
        out["table"] = c.table(_at(path, "table"), source["table"])
    if "query" in source:
        out["query"] = c.sql(_at(path, "query"), source["query"])
    return _ordered(source, out)


def _destination(c: Checker, path: str, raw: Any, cols: _Columns) -> dict[str, Any] | None:
    """``{connection, table, mode: append|replace|upsert, keys}``."""
    dest = c.keys(path, raw, required=("connection", "table"), optional=("mode", "keys"))
    if dest is None:
        return None
    out: dict[str, Any] = {"connection": None, "table": None, "mode": "append", "keys": []}
    if "connection" in dest:
        out["connection"] = c.connection(_at(path, "connection"), dest["connection"])
    if "table" in dest:
        out["table"] = c.table(_at(path, "table"), dest["table"])
    if "mode" in dest:
        out["mode"] = c.choice(_at(path, "mode"), dest["mode"], DESTINATION_MODES, "mode")
    if "keys" in dest:
        out["keys"] = c.column_list(_at(path, "keys"), dest["keys"], cols, nonempty=False)
    if out["mode"] == "upsert" and out["keys"] == []:
        c.add(_at(path, "keys"), "mode 'upsert' needs keys: the columns that identify a row")
    return _ordered(dest, out)


def _incremental(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{column}``: the watermark column.

    It is a column of the *source*: the copy engine filters and takes the
    watermark in the source query, before any transformation (see
    connectors/copy.py). So it is not checked against the columns the
    transformations leave; a select may drop it and a rename does not change
    its name here. The source's columns are unknown to this module.
    """
    if raw is None:
        return None
    inc = c.keys(path, raw, required=("column",))
    if inc is None or "column" not in inc:
        return None
    return {"column": c.column(_at(path, "column"), inc["column"])}


def _partition(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{column, chunks: 1..256}``."""
    if raw is None:
        return None
    part = c.keys(path, raw, required=("column", "chunks"))
    if part is None:
        return None
    out: dict[str, Any] = {"column": None, "chunks": None}
    if "column" in part:
        out["column"] = c.column(_at(path, "column"), part["column"])
    if "chunks" in part:
        out["chunks"] = c.integer(_at(path, "chunks"), part["chunks"], 1, 256)
    return _ordered(part, out)


def _transformations(c: Checker, path: str, raw: Any) -> tuple[list[Any], _Columns]:
    """The steps of a copy, tracking the columns through them."""
    cols = _Columns()
    items = c.list_of(path, raw)
    if items is None:
        return [], cols
    steps = []
    for i, item in enumerate(items):
        step, cols = _transformation(c, _idx(path, i), item, cols)
        steps.append(step)
    return steps, cols


def _validate_copy(c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
    """``copy``: rows from ``source`` through ``transformations`` into ``destination``."""
    c.task_keys(
        path,
        task,
        required=("source", "destination"),
        optional=("transformations", "incremental", "partition", "batch_size"),
    )
    out: dict[str, Any] = {"source": None}
    if "source" in task:
        out["source"] = _source(c, _at(path, "source"), task["source"])
    out["transformations"], cols = [], _Columns()
    if "transformations" in task:
        out["transformations"], cols = _transformations(
            c, _at(path, "transformations"), task["transformations"]
        )
    out["destination"] = None
    if "destination" in task:
        out["destination"] = _destination(c, _at(path, "destination"), task["destination"], cols)
    out["incremental"] = _incremental(c, _at(path, "incremental"), task.get("incremental"))
    out["partition"] = _partition(c, _at(path, "partition"), task.get("partition"))
    out["batch_size"] = DEFAULT_BATCH_SIZE
    if "batch_size" in task:
        out["batch_size"] = c.integer(_at(path, "batch_size"), task["batch_size"], 1, 1_000_000)
    destination = out["destination"] or {}
    if out["incremental"] and destination.get("mode") == "replace":
        # Each incremental run reads only new rows; replacing the table with
        # them would silently drop everything loaded before.
        c.add(
            _at(path, "incremental"),
            "an incremental copy needs destination mode append or upsert "
            "(replace would drop the rows of earlier runs)",
        )
    return out


def _validate_sql(c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
    """``sql``: one statement or a list of statements run on ``connection``."""
    c.task_keys(path, task, required=("connection", "sql"))
    out: dict[str, Any] = {"connection": None, "sql": None}
    if "connection" in task:
        out["connection"] = c.connection(_at(path, "connection"), task["connection"])
    if "sql" in task:
        spath, value = _at(path, "sql"), task["sql"]
        if isinstance(value, list):
            items = c.list_of(spath, value, nonempty=True) or []
            out["sql"] = [c.sql(_idx(spath, i), item) for i, item in enumerate(items)]
        elif isinstance(value, str):
            out["sql"] = c.sql(spath, value)
        else:
            c.add(spath, f"expected a string or a list of strings, got {_kind(value)}")
    return out


CheckValidator = Callable[[Checker, str, Any], Any]


def _check_row_count(c: Checker, path: str, raw: Any) -> dict[str, int] | None:
    """``{min?, max?}``: bounds on the number of rows."""
    bounds = c.keys(path, raw, optional=("min", "max"))
    if bounds is None:
        return None
    if "min" not in bounds and "max" not in bounds:
        c.add(path, "needs min, max or both")
        return None
    out: dict[str, Any] = {
        key: c.integer(_at(path, key), bounds[key], 0, 2**63 - 1)
        for key in ("min", "max")
        if key in bounds
    }
    low, high = out.get("min"), out.get("max")
    if low is not None and high is not None and low > high:
        c.add(_at(path, "max"), "must not be less than min")
    return _ordered(bounds, out)


def _check_columns(c: Checker, path: str, raw: Any) -> list[str] | None:
    """``not_null`` / ``unique``: a list of columns."""
    return c.column_list(path, raw)


_CHECK_VALIDATORS: dict[str, CheckValidator] = {
    "row_count": _check_row_count,
    "not_null": _check_columns,
    "unique": _check_columns,
    # A query returning the offending rows: the check fails if it returns any.
    "sql": Checker.sql,
}


def _check_item(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """One data-quality check: an object with exactly one known key."""
    item = c.keys(path, raw, optional=tuple(_CHECK_VALIDATORS))
    if item is None:
        return None
    kinds = [key for key in item if key in _CHECK_VALIDATORS]
    if len(kinds) != 1:
        if len(kinds) > 1 or not item:
            c.add(path, "expected exactly one of: " + ", ".join(sorted(_CHECK_VALIDATORS)))
        return None
    kind = kinds[0]
    return {kind: _CHECK_VALIDATORS[kind](c, _at(path, kind), item[kind])}


def _validate_check(c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
    """``check``: data-quality ``checks`` on ``table`` of ``connection``."""
    c.task_keys(path, task, required=("connection", "table", "checks"))
    out: dict[str, Any] = {"connection": None, "table": None, "checks": None}
    if "connection" in task:
        out["connection"] = c.connection(_at(path, "connection"), task["connection"])
    if "table" in task:
        out["table"] = c.table(_at(path, "table"), task["table"])
    if "checks" in task:
        cpath = _at(path, "checks")
        items = c.list_of(cpath, task["checks"], nonempty=True) or []
        out["checks"] = [_check_item(c, _idx(cpath, i), item) for i, item in enumerate(items)]
    return out


TASK_TYPES: dict[str, TaskValidator] = {
    "copy": _validate_copy,
    "sql": _validate_sql,
    "check": _validate_check,
}


def _depends_on(c: Checker, path: str, raw: Any) -> list[str] | None:
    """A list of distinct task names (whether they exist is checked later)."""
    items = c.list_of(path, raw)
    if items is None:
        return None
    result: dict[str, None] = {}  # ordered, and O(1) to test for a repeat
    for i, item in enumerate(items):
        name = c.string(_idx(path, i), item)
        if name is not None and name in result:
            c.add(_idx(path, i), f"task {_q(name)} is listed twice")
        elif name is not None:
            result[name] = None
    return list(result)


# Task key -> (lowest, highest, default). Retries are bounded: unlimited
# retries would keep a broken task busy forever.
_TASK_LIMITS = {
    "retries": (0, 100, 0),
    "retry_delay": (0, 86_400, 10),  # seconds
    "timeout": (1, 86_400, 3600),  # seconds
}


def _task(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """One task: the common keys, then its type's keys via ``TASK_TYPES``."""
    if not isinstance(raw, dict):
        c.add(path, f"expected an object, got {_kind(raw)}")
        return None
    task: dict[Any, Any] = raw
    out: dict[str, Any] = {"name": None, "type": None}
    for key in ("name", "type"):
        if key not in task:
            c.add(_at(path, key), f"missing required key '{key}'")
    if "name" in task:
        out["name"] = c.name(_at(path, "name"), task["name"])
    if "type" in task:
        out["type"] = c.choice(_at(path, "type"), task["type"], TASK_TYPES, "task type")
    if out["type"] is not None:
        out.update(TASK_TYPES[out["type"]](c, path, task))
    else:
        # Without a known type the other keys cannot be judged (the type
        # problem is the one to fix first); only non-string keys are wrong.
        c.mapping(path, task)
    out["depends_on"] = _depends_on(c, _at(path, "depends_on"), task.get("depends_on", []))
    for key, (low, high, default) in _TASK_LIMITS.items():
        out[key] = c.integer(_at(path, key), task[key], low, high) if key in task else default
    return _ordered(task, out)


# ---------------------------------------------------------------------------
# Pipeline-level fields
# ---------------------------------------------------------------------------

_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-6 or sun-sat"),
)
# croniter's own extensions (H = hashed, R = random) make a schedule depend on
# more than its text; standard cron has neither.
_CRON_HASHED = re.compile(r"(?:^|[,/-])[HhRr](?:$|[,/(-])")


def _cron_valid(expression: str) -> bool:
    """croniter's verdict, treating any exception as invalid."""
    try:
        return bool(croniter.is_valid(expression))
    except Exception:  # croniter raises assorted errors on odd input
        return False


def cron_problem(expression: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            "expected 5 fields (minute hour day-of-month month day-of-week) "
            f"or @hourly/@daily/@weekly/@monthly/@yearly, got {len(fields)} fields"
        )
    for i, ((label, allowed), text) in enumerate(zip(_CRON_FIELDS, fields, strict=True)):
        if _CRON_HASHED.search(text):
            return f"{label} field {_q(text)}: H and R are not standard cron"
        # Probe one field at a time so the message can say which one is bad.
        probe = ["*"] * 5
        probe[i] = text
        if not _cron_valid(" ".join(probe)):
            return (
                f"{label} field {_q(text)} is not valid "
                f"(allowed: {allowed}, *, lists, ranges, steps)"
            )
    if not _cron_valid(expression):
        return "not a valid cron expression"
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterError, ValueError):
        return "never matches a date (e.g. February 30)"
    return None


def _schedule(c: Checker, path: str, raw: Any) -> str | None:
    """None or a cron expression, normalized to 5 space-separated fields."""
    if raw is None:
        return None
    text = c.string(path, raw)
    if text is None:
        return None
    expression = _CRON_ALIASES.get(text.strip().lower(), " ".join(text.split()))
    problem = cron_problem(expression)
    if problem:
        c.add(path, f"invalid cron expression {_q(text)}: {problem}")
        return None
    return expression


@functools.cache
def _timezones() -> frozenset[str]:
    """IANA zone names known to this machine (read once: it scans the tz database)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _timezone(c: Checker, path: str, raw: Any) -> str | None:
    """An IANA time zone name such as ``Europe/Paris``."""
    text = c.string(path, raw)
    if text is None:
        return None
    if text not in _timezones():
        c.add(path, f"unknown time zone {_q(text)} (use an IANA name such as 'Europe/Paris')")
        return None
    return text


def _tags(c: Checker, path: str, raw: Any) -> list[str] | None:
    """A list of distinct, non-empty strings."""
    items = c.list_of(path, raw)
    if items is None:
        return None
    tags: list[str] = []
    for i, item in enumerate(items):
        tag = c.string(_idx(path, i), item, nonempty=True)
        if tag is not None and len(tag) > 100:
            c.add(_idx(path, i), "must be at most 100 characters")
        elif tag is not None and tag in tags:
            c.add(_idx(path, i), f"tag {_q(tag)} is listed twice")
        elif tag is not None:
            tags.append(tag)
    return tags


def _parameter_value(c: Checker, path: str, value: Any) -> Any:
    """A JSON scalar, or a list of them."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not _is_scalar(item):
                c.add(
                    _idx(path, i), f"expected a string, number, boolean or null, got {_kind(item)}"
                )
        return list(value)
    if not _is_scalar(value):
        c.add(path, f"expected a string, number, boolean, null or a list, got {_kind(value)}")
    return value


def _parameters(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """Parameter defaults; also tells the checker which names ``{param: ...}`` may use."""
    params = c.mapping(path, raw)
    if params is None:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            continue
        if key in BUILTIN_PARAMETERS:
            c.add(_at(path, key), f"{_q(key)} is a built-in parameter and cannot be redefined")
        else:
            c.name(_at(path, key), key)
        out[key] = _parameter_value(c, _at(path, key), value)
    # Declared even when its value is wrong: one problem, not one per use.
    c.parameters = BUILTIN_PARAMETERS | frozenset(out)
    return out


_EMAIL_RE = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _webhook(c: Checker, path: str, raw: Any) -> str | None:
    """An absolute http(s) URL."""
    text = c.string(path, raw)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(ch.isspace() or not ch.isprintable() for ch in text):
        c.add(path, f"expected an http(s) URL, got {_q(text)}")
        return None
    if text == redact_url(text):
        # What users who may not edit the pipeline are shown: saved, it would
        # silently replace the real URL and no alert would ever arrive.
        c.add(path, f"{_q(text)} is a webhook URL with its path hidden; give the full URL")
        return None
    return text


def _emails(c: Checker, path: str, raw: Any) -> list[str] | None:
    """One address or a list of them, normalized to a list."""
    items = [raw] if isinstance(raw, str) else c.list_of(path, raw, nonempty=True)
    if items is None:
        return None
    result: list[str] = []
    for i, item in enumerate(items):
        ipath = path if isinstance(raw, str) else _idx(path, i)
        address = c.string(ipath, item)
        if address is not None and not _EMAIL_RE.match(address):
            c.add(ipath, f"invalid email address {_q(address)}")
        elif address is not None:
            result.append(address)
    return result


def _on_failure(c: Checker, path: str, raw: Any) -> dict[str, Any] | None:
    """None or ``{webhook?, email?}``: who hears about a failed execution."""
    if raw is None:
        return None
    spec = c.keys(path, raw, optional=("webhook", "email"))
    if spec is None:
        return None
    if "webhook" not in spec and "email" not in spec:
        c.add(path, "needs webhook, email or both (or null for no notification)")
    out: dict[str, Any] = {}
    if "webhook" in spec:
        out["webhook"] = _webhook(c, _at(path, "webhook"), spec["webhook"])
    if "email" in spec:
        out["email"] = _emails(c, _at(path, "email"), spec["email"])
    return _ordered(spec, out)


def _tasks(c: Checker, path: str, raw: Any) -> list[Any] | None:
    """The tasks, then the graph they form (names, depends_on, cycles)."""
    items = c.list_of(path, raw, nonempty=True)
    if items is None:
        return None
    tasks = [_task(c, _idx(path, i), item) for i, item in enumerate(items)]
    _check_graph(c, path, tasks)
    return tasks


def _check_graph(c: Checker, path: str, tasks: list[dict[str, Any] | None]) -> None:
    """Duplicate names, unknown or self dependencies, and cycles."""
    first: dict[str, int] = {}
    for i, task in enumerate(tasks):
        name = task.get("name") if task else None
        if name in first:
            c.add(_at(_idx(path, i), "name"), f"duplicate task name {_q(name)}")
        elif isinstance(name, str):
            first[name] = i
    graph: dict[str, list[str]] = {name: [] for name in first}
    for i, task in enumerate(tasks):
        name = task.get("name") if task else None
        for j, dep in enumerate((task or {}).get("depends_on") or []):
            dpath = _idx(_at(_idx(path, i), "depends_on"), j)
            if dep == name:
                c.add(dpath, f"task {_q(dep)} depends on itself")
            elif dep not in first:
                c.add(dpath, f"unknown task {_q(dep)}")
            elif isinstance(name, str) and first.get(name) == i:
                graph[name].append(dep)
    _check_cycles(c, path, tasks, first, graph)


def _check_cycles(
    c: Checker,
    path: str,
    tasks: list[dict[str, Any] | None],
    first: dict[str, int],
    graph: dict[str, list[str]],
) -> None:
    """One problem per cycle, at the dependency that closes it."""
    for cycle in find_cycles(graph):
        head, closing = cycle[0], cycle[-1]
        i = first[head]
        j = ((tasks[i] or {}).get("depends_on") or []).index(closing)
        chain = " -> ".join([*cycle, head])
        c.add(_idx(_at(_idx(path, i), "depends_on"), j), f"dependency cycle: {chain}")


Check = Callable[[Checker, str, Any], Any]

# Top-level keys: validator and default, in the canonical order. `parameters`
# comes before `tasks` because tasks may refer to parameters.
_PIPELINE_FIELDS: dict[str, tuple[Check, Callable[[], Any]]] = {
    "name": (Checker.name, lambda: None),
    "description": (Checker.string, lambda: ""),
    "schedule": (_schedule, lambda: None),
    "timezone": (_timezone, lambda: "UTC"),
    "catchup": (Checker.boolean, lambda: False),
    "enabled": (Checker.boolean, lambda: True),
    "tags": (_tags, list),
    "max_active_runs": (lambda c, p, v: c.integer(p, v, 1, 1000), lambda: 16),
    "parameters": (_parameters, dict),
    "on_failure": (_on_failure, lambda: None),
    "tasks": (_tasks, list),
}
_PIPELINE_REQUIRED = ("name", "tasks")


def _pipeline(c: Checker, data: Any) -> dict[str, Any] | None:
    """The whole document."""
    optional = tuple(key for key in _PIPELINE_FIELDS if key not in _PIPELINE_REQUIRED)
    doc = c.keys("", data, required=_PIPELINE_REQUIRED, optional=optional)
    if doc is None:
        return None
    out: dict[str, Any] = {}
    for key, (check, default) in _PIPELINE_FIELDS.items():
        out[key] = check(c, key, doc[key]) if key in doc else default()
    return _ordered(doc, out)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def validate(data: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check a parsed definition.

    Returns ``(normalized, [])`` when it is valid, ``(None, problems)`` with
    every problem found otherwise. Never raises.
    """
    c = Checker()
    normalized = None
    try:
        with no_cycle_collection():
            normalized = _pipeline(c, data)
    except Exception as exc:  # a bug here must still answer 400 rather than 500
        c.add("", f"could not validate the definition ({type(exc).__name__}: {exc})")
    problems = c.result()
    if problems or normalized is None:
        return None, problems or [Problem("", "invalid definition")]
    return normalized, []


def load(data: Any) -> dict[str, Any]:
    """The normalized definition, or ``DefinitionError`` listing every problem."""
    normalized, problems = validate(data)
    if normalized is None:
        raise DefinitionError(problems)
    return normalized


def load_text(text: str, fmt: str | None = None) -> dict[str, Any]:
    """``parse_text`` then ``load``."""
    return load(parse_text(text, fmt))


def connection_refs(defn: dict[str, Any]) -> list[tuple[str, str]]:
    """``(path, connection name)`` for every connection a normalized definition uses.

    A task names a connection with a ``connection`` key, on the task itself
    (sql, check) or on one of its object-valued keys (copy's source and
    destination). Lists are not searched: a ``connection`` key inside a
    rename mapping is a column, not a connection.
    """
    refs: list[tuple[str, str]] = []
    for i, task in enumerate(defn.get("tasks") or []):
        path = _idx("tasks", i)
        if isinstance(task.get("connection"), str):
            refs.append((_at(path, "connection"), task["connection"]))
        for key, value in task.items():
            if isinstance(value, dict) and isinstance(value.get("connection"), str):
                refs.append((_at(_at(path, key), "connection"), value["connection"]))
    return refs


def redact_url(url: str) -> str:
    """``url`` cut to ``scheme://host/…``: what it shows to users who may not hold its secret.

    Slack's webhook URLs carry their token in the path; user info
    (``user:password@``) is dropped too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/…" if parts.scheme and host else "…"


def redacted(defn: dict[str, Any]) -> dict[str, Any]:
    """A copy of a definition with its secrets cut out: the webhook URL to scheme and host."""
    on_failure = defn.get("on_failure")
    if not isinstance(on_failure, dict) or not isinstance(on_failure.get("webhook"), str):
        return defn
    return {**defn, "on_failure": {**on_failure, "webhook": redact_url(on_failure["webhook"])}}


def with_connections_renamed(defn: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a normalized definition whose connection refs are renamed by ``names``.

    Looks where ``connection_refs`` looks, so a column called ``connection``
    in a rename mapping is left alone.
    """
    out = json.loads(json.dumps(defn))
    for task in out.get("tasks") or []:
        for holder in [task, *(v for v in task.values() if isinstance(v, dict))]:
            if isinstance(holder.get("connection"), str):
                holder["connection"] = names.get(holder["connection"], holder["connection"])
    return out


# ---------------------------------------------------------------------------
# Text: parsing and dumping
# ---------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    """A key appears twice in one object (JSON)."""


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated key is an error, not "last one wins"."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {_q(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    """json hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not allowed")


def _parse_json(text: str) -> Any:
    """JSON text -> data; every failure becomes a DefinitionError."""
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_pairs, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except RecursionError:
        message = "invalid JSON: nested too deeply"
    except ValueError as exc:
        message = f"invalid JSON: {exc}"
    raise DefinitionError([Problem("", message)])


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """``yaml.safe_load`` with two changes.

    Dates stay strings: a definition is JSON-shaped, and ``start: 2024-01-01``
    must not turn into a ``datetime``. A key repeated in one mapping is an
    error (YAML itself forbids it; PyYAML silently keeps the last one).
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: PyYAML reports it below
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return dict(super().construct_mapping(node, deep=deep))


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """YAML text -> (data, the node tree it was built from); failures are DefinitionErrors.

    What ``yaml.load`` does, keeping the nodes: they hold the line of every
    value, and composing a large text a second time for them costs as much
    as the parse.
    """
    # Safe: _YamlLoader is a SafeLoader subclass.
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = f"invalid YAML{where}: {exc.problem or exc.context}"
    except RecursionError:
        message = "invalid YAML: nested too deeply"
    except Exception as exc:  # yaml.YAMLError, and odd errors from constructors
        message = f"invalid YAML: {exc}"
    finally:
        loader.dispose()
    raise DefinitionError([Problem("", message)])


def compose_yaml(text: str) -> yaml.Node | None:
    """The YAML node tree of ``text`` (JSON text too), or None when it does not parse.

    For the lines of values in text that ``parse_document`` read as JSON.
    """
    try:
        with no_cycle_collection():
            return yaml.compose(text, Loader=_YamlLoader)
    except Exception:  # unparsable: its parse error already names its line
        return None


class _TooBig(Exception):
    """The parsed document is too deep or too large."""


def _measure(value: Any, depth: int, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(nodes, height) of ``value`` as if YAML aliases were expanded.

    Memoized by identity, so a shared (aliased) node is measured once: a
    "billion laughs" document is caught in time linear in its text.
    """
    if not isinstance(value, dict | list):
        return 1, 0
    key = id(value)
    if key in memo:
        nodes, height = memo[key]
    else:
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
        children = list(value.values()) if isinstance(value, dict) else value
        nodes, height = 1, 0
        for child in children:
            child_nodes, child_height = _measure(child, depth + 1, memo)
            nodes += child_nodes
            height = max(height, child_height + 1)
            if nodes > MAX_NODES:
                raise _TooBig(f"more than {MAX_NODES} values")
        memo[key] = (nodes, height)
    if depth + height > MAX_DEPTH:
        raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
    return nodes, height


def parse_text(text: str, fmt: str | None = None) -> Any:
    """Parse JSON or YAML text into plain data (not validated yet).

    ``fmt`` is "json", "yaml" or None (try JSON, else YAML). Raises
    ``DefinitionError`` — and nothing else — on any failure, with the line and
    column of syntax errors.
    """
    return parse_document(text, fmt)[0]


def parse_document(text: str, fmt: str | None = None) -> tuple[Any, yaml.Node | None]:
    """``parse_text``, with the YAML node tree of the text (None when it was read as JSON).

    The nodes give the line of each value (the editor points at problems
    with them) without composing the text a second time.
    """
    with no_cycle_collection():
        return _parse_document(text, fmt)


def _parse_document(text: str, fmt: str | None) -> tuple[Any, yaml.Node | None]:
    if not isinstance(text, str):
        raise DefinitionError([Problem("", f"expected text, got {type(text).__name__}")])
    if fmt not in (None, "json", "yaml"):
        raise DefinitionError([Problem("", f"unknown format {fmt!r} (expected json or yaml)")])
    if len(text) > MAX_TEXT_CHARS:
        raise DefinitionError([Problem("", f"document longer than {MAX_TEXT_CHARS} characters")])
    node: yaml.Node | None = None
    if fmt == "json":
        data = _parse_json(text)
    elif fmt == "yaml":
        data, node = _parse_yaml(text)
    else:
        try:
            data = _parse_json(text)
        except DefinitionError as json_error:
            try:
                data, node = _parse_yaml(text)
            except DefinitionError:
                # Text opening like JSON was most likely meant as JSON, and
                # JSON's message is the clearer one then.
                if text.lstrip().startswith(("{", "[")):
                    raise json_error from None
                raise
    try:
        _measure(data, 0, {})
    except _TooBig as exc:
        raise DefinitionError([Problem("", f"document too large: {exc}")]) from None
    return data, node


class _YamlDumper(yaml.SafeDumper):
    """Block style; multi-line strings (SQL) as ``|`` blocks; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Outside double quotes, YAML reads NEL, LS and PS as line breaks and
    # PyYAML may write them raw: only double quotes escape them. Otherwise
    # PyYAML falls back to quotes by itself when a | block cannot hold the
    # text exactly (trailing spaces, special characters).
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    if style is None and "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flowable(value: Any) -> bool:
    """Short enough to write inline: scalars, ``{param: x}`` and lists of those."""
    if isinstance(value, str):
        return "\n" not in value
    if isinstance(value, list):
        return all(_flowable(item) for item in value)
    if isinstance(value, dict):
        return list(value) == ["param"] and _flowable(value["param"])
    return True


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    # `columns: [id, email]` and `[amount, '>=', {param: x}]` read like the
    # examples in the docs; lists of objects (tasks, checks) stay blocks.
    flow = _flowable(value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_YamlDumper.add_representer(str, _represent_str)
_YamlDumper.add_representer(list, _represent_list)


def dump_yaml(defn: dict[str, Any]) -> str:
    """A normalized definition as YAML, keys in their order; ``load_text`` reads it back equal."""
    return yaml.dump(
        defn,
        Dumper=_YamlDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
