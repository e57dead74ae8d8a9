"""What a task type is: its check when a definition is saved, its run. Imports no Django.

The definition checker (``pipelines.definition``) checks a task's own keys
with the registered ``TaskType``; the engine (``pipelines.runner``) builds a
``TaskContext`` for each claimed task run and calls the same ``TaskType``.
Task types only talk to the outside world through the context, so the
engine can fence, cancel, time out and log them uniformly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.checker import Checker

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


class TaskContext(Protocol):
    execution_id: str
    pipeline_id: str
    pipeline_name: str
    task_id: str
    task_name: str
    attempt: int
    # The task's normalized definition (one item of ``tasks``).
    task: dict[str, Any]
    # Bound parameters: pipeline defaults, overrides and the built-ins.
    params: dict[str, Any]
    # Counters the task fills in (rows_read, rows_written, ...).
    metrics: dict[str, Any]
    # For a partitioned copy: (chunk index, chunk count) of this task run.
    chunk: tuple[int, int] | None

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
