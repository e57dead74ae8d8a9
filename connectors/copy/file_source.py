"""Copying from a CSV or JSONL file: read in batches, filtered and transformed in Python.

``copy_batches`` is the batch path itself, shared with the http source.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from connectors.base import ConnectorError, FileConnector
from connectors.copy.partitions import chunk_range, in_chunk
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, CopySpec, side_error
from connectors.copy.values import (
    json_value,
    newest,
    parse_batch,
    parsers,
    step_back,
    stored_value,
)
from connectors.transform import BatchTransformer
from connectors.types import Column


def copy_from_file(spec: CopySpec, source: FileConnector, sink: Sink) -> dict[str, Any]:
    """Copy the unit of ``spec`` from file ``source`` into ``sink`` (one transaction).

    The file's errors (missing, unreadable, not UTF-8, a bad line or cell)
    start with ``source <kind> <connection>:`` and name the file; the sink's
    name the destination.
    """
    table = spec.source.get("table")
    if not table:
        raise CopyFailed(f"{source.kind} sources take a table (a file name)")
    with source_errors(f"{source.kind} {source.name}", str(table)):
        path = source.file(table)
        columns = source.describe(table=table)
    parse = parsers(columns)

    def rows_of() -> Iterator[list[tuple]]:
        done = 0
        for rows in text_of():
            yield parse_rows(rows, columns, parse, f"{source.kind} {source.name}: {table}", done)
            done += len(rows)

    def text_of() -> Iterator[list[tuple]]:
        with source_errors(f"{source.kind} {source.name}", str(table)):
            yield from source.read_file(path, columns, spec.fetch_rows)

    return copy_batches(spec, columns, rows_of, sink, text_of)


@contextmanager
def source_errors(where: str, name: str | None = None) -> Iterator[None]:
    """Errors of the source ``where`` (``csv files``) as copy errors naming it.

    ``name``, the file, follows ``where`` in a message that does not start
    with it already; an OS or decoding error becomes a ConnectorError.
    """
    at = f"{where}: {name}" if name else where
    try:
        yield
    except ConnectorError as exc:
        if not str(exc).startswith(f"{where}:"):
            exc = type(exc)(f"{at}: {exc}", transient=exc.transient)
        raise side_error("source", exc) from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise side_error("source", ConnectorError(f"{at}: {exc}")) from exc


def parse_rows(
    rows: list[tuple],
    columns: list[Column],
    parse: list[tuple[int, Callable[[Any], Any]]],
    where: str,
    done: int,
) -> list[tuple]:
    """``rows`` (the file's rows after the first ``done``) parsed to their columns' types.

    A value that does not parse fails naming its row (counted from 1 after
    the header) and column: ``csv files: t.csv: row 7, column 'n': …``.
    """
    try:
        return parse_batch(rows, parse, where)
    except CopyFailed:
        # The batch parse names no row: find the first value that fails.
        for number, row in enumerate(rows, start=done + 1):
            for i, parse_one in parse:
                try:
                    parse_one(row[i])
                except (ValueError, ArithmeticError, TypeError) as exc:
                    error = CopyFailed(f"{where}: row {number}, column {columns[i].name!r}: {exc}")
                    raise side_error("source", error) from None
        raise


def copy_batches(
    spec: CopySpec,
    columns: list[Column],
    rows_of: Callable[[], Iterator[list[tuple]]],
    sink: Sink,
    text_of: Callable[[], Iterator[list[tuple]]] | None = None,
) -> dict[str, Any]:
    """Copy the rows ``rows_of()`` yields (typed, in ``columns`` order) into ``sink``.

    Filtered (incremental window, partition chunk) and transformed in Python,
    in one destination transaction. ``rows_of`` may be called twice (a
    partitioned copy's plan reads every row once first). ``text_of`` gives
    the same rows unparsed (a text source's cells): when nothing here needs
    typed values and the sink checks text itself, they go in as they are.
    """
    ctx = spec.ctx
    by_name = {c.name: c for c in columns}
    position = {c.name: i for i, c in enumerate(columns)}
    transformer = BatchTransformer(columns, spec.transformations, spec.params)

    # An incremental read keeps rows with low <= value (low: the watermark
    # minus the lookback; inclusive) and, in a partitioned copy, value <= the
    # plan's greatest value, so every chunk reads the same window.
    stored = low = cap = None
    wm_pos = None
    if spec.incremental:
        column = spec.incremental.get("column")
        if column not in by_name:
            raise CopyFailed(f"incremental column {column!r} is not in the source")
        wm_pos = position[column]
        stored = ctx.watermark_load()
        if stored is not None:
            low = step_back(stored_value(stored, by_name[column]), spec.lookback, str(column))
    watermark = None

    def in_window(value: Any) -> bool:
        if value is None:
            return low is None  # a run without a watermark reads every row
        return (low is None or value >= low) and (cap is None or value <= cap)

    bounds = None
    part_pos = None
    chunk = spec.chunk
    if spec.partition and chunk:
        column = spec.partition.get("column")
        if column not in by_name:
            raise CopyFailed(f"partition column {column!r} is not in the source")
        part_pos = position[column]

        def compute() -> dict[str, Any]:
            lo = hi = top = None
            for rows in rows_of():
                for row in rows:
                    if wm_pos is not None:
                        if not in_window(row[wm_pos]):
                            continue
                        value = row[wm_pos]
                        if value is not None and (top is None or value > top):
                            top = value
                    value = row[part_pos]
                    if value is None:
                        continue
                    lo = value if lo is None or value < lo else lo
                    hi = value if hi is None or value > hi else hi
            plan = {"lo": json_value(lo), "hi": json_value(hi)}
            if wm_pos is not None:
                plan["watermark"] = json_value(top)
            return plan

        plan = sink.plan(compute)
        bounds = chunk_range(plan, chunk[0], chunk[1], by_name[column])
        if wm_pos is not None and plan.get("watermark") is not None:
            cap = stored_value(plan["watermark"], columns[wm_pos])

    sink.begin(transformer.columns)
    # No step, window or chunk compares values: text cells can go unparsed
    # (PostgreSQL's COPY checks them against the columns).
    text = (
        text_of is not None
        and spec.passthrough
        and not spec.transformations
        and wm_pos is None
        and part_pos is None
        and sink.takes_text()
    )
    if text:
        ctx.log("values go in as the source's text (checked by the destination)", "DEBUG")
    read = written = 0
    try:
        if text:
            assert text_of is not None  # nosec B101 - narrows the type; nothing relies on it at run time
            types = [c.type for c in columns]
            for rows in text_of():
                read += len(rows)
                sink.write_text(rows, types)
                ctx.check()
            written = read
        for rows in [] if text else rows_of():
            read += len(rows)
            if wm_pos is not None:
                if low is not None or cap is not None:
                    rows = [r for r in rows if in_window(r[wm_pos])]
                for r in rows:
                    v = r[wm_pos]
                    if v is not None and (watermark is None or v > watermark):
                        watermark = v
            if part_pos is not None and chunk:
                rows = [r for r in rows if in_chunk(r[part_pos], bounds, chunk[0])]
            rows = transformer.apply(rows)
            sink.write(rows)
            written += len(rows)
            ctx.check()
        tail = transformer.finish()
        sink.write(tail)
        written += len(tail)
        ctx.check()
        info = {
            "watermark": newest(watermark, stored, columns[wm_pos]) if wm_pos is not None else None
        }
        sink.commit(written, info)
    except BaseException:
        sink.rollback()
        raise
    return {
        "rows_read": read,
        "rows_written": written,
        "skipped": False,
        "passthrough": False,
        "watermark": info["watermark"],
    }
