"""What a task type is: its check when a definition is saved, its run. Imports no Django.

The definition checker (``pipelines.definition``) checks a task's own keys
with the registered ``TaskType``; the engine (``pipelines.runner``) builds a
``TaskContext`` for each claimed task run and calls the same ``TaskType``.
Task types only talk to the outside world through the context, so the
engine can fence, cancel, time out and log them uniformly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.checker import Checker, at, is_scalar, kind, quoted

if TYPE_CHECKING:
    from connectors.base import Connector


class TaskCancelled(Exception):
    """Raised by ``TaskContext.check`` when the run was cancelled."""


class TaskTimedOut(Exception):
    """Raised by ``TaskContext.check`` when the task ran past its timeout."""


class LeaseLost(Exception):
    """Raised by ``TaskContext.check`` when another attempt owns the task run.

    A worker that sees this must stop without writing anything more.
    """


class TaskFailed(Exception):
    """A task failed. ``transient`` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TaskNotReady(Exception):
    """A sensor's condition is still false: check again in ``check_in`` seconds.

    The engine moves the run to ``waiting``, where no worker holds it, and
    the reaper queues it when the check is due. Past the task's ``timeout``,
    counted from its first attempt, the run fails instead (not retried).
    """

    def __init__(self, message: str, *, check_in: float) -> None:
        super().__init__(message)
        self.check_in = check_in


class TaskContext(Protocol):
    execution_id: str
    pipeline_id: str
    pipeline_name: str
    task_id: str
    task_name: str
    attempt: int
    # Retries that may still follow this attempt (0: it is the last).
    retries_left: int
    # The task's normalized definition (one item of ``tasks``).
    task: dict[str, Any]
    # Bound parameters: pipeline defaults, overrides and the built-ins.
    params: dict[str, Any]
    # Counters the task fills in (rows_read, rows_written, ...).
    metrics: dict[str, Any]
    # For a partitioned copy: (chunk index, chunk count) of this task run.
    chunk: tuple[int, int] | None
    # What the run hands downstream when it succeeds (SPEC §8); None: the
    # type's ``output_metrics`` picked from ``metrics``.
    output: Any

    def connection(self, name: str) -> Connector:
        """A connector for the named connection (secrets decrypted)."""

    def log(self, message: str, level: str = "INFO") -> None:
        """Append a line to the task run's log."""

    def check(self) -> None:
        """Heartbeat when due and raise TaskCancelled / TaskTimedOut / LeaseLost.

        Call it between statements and between batches.
        """

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Register a callable that stops the running statement in the database.

        The engine's watchdog thread calls it when the run is cancelled, times
        out or loses its lease, so a long statement stops at once instead of
        at the next ``check()``. Register around each statement, then
        ``remove_cancel`` it.
        """

    def remove_cancel(self, hook: Callable[[], None]) -> None:
        """Unregister a hook given to ``on_cancel``."""

    def seconds_left(self) -> float:
        """Seconds until the task's timeout (for statement timeouts)."""

    def checkpoint_load(self) -> dict[str, Any] | None:
        """Saved progress of this task in this execution, or None."""

    def checkpoint_save(self, state: dict[str, Any]) -> None:
        """Save progress (24 h TTL) so a retried attempt can resume."""

    def watermark_load(self) -> Any:
        """The last committed incremental watermark of this task, or None."""

    def watermark_stage(self, value: Any) -> None:
        """Set the watermark to commit when the task run succeeds."""


@dataclass(frozen=True)
class Key:
    """One key of a task type: what it holds, as a JSON schema, and whether it is required.

    The schema describes the key (for editors, docs, an API schema); the
    type's ``check`` validates it, with the paths and messages users see.
    tests/pipelines/test_tasktypes_registry.py checks that what ``check``
    accepts and returns fits the schema.
    """

    schema: dict[str, Any]
    required: bool = False


