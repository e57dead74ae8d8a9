"""Copying from a CSV or JSONL file: read in batches, filtered and transformed in Python."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connectors.base import FileConnector
from connectors.copy.partitions import chunk_range, in_chunk
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, CopySpec
from connectors.copy.values import from_json, json_value, parse_batch, parsers
from connectors.transform import BatchTransformer


def copy_from_file(spec: CopySpec, source: FileConnector, sink: Sink) -> dict[str, Any]:
    """Copy the unit of ``spec`` from file ``source`` into ``sink`` (one transaction)."""
    ctx = spec.ctx
    table = spec.source.get("table")
    if not table:
        raise CopyFailed(f"{source.kind} sources take a table (a file name)")
    path = source.file(table)
    columns = source.describe(table=table)
    by_name = {c.name: c for c in columns}
    position = {c.name: i for i, c in enumerate(columns)}
    parse = parsers(columns)
    transformer = BatchTransformer(columns, spec.transformations, spec.params)

    def rows_of() -> Iterator[list[tuple]]:
        for rows in source.read_file(path, columns, spec.fetch_rows):
            yield parse_batch(rows, parse, f"{source.kind} {table}")

    previous = watermark = None
    wm_pos = None
    if spec.incremental:
        column = spec.incremental.get("column")
        if column not in by_name:
            raise CopyFailed(f"incremental column {column!r} is not in the source")
        wm_pos = position[column]
        previous = ctx.watermark_load()
        if previous is not None:
            previous = from_json(previous, by_name[column])
        watermark = previous
    bounds = None
    part_pos = None
    chunk = spec.chunk
    if spec.partition and chunk:
        column = spec.partition.get("column")
        if column not in by_name:
            raise CopyFailed(f"partition column {column!r} is not in the source")
        part_pos = position[column]

        def compute() -> dict[str, Any]:
            lo = hi = None
            for rows in rows_of():
                for row in rows:
                    value = row[part_pos]
                    if value is None or (
                        wm_pos is not None
                        and previous is not None
                        and not (row[wm_pos] is not None and row[wm_pos] > previous)
                    ):
                        continue
                    lo = value if lo is None or value < lo else lo
                    hi = value if hi is None or value > hi else hi
            return {"lo": json_value(lo), "hi": json_value(hi)}

        bounds = chunk_range(sink.plan(compute), chunk[0], chunk[1], by_name[column])

    sink.begin(transformer.columns)
    read = written = 0
    try:
        for rows in rows_of():
            read += len(rows)
            if wm_pos is not None:
                if previous is not None:
                    rows = [r for r in rows if r[wm_pos] is not None and r[wm_pos] > previous]
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
        info = {"watermark": json_value(watermark)}
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
