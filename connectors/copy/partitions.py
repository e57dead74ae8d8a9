"""Partition math: a chunk's range of the partition column, from the stored plan."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from connectors.copy.spec import CopyFailed
from connectors.copy.values import from_json
from connectors.types import Column


def split_bounds(lo: Any, hi: Any, n: int) -> list[Any]:
    """``n + 1`` boundaries from ``lo`` to ``hi`` (ints, decimals, floats or datetimes)."""
    if isinstance(lo, bool):
        raise CopyFailed("cannot partition on a boolean column")
    if isinstance(lo, int):
        span = hi - lo + 1
        return [lo + span * i // n for i in range(n)] + [hi]
    if isinstance(lo, dt.datetime | dt.date | Decimal | float):
        span = hi - lo
        return [lo + span * i / n for i in range(n)] + [hi]
    raise CopyFailed(f"cannot partition on values like {lo!r} (numbers and timestamps only)")


def chunk_range(
    plan: dict[str, Any], index: int, count: int, column: Column
) -> tuple[Any, Any, bool] | None:
    """``(low, high, last)`` of chunk ``index``, or None when the source is empty."""
    if plan.get("lo") is None:
        return None
    lo, hi = from_json(plan["lo"], column), from_json(plan["hi"], column)
    bounds = split_bounds(lo, hi, count)
    return bounds[index], bounds[index + 1], index == count - 1


def in_chunk(value: Any, bounds: tuple[Any, Any, bool] | None, index: int) -> bool:
    """Whether a file row's partition ``value`` belongs to chunk ``index``."""
    if bounds is None:
        return index == 0
    low, high, last = bounds
    if value is None:
        return index == 0  # NULL keys go with the first chunk
    return low <= value and (value <= high if last else value < high)
