"""CSV files: ``config.path`` is a directory under DATA_ROOT, a table is a file in it.

The first line is the header. An empty cell is NULL (Python's csv module
cannot tell ``""`` from an empty cell, so an empty string reads back as
NULL). Values are written as PostgreSQL prints them (``true``, ISO dates).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, FileConnector
from connectors.types import Column, infer_text_type, text_of

__all__ = ["CsvConnector"]

# Rows sampled to infer column types.
SAMPLE_ROWS = 1000

# The csv module refuses a cell past 128 KiB by default, yet a copy writes
# longer text (a 1 MB document) into CSV: such a file must read back. The
# limit is the module's, for the whole process; a cell is held in memory
# either way (bounded by the row, as any source's row is).
MAX_CELL_CHARS = 2**30
if csv.field_size_limit() < MAX_CELL_CHARS:
    csv.field_size_limit(MAX_CELL_CHARS)


class CsvConnector(FileConnector):
    kind = "csv"
    extension = ".csv"
    # Cells are text: the copy engine parses them by the inferred types.
    typed_values = False

    def describe(self, table: str | None = None, query: str | None = None) -> list[Column]:
        if table is None:
            raise ConnectorError("csv sources take a table (file name), not a query")
        path = self.file(table)
        if not path.is_file():
            raise ConnectorError(f"csv {self.name}: file {table!r} does not exist")
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise ConnectorError(f"csv {self.name}: file {table!r} has no header line")
            sample = list(itertools.islice(reader, SAMPLE_ROWS))
        return [
            Column(name, infer_text_type([r[i] if i < len(r) else "" for r in sample]))
            for i, name in enumerate(header)
        ]

    def read_file(self, path: Path, columns: list[Column], size: int) -> Iterator[list[tuple]]:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            positions = [header.index(c.name) for c in columns]
            width = len(header)
            while True:
                chunk = list(itertools.islice(reader, size))
                if not chunk:
                    break
                yield [
                    tuple((r[p] or None) if len(r) == width else _cell(r, p) for p in positions)
                    for r in chunk
                ]

    def write_file(
        self, handle: Any, columns: list[Column], rows: list[tuple], first: bool
    ) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        if first:
            writer.writerow([c.name for c in columns])
        writer.writerows(["" if v is None else text_of(v) for v in row] for row in rows)

    def copy_existing(self, path: Path, handle: Any, columns: list[Column]) -> None:
        with path.open(newline="", encoding="utf-8") as existing:
            reader = csv.reader(existing)
            header = next(reader, None) or []
            wanted = [c.name for c in columns]
            if wanted[: len(header)] != header:
                raise ConnectorError(
                    f"csv {self.name}: {path.name} has columns {header}, the copy writes {wanted}"
                )
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(wanted)
            if len(wanted) == len(header):
                writer.writerows(reader)
                return
            # Columns added by destination.schema evolve: the file is
            # rewritten with the new header, its rows get empty (NULL) cells.
            pad = [""] * (len(wanted) - len(header))
            width = len(header)
            writer.writerows((row + [""] * (width - len(row)) + pad) for row in reader)


def _cell(row: list[str], position: int) -> str | None:
    return (row[position] or None) if position < len(row) else None
