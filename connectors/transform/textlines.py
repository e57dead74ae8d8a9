"""Transformations run on PostgreSQL COPY text lines, field by field."""

from __future__ import annotations

import gc
from typing import Any

from connectors.transform.base import Row, TextFunc
from connectors.transform.registry import steps
from connectors.types import Column


class TextLineTransformer:
    """Steps applied to PostgreSQL COPY text lines, field by field.

    For steps that only move, drop, null or hash fields (``select``,
    ``rename``, ``mask``, ``filter`` on null-ness, ``dedupe``) the text a
    COPY gives is all that is needed: a field's text is exactly ``x::text``,
    which is what ``mask`` hashes. No typed Python value is built, which is
    what makes this path several times faster than ``BatchTransformer``.
    ``build`` answers None when a step needs typed values.
    """

    def __init__(self, funcs: list[TextFunc], columns: list[Column], split: int = -1) -> None:
        self.funcs = funcs
        self.columns = columns
        # Fields to split off each line (-1: all). Without a select, only
        # the fields up to the last one touched need splitting; the rest of
        # the line stays one piece.
        self.split = split

    @classmethod
    def build(
        cls,
        columns: list[Column],
        transformations: list[dict[str, Any]],
        offset: int = 0,
        run_params: dict[str, Any] | None = None,
    ) -> TextLineTransformer | None:
        funcs: list[TextFunc] = []
        cols = list(columns)
        touched: list[int] = []
        reorders = False
        for function, step in steps(transformations, offset):
            op = function.text(step, cols, run_params or {})
            if op is None:
                return None
            touched.extend(op.touched)
            reorders = reorders or op.reorders
            if op.func is not None:
                funcs.append(op.func)
            cols = op.columns
        split = -1 if reorders or not touched else max(touched) + 1
        return cls(funcs, cols, split)

    def __call__(self, lines: list[bytes]) -> list[bytes]:
        split, funcs = self.split, self.funcs
        out: list[bytes] = []
        append = out.append
        join = b"\t".join
        # The rows of a block die young: the cyclic GC would only rescan them.
        enabled = gc.isenabled()
        gc.disable()
        row: Row | None
        try:
            if len(funcs) == 1:
                func = funcs[0]
                for line in lines:
                    row = func(line.split(b"\t", split))
                    if row is not None:
                        append(join(row))
                return out
            for line in lines:
                row = line.split(b"\t", split)
                for func in funcs:
                    row = func(row)  # type: ignore[arg-type]
                    if row is None:
                        break
                else:
                    append(join(row))  # type: ignore[arg-type]
            return out
        finally:
            if enabled:
                gc.enable()