class TaskType(ABC):
    """One kind of task (``sql``, ``copy``, ``check``): its keys, their check, its run.

    A new type is a subclass in its own module and one line in
    ``registry.TASK_TYPES``.
    """

    name: ClassVar[str]
    # The type's own keys. The keys every task has (name, type, depends_on,
    # retries, retry_delay, timeout) are the definition checker's.
    keys: ClassVar[dict[str, Key]] = {}
    # The metrics that make a successful run's output, unless ``run`` sets
    # ``ctx.output`` itself.
    output_metrics: ClassVar[tuple[str, ...]] = ()
    # Seconds a cancelled or timed-out run may go on ignoring it before the
    # engine ends its worker process; None: the type always stops at its
    # next ``ctx.check()``, so it never needs to.
    stop_grace: ClassVar[float | None] = None

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The type's keys a task must give."""
        return tuple(name for name, key in cls.keys.items() if key.required)

    @classmethod
    def optional(cls) -> tuple[str, ...]:
        """The type's keys a task may give."""
        return tuple(name for name, key in cls.keys.items() if not key.required)

    @abstractmethod
    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """The type's keys of ``task`` normalized, defaults filled; problems go to ``c``.

        Called when a definition is saved, after the task's keys were
        checked against ``keys``.
        """

    @abstractmethod
    def run(self, ctx: TaskContext) -> None:
        """Do the work. Raise TaskFailed (or let a ConnectorError escape) to fail."""

    def abandon(self, ctx: TaskContext) -> None:  # noqa: B027 - most types leave nothing
        """Clean up after a run whose last attempt was killed (no code ran at its end).

        Called by the maintenance pass once the reaper failed the run for
        good (lease expired, no retry left); ``ctx`` is the run's context, as
        its attempts had it. Most types leave nothing behind.
        """


# --- values bound beside the pipeline's parameters ------------------------

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
# A value a task binds: a literal, {param: name} or {output: [task, key]}.
VALUE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _SCALAR,
        {"type": "array", "items": _SCALAR},
        {
            "type": "object",
            "properties": {"param": {"type": "string"}},
            "required": ["param"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "output": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 2,
                }
            },
            "required": ["output"],
            "additionalProperties": False,
        },
    ]
}
# ``params`` of sql and check tasks, ``kwargs`` of python tasks.
VALUES_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": VALUE_SCHEMA}


def check_values(c: Checker, path: str, raw: Any, *, shadow: bool = False) -> dict[str, Any] | None:
    """``{name: value}``: each value a literal, ``{param: name}`` or ``{output: [task, key]}``.

    Names must be valid names; unless ``shadow``, not those of the
    pipeline's parameters (a bound name beside them must not hide one).
    """
    values = c.mapping(path, raw)
    if values is None:
        return None
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(name, str):
            continue
        vpath = at(path, name)
        if c.name(vpath, name) is None:
            continue
        if not shadow and name in c.parameters:
            c.add(vpath, f"{quoted(name)} is already a parameter of the pipeline; use another name")
        if isinstance(value, dict):
            out[name] = c.param_ref(vpath, value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if not is_scalar(item):
                    c.add(
                        f"{vpath}[{i}]",
                        f"expected a string, number, boolean or null, got {kind(item)}",
                    )
            out[name] = list(value)
        elif is_scalar(value):
            out[name] = value
        else:
            c.add(
                vpath,
                "expected a literal, a {param: name} or an {output: [task, key]},"
                f" got {kind(value)}",
            )
    return out


@contextmanager
def bound_beside(
    c: Checker, path: str, task: dict[str, Any], out: dict[str, Any]
) -> Iterator[None]:
    """Check the task's ``params`` into ``out``; inside, SQL may use their names too."""
    if "params" not in task:
        yield
        return
    out["params"] = check_values(c, path, task["params"])
    saved = c.parameters
    # Known even when a value is wrong: one problem, not one per use.
    raw = task["params"] if isinstance(task["params"], dict) else {}
    c.parameters = saved | frozenset(name for name in raw if isinstance(name, str))
    try:
        yield
    finally:
        c.parameters = saved


def bind_values(values: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each ``{param: name}`` taken from ``params``.

    ``{output: [task, key]}`` values were replaced by the engine before the
    run started (``pipelines.runner``).
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict) and set(value) == {"param"}:
            if value["param"] not in params:
                raise TaskFailed(f"{name}: unknown parameter {value['param']!r}")
            value = params[value["param"]]
        out[name] = value
    return out
