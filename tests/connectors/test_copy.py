"""connectors.copy on files and SQLite: refusals, file markers, partitions, watermarks.

test_copy_pairs and test_copy_modes compare whole copies between database
servers; this file covers the engine's own rules with real files under a
per-test DATA_ROOT and a real SQLite database (no server needed): what a copy
refuses before it writes, how a file destination's sidecar markers survive a
crash on either side of the rename, how a file source is partitioned and
filtered by its watermark, and what a bad value in a file is answered with.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.copy import CopyFailed, run_copy
from connectors.copy.engine import make_sink
from connectors.copy.spec import Unit
from tests.connectors import data
from tests.connectors.conftest import FakeContext, Interrupt, copy_task, run


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))[1:]


def no_timeout() -> float | None:
    return None


# ------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("mode", "keys", "message"),
    [
        ("merge", [], "unknown destination mode 'merge'"),
        ("upsert", [], "upsert needs keys"),
    ],
)
def test_it_refuses_a_destination_mode_it_cannot_honour(
    lite: Any, mode: str, keys: list[str], message: str
) -> None:
    with pytest.raises(CopyFailed, match=message):
        make_sink(lite, "t", mode, keys, Unit("e", "t", None), no_timeout)


def test_it_refuses_upsert_into_a_file_and_writes_nothing(lite: Any, csvc: Any) -> None:
    data.load_sqlite(lite)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "o.csv", "mode": "upsert"})
    task["destination"]["keys"] = ["id"]
    with pytest.raises(CopyFailed, match="csv destinations take append or replace, not upsert"):
        run_copy(FakeContext(task), lite, csvc)
    assert list(csvc.directory().iterdir()) == []


def test_it_refuses_a_replace_split_over_partitions(lite: Any, csvc: Any) -> None:
    data.load_sqlite(lite)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "o.csv", "mode": "replace"},
        partition={"column": "id", "count": 2},
    )
    with pytest.raises(CopyFailed, match="replace cannot be combined with partition"):
        run_copy(FakeContext(task, chunk=(0, 2)), lite, csvc)


def test_it_names_a_missing_file_table_or_column(jsonlc: Any, lite: Any) -> None:
    data.write_jsonl(jsonlc.directory() / "o.jsonl", data.orders(20))
    no_table = copy_task("src", "dst", {}, {"table": "x"})
    with pytest.raises(CopyFailed, match="jsonl sources take a table"):
        run_copy(FakeContext(no_table), jsonlc, lite)
    bad_inc = copy_task(
        "src",
        "dst",
        {"table": "o.jsonl"},
        {"table": "x", "keys": ["id"]},
        incremental={"column": "nope"},
    )
    with pytest.raises(CopyFailed, match="incremental column 'nope' is not in the source"):
        run_copy(FakeContext(bad_inc), jsonlc, lite)
    bad_part = copy_task(
        "src", "dst", {"table": "o.jsonl"}, {"table": "x"}, partition={"column": "nope"}
    )
    with pytest.raises(CopyFailed, match="partition column 'nope' is not in the source"):
        run_copy(FakeContext(bad_part, chunk=(0, 2)), jsonlc, lite)
    assert lite.query("SELECT name FROM sqlite_master WHERE name = 'x'")[1] == []


def test_it_refuses_to_partition_on_text_or_booleans(csvc: Any, lite: Any) -> None:
    data.write_csv(csvc.directory() / "o.csv", data.orders(20))
    for column, message in [("email", "numbers and timestamps only"), ("active", "boolean")]:
        task = copy_task(
            "src", "dst", {"table": "o.csv"}, {"table": "x"}, partition={"column": column}
        )
        with pytest.raises(CopyFailed, match=message):
            run_copy(FakeContext(task, chunk=(0, 2), execution_id=f"e-{column}"), csvc, lite)


def test_it_names_the_column_of_a_value_it_cannot_parse(csvc: Any, lite: Any) -> None:
    # "2026-02-30" looks like a date (the column is inferred as one) but is none.
    lines = ["id,day"] + [f"{i},2026-01-{i % 28 + 1:02d}" for i in range(1, 40)] + ["40,2026-02-30"]
    (csvc.directory() / "bad.csv").write_text("\n".join(lines) + "\n")
    assert [c.type for c in csvc.describe(table="bad.csv")] == ["bigint", "date"]
    task = copy_task("src", "dst", {"table": "bad.csv"}, {"table": "x"})
    where = r"^source csv files_csv: bad\.csv: row 40, column 'day': "
    with pytest.raises(CopyFailed, match=where + "day is out of range"):
        run_copy(FakeContext(task), csvc, lite)
    # The unit rolled back: no rows of the good lines either.
    tables = lite.query("SELECT name FROM sqlite_master WHERE name = 'x'")[1]
    assert tables == [] or lite.query("SELECT count(*) FROM x")[1][0][0] == 0


# ------------------------------------------------------------ file markers


def test_it_copies_into_a_file_once_per_unit_and_appends_other_runs(lite: Any, csvc: Any) -> None:
    rows = data.load_sqlite(lite)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "out.csv"})
    first = run_copy(FakeContext(task, execution_id="e1"), lite, csvc)
    again = run_copy(FakeContext(task, execution_id="e1", attempt=2), lite, csvc)
    assert (first["rows_written"], first["skipped"]) == (len(rows), False)
    assert again["skipped"] is True
    assert len(csv_rows(csvc.directory() / "out.csv")) == len(rows)
    run_copy(FakeContext(task, execution_id="e2"), lite, csvc)  # another run appends
    assert len(csv_rows(csvc.directory() / "out.csv")) == 2 * len(rows)
    markers = json.loads((csvc.directory() / ".out.csv.ddmarkers.json").read_text())
    assert {k: v["state"] for k, v in markers.items()} == {
        "e1/copy_t/0": "done",
        "e2/copy_t/0": "done",
    }
    assert not list(csvc.directory().glob(".out.csv.*.tmp"))  # no temp file left


def test_it_copies_again_when_a_crash_came_before_the_rename(lite: Any, csvc: Any) -> None:
    rows = data.load_sqlite(lite)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "out.csv"})
    run_copy(FakeContext(task, execution_id="e1"), lite, csvc)
    sidecar = csvc.directory() / ".out.csv.ddmarkers.json"
    markers = json.loads(sidecar.read_text())
    # Pending with an inode the file does not have: the rename never happened.
    markers["e1/copy_t/0"].update(state="pending", inode=-1)
    sidecar.write_text(json.dumps(markers))
    result = run_copy(FakeContext(task, execution_id="e1", attempt=2), lite, csvc)
    assert result["skipped"] is False and result["rows_written"] == len(rows)
    assert json.loads(sidecar.read_text())["e1/copy_t/0"]["state"] == "done"


def test_it_leaves_the_file_as_it_was_when_a_copy_into_it_fails(lite: Any, csvc: Any) -> None:
    rows = data.load_sqlite(lite)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "out.csv"}, batch_size=50)
    run_copy(FakeContext(task, execution_id="e1"), lite, csvc)
    before = (csvc.directory() / "out.csv").read_bytes()
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, execution_id="e2", fail_after_checks=3), lite, csvc)
    assert (csvc.directory() / "out.csv").read_bytes() == before
    assert not list(csvc.directory().glob(".out.csv.*.tmp"))
    assert len(csv_rows(csvc.directory() / "out.csv")) == len(rows)


def test_it_replaces_a_file_whole(lite: Any, csvc: Any) -> None:
    rows = data.load_sqlite(lite)
    (csvc.directory() / "out.csv").write_text("old\nstale\n")
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "out.csv", "mode": "replace"})
    run_copy(FakeContext(task), lite, csvc)
    got = csv_rows(csvc.directory() / "out.csv")
    assert len(got) == len(rows) and ["stale"] not in got


# ------------------------------------------------------------ partitions and watermarks


@pytest.mark.parametrize("count", [1, 3, 7])
def test_it_splits_a_file_source_into_chunks_that_add_up_to_it(
    csvc: Any, lite: Any, count: int
) -> None:
    rows = data.write_csv(csvc.directory() / "o.csv", data.orders(200))
    task = copy_task(
        "src", "dst", {"table": "o.csv"}, {"table": "parts"}, partition={"column": "id"}
    )
    store: dict[str, Any] = {}
    written = [
        run(
            task, {"src": csvc, "dst": lite}, store=store, execution_id="e", chunk=(i, count)
        ).metrics["rows_written"]
        for i in range(count)
    ]
    assert sum(written) == len(rows)
    ids = [r[0] for r in lite.query("SELECT id FROM parts")[1]]
    assert sorted(ids) == sorted(r[0] for r in rows)  # each row once, none lost
    if count > 1:
        assert all(n > 0 for n in written)  # ids 1..200 spread over every chunk


def test_it_partitions_a_file_on_timestamps_after_its_watermark(csvc: Any, lite: Any) -> None:
    rows = data.write_csv(csvc.directory() / "o.csv", data.orders(120))
    task = copy_task(
        "src",
        "dst",
        {"table": "o.csv"},
        {"table": "tp", "keys": ["id"]},
        partition={"column": "created_at"},
        incremental={"column": "id"},
    )
    # Both chunks read the watermark of the previous run (the engine commits the
    # new one when the whole run succeeds, not per chunk).
    store: dict[str, Any] = {("watermark", "copy_t"): 100}
    staged = []
    total = 0
    for i in range(2):
        ctx = FakeContext(task, store=store, execution_id="e", chunk=(i, 2))
        total += run_copy(ctx, csvc, lite)["rows_written"]
        staged.append(ctx.staged)
    # The bound is inclusive: id 100, at the watermark, is read again.
    assert total == len([r for r in rows if r[0] >= 100])
    assert sorted(r[0] for r in lite.query("SELECT id FROM tp")[1]) == list(range(100, 121))
    assert 120 in staged  # the chunk holding the newest row staged it


def test_it_copies_only_rows_after_the_watermark_from_a_file(jsonlc: Any, lite: Any) -> None:
    rows = data.orders(90)
    data.write_jsonl(jsonlc.directory() / "o.jsonl", rows[:50])
    task = copy_task(
        "src",
        "dst",
        {"table": "o.jsonl"},
        {"table": "inc", "keys": ["id"]},
        incremental={"column": "id"},
    )
    store: dict[str, Any] = {}
    first = run(task, {"src": jsonlc, "dst": lite}, store=store)
    assert first.metrics["rows_written"] == 50 and store[("watermark", "copy_t")] == 50
    data.write_jsonl(jsonlc.directory() / "o.jsonl", rows)
    second = run(task, {"src": jsonlc, "dst": lite}, store=store)
    # ids 50..90 pass the inclusive bound; 50 is in the destination already.
    assert second.metrics["rows_read"] == 90 and second.metrics["rows_written"] == 41
    assert lite.query("SELECT count(*), count(DISTINCT id) FROM inc")[1][0] == (90, 90)


@pytest.mark.parametrize("column", ["created_at", "amount"])
def test_it_stages_timestamp_and_decimal_watermarks_as_json_text(
    csvc: Any, lite: Any, column: str
) -> None:
    # CSV cells are parsed to datetimes and Decimals, which JSON cannot hold as such.
    rows = data.write_csv(csvc.directory() / "o.csv", data.orders(60))
    task = copy_task(
        "src",
        "dst",
        {"table": "o.csv"},
        {"table": "w", "keys": ["id"]},
        incremental={"column": column},
    )
    store: dict[str, Any] = {}
    first = run(task, {"src": csvc, "dst": lite}, store=store)
    staged = store[("watermark", "copy_t")]
    assert isinstance(staged, str)  # stored as JSON by the engine: text, every digit kept
    position = data.COLUMNS.index(column)
    newest = max(r[position] for r in rows)
    read = dt.datetime.fromisoformat if column == "created_at" else Decimal
    assert read(staged) == newest
    assert first.metrics["rows_written"] == len(rows)
    # The next run parses it back and finds nothing newer: only the rows at
    # the watermark (inclusive), whose keys the destination has already.
    again = run(task, {"src": csvc, "dst": lite}, store=store)
    assert again.metrics["rows_written"] == len([r for r in rows if r[position] == newest])
    assert lite.query("SELECT count(*) FROM w")[1][0][0] == len(rows)
