"""connectors.copy.spec: a copy task read once into the unit's CopySpec."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.copy.spec import CopyFailed, CopySpec, check_mode
from connectors.spec import DEFAULT_BATCH_SIZE
from tests.connectors.conftest import FakeContext, copy_task


def test_it_fills_in_the_defaults() -> None:
    task: dict[str, Any] = {"name": "t", "type": "copy", "source": {"table": "src"}}
    spec = CopySpec.of(FakeContext({**task, "destination": {"table": "dst"}}))
    assert (spec.mode, spec.keys, spec.chunk, spec.table) == ("append", [], None, "dst")
    assert spec.batch_size == DEFAULT_BATCH_SIZE and spec.fetch_rows == 5000
    assert spec.unit.index == 0 and spec.pushdown is True and spec.passthrough is True


def test_a_partitioned_copy_runs_its_chunk_or_the_whole_as_one() -> None:
    partition = {"column": "id", "chunks": 3}
    ctx = FakeContext(
        {**copy_task("s", "d", {"table": "src"}, {"table": "dst"}), "partition": partition},
        chunk=(2, 3),
    )
    assert CopySpec.of(ctx).unit.index == 2
    ctx.chunk = None
    assert CopySpec.of(ctx).chunk == (0, 1)


def test_it_refuses_replace_over_several_chunks() -> None:
    task = copy_task("s", "d", {"table": "src"}, {"table": "dst", "mode": "replace"})
    ctx = FakeContext({**task, "partition": {"column": "id", "chunks": 2}}, chunk=(0, 2))
    with pytest.raises(CopyFailed, match="replace cannot be combined with partition"):
        CopySpec.of(ctx)


def test_it_knows_the_destination_modes() -> None:
    check_mode("upsert", ["id"])
    with pytest.raises(CopyFailed, match="unknown destination mode"):
        check_mode("merge", [])
    with pytest.raises(CopyFailed, match="upsert needs keys"):
        check_mode("upsert", [])
