"""Copies that resume from the sources a primary key does not order (SPEC §9).

A query with declared ``keys``, a SQLite table without a primary key (by
rowid) and a PostgreSQL one (by ctid, when it provably did not change). The
copy engine is crashed mid-copy (the test context's ``check()`` raises) and
the next attempt runs against the same real databases; the SIGKILLed-worker
versions are in tests/pipelines/test_copy_resume.py. Each time the
destination must end up exactly as one clean run leaves it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors import pools
from connectors.copy import run_copy
from connectors.copy.markers import MARKER_TABLE
from connectors.copy.spec import CopyFailed
from connectors.postgresql import PostgresqlConnector
from connectors.sqlite import SqliteConnector
from pipelines.tasktypes.copy import CopyTask
from tests.connectors import data
from tests.connectors.conftest import FakeContext, Interrupt, checksum, copy_task, diff
from tests.factories import pg_config
from tests.pipelines.test_copy_resume import _batch_markers, _dest, _stages
from tests.services import scratch_postgres_db

# The orders columns every kind gives back alike (attrs: JSON spelled per kind).
COLUMNS = "id, account_id, name, email, amount, created_at, active"
QUERY = f"SELECT {COLUMNS} FROM orders WHERE mod(id, 5) <> 0"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for the source."""
    with scratch_postgres_db() as url:
        yield url
        pools.close_all()


@pytest.fixture
def pg(pg_url: str) -> PostgresqlConnector:
    return PostgresqlConnector(name="pg", config=pg_config(pg_url))


def _crash(task: dict[str, Any], src: Any, dst: Any, store: dict[str, Any], checks: int) -> None:
    with pytest.raises(Interrupt):
        run_copy(
            FakeContext(task, store=store, execution_id="x", fail_after_checks=checks), src, dst
        )
    assert _batch_markers(dst) > 0, "the crashed attempt committed batches"


def _retry(task: dict[str, Any], src: Any, dst: Any, store: dict[str, Any]) -> FakeContext:
    second = FakeContext(task, store=store, execution_id="x", attempt=2)
    second.result = run_copy(second, src, dst)  # type: ignore[attr-defined]
    return second


def _clean(source: dict[str, Any], src: Any, dst: Any) -> list[tuple]:
    """What one clean run of ``source`` writes (into ``clean``)."""
    task = copy_task("src", "dst", source, {"table": "clean"}, batch_size=100_000)
    run_copy(FakeContext(task), src, dst)
    return dst.query(f"SELECT {COLUMNS} FROM clean")[1]


def _position(dst: Any) -> list[Any]:
    info = dst.query(
        f"SELECT info FROM {MARKER_TABLE} WHERE batch > 0 ORDER BY batch DESC LIMIT 1"
    )[1][0][0]
    return list(json.loads(info)["position"])


# ---------------------------------------------------------------- query keys


@pytest.mark.parametrize("keys", [["id"], ["account_id", "id"]])
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_a_query_with_declared_keys_resumes_after_its_last_batch(
    kind: str, keys: list[str], pg: Any, tmp_path: Path
) -> None:
    data.load_pg(pg)
    source = {"query": QUERY, "keys": keys}
    with _dest(kind, tmp_path) as dst:
        task = copy_task("src", "dst", source, {"table": "t"}, batch_size=40)
        store: dict[str, Any] = {}
        _crash(task, pg, dst, store, checks=8)
        assert dst.query("SELECT COUNT(*) FROM t")[1] == [(0,)]  # all in the stage
        second = _retry(task, pg, dst, store)
        result = second.result  # type: ignore[attr-defined]
        assert 0 < result["resumed_from"] < 400
        assert result["rows_read"] == 400 - result["resumed_from"]
        assert any("resuming after batch" in m for _, m in second.logs)
        expected = _clean(source, pg, dst)
        got = dst.query(f"SELECT {COLUMNS} FROM t")[1]
        assert len(got) == 400 and checksum(got) == checksum(expected), diff(got, expected)
        assert _batch_markers(dst) == 0 and _stages(dst) == []


def test_a_keyed_query_of_a_sqlite_source_resumes(pg: Any, tmp_path: Path) -> None:
    """SQLite gives values as text: the stored position is parsed back by the query's types."""
    src = SqliteConnector(name="src", config={"path": "src.sqlite3"}, data_root=tmp_path)
    data.load_sqlite(src)
    source = {"query": "SELECT id, name, email FROM orders WHERE id > 20", "keys": ["name"]}
    task = copy_task("src", "dst", source, {"table": "t"}, batch_size=40)
    store: dict[str, Any] = {}
    _crash(task, src, pg, store, checks=6)
    result = _retry(task, src, pg, store).result  # type: ignore[attr-defined]
    assert 0 < result["resumed_from"] < 480
    got = sorted(pg.query("SELECT id, name, email FROM t")[1])
    assert got == sorted((r[0], r[2], r[3]) for r in data.orders() if r[0] > 20)


