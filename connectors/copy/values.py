"""Values on the way: text parsed by column type, watermarks and bounds as JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from connectors.copy.spec import CopyFailed
from connectors.types import Column, parser_for


def json_value(value: Any) -> Any:
    """A watermark or bound as JSON (the engine stores watermarks as JSON)."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def from_json(stored: Any, column: Column) -> Any:
    """A value ``json_value`` stored, back in ``column``'s Python type."""
    parse = parser_for(column.type)
    return parse(stored) if parse is not None and isinstance(stored, str) else stored


def parsers(columns: list[Column]) -> list[tuple[int, Callable[[Any], Any]]]:
    """``(position, parser)`` of the columns whose stored text needs parsing."""
    out = []
    for i, c in enumerate(columns):
        parse = parser_for(c.type)
        if parse is not None:
            out.append((i, parse))
    return out


def parse_batch(
    rows: list[tuple], parsers: list[tuple[int, Callable[[Any], Any]]], where: str
) -> list[tuple]:
    """``rows`` with the ``parsers``' columns parsed (CopyFailed naming ``where``)."""
    if not parsers or not rows:
        return rows
    columns = list(zip(*rows, strict=True))
    for i, parse in parsers:
        try:
            columns[i] = tuple(map(parse, columns[i]))
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise CopyFailed(f"{where}: column {i + 1}: {exc}") from None
    return list(zip(*columns, strict=True))
