"""JSON Lines files: one object a line, in a directory under DATA_ROOT.

Decimals are written as strings (a JSON number would go through a float and
lose digits); dates and timestamps as ISO 8601 strings.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, FileConnector
from connectors.types import Column, infer_json_type, json_default

__all__ = ["JsonlConnector"]

SAMPLE_ROWS = 1000


class JsonlConnector(FileConnector):
    kind = "jsonl"
    extension = ".jsonl"
    # Strings holding dates or decimals are parsed by the inferred types.
    typed_values = False

    def describe(self, table: str | None = None, query: str | None = None) -> list[Column]:
        if table is None:
            raise ConnectorError("jsonl sources take a table (file name), not a query")
        path = self.file(table)
        if not path.is_file():
            raise ConnectorError(f"jsonl {self.name}: file {table!r} does not exist")
        names: dict[str, list[Any]] = {}
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(itertools.islice(handle, SAMPLE_ROWS), start=1):
                if not line.strip():
                    continue
                obj = _load(line, path, number, self.name)
                for key, value in obj.items():
                    names.setdefault(key, []).append(value)
        return [Column(name, infer_json_type(values)) for name, values in names.items()]

    def read_file(self, path: Path, columns: list[Column], size: int) -> Iterator[list[tuple]]:
        names = [c.name for c in columns]
        with path.open(encoding="utf-8") as handle:
            number = 0
            while True:
                lines = list(itertools.islice(handle, size))
                if not lines:
                    break
                batch = []
                for line in lines:
                    number += 1
                    if line.strip():
                        get = _load(line, path, number, self.name).get
                        batch.append(tuple(get(n) for n in names))
                yield batch

    def write_file(
        self, handle: Any, columns: list[Column], rows: list[tuple], first: bool
    ) -> None:
        names = [c.name for c in columns]
        dumps = json.JSONEncoder(
            default=json_default, ensure_ascii=False, separators=(",", ":")
        ).encode
        json_idx = [i for i, c in enumerate(columns) if c.type == "json"]
        if json_idx:
            # JSON columns may arrive as JSON text (from PostgreSQL, MySQL):
            # written as the object, not as a string holding it.
            fixed = []
            for row in rows:
                values = list(row)
                for i in json_idx:
                    if isinstance(values[i], str):
                        values[i] = _parse_or_keep(values[i])
                fixed.append(values)
            rows = fixed  # type: ignore[assignment]
        handle.writelines(dumps(dict(zip(names, row, strict=True))) + "\n" for row in rows)

    def copy_existing(self, path: Path, handle: Any, columns: list[Column]) -> None:
        with path.open(encoding="utf-8") as existing:
            shutil.copyfileobj(existing, handle)


def _parse_or_keep(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _load(line: str, path: Path, number: int, name: str) -> dict[str, Any]:
    """One line's object; errors name the connection ``name``, the file and the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConnectorError(
            f"jsonl {name}: {path.name} line {number}: not JSON ({exc.msg})"
        ) from None
    if not isinstance(obj, dict):
        raise ConnectorError(f"jsonl {name}: {path.name} line {number}: not an object")
    return obj