def test_a_query_without_keys_says_how_to_make_it_resumable(pg: Any, tmp_path: Path) -> None:
    data.load_pg(pg)
    with _dest("sqlite", tmp_path) as dst:
        task = copy_task("src", "dst", {"query": QUERY}, {"table": "t"}, batch_size=40)
        result = run_copy(FakeContext(task), pg, dst)
        assert result["not_resumable"] == (
            "a query source has no key that orders it the same way in every attempt:"
            " declare `keys` (columns that identify a row) to make it resumable"
        )


@pytest.mark.parametrize(
    ("query", "staged_first"),
    [
        # Repeats in the first range: found before anything is written.
        ("SELECT account_id AS k, name FROM orders", False),
        # Unique for 300 rows, then all 300: found after batches were staged.
        ("SELECT CASE WHEN id > 300 THEN 300 ELSE id END AS k, name FROM orders", True),
    ],
)
def test_a_query_whose_keys_repeat_fails_and_writes_nothing(
    query: str, staged_first: bool, pg: Any, tmp_path: Path
) -> None:
    data.load_pg(pg)
    with _dest("postgresql", tmp_path) as dst:
        task = copy_task(
            "src", "dst", {"query": query, "keys": ["k"]}, {"table": "t"}, batch_size=40
        )
        task["retries"] = 1
        links = {"src": pg, "dst": dst}
        first = FakeContext(task, links, execution_id="u")
        with pytest.raises(CopyFailed) as failed:
            CopyTask().run(first)
        assert str(failed.value).startswith(
            "source keys ['k'] are not unique in the query's rows: two rows share a key"
        )
        assert (_batch_markers(dst) > 0) == staged_first  # kept for the retry
        last = FakeContext(task, links, execution_id="u", attempt=2)
        with pytest.raises(CopyFailed, match="are not unique"):
            CopyTask().run(last)
        # The table readers see never got a row (it was made empty, to stage
        # into, when batches were); the last attempt left no stage.
        made = dst.query("SELECT tablename FROM pg_tables WHERE tablename = 't'")[1] != []
        assert made == staged_first
        if made:
            assert dst.query("SELECT COUNT(*) FROM t")[1] == [(0,)]
        assert _batch_markers(dst) == 0 and _stages(dst) == []


def test_a_query_whose_keys_are_null_fails_and_writes_nothing(pg: Any, tmp_path: Path) -> None:
    """A row with a NULL key is in no range: it would be skipped."""
    data.load_pg(pg)
    with _dest("sqlite", tmp_path) as dst:
        query = "SELECT NULLIF(id, 450) AS k, name FROM orders"
        task = copy_task(
            "src", "dst", {"query": query, "keys": ["k"]}, {"table": "t"}, batch_size=40
        )
        with pytest.raises(CopyFailed) as failed:
            run_copy(FakeContext(task), pg, dst)
        assert str(failed.value).startswith(
            "source keys ['k'] are NULL in some of the query's rows"
        )
        assert _batch_markers(dst) == 0 and _stages(dst) == []


def test_a_query_must_return_its_declared_keys(pg: Any, tmp_path: Path) -> None:
    data.load_pg(pg)
    with _dest("sqlite", tmp_path) as dst:
        source = {"query": "SELECT id, name FROM orders", "keys": ["id", "nope"]}
        task = copy_task("src", "dst", source, {"table": "t"}, batch_size=40)
        with pytest.raises(CopyFailed) as failed:
            run_copy(FakeContext(task), pg, dst)
        assert str(failed.value) == (
            "source keys ['nope'] are not columns the query returns (columns: id, name)"
        )


def test_a_keyed_query_changed_between_attempts_keeps_the_documented_guarantee(
    pg: Any, tmp_path: Path
) -> None:
    """Rows up to the position stay as first read; rows after it are read as they are now."""
    data.load_pg(pg)
    source = {"query": "SELECT id, name FROM orders", "keys": ["id"]}
    with _dest("postgresql", tmp_path) as dst:
        task = copy_task("src", "dst", source, {"table": "t"}, batch_size=40)
        store: dict[str, Any] = {}
        _crash(task, pg, dst, store, checks=8)
        (position,) = _position(dst)
        assert 40 <= position < 400
        pg.execute(f"UPDATE orders SET name = 'updated' WHERE id IN (10, {position + 10})")
        pg.execute(f"DELETE FROM orders WHERE id IN (20, {position + 20})")
        pg.execute(
            "INSERT INTO orders (id, account_id, name) VALUES (-5, 1, 'inserted before'),"
            " (1000, 1, 'inserted after')"
        )
        result = _retry(task, pg, dst, store).result  # type: ignore[attr-defined]
        assert result["resumed_from"] == position
        got = dict(dst.query("SELECT id, name FROM t")[1])
        assert got[10] == "name 00010" and 20 in got  # before the position: as first read
        assert got[position + 10] == "updated" and position + 20 not in got  # after: as now
        assert -5 not in got and got[1000] == "inserted after"
        assert len(got) == 500 - 1 + 1


