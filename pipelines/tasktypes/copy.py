"""``copy`` task: rows from a source through transformations into a destination."""

from __future__ import annotations

import logging
from typing import ClassVar

from connectors.copy import discard_stage, run_copy
from pipelines.tasktypes.base import LeaseLost, TaskCancelled, TaskContext, TaskType

logger = logging.getLogger(__name__)


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
        try:
            result = run_copy(ctx, source, destination)
        except LeaseLost:
            raise  # another worker may hold the task now, and its stage
        except BaseException as exc:
            last = ctx.attempt > int(ctx.task.get("retries") or 0)
            if isinstance(exc, TaskCancelled) or (last and isinstance(exc, Exception)):
                # No attempt will resume this copy: leave no stage behind.
                try:
                    discard_stage(ctx, destination)
                except Exception:  # noqa: BLE001 - the copy's own error is the one to report
                    logger.warning("copy stage not discarded", exc_info=True)
                    ctx.log("copy stage not discarded; it stays in the destination", "WARNING")
            raise
        how = (
            "skipped (already committed)"
            if result["skipped"]
            else ("raw COPY pass-through" if result["passthrough"] else "batches")
        )
        if result.get("resumed_from"):
            # Also in the run's metrics (its output): see connectors.copy.run_copy.
            how += f"; resumed after {result['resumed_from']} rows an earlier attempt committed"
        ctx.log(f"copied {result['rows_read']} rows read, {result['rows_written']} written; {how}")
