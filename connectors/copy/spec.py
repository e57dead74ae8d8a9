"""What one copy unit is asked to do: the task's copy keys, read once (``CopySpec``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError
from connectors.spec import DEFAULT_BATCH_SIZE, DESTINATION_MODES, incremental_mode_problem

# Rows held as Python objects at once on the batch path (memory bound).
FETCH_ROWS = 5000


class CopyFailed(ConnectorError):
    """A copy cannot run as defined (bad mode, missing column …); not transient."""


SIDES = ("source", "destination")


def side_error(side: str, error: ConnectorError) -> ConnectorError:
    """``error`` with its message starting with the side of the copy that failed.

    "destination postgresql host:5432/db: value … out of range" tells a user
    which connection to look at; an error already naming its side is kept.
    """
    if str(error).startswith(tuple(f"{s} " for s in SIDES)):
        return error
    labeled = type(error)(f"{side} {error}", transient=error.transient)
    labeled.__cause__ = error.__cause__
    return labeled


class Unit:
    """Who is copying: the marker key of this unit of work."""

    def __init__(self, execution_id: str, task_name: str, chunk: tuple[int, int] | None) -> None:
        self.execution_id = str(execution_id)
        self.task_name = str(task_name)
        self.chunk = chunk
        self.index = chunk[0] if chunk else 0


@dataclass
class CopySpec:
    """One unit of a normalized ``copy`` task, as the engine runs it.

    ``ctx`` is the run's context (``task``, ``params``, ``chunk``, watermark
    and checkpoint calls, ``check``, ``log``, ``metrics``). ``pushdown=False``
    forces every transformation onto the batch path (an int: push at most
    that many leading steps); ``passthrough=False`` disables a kind pair's
    fast copy (benchmarks and tests).
    """

    ctx: Any
    source: dict[str, Any]
    table: str
    mode: str
    keys: list[str]
    transformations: list[dict[str, Any]]
    incremental: dict[str, Any] | None
    partition: dict[str, Any] | None
    chunk: tuple[int, int] | None
    batch_size: int
    pushdown: bool | int = True
    passthrough: bool = True
    # destination.schema: evolve, freeze or discard (connectors.copy.schema_changes).
    schema: str = "evolve"

    @classmethod
    def of(cls, ctx: Any, *, pushdown: bool | int = True, passthrough: bool = True) -> CopySpec:
        """The spec of ``ctx.task`` for this run's unit (``ctx.chunk`` of a partitioned copy)."""
        task = ctx.task
        destination = task.get("destination") or {}
        partition = task.get("partition") or None
        mode = destination.get("mode") or "append"
        chunk = getattr(ctx, "chunk", None) if partition else None
        if partition and chunk is None:
            chunk = (0, 1)
        if partition and mode == "replace" and chunk and chunk[1] > 1:
            raise CopyFailed(
                "mode replace cannot be combined with partition"
                " (each chunk would replace the others)"
            )
        keys = list(destination.get("keys") or [])
        incremental = task.get("incremental") or None
        problem = incremental_mode_problem(mode, keys) if incremental else None
        if problem:
            # Checked when the definition is saved; a version saved before the
            # rule existed is refused here rather than copying rows twice.
            raise CopyFailed(problem)
        return cls(
            ctx=ctx,
            source=task.get("source") or {},
            table=str(destination.get("table") or ""),
            mode=mode,
            keys=keys,
            transformations=list(task.get("transformations") or []),
            incremental=incremental,
            partition=partition,
            chunk=chunk,
            batch_size=max(1, int(task.get("batch_size") or DEFAULT_BATCH_SIZE)),
            pushdown=pushdown,
            passthrough=passthrough,
            schema=str(destination.get("schema") or "evolve"),
        )

    @property
    def lookback(self) -> int | float:
        """How far below the watermark an incremental copy reads (0: from it, inclusive)."""
        value = (self.incremental or {}).get("lookback") or 0
        return int(value) if float(value).is_integer() else float(value)

    @property
    def unit(self) -> Unit:
        return Unit(self.ctx.execution_id, self.ctx.task_name, self.chunk)

    @property
    def params(self) -> dict[str, Any]:
        """The run's parameters (bound into a source query and the steps)."""
        return dict(getattr(self.ctx, "params", {}) or {})

    @property
    def fetch_rows(self) -> int:
        """Rows per fetch: Python objects (~0.5 KiB each) stay few whatever batch_size."""
        return min(self.batch_size, FETCH_ROWS)

    def timeout(self) -> float | None:
        """Seconds each destination statement may take: what the run has left."""
        left = self.ctx.seconds_left() if hasattr(self.ctx, "seconds_left") else None
        return None if left is None else max(1.0, float(left))


def check_mode(mode: str, keys: list[str]) -> None:
    """Refuse a destination mode the sinks do not know, or an upsert without keys."""
    if mode not in DESTINATION_MODES:
        raise CopyFailed(f"unknown destination mode {mode!r}")
    if mode == "upsert" and not keys:
        raise CopyFailed("upsert needs keys")