# ------------------------------------------------------------ SQLite rowid


def _sqlite_keyless(tmp_path: Path) -> tuple[SqliteConnector, list[tuple]]:
    """``plain`` without a primary key; deleted rows leave gaps a VACUUM would close."""
    src = SqliteConnector(name="src", config={"path": "src.sqlite3"}, data_root=tmp_path)
    src.execute("CREATE TABLE plain (id INTEGER, name TEXT)")
    with src.connect() as conn:
        conn.raw.executemany(
            "INSERT INTO plain VALUES (?, ?)", [(i, f"name {i}") for i in range(1, 3001)]
        )
        conn.raw.execute("DELETE FROM plain WHERE id % 10 = 0")
    return src, [(i, f"name {i}") for i in range(1, 3001) if i % 10]


def _assert_resumed_or_restarted(second: Any, rows: int, *, restarted: bool) -> None:
    """The retry read on after the killed attempt's batches, or (``restarted``)
    all ``rows`` again from row 0, saying why."""
    result = second.result
    if restarted:
        assert result["resumed_from"] == 0 and result["rows_read"] == rows
        assert any("starting the copy again from row 0" in m for _, m in second.logs)
    else:
        assert 0 < result["resumed_from"] < rows
        assert result["rows_read"] == rows - result["resumed_from"]


@pytest.mark.parametrize("vacuum", [False, True])
def test_a_keyless_sqlite_table_resumes_by_rowid_unless_vacuumed(
    vacuum: bool, pg: Any, tmp_path: Path
) -> None:
    src, rows = _sqlite_keyless(tmp_path)
    task = copy_task("src", "dst", {"table": "plain"}, {"table": "t"}, batch_size=200)
    store: dict[str, Any] = {}
    _crash(task, src, pg, store, checks=6)
    if vacuum:
        # Renumbers the rowids (the gaps close): reading on after the
        # position would skip rows.
        with sqlite3.connect(tmp_path / "src.sqlite3") as raw:
            raw.execute("VACUUM")
        renumbered = src.query("SELECT MAX(rowid) FROM plain")[1]
        assert int(renumbered[0][0]) == len(rows)
    second = _retry(task, src, pg, store)
    _assert_resumed_or_restarted(second, len(rows), restarted=vacuum)
    got = sorted(pg.query("SELECT id, name FROM t")[1])
    assert got == rows
    assert _batch_markers(pg) == 0 and _stages(pg) == []


# ---------------------------------------------------------- PostgreSQL ctid


def _pg_keyless(url: str, analyze: bool) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE plain AS SELECT g AS id, 'name ' || g AS name"
            " FROM generate_series(1, 3000) g"
        )
        if analyze:
            conn.execute("ANALYZE plain")  # else the copy counts the rows per page
        return sorted(conn.execute("SELECT id, name FROM plain").fetchall())


@pytest.mark.parametrize(
    ("change", "restarts"),
    [
        (None, False),
        ("UPDATE plain SET name = 'updated' WHERE id = 1", True),  # a new version, elsewhere
        ("INSERT INTO plain VALUES (0, 'new')", True),  # anywhere there is room
        ("VACUUM FULL plain", True),  # a new file, rows packed again
        ("DELETE FROM plain WHERE id = 2999", False),  # moves no row
    ],
)
def test_a_keyless_postgresql_table_resumes_by_ctid_only_when_unchanged(
    change: str | None, restarts: bool, pg_url: str, pg: Any, tmp_path: Path
) -> None:
    _pg_keyless(pg_url, analyze=change != "DELETE FROM plain WHERE id = 2999")
    with _dest("sqlite", tmp_path) as dst:
        task = copy_task("src", "dst", {"table": "plain"}, {"table": "t"}, batch_size=200)
        store: dict[str, Any] = {}
        _crash(task, pg, dst, store, checks=6)
        if change:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(change)
        second = _retry(task, pg, dst, store)
        with psycopg.connect(pg_url) as conn:
            now = sorted(conn.execute("SELECT id, name FROM plain").fetchall())
        _assert_resumed_or_restarted(second, len(now), restarted=restarts)
        got = sorted(dst.query("SELECT id, name FROM t")[1])
        assert got == now, diff(got, now)
        assert _batch_markers(dst) == 0 and _stages(dst) == []
