"""Values on the way: text parsed by column type, watermarks and bounds as JSON."""

from __future__ import annotations

import datetime as dt
import math
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


def stored_value(stored: Any, column: Column) -> Any:
    """``from_json`` for a stored watermark or bound; CopyFailed when it does not parse."""
    try:
        return from_json(stored, column)
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise CopyFailed(
            f"stored watermark {stored!r} is not a value of column {column.name!r} ({exc});"
            " reset the watermark"
        ) from None


def step_back(value: Any, lookback: int | float, column: str) -> Any:
    """``value`` minus ``lookback``: seconds for dates and times, units for numbers.

    A date steps back whole days (rounded up): the window covers at least
    ``lookback`` seconds.
    """
    if not lookback or value is None:
        return value
    try:
        if isinstance(value, dt.datetime):
            return value - dt.timedelta(seconds=lookback)
        if isinstance(value, dt.date):
            return value - dt.timedelta(days=math.ceil(lookback / 86_400))
        if isinstance(value, dt.time):
            day = dt.datetime.combine(dt.date(2000, 1, 2), value)
            moved = day - dt.timedelta(seconds=lookback)
            return (
                moved.timetz()
                if moved.date() == day.date()
                else dt.time.min.replace(tzinfo=value.tzinfo)
            )
    except OverflowError:
        return type(value).min
    if isinstance(value, Decimal):
        return value - Decimal(str(lookback))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value - lookback
    raise CopyFailed(
        f"incremental column {column!r}: lookback needs a number, date or time column,"
        f" not values like {value!r}"
    )


def lower_bound(stored: Any, column: Column, lookback: int | float, typed: bool) -> Any:
    """Where an incremental read of a SQL source starts (inclusive), as a bound parameter.

    Without lookback, the stored watermark as it is (the source compares it as
    before). With it, the stepped-back value: typed for sources whose driver
    gives typed values, else text shaped like the stored one (SQLite compares
    its date text as text, so ``T`` or a space must match what it holds).
    """
    if not lookback:
        return stored
    low = step_back(stored_value(stored, column), lookback, column.name)
    if typed:
        return low
    text = json_value(low)
    if isinstance(stored, str) and isinstance(text, str) and "T" in stored:
        text = text.replace(" ", "T", 1)
    return text


def newest(found: Any, stored: Any, column: Column) -> Any:
    """The watermark after a read, as JSON: the greatest value ``found``, never
    below the ``stored`` one (rows at the old watermark may have been deleted)."""
    if found is None:
        return stored
    found = json_value(found)
    if stored is None:
        return found
    try:
        keep = from_json(found, column) >= from_json(stored, column)
    except (ValueError, ArithmeticError, TypeError):
        keep = True  # not comparable (a column's type changed): the source's answer wins
    return found if keep else stored


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
