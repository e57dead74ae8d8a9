"""Check a JSON-shaped document and collect every problem with its path. Imports no Django.

The pipeline definition (pipelines.definition), the task types
(pipelines.tasktypes) and the transformation functions (connectors.transform)
check their parts of one definition with one ``Checker``: each helper checks
one kind of value at a path (``tasks[1].depends_on[0]``), records what is
wrong, and returns the normalized value, so the API can answer with every
problem at once and the editor can point at each. It lives here, below both
layers, because the connectors check their part with it too.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.names import NAME_RE, identifier_problem, sql_parameters, table_problem

# Past this many problems the rest is noise; one more problem says how many
# were left out (SPEC §10: the answer to a hostile definition stays small).
MAX_PROBLEMS = 100
# Names listed in one message ("columns here: ...") before "and N more".
MAX_LISTED = 20

# ``NAME_RE`` as a JSON schema: its patterns anchor with ^ and $ (no \A, \Z).
NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": NAME_RE.pattern.replace("\\A", "^").replace("\\Z", "$"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, at ``path`` ("" = the whole document)."""

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


# ---------------------------------------------------------------------------
# Paths and messages
# ---------------------------------------------------------------------------


def at(path: str, key: object) -> str:
    """The path of ``key`` inside the object at ``path``."""
    return f"{path}.{key}" if path else str(key)


def idx(path: str, index: int) -> str:
    """The path of item ``index`` of the list at ``path``."""
    return f"{path}[{index}]"


def kind(value: object) -> str:
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


def quoted(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message: short, and escaped when not printable."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return repr(text)


def listing(names: Sequence[str]) -> str:
    """``names`` joined by commas, the first ``MAX_LISTED`` only: a message stays short
    however many columns a definition declares (one message per unknown column
    would otherwise cost time and memory in the product of the two)."""
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def unknown(what: str, value: str, choices: Iterable[str]) -> str:
    """``unknown <what> 'value'`` with a suggestion or the list of choices."""
    options = sorted(choices)
    close = difflib.get_close_matches(value, options, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "expected one of: " + ", ".join(options)
    return f"unknown {what} {quoted(value)} ({hint})"


def ordered(raw: Mapping[Any, Any], out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the user's keys first, in the user's order, then the defaults.

    Keeping the user's order makes a dumped definition look like what was
    written; the defaults follow in their canonical order.
    """
    first = [key for key in raw if isinstance(key, str) and key in out]
    rest = [key for key in out if key not in raw]
    return {key: out[key] for key in (*first, *rest)}


def is_scalar(value: object) -> bool:
    """A JSON scalar (finite numbers only: NaN and infinities are not JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


class ColumnScope(Protocol):
    """What is known about the columns at one point (connectors.transform.Columns)."""

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a column here, or None when it is (or may be)."""


# ---------------------------------------------------------------------------
# The checker: collects problems, one helper per kind of value
# ---------------------------------------------------------------------------


class Checker:
    """Collects problems while checking one document.

    Each helper checks one kind of value at a path, records what is wrong,
    and returns the normalized value (or None when it is invalid: the whole
    result is discarded as soon as there is one problem, so callers need not
    care what an invalid part normalizes to).
    """

    def __init__(self, parameters: frozenset[str] = frozenset()) -> None:
        self.problems: list[Problem] = []
        # Parameter names a {param: name} or %(name)s may use.
        self.parameters = parameters
        # Every {output: [task, key]} met, as (path, task, key): whether the
        # task is upstream is known only once every task was read, so the
        # definition checker judges them at the end.
        self.output_refs: list[tuple[str, str, str]] = []

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
            self.add(path, f"expected an object, got {kind(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.add(at(path, key), "keys must be strings")
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
                self.add(at(path, key), unknown("key", key, allowed))
        for key in required:
            if key not in obj:
                self.add(at(path, key), f"missing required key '{key}'")
        return obj

    def list_of(self, path: str, value: Any, *, nonempty: bool = False) -> list[Any] | None:
        """A list (optionally at least one item)."""
        if not isinstance(value, list):
            self.add(path, f"expected a list, got {kind(value)}")
            return None
        if nonempty and not value:
            self.add(path, "must not be empty")
            return None
        return value

    # -- scalars ------------------------------------------------------------

    def string(self, path: str, value: Any, *, nonempty: bool = False) -> str | None:
        """A string (optionally not blank)."""
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {kind(value)}")
            return None
        if nonempty and not value.strip():
            self.add(path, "must not be empty")
            return None
        return value

    def integer(self, path: str, value: Any, low: int, high: int) -> int | None:
        """An integer in ``low..high``; a boolean is not an integer."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected an integer, got {kind(value)}")
            return None
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}")
            return None
        return value

    def boolean(self, path: str, value: Any) -> bool | None:
        """true or false."""
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {kind(value)}")
            return None
        return value

    def choice(self, path: str, value: Any, choices: Iterable[str], what: str) -> str | None:
        """One of ``choices`` (``what`` names the thing in the message)."""
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {kind(value)}")
            return None
        options = tuple(choices)
        if value not in options:
            self.add(path, unknown(what, value, options))
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
                f"invalid name {quoted(text)}: use 1 to 100 letters, digits, '_' or '-', "
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
            self.add(path, f"invalid table name {quoted(text)}: {problem}")
            return None
        return text

    def column(self, path: str, value: Any, columns: ColumnScope | None = None) -> str | None:
        """A column name safe to quote, and present in ``columns`` when that is known."""
        text = self.string(path, value)
        if text is None:
            return None
        problem = identifier_problem(text)
        if problem:
            self.add(path, f"invalid column name {quoted(text)}: {problem}")
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
        columns: ColumnScope | None = None,
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
            column = self.column(idx(path, i), item, columns)
            if column is None:
                ok = False
            elif column in result:
                self.add(idx(path, i), f"column {quoted(column)} is listed twice")
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
                self.add(path, f"unknown parameter {quoted(name)} in %({name})s")
        return text

    def param_ref(self, path: str, value: Any) -> dict[str, Any] | None:
        """``{param: name}`` naming a declared or built-in parameter, or ``{output: [task, key]}``.

        An output reference is any upstream task's output value (SPEC §8);
        it is recorded in ``output_refs`` for the graph check.
        """
        if isinstance(value, dict) and "output" in value and "param" not in value:
            return self.output_ref(path, value)
        ref = self.keys(path, value, required=("param",))
        if ref is None or "param" not in ref:
            return None
        name = self.string(at(path, "param"), ref["param"])
        if name is None:
            return None
        if name not in self.parameters:
            self.add(at(path, "param"), f"unknown parameter {quoted(name)}")
            return None
        return {"param": name}

    def output_ref(self, path: str, value: Any) -> dict[str, list[str]] | None:
        """``{output: [task, key]}``: ``key`` of ``task``'s output (its being upstream: later)."""
        ref = self.keys(path, value, required=("output",))
        if ref is None or "output" not in ref:
            return None
        opath, pair = at(path, "output"), ref["output"]
        if not isinstance(pair, list):
            self.add(opath, f"expected [task, key], got {kind(pair)}")
            return None
        if len(pair) != 2:
            self.add(opath, f"expected [task, key], got a list of {len(pair)} items")
            return None
        task = self.name(idx(opath, 0), pair[0])
        key = self.string(idx(opath, 1), pair[1], nonempty=True)
        if task is None or key is None:
            return None
        self.output_refs.append((path, task, key))
        return {"output": [task, key]}
