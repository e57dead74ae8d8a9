"""Write modes, incremental copies, crashes and retries, partitioned copies."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connectors.copy import run_copy
from pipelines.tasktypes.base import TaskCancelled
from tests.connectors import data
from tests.connectors.conftest import FakeContext, Interrupt, checksum, copy_task, run

ALL = ", ".join(data.COLUMNS)


def _dest(kind: str, request: Any) -> Any:
    return request.getfixturevalue({"postgresql": "pg2", "mysql": "my", "sqlite": "lite"}[kind])


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_upserts_twice_to_the_same_rows(kind: str, pg: Any, request: Any) -> None:
    rows = data.load_pg(pg)
    dst = _dest(kind, request)
    task = copy_task(
        "src", "dst", {"table": "orders"}, {"table": "up", "mode": "upsert", "keys": ["id"]}
    )
    run(task, {"src": pg, "dst": dst})
    pg.execute("UPDATE orders SET name = 'changed' WHERE id <= 10")
    run(task, {"src": pg, "dst": dst})
    got = dst.query("SELECT id, name FROM up")[1]
    assert len(got) == len(rows)
    assert checksum(got) == checksum(pg.query("SELECT id, name FROM orders")[1])


def test_it_upserts_with_duplicate_keys_in_one_copy(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"query": "SELECT account_id, id FROM orders"},
        {"table": "acc", "mode": "upsert", "keys": ["account_id"]},
    )
    run(task, {"src": pg, "dst": pg2})
    got = pg2.query("SELECT account_id FROM acc")[1]
    assert len(got) == len(pg.query("SELECT DISTINCT account_id FROM orders")[1])
    indexes = pg2.query("SELECT indexdef FROM pg_indexes WHERE tablename = 'acc'")[1]
    assert any("UNIQUE" in i[0] for i in indexes)


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_replaces_atomically(kind: str, pg: Any, request: Any) -> None:
    data.load_pg(pg)
    dst = _dest(kind, request)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "rep", "mode": "replace"})
    run(task, {"src": pg, "dst": dst})
    pg.execute("DELETE FROM orders WHERE id > 100")
    # A reader polling during the second replace never sees an empty table.
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                seen.append(dst.query("SELECT COUNT(*) FROM rep")[1][0][0])
            except Exception:  # noqa: BLE001 - a reader racing the rename may miss the table
                seen.append(-1)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run(task, {"src": pg, "dst": dst})
    finally:
        stop.set()
        watcher.join()
    assert dst.query("SELECT COUNT(*) FROM rep")[1][0][0] == 100
    assert 0 not in seen
    assert set(seen) - {-1} <= {500, 100}


def test_it_keeps_the_old_table_when_a_replace_fails(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task(
        "src", "dst", {"table": "orders"}, {"table": "rep", "mode": "replace"}, batch_size=50
    )
    run(task, {"src": pg, "dst": pg2})
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, fail_after_checks=3), pg, pg2, passthrough=False)
    assert pg2.query("SELECT COUNT(*) FROM rep")[1][0][0] == 500


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_copies_only_new_rows_incrementally(kind: str, pg: Any, request: Any) -> None:
    rows = data.orders(300)
    data.load_pg(pg, rows=rows[:200])
    dst = _dest(kind, request)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "inc", "keys": ["id"]},
        incremental={"column": "created_at"},
    )
    store: dict[str, Any] = {}
    first = run(task, {"src": pg, "dst": dst}, store=store)
    assert first.metrics["rows_written"] == 200
    data.insert_pg(pg, "orders", rows[200:])
    # The bound is inclusive: the row at the watermark comes again (its key
    # is in the destination, so the keyed append skips it).
    second = run(task, {"src": pg, "dst": dst}, store=store)
    assert second.metrics["rows_read"] == 101
    third = run(task, {"src": pg, "dst": dst}, store=store)
    assert third.metrics["rows_read"] == 1
    assert dst.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM inc")[1][0] == (300, 300)


def test_it_does_not_advance_the_watermark_of_a_failed_run(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "inc", "keys": ["id"]},
        incremental={"column": "id"},
        batch_size=50,
    )
    store: dict[str, Any] = {}
    ctx = FakeContext(task, store=store, fail_after_checks=2)
    with pytest.raises(Interrupt):
        run_copy(ctx, pg, pg2, passthrough=False)
    # The engine only commits the staged watermark of a successful run.
    assert store.get(("watermark", "copy_t")) is None
    run(task, {"src": pg, "dst": pg2}, store=store)
    assert store[("watermark", "copy_t")] == 500


def test_it_copies_incrementally_from_files(csvc: Any, pg: Any) -> None:
    rows = data.orders(300)
    data.write_csv(csvc.directory() / "o.csv", rows[:120])
    task = copy_task(
        "src",
        "dst",
        {"table": "o.csv"},
        {"table": "inc", "keys": ["id"]},
        incremental={"column": "id"},
    )
    store: dict[str, Any] = {}
    run(task, {"src": csvc, "dst": pg}, store=store)
    data.write_csv(csvc.directory() / "o.csv", rows)
    second = run(task, {"src": csvc, "dst": pg}, store=store)
    assert second.metrics["rows_written"] == 181  # id 120 again (inclusive), then skipped
    assert pg.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM inc")[1][0] == (300, 300)


@pytest.mark.parametrize(
    ("kind", "passthrough", "mode"),
    [
        (kind, passthrough, mode)
        for kind, passthrough in [
            ("postgresql", True),
            ("postgresql", False),
            ("mysql", False),
            ("sqlite", False),
            ("csv", False),
        ]
        # Files take append or replace (no keys to upsert on).
        for mode in (["append", "replace"] if kind == "csv" else ["append", "upsert"])
    ],
)
def test_it_survives_a_crash_and_retry_with_exactly_the_rows(
    kind: str, passthrough: bool, mode: str, pg: Any, request: Any
) -> None:
    rows = data.load_pg(pg)
    dst = request.getfixturevalue("csvc") if kind == "csv" else _dest(kind, request)
    table = "crash.csv" if kind == "csv" else "crash"
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": table, "mode": mode, "keys": ["id"] if mode == "upsert" else []},
        batch_size=60,
    )
    store: dict[str, Any] = {}
    execution = "exec-crash"
    # Attempt 1 dies after some batches (in pass-through: at the end, before commit).
    ctx = FakeContext(
        task, store=store, execution_id=execution, fail_after_checks=1 if passthrough else 4
    )
    with pytest.raises(Interrupt):
        run_copy(ctx, pg, dst, passthrough=passthrough)
    # Attempt 2 completes; attempt 3 (a duplicate delivery) must skip.
    for attempt in (2, 3):
        ctx = FakeContext(task, store=store, execution_id=execution, attempt=attempt)
        result = run_copy(ctx, pg, dst, passthrough=passthrough)
        assert result["skipped"] == (attempt == 3)
    if kind == "csv":
        got = [tuple(r) for r in _csv_rows(dst.directory() / "crash.csv")]
        assert len(got) == len(rows) and len({r[0] for r in got}) == len(rows)
    else:
        assert dst.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM crash")[1][0] == (
            len(rows),
            len(rows),
        )


def _csv_rows(path: Any) -> list[list[str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_it_finishes_a_file_commit_interrupted_after_the_rename(pg: Any, csvc: Any) -> None:
    """Crash between the rename and the marker update: the retry sees the inode and skips."""
    import json

    data.load_pg(pg)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "f.csv"})
    run_copy(FakeContext(task, execution_id="e1"), pg, csvc)
    sidecar = csvc.directory() / ".f.csv.ddmarkers.json"
    markers = json.loads(sidecar.read_text())
    markers["e1/copy_t/0"]["state"] = "pending"
    sidecar.write_text(json.dumps(markers))
    result = run_copy(FakeContext(task, execution_id="e1", attempt=2), pg, csvc)
    assert result["skipped"]
    assert len(_csv_rows(csvc.directory() / "f.csv")) == 500


def test_it_rolls_back_the_batch_on_cancel(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "c"}, batch_size=50)
    with pytest.raises(TaskCancelled):
        run_copy(FakeContext(task, cancel_after_checks=3), pg, pg2, passthrough=False)
    assert pg2.query("SELECT COUNT(*) FROM c")[1][0][0] == 0


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "csv"])
def test_it_copies_partitioned_chunks_equal_to_one_copy(kind: str, pg: Any, request: Any) -> None:
    rows = data.load_pg(pg)
    pg.execute("INSERT INTO orders (id, account_id, name) VALUES (100000, 1, 'far away')")
    dst = request.getfixturevalue("csvc") if kind == "csv" else _dest(kind, request)
    table = "part.csv" if kind == "csv" else "part"
    task = copy_task(
        "src", "dst", {"table": "orders"}, {"table": table}, partition={"column": "id", "chunks": 3}
    )
    # Two "workers" take the chunks concurrently.
    errors: list[BaseException] = []

    def chunk(i: int) -> None:
        try:
            run(task, {"src": pg, "dst": dst}, execution_id="exec-part", chunk=(i, 3))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=chunk, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    if kind == "csv":
        ids = sorted(int(r[0]) for r in _csv_rows(dst.directory() / "part.csv"))
    else:
        ids = sorted(r[0] for r in dst.query("SELECT id FROM part")[1])
    assert ids == sorted([r[0] for r in rows] + [100000])


def test_it_partitions_on_timestamps(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "tp"},
        partition={"column": "created_at", "chunks": 4},
    )
    for i in range(4):
        run(task, {"src": pg, "dst": pg2}, execution_id="exec-tp", chunk=(i, 4))
    assert checksum(pg2.query(f"SELECT {ALL} FROM tp")[1]) == checksum(
        pg.query(f"SELECT {ALL} FROM orders")[1]
    )


def test_it_refuses_replace_with_partitions(pg: Any, pg2: Any) -> None:
    from connectors.base import ConnectorError

    data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "x", "mode": "replace"},
        partition={"column": "id", "chunks": 2},
    )
    with pytest.raises(ConnectorError, match="replace cannot be combined with partition"):
        run(task, {"src": pg, "dst": pg2}, chunk=(0, 2))
