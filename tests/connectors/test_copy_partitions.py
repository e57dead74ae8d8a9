"""connectors.copy.partitions: chunk ranges that cover the plan's span once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.copy.partitions import chunk_range, in_chunk, split_bounds
from connectors.copy.spec import CopyFailed
from connectors.types import Column


def test_it_splits_integers_into_ranges_that_cover_every_value_once() -> None:
    bounds = split_bounds(1, 10, 3)
    assert bounds == [1, 4, 7, 10]
    ranges = [(bounds[i], bounds[i + 1], i == 2) for i in range(3)]
    for value in range(1, 11):
        assert sum(in_chunk(value, r, i) for i, r in enumerate(ranges)) == 1


def test_it_splits_timestamps_and_decimals() -> None:
    start = dt.datetime(2024, 1, 1)
    assert split_bounds(start, start + dt.timedelta(days=4), 2)[1] == start + dt.timedelta(days=2)
    assert split_bounds(Decimal("0"), Decimal("10"), 4)[1] == Decimal("2.5")


@pytest.mark.parametrize("value", [True, "a"])
def test_it_refuses_booleans_and_text(value: object) -> None:
    with pytest.raises(CopyFailed):
        split_bounds(value, value, 2)


def test_it_reads_a_stored_plan_and_gives_nulls_to_the_first_chunk() -> None:
    column = Column("at", "timestamp")
    plan = {"lo": "2024-01-01 00:00:00", "hi": "2024-01-03 00:00:00"}
    bounds = chunk_range(plan, 1, 2, column)
    assert bounds == (dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3), True)
    assert chunk_range({"lo": None, "hi": None}, 0, 2, column) is None
    assert in_chunk(None, bounds, 0) and not in_chunk(None, bounds, 1)
    # An empty source: everything (nothing) goes to the first chunk.
    assert in_chunk(5, None, 0) and not in_chunk(5, None, 1)
