"""Incremental copies without holes (SPEC §9) from PostgreSQL, MySQL and SQLite sources.

The read is ``column >= watermark - lookback``: a row committed after the run
that set the watermark, with the watermark's own value (or inside the
lookback window), is copied by the next run; rows read again are updated
(upsert) or skipped (append with keys), so the destination holds each row
once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.copy import CopyFailed, run_copy
from tests.connectors.conftest import FakeContext, copy_task, run

SOURCES = ["postgresql", "mysql", "sqlite"]
T0 = dt.datetime(2026, 3, 1, 10, 0, 0)
_FIXTURE = {"postgresql": "pg", "mysql": "my", "sqlite": "lite"}
_TS = {"postgresql": "timestamp", "mysql": "DATETIME(6)", "sqlite": "TIMESTAMP"}
_DEST = {"postgresql": "pg2", "mysql": "my", "sqlite": "lite"}


def _at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(sep=" ")


def _source(kind: str, request: Any) -> Any:
    src = request.getfixturevalue(_FIXTURE[kind])
    src.execute(
        f"CREATE TABLE ev (id integer PRIMARY KEY, v varchar(40), seq integer,"
        f" updated_at {_TS[kind]})"
    )
    return src


def _insert(src: Any, id_: int, v: str, minutes: float, seq: int | None = None) -> None:
    src.execute(
        "INSERT INTO ev (id, v, seq, updated_at) VALUES (%(i)s, %(v)s, %(s)s, %(t)s)",
        {"i": id_, "v": v, "s": id_ * 10 if seq is None else seq, "t": _at(minutes)},
    )


def _task(mode: str, **incremental: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {"table": "ev_out", "mode": mode, "keys": ["id"]}
    return copy_task(
        "src",
        "dst",
        {"table": "ev"},
        destination,
        incremental={"column": "updated_at", **incremental},
    )


def _rows(dst: Any) -> dict[int, str]:
    return {int(r[0]): r[1] for r in dst.query("SELECT id, v FROM ev_out")[1]}


def _counts(dst: Any) -> tuple[int, int]:
    total, distinct = dst.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM ev_out")[1][0]
    return int(total), int(distinct)


@pytest.mark.parametrize("mode", ["upsert", "append"])
@pytest.mark.parametrize("kind", SOURCES)
def test_it_copies_a_row_committed_late_at_the_watermark(
    kind: str, mode: str, pg2: Any, request: Any
) -> None:
    src = _source(kind, request)
    for i in (1, 2, 3):
        _insert(src, i, f"v{i}", i)
    task = _task(mode)
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": pg2}, store=store)
    assert _counts(pg2) == (3, 3)
    assert str(store[("watermark", "copy_t")]).startswith(_at(3))
    # Committed after the run that set the watermark, with the watermark's value:
    # a strict ``>`` would lose it for good.
    _insert(src, 4, "late", 3)
    second = run(task, {"src": src, "dst": pg2}, store=store)
    assert second.metrics["rows_read"] == 2  # id 3 again, and the late row
    assert _rows(pg2) == {1: "v1", 2: "v2", 3: "v3", 4: "late"}
    # Run again with nothing new: the boundary rows come again, nothing doubles.
    run(task, {"src": src, "dst": pg2}, store=store)
    assert _counts(pg2) == (4, 4)


@pytest.mark.parametrize("kind", SOURCES)
def test_it_copies_rows_without_a_cursor_value_once(kind: str, pg2: Any, request: Any) -> None:
    src = _source(kind, request)
    _insert(src, 1, "v1", 1)
    src.execute("INSERT INTO ev (id, v, seq, updated_at) VALUES (2, 'null', 20, NULL)")
    task = _task("upsert")
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": pg2}, store=store)  # no watermark yet: every row
    assert _rows(pg2) == {1: "v1", 2: "null"}
    src.execute("INSERT INTO ev (id, v, seq, updated_at) VALUES (3, 'null too', 30, NULL)")
    again = run(task, {"src": src, "dst": pg2}, store=store)
    assert again.metrics["rows_read"] == 1 and sorted(_rows(pg2)) == [1, 2]


def test_it_partitions_a_file_with_empty_cursor_cells(csvc: Any, pg2: Any) -> None:
    lines = ["id,v,updated_at", "1,a,2026-03-01 10:00:00", "2,b,", "3,c,2026-03-01 10:05:00"]
    (csvc.directory() / "ev.csv").write_text("\n".join(lines) + "\n")
    task = copy_task(
        "src",
        "dst",
        {"table": "ev.csv"},
        {"table": "ev_out", "mode": "upsert", "keys": ["id"]},
        incremental={"column": "updated_at"},
        partition={"column": "id", "chunks": 2},
    )
    store: dict[str, Any] = {}
    staged = []
    for i in range(2):
        ctx = FakeContext(task, store=store, execution_id="f1", chunk=(i, 2))
        run_copy(ctx, csvc, pg2)
        staged.append(ctx.staged)
    assert _counts(pg2) == (3, 3)
    assert staged == ["2026-03-01 10:05:00", "2026-03-01 10:05:00"]


@pytest.mark.parametrize("kind", SOURCES)
def test_it_copies_a_late_row_inside_the_lookback_window(kind: str, pg2: Any, request: Any) -> None:
    src = _source(kind, request)
    for i in (1, 2, 3):
        _insert(src, i, f"v{i}", i * 10)
    task = _task("upsert", lookback=120)  # seconds
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": pg2}, store=store)
    watermark = store[("watermark", "copy_t")]
    # Late rows: 1.5 minutes before the watermark (inside the 2-minute
    # window) and 5 minutes before it (outside: that is what lookback bounds).
    _insert(src, 4, "inside", 28.5)
    _insert(src, 5, "outside", 25)
    second = run(task, {"src": src, "dst": pg2}, store=store)
    assert second.metrics["rows_read"] == 2  # id 3 (at the watermark) and id 4
    assert _rows(pg2) == {1: "v1", 2: "v2", 3: "v3", 4: "inside"}
    assert store[("watermark", "copy_t")] == watermark  # never moves back


@pytest.mark.parametrize("kind", SOURCES)
def test_it_steps_back_a_number_column_by_units(kind: str, pg2: Any, request: Any) -> None:
    src = _source(kind, request)
    for i in (1, 2, 3):
        _insert(src, i, f"v{i}", i)
    task = copy_task(
        "src",
        "dst",
        {"table": "ev"},
        {"table": "ev_out", "mode": "append", "keys": ["id"]},
        incremental={"column": "seq", "lookback": 5},
    )
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": pg2}, store=store)
    assert store[("watermark", "copy_t")] == 30
    _insert(src, 4, "in", 4, seq=26)  # 30 - 5 <= 26
    _insert(src, 5, "out", 5, seq=24)
    run(task, {"src": src, "dst": pg2}, store=store)
    assert sorted(_rows(pg2)) == [1, 2, 3, 4]
    assert _counts(pg2) == (4, 4)


@pytest.mark.parametrize("kind", SOURCES)
def test_it_updates_a_changed_row_with_upsert_and_skips_it_with_append(
    kind: str, pg2: Any, request: Any
) -> None:
    src = _source(kind, request)
    for i in (1, 2, 3):
        _insert(src, i, f"v{i}", i)
    up, app = _task("upsert"), _task("append")
    app["destination"]["table"] = "out_app"
    up_store: dict[str, Any] = {}
    app_store: dict[str, Any] = {}
    run(up, {"src": src, "dst": pg2}, store=up_store)
    run(app, {"src": src, "dst": pg2}, store=app_store)
    src.execute("UPDATE ev SET v = 'changed', updated_at = %(t)s WHERE id = 2", {"t": _at(9)})
    run(up, {"src": src, "dst": pg2}, store=up_store)
    run(app, {"src": src, "dst": pg2}, store=app_store)
    assert _rows(pg2) == {1: "v1", 2: "changed", 3: "v3"}
    # append with keys: a row whose key is in the destination is skipped.
    got = {int(r[0]): r[1] for r in pg2.query("SELECT id, v FROM out_app")[1]}
    assert got == {1: "v1", 2: "v2", 3: "v3"}


@pytest.mark.parametrize("dest", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("batch_size", [2, 1000])
def test_it_appends_with_keys_exactly_once_into_every_sql_kind(
    dest: str, batch_size: int, pg: Any, request: Any
) -> None:
    # batch_size 2: a keyed source table copied in committed ranges (the
    # staged load, merged at the end); 1000: one transaction.
    src = _source("postgresql", request)
    dst = request.getfixturevalue(_DEST[dest])
    for i in range(1, 8):
        _insert(src, i, f"v{i}", i // 2)  # pairs share a cursor value
    task = _task("append")
    task["batch_size"] = batch_size
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": dst}, store=store)
    _insert(src, 8, "late", 3)  # at the watermark (ids 6 and 7 hold it)
    _insert(src, 9, "new", 4)
    second = run(task, {"src": src, "dst": dst}, store=store)
    assert second.metrics["rows_read"] == 4
    assert _counts(dst) == (9, 9)
    assert _rows(dst)[8] == "late"


def test_it_appends_with_keys_into_a_csv_file(pg: Any, csvc: Any, request: Any) -> None:
    src = _source("postgresql", request)
    for i in (1, 2, 3):
        _insert(src, i, f"v{i}", i)
    task = _task("append")
    task["destination"]["table"] = "out.csv"
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": csvc}, store=store)
    _insert(src, 4, "late", 3)
    run(task, {"src": src, "dst": csvc}, store=store)
    lines = (csvc.directory() / "out.csv").read_text().splitlines()
    assert lines[0] == "id,v,seq,updated_at"
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["1", "2", "3", "4"]


def test_it_reads_one_window_in_every_chunk_of_a_partitioned_copy(
    pg: Any, pg2: Any, request: Any
) -> None:
    src = _source("postgresql", request)
    for i in range(1, 21):
        _insert(src, i, f"v{i}", i)
    task = _task("upsert")
    task["partition"] = {"column": "id", "chunks": 3}
    store: dict[str, Any] = {}
    staged = []
    for i in range(3):
        ctx = FakeContext(task, store=store, execution_id="e1", chunk=(i, 3))
        run_copy(ctx, src, pg2)
        staged.append(ctx.staged)
        if i == 0:
            # Committed while the run is under way, past the plan's window: no
            # chunk reads it (the plan fixed the window), the next run does.
            _insert(src, 21, "late", 25)
    assert len(set(staged)) == 1 and str(staged[0]).startswith(_at(20))
    assert _counts(pg2) == (20, 20)
    store[("watermark", "copy_t")] = staged[0]
    for i in range(3):
        run_copy(FakeContext(task, store=store, execution_id="e2", chunk=(i, 3)), src, pg2)
    assert _counts(pg2) == (21, 21)


def test_it_refuses_append_without_keys_and_replace(pg: Any, pg2: Any, request: Any) -> None:
    # A version saved before the rule existed is refused when it runs.
    src = _source("postgresql", request)
    no_keys = _task("append")
    no_keys["destination"]["keys"] = []
    with pytest.raises(CopyFailed, match="mode append needs destination keys"):
        run_copy(FakeContext(no_keys), src, pg2)
    replace = _task("replace")
    with pytest.raises(CopyFailed, match="cannot replace the destination"):
        run_copy(FakeContext(replace), src, pg2)


def test_it_refuses_a_lookback_on_a_text_column(pg: Any, pg2: Any, request: Any) -> None:
    src = _source("postgresql", request)
    _insert(src, 1, "a", 1)
    task = _task("upsert", lookback=5)
    task["incremental"]["column"] = "v"
    store: dict[str, Any] = {}
    run(task, {"src": src, "dst": pg2}, store=store)  # no watermark yet: all rows
    with pytest.raises(CopyFailed, match="lookback needs a number, date or time column"):
        run(task, {"src": src, "dst": pg2}, store=store)
