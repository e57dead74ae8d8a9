"""``copy`` task: rows from a source through transformations into a destination."""

from __future__ import annotations

from typing import ClassVar

from connectors.copy import run_copy
from pipelines.tasktypes.base import TaskContext, TaskType


class CopyTask(TaskType):
    """One unit (the whole copy, or chunk ``ctx.chunk``) copied exactly once.

    All the work is in ``connectors.copy.run_copy``; this class only finds
    the two connections through the context.
    """

    name: ClassVar[str] = "copy"

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        source = ctx.connection(task["source"]["connection"])
        destination = ctx.connection(task["destination"]["connection"])
        result = run_copy(ctx, source, destination)
        how = (
            "skipped (already committed)"
            if result["skipped"]
            else ("raw COPY pass-through" if result["passthrough"] else "batches")
        )
        if result.get("resumed_from"):
            # Also in the run's metrics (its output): see connectors.copy.run_copy.
            how += f"; resumed after {result['resumed_from']} rows an earlier attempt committed"
        ctx.log(f"copied {result['rows_read']} rows read, {result['rows_written']} written; {how}")
