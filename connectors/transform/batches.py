"""Transformations run in Python on batches of rows (what the source query could not do)."""

from __future__ import annotations

from typing import Any

from connectors.transform.base import BatchOp, Rows
from connectors.transform.registry import steps
from connectors.types import Column


class BatchTransformer:
    """The steps that could not be pushed down, applied batch by batch.

    Stateless steps work on each batch alone; ``dedupe`` remembers the keys
    it has seen and ``aggregate`` holds one accumulator per group, so memory
    grows with distinct keys or groups, never with the row count.
    """

    def __init__(
        self,
        columns: list[Column],
        transformations: list[dict[str, Any]],
        run_params: dict[str, Any],
        offset: int = 0,
    ) -> None:
        self.steps: list[BatchOp] = []
        cols = list(columns)
        for function, step in steps(transformations, offset):
            op = function.batch(step, cols, run_params)
            self.steps.append(op)
            cols = op.columns
        self.columns = cols

    def __bool__(self) -> bool:
        return bool(self.steps)

    def apply(self, rows: Rows, start: int = 0) -> Rows:
        for step in self.steps[start:]:
            if not rows:
                break
            rows = step.apply(rows)
        return rows

    def finish(self) -> Rows:
        """Rows held back until the end (aggregates), through the later steps."""
        out: Rows = []
        for index, step in enumerate(self.steps):
            held = step.finish()
            if held:
                out.extend(self.apply(held, index + 1))
        return out
