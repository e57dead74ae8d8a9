"""Checkpoints that resume (SPEC §9): a copy killed mid-way continues after its last batch.

The engine tests crash an attempt inside the copy engine (the test context's
``check()`` raises) and run the next attempt; the worker tests SIGKILL the
real worker process mid-copy and let the reaper hand the task run to the
next attempt. Either way the destination must end up exactly as one clean
run leaves it, and the second attempt must say where it resumed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors import pools
from connectors.copy import run_copy
from connectors.copy.markers import MARKER_TABLE
from connectors.copy.resume import NO_RETRY_LEFT
from connectors.csv import CsvConnector
from connectors.jsonl import JsonlConnector
from connectors.mysql import MysqlConnector
from connectors.postgresql import PostgresqlConnector
from connectors.services import connection_create
from connectors.sqlite import SqliteConnector
from pipelines.models import ExecutionStatus, TaskLogLine
from pipelines.services import execution_create, pipeline_create
from pipelines.tasktypes.base import TaskCancelled
from pipelines.tasktypes.copy import CopyTask
from tests.connectors import data
from tests.connectors.conftest import FakeContext, Interrupt, checksum, copy_task, diff
from tests.factories import pg_config
from tests.services import PG_ADMIN_URL, scratch_mysql_db, scratch_postgres_db, unique_name
from tests.workers import finished, running, wait_for, worker_pid

# attrs left out: JSON comes back spelled differently per kind.
COLS = data.COLUMNS[:-1]
ALL = ", ".join(COLS)


@pytest.fixture
def pg() -> Iterator[PostgresqlConnector]:
    """The source: a scratch PostgreSQL database."""
    with scratch_postgres_db() as url:
        yield PostgresqlConnector(name="pg", config=pg_config(url))
        pools.close_all()


@contextmanager
def _dest(kind: str, tmp_path: Path) -> Iterator[Any]:
    """A scratch destination of ``kind``."""
    if kind == "postgresql":
        with scratch_postgres_db() as url:
            yield PostgresqlConnector(name="dst", config=pg_config(url))
            pools.close_all()
    elif kind == "mysql":
        with scratch_mysql_db() as kw:
            yield MysqlConnector(name="dst", config=_mysql_config(kw))
    else:
        yield SqliteConnector(name="dst", config={"path": "dst.sqlite3"}, data_root=tmp_path)


def _mysql_config(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": kw["host"],
        "port": kw["port"],
        "database": kw["database"],
        "username": kw["user"],
        "password": kw["password"] or None,
    }


def _batch_markers(dst: Any) -> int:
    found = dst.query(f"SELECT COUNT(*) FROM {MARKER_TABLE} WHERE batch > 0")[1]
    return int(found[0][0])


def _stages(dst: Any) -> list[str]:
    """Stage tables left in the destination (named ``<table>__dd_s<hash>``)."""
    if isinstance(dst, SqliteConnector):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    elif isinstance(dst, MysqlConnector):
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return [str(r[0]) for r in dst.query(sql)[1] if "__dd_s" in str(r[0])]


# ------------------------------------------------------------ in the engine


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize(
    ("kind", "passthrough"),
    [("postgresql", True), ("postgresql", False), ("mysql", False), ("sqlite", False)],
)
def test_it_resumes_a_crashed_copy_after_its_last_committed_batch(
    kind: str, passthrough: bool, mode: str, pg: Any, tmp_path: Path
) -> None:
    with _dest(kind, tmp_path) as dst:
        _crash_and_resume(dst, kind, passthrough, mode, pg)


def _crash_and_resume(dst: Any, kind: str, passthrough: bool, mode: str, pg: Any) -> None:
    rows = data.load_pg(pg)
    # What the table held before: replace must drop it, upsert overwrite it.
    shift = 10_000 if mode == "append" else 0  # appended rows must not clash with them
    old = [(r[0] + shift, r[1], "old name", *r[3:]) for r in rows[:40]]
    load = {"postgresql": data.load_pg, "mysql": data.load_mysql, "sqlite": data.load_sqlite}[kind]
    for table in ("t", "clean"):
        load(dst, table, old)
    before = checksum(dst.query(f"SELECT {ALL} FROM t")[1])
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "t", "mode": mode, "keys": ["id"] if mode == "upsert" else []},
        batch_size=60,
    )
    store: dict[str, Any] = {}
    first = FakeContext(task, store=store, execution_id="exec-resume", fail_after_checks=8)
    with pytest.raises(Interrupt):
        run_copy(first, pg, dst, passthrough=passthrough)
    # Killed mid-way: batches are committed, but only into the stage; the
    # table readers see has not changed.
    assert _batch_markers(dst) > 0
    assert checksum(dst.query(f"SELECT {ALL} FROM t")[1]) == before

    second = FakeContext(task, store=store, execution_id="exec-resume", attempt=2)
    result = run_copy(second, pg, dst, passthrough=passthrough)

    assert 0 < result["resumed_from"] < len(rows)
    assert second.metrics["resumed_from"] == result["resumed_from"]
    assert result["rows_read"] == len(rows) - result["resumed_from"]
    assert any("resuming after batch" in message for _, message in second.logs)
    # Exactly what one clean run gives (the one-transaction path: one batch)
    # on a table that held the same rows before.
    clean = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {**task["destination"], "table": "clean"},
        batch_size=10_000,
    )
    run_copy(FakeContext(clean), pg, dst, passthrough=passthrough)
    expected = dst.query(f"SELECT {ALL} FROM clean")[1]
    assert len(expected) == len(rows) + (len(old) if mode == "append" else 0)
    got = dst.query(f"SELECT {ALL} FROM t")[1]
    assert checksum(got) == checksum(expected), diff(got, expected)
    assert _batch_markers(dst) == 0 and _stages(dst) == []


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_a_killed_chunk_starts_again_and_says_so(kind: str, pg: Any, tmp_path: Path) -> None:
    """A partitioned copy never stages (a chunk is the table's 1/n): its retry copies it again."""
    rows = data.load_pg(pg)
    with _dest(kind, tmp_path) as dst:
        task = copy_task(
            "src",
            "dst",
            {"table": "orders"},
            {"table": "t"},
            batch_size=40,
            partition={"column": "id", "chunks": 2},
        )
        store: dict[str, Any] = {}

        def chunk(index: int, **kw: Any) -> FakeContext:
            return FakeContext(task, store=store, execution_id="p", chunk=(index, 2), **kw)

        for index in (0, 1):
            with pytest.raises(Interrupt):
                run_copy(chunk(index, fail_after_checks=2), pg, dst, passthrough=False)
        assert _stages(dst) == [] and dst.query("SELECT COUNT(*) FROM t")[1] == [(0,)]
        retries = [chunk(index, attempt=2) for index in (0, 1)]
        results = [run_copy(ctx, pg, dst) for ctx in retries]
        assert sum(r["rows_read"] for r in results) == len(rows)
        assert all("resumed_from" not in r for r in results)
        assert retries[0].metrics["not_resumable"].startswith("a partitioned copy commits each")
        # Exactly what one clean run gives (values as this kind keeps them).
        clean = copy_task("src", "dst", {"table": "orders"}, {"table": "clean"})
        run_copy(FakeContext(clean), pg, dst)
        expected = dst.query(f"SELECT {ALL} FROM clean")[1]
        got = dst.query(f"SELECT {ALL} FROM t")[1]
        assert len(got) == len(rows) and checksum(got) == checksum(expected), diff(got, expected)


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_resumes_by_a_composite_primary_key_on_every_source_kind(
    kind: str, pg: Any, tmp_path: Path
) -> None:
    """Ranges compare the key as a row value, in the key's order (not the columns')."""
    with _dest(kind, tmp_path) as src:
        src.execute(
            "CREATE TABLE orders_k (id INTEGER NOT NULL, account_id BIGINT NOT NULL,"
            " name VARCHAR(40), email VARCHAR(120), PRIMARY KEY (account_id, id))"
        )
        rows = [(r[0], r[1], r[2], r[3]) for r in data.orders(300)]
        with src.connect() as conn:
            cur = conn.cursor()
            for row in rows:
                cur.execute(
                    "INSERT INTO orders_k VALUES (%(i)s, %(a)s, %(n)s, %(e)s)",
                    {"i": row[0], "a": row[1], "n": row[2], "e": row[3]},
                )
            cur.close()
        _resume_into(src, pg, rows)


def _resume_into(src: Any, dst: Any, rows: list[tuple]) -> None:
    task = copy_task("src", "dst", {"table": "orders_k"}, {"table": "t"}, batch_size=40)
    store: dict[str, Any] = {}
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, store=store, execution_id="s", fail_after_checks=8), src, dst)
    second = FakeContext(task, store=store, execution_id="s", attempt=2)
    result = run_copy(second, src, dst)
    assert 0 < result["resumed_from"] < len(rows)
    assert result["rows_read"] == len(rows) - result["resumed_from"]
    got = dst.query("SELECT id, account_id, name, email FROM t")[1]
    assert len(got) == len(rows) and sorted(got) == sorted(rows)


@pytest.mark.parametrize("mode", ["append", "replace"])
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_it_resumes_a_crashed_copy_into_a_file(
    kind: str, mode: str, pg: Any, tmp_path: Path
) -> None:
    """The file sink's stage is a file of the unit; its sidecar marker counts the bytes."""
    connector = {"csv": CsvConnector, "jsonl": JsonlConnector}[kind]
    (tmp_path / "out").mkdir()
    files = connector(name="files", config={"path": "out"}, data_root=tmp_path)
    rows = data.load_pg(pg)
    old = rows[:30]
    write = data.write_csv if kind == "csv" else data.write_jsonl
    for name in ("t", "clean"):
        write(tmp_path / "out" / f"{name}.{kind}", old)
    before = (tmp_path / "out" / f"t.{kind}").read_bytes()
    task = copy_task(
        "src", "dst", {"table": "orders"}, {"table": f"t.{kind}", "mode": mode}, batch_size=60
    )
    store: dict[str, Any] = {}
    first = FakeContext(task, store=store, execution_id="f", fail_after_checks=8)
    with pytest.raises(Interrupt):
        run_copy(first, pg, files)
    # Batches committed to the stage file; the file readers see is untouched.
    assert (tmp_path / "out" / f"t.{kind}").read_bytes() == before
    (stage,) = list((tmp_path / "out").glob("*.stage"))
    with stage.open("a") as handle:
        handle.write("half a row that was never committed")
    second = FakeContext(task, store=store, execution_id="f", attempt=2)
    result = run_copy(second, pg, files)
    assert 0 < result["resumed_from"] < len(rows)
    clean = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": f"clean.{kind}", "mode": mode},
        batch_size=10_000,
    )
    run_copy(FakeContext(clean), pg, files)
    got = (tmp_path / "out" / f"t.{kind}").read_text()
    assert got == (tmp_path / "out" / f"clean.{kind}").read_text()
    assert len(got.splitlines()) == len(rows) + (len(old) if mode == "append" else 0) + (
        kind == "csv"
    )
    assert list((tmp_path / "out").glob("*.stage")) == []


def test_it_starts_again_when_an_appended_file_changed_between_attempts(
    pg: Any, tmp_path: Path
) -> None:
    """A staged append began from the file's old content: resuming would drop the new rows."""
    (tmp_path / "out").mkdir()
    files = CsvConnector(name="files", config={"path": "out"}, data_root=tmp_path)
    rows = data.load_pg(pg)
    target = tmp_path / "out" / "t.csv"
    data.write_csv(target, rows[:10])
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "t.csv"}, batch_size=60)
    store: dict[str, Any] = {}
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, store=store, execution_id="g", fail_after_checks=8), pg, files)
    with target.open("a") as handle:
        handle.write(
            target.read_text().splitlines()[1].replace("name 00001", "another writer") + "\n"
        )
    result = run_copy(FakeContext(task, store=store, execution_id="g", attempt=2), pg, files)
    assert result["resumed_from"] == 0 and result["rows_read"] == len(rows)
    text = target.read_text()
    assert "another writer" in text and len(text.splitlines()) == 1 + 10 + 1 + len(rows)


@pytest.mark.parametrize("lost", ["DROP TABLE", "TRUNCATE"])
def test_it_starts_again_when_the_stage_lost_its_rows(lost: str, pg: Any, tmp_path: Path) -> None:
    """The destination decides: a stage without the rows its markers count is not trusted.

    (TRUNCATE is what a PostgreSQL crash does to the UNLOGGED stage.)
    """
    with _dest("postgresql", tmp_path) as pg2:
        _stage_lost(pg, pg2, lost)


def _stage_lost(pg: Any, pg2: Any, lost: str) -> None:
    rows = data.load_pg(pg)
    task = copy_task("src", "dst", {"table": "orders"}, {"table": "t"}, batch_size=50)
    store: dict[str, Any] = {}
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, store=store, execution_id="e", fail_after_checks=6), pg, pg2)
    (stage,) = _stages(pg2)
    persistence = pg2.query(f"SELECT relpersistence FROM pg_class WHERE relname = '{stage}'")[1]
    assert persistence == [("u",)]  # unlogged: the rows are written again at the final commit
    pg2.execute(f'{lost} "{stage}"')
    second = FakeContext(task, store=store, execution_id="e", attempt=2)
    result = run_copy(second, pg, pg2)
    assert result["resumed_from"] == 0 and result["rows_read"] == len(rows)
    assert checksum(pg2.query(f"SELECT {ALL} FROM t")[1]) == checksum(
        [r[: len(COLS)] for r in rows]
    )


def test_it_keeps_the_one_transaction_path_for_a_query_source(pg: Any, tmp_path: Path) -> None:
    """A query has no key that orders it the same way twice: no stage, no resume."""
    with _dest("postgresql", tmp_path) as pg2:
        _query_source(pg, pg2)


def _query_source(pg: Any, pg2: Any) -> None:
    rows = data.load_pg(pg)
    task = copy_task("src", "dst", {"query": "SELECT * FROM orders"}, {"table": "t"}, batch_size=50)
    store: dict[str, Any] = {}
    with pytest.raises(Interrupt):
        run_copy(
            FakeContext(task, store=store, execution_id="q", fail_after_checks=4),
            pg,
            pg2,
            passthrough=False,
        )
    assert _stages(pg2) == []
    second = FakeContext(task, store=store, execution_id="q", attempt=2)
    result = run_copy(second, pg, pg2)
    assert "resumed_from" not in result
    # The output says why a killed attempt starts again from row 0.
    assert second.metrics["not_resumable"] == result["not_resumable"]
    assert result["not_resumable"].startswith("a query source has no key")
    assert checksum(pg2.query(f"SELECT {ALL} FROM t")[1]) == checksum(
        [r[: len(COLS)] for r in rows]
    )


def test_it_starts_a_keyless_mysql_table_again_and_says_so(pg: Any, tmp_path: Path) -> None:
    """No primary key and no row address (SQLite's rowid and PostgreSQL's ctid resume:
    tests/pipelines/test_copy_resume_sources.py): the retry copies from row 0, once."""
    with _dest("mysql", tmp_path) as src:
        src.execute("CREATE TABLE orders_k (id INTEGER NOT NULL, name VARCHAR(40))")
        rows = [(i, f"name {i}") for i in range(1, 301)]
        with src.connect() as conn:
            cur = conn.cursor()
            for i, name in rows:
                cur.execute("INSERT INTO orders_k VALUES (%(i)s, %(n)s)", {"i": i, "n": name})
            cur.close()
        task = copy_task("src", "dst", {"table": "orders_k"}, {"table": "t"}, batch_size=40)
        store: dict[str, Any] = {}
        with pytest.raises(Interrupt):
            run_copy(
                FakeContext(task, store=store, execution_id="k", fail_after_checks=3),
                src,
                pg,
                passthrough=False,
            )
        assert _stages(pg) == [] and pg.query("SELECT COUNT(*) FROM t")[1] == [(0,)]
        second = FakeContext(task, store=store, execution_id="k", attempt=2)
        result = run_copy(second, src, pg)
        assert "resumed_from" not in result and result["rows_read"] == len(rows)
        assert second.metrics["not_resumable"] == (
            "table 'orders_k' has no primary key to read it in order of (mysql has no row address)"
        )
        assert sorted(pg.query("SELECT id, name FROM t")[1]) == rows


def test_it_keeps_the_first_attempts_watermark_when_it_resumes(pg: Any, tmp_path: Path) -> None:
    """A resumed incremental copy reads no row past its first watermark; the next run does."""
    with _dest("postgresql", tmp_path) as dst:
        _incremental_resume(pg, dst)


def _incremental_resume(pg: Any, dst: Any) -> None:
    rows = data.load_pg(pg)
    task = copy_task(
        "src",
        "dst",
        {"table": "orders"},
        {"table": "t", "mode": "upsert", "keys": ["id"]},
        incremental={"column": "created_at"},
        batch_size=60,
    )
    store: dict[str, Any] = {}
    with pytest.raises(Interrupt):
        run_copy(FakeContext(task, store=store, execution_id="i", fail_after_checks=8), pg, dst)
    # Between the attempts: a new row after the position and a row before it
    # moved past the watermark.
    pg.execute(
        "INSERT INTO orders (id, account_id, name, created_at)"
        " VALUES (501, 1, 'late', timestamptz '2030-01-01')"
    )
    pg.execute(
        "UPDATE orders SET name = 'moved', created_at = timestamptz '2030-01-02' WHERE id = 1"
    )
    second = FakeContext(task, store=store, execution_id="i", attempt=2)
    result = run_copy(second, pg, dst)
    second.succeed()  # the engine commits the staged watermark
    assert result["resumed_from"] > 0
    got = {r[0]: r[1] for r in dst.query("SELECT id, name FROM t")[1]}
    assert len(got) == len(rows) and 501 not in got and got[1] == "name 00001"
    assert str(store[("watermark", "copy_t")]).startswith(str(rows[-1][5])[:16])
    # The next run (a new execution) reads from that watermark: both changes arrive.
    run_copy(FakeContext(task, store=store, execution_id="i2"), pg, dst)
    got = {r[0]: r[1] for r in dst.query("SELECT id, name FROM t")[1]}
    assert got[501] == "late" and got[1] == "moved" and len(got) == len(rows) + 1


def test_its_last_attempt_copies_in_one_transaction_without_a_stage(
    pg: Any, tmp_path: Path
) -> None:
    """No retry left (``retries: 0``, the default): nothing could resume, so nothing is staged."""
    rows = data.load_pg(pg)
    with _dest("postgresql", tmp_path) as db:
        task = copy_task("src", "dst", {"table": "orders"}, {"table": "t"}, batch_size=50)
        crashed = FakeContext(task, execution_id="n", fail_after_checks=3)
        crashed.retries_left = 0
        with pytest.raises(Interrupt):
            run_copy(crashed, pg, db, passthrough=False)  # a check between batches
        assert _stages(db) == [] and _batch_markers(db) == 0
        assert db.query("SELECT COUNT(*) FROM t")[1] == [(0,)]  # one transaction, rolled back
        last = FakeContext(task, execution_id="m")
        last.retries_left = 0
        result = run_copy(last, pg, db)
        assert result["rows_written"] == len(rows) and "resumed_from" not in result
        assert last.metrics["not_resumable"] == NO_RETRY_LEFT
        assert _stages(db) == []


@pytest.mark.parametrize("kind", ["postgresql", "csv"])
def test_it_leaves_no_stage_when_no_attempt_will_resume(kind: str, pg: Any, tmp_path: Path) -> None:
    """Kept for a retry; dropped on cancel and when the last attempt fails."""
    data.load_pg(pg)
    (tmp_path / "out").mkdir()
    files = CsvConnector(name="files", config={"path": "out"}, data_root=tmp_path)
    with _dest("postgresql", tmp_path) as db:
        dst = db if kind == "postgresql" else files
        table = "t" if kind == "postgresql" else "t.csv"

        def stages() -> int:
            if kind == "csv":
                return len(list((tmp_path / "out").glob("*.stage")))
            return len(_stages(db)) + _batch_markers(db)

        task = copy_task("src", "dst", {"table": "orders"}, {"table": table}, batch_size=50)
        task["retries"] = 1
        links = {"src": pg, "dst": dst}
        # "b" fails its last attempt (nothing left), then "a" its first (kept).
        for execution, attempt, kept in (("b", 2, False), ("a", 1, True)):
            ctx = FakeContext(
                task, links, execution_id=execution, attempt=attempt, fail_after_checks=6
            )
            with pytest.raises(Interrupt):
                CopyTask().run(ctx)
            assert (stages() > 0) == kept, (execution, attempt)
        run_copy(FakeContext(task, execution_id="a", attempt=2), pg, dst)  # "a" finishes
        assert stages() == 0
        with pytest.raises(TaskCancelled):
            CopyTask().run(FakeContext(task, links, execution_id="c", cancel_after_checks=6))
        assert stages() == 0
        if kind == "postgresql":
            assert db.query("SELECT COUNT(*) FROM t")[1] == [(500,)]  # "a" only


# ------------------------------------------------------- real killed workers

ROWS = 30_000
BATCH = 2_000
# Row-level security on the source makes every 1,000th row cost 0.1 s to
# read for the connection's role, so a copy of ROWS lasts several seconds
# and a worker can be killed after a few committed batches. The table keeps
# its primary key (a slow *query* would not be resumable).
SLOW_POLICY = (
    "CREATE POLICY slow ON src FOR SELECT TO {role}"
    " USING (mod(id, 1000) <> 0 OR pg_sleep(0.1)::text = '')"
)
SOURCE_SQL = "SELECT id, name, amount, created_at FROM src"


@contextmanager
def _slow_table(primary_key: bool) -> Iterator[str]:
    """A PostgreSQL table ``src`` behind a connection named ``src``; yields the database URL."""
    role = unique_name("dd_reader")
    try:
        with scratch_postgres_db() as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE src AS SELECT g AS id, 'name ' || g AS name,"
                    " (g % 1000)::numeric(10,2) AS amount,"
                    " timestamptz '2026-01-01' + g * interval '1 minute' AS created_at"
                    f" FROM generate_series(1, {ROWS}) g"
                )
                if primary_key:
                    conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
                else:
                    conn.execute("ANALYZE src")  # ctid ranges: rows per page from the stats
                conn.execute(f"CREATE ROLE {role} LOGIN")
                conn.execute(f"GRANT SELECT ON src TO {role}")
                conn.execute("ALTER TABLE src ENABLE ROW LEVEL SECURITY")
                conn.execute(SLOW_POLICY.format(role=role))
            connection_create(
                name="src", kind="postgresql", config={**pg_config(url), "username": role}
            )
            yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def slow_source(transactional_db: Any) -> Iterator[str]:
    """A PostgreSQL table ``src`` (primary key ``id``) behind a connection named ``src``."""
    with _slow_table(primary_key=True) as url:
        yield url


@pytest.fixture
def slow_keyless_source(transactional_db: Any) -> Iterator[str]:
    """The same table ``src`` without a primary key (a copy resumes it by ctid)."""
    with _slow_table(primary_key=False) as url:
        yield url


@pytest.fixture
def destination(
    request: Any, transactional_db: Any, settings: Any, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    """A destination connection named ``dst`` of the parametrized kind, and its connector."""
    kind = request.param
    if kind == "postgresql":
        with scratch_postgres_db() as url:
            connection_create(name="dst", kind=kind, config=pg_config(url))
            yield kind, PostgresqlConnector(name="check", config=pg_config(url))
    elif kind == "mysql":
        with scratch_mysql_db() as kw:
            config = _mysql_config(kw)
            connection_create(name="dst", kind=kind, config=config)
            yield kind, MysqlConnector(name="check", config=config)
    else:
        settings.DATA_ROOT = tmp_path  # the workers get it from the settings at start
        connection_create(name="dst", kind=kind, config={"path": "dst.sqlite3"})
        yield (
            kind,
            SqliteConnector(name="check", config={"path": "dst.sqlite3"}, data_root=tmp_path),
        )


def _copy_pipeline(name: str, retries: int = 1, source: dict[str, Any] | None = None) -> Any:
    task = {
        "name": "copy",
        "type": "copy",
        "source": source or {"connection": "src", "table": "src"},
        "destination": {"connection": "dst", "table": "dst", "mode": "append"},
        "batch_size": BATCH,
        "retries": retries,
        "retry_delay": 0,
    }
    return pipeline_create(data={"name": name, "tasks": [task]})


def _committed_batches(check: Any) -> int:
    try:
        return _batch_markers(check)
    except Exception:  # noqa: BLE001 - the marker table does not exist yet
        return 0


def _source_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(SOURCE_SQL).fetchall()


def _typed(rows: list[tuple]) -> list[tuple]:
    """SQLite keeps numerics and timestamps as the copy wrote them, as text: read them back."""
    return [
        (
            i,
            name,
            Decimal(amount) if isinstance(amount, str) else amount,
            dt.datetime.fromisoformat(at) if isinstance(at, str) else at,
        )
        for i, name, amount, at in rows
    ]


def _log(run: Any, *, attempt: int) -> str:
    lines = TaskLogLine.objects.filter(task_run=run, attempt=attempt)
    return "\n".join(lines.values_list("message", flat=True))


def _assert_resumed(execution: Any, run: Any) -> None:
    """The killed copy's second attempt went on after its third batch or later, and succeeded."""
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run.refresh_from_db()
    assert run.attempt == 2
    assert run.metrics["resumed_from"] >= 3 * BATCH
    assert run.metrics["rows_read"] == ROWS - run.metrics["resumed_from"]
    assert "resuming after batch" in _log(run, attempt=2)


def _all_workers_killed_after_three_batches(workers: Any, name: str, check: Any) -> tuple:
    """Start workers and a copy pipeline ``name``; SIGKILL the whole worker tree once
    three batches are committed (until ``workers()`` again, nothing runs)."""
    cluster = workers()
    execution = execution_create(pipeline=_copy_pipeline(name))
    run = running(execution, "copy")
    wait_for(lambda: _committed_batches(check) >= 3, timeout=60, what="three committed batches")
    cluster.stop()  # SIGKILL of the whole worker tree
    return execution, run


def _killed_after(
    batches: int, name: str, check: Any, retries: int = 1, source: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """A copy run whose worker was SIGKILLed after ``batches`` committed batches."""
    execution = execution_create(pipeline=_copy_pipeline(name, retries, source))
    run = running(execution, "copy")
    wait_for(lambda: _committed_batches(check) >= batches, timeout=60, what="committed batches")
    os.kill(worker_pid(run), signal.SIGKILL)
    return execution, run


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("destination", ["postgresql", "mysql", "sqlite"], indirect=True)
def test_it_resumes_after_its_worker_is_sigkilled_mid_copy(
    workers: Any, slow_source: str, destination: tuple[str, Any]
) -> None:
    _, check = destination
    workers()
    execution, run = _killed_after(3, "resume", check)
    # Nothing reached the table readers see: the batches wait in the stage.
    assert check.query("SELECT COUNT(*) FROM dst")[1][0][0] == 0
    _assert_resumed(execution, run)
    assert f"resumed after {run.metrics['resumed_from']} rows" in _log(run, attempt=2)
    got = _typed(check.query("SELECT id, name, amount, created_at FROM dst")[1])
    assert checksum(got) == checksum(_source_rows(slow_source)), diff(
        got, _source_rows(slow_source)
    )
    assert len({r[0] for r in got}) == ROWS


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("destination", ["postgresql", "mysql", "sqlite"], indirect=True)
def test_the_maintenance_pass_drops_the_stage_a_killed_last_attempt_left(
    workers: Any, slow_source: str, destination: tuple[str, Any]
) -> None:
    """A SIGKILLed worker runs no cleanup: the reaper fails the run, the sweeper drops its stage.

    The last attempt stages only when it resumes (a first attempt with no
    retry left copies in one transaction): kill the first attempt, then the
    retry that resumed it.
    """
    _, check = destination
    workers()
    execution, run = _killed_after(2, "swept", check, retries=1)
    committed = _committed_batches(check)

    def resumed() -> Any:
        retry = execution.tasks.get(task_name="copy")
        ahead = retry.status == "running" and retry.attempt == 2
        return retry if ahead and _committed_batches(check) > committed else None

    retry = wait_for(resumed, timeout=90, what="the retry resuming and committing a batch")
    os.kill(worker_pid(retry), signal.SIGKILL)
    assert _stages(check), "the killed attempt left its stage"
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.FAILED
    run.refresh_from_db()
    assert run.attempt == 2 and "no heartbeat" in run.error
    wait_for(
        lambda: "stage (if it left one) is dropped" in _log(run, attempt=2),
        timeout=60,
        what="the sweeper's log line",
    )
    assert _stages(check) == [] and _committed_batches(check) == 0
    assert check.query("SELECT COUNT(*) FROM dst")[1][0][0] == 0  # readers never saw a row


def _position(check: Any) -> int:
    """The key the last committed batch ends at (from the destination's batch marker)."""
    info = check.query(
        f"SELECT info FROM {MARKER_TABLE} WHERE batch > 0 ORDER BY batch DESC LIMIT 1"
    )[1][0][0]
    return int(json.loads(info)["position"][0])


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("destination", ["postgresql"], indirect=True)
def test_it_resumes_on_a_source_changed_between_attempts_as_documented(
    workers: Any, slow_source: str, destination: tuple[str, Any]
) -> None:
    """Rows up to the position stay as first read; rows after it are read as they are now."""
    _, check = destination
    # No attempt runs while the source changes.
    execution, run = _all_workers_killed_after_three_batches(workers, "changed", check)
    position = _position(check)
    assert BATCH * 3 <= position < ROWS - 100
    with psycopg.connect(slow_source, autocommit=True) as conn:
        before = conn.execute(f"{SOURCE_SQL} WHERE id <= {position}").fetchall()
        conn.execute("UPDATE src SET name = 'updated' WHERE id IN (%s, %s)", [10, position + 10])
        conn.execute("DELETE FROM src WHERE id IN (%s, %s)", [20, position + 20])
        conn.execute(
            "INSERT INTO src VALUES (-5, 'inserted before', 1, now()),"
            " (%s, 'inserted after', 2, timestamptz '2030-01-01')",
            [ROWS + 1],
        )
        after = conn.execute(f"{SOURCE_SQL} WHERE id > {position}").fetchall()
    workers()
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run.refresh_from_db()
    assert run.attempt == 2 and run.metrics["resumed_from"] == position
    got = _typed(check.query("SELECT id, name, amount, created_at FROM dst")[1])
    assert checksum(got) == checksum(before + after), diff(got, before + after)
    by_id = {r[0]: r[1] for r in got}
    assert by_id[10] == "name 10" and 20 in by_id  # before the position: as first read
    assert by_id[position + 10] == "updated" and position + 20 not in by_id  # after: as now
    assert -5 not in by_id and by_id[ROWS + 1] == "inserted after"


# A query a copy reads in order of its declared keys (SPEC §9).
KEYED_QUERY = {"connection": "src", "query": SOURCE_SQL, "keys": ["id"]}


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("destination", ["postgresql", "sqlite"], indirect=True)
def test_a_keyed_query_resumes_after_its_worker_is_sigkilled(
    workers: Any, slow_source: str, destination: tuple[str, Any]
) -> None:
    _, check = destination
    workers()
    execution, run = _killed_after(3, "query", check, source=KEYED_QUERY)
    assert check.query("SELECT COUNT(*) FROM dst")[1][0][0] == 0
    _assert_resumed(execution, run)
    got = _typed(check.query("SELECT id, name, amount, created_at FROM dst")[1])
    expected = _source_rows(slow_source)
    assert checksum(got) == checksum(expected), diff(got, expected)
    assert len({r[0] for r in got}) == ROWS


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("changed", [False, True])
@pytest.mark.parametrize("destination", ["postgresql"], indirect=True)
def test_a_keyless_postgresql_table_resumes_by_ctid_unless_it_changed(
    changed: bool, workers: Any, slow_keyless_source: str, destination: tuple[str, Any]
) -> None:
    """Unchanged: on after the last page range. Changed: from row 0 (a row may have moved)."""
    _, check = destination
    execution, run = _all_workers_killed_after_three_batches(workers, "ctid", check)
    if changed:
        # The new version of row 10 goes to another page, after the position.
        with psycopg.connect(slow_keyless_source, autocommit=True) as conn:
            conn.execute("UPDATE src SET name = 'updated' WHERE id = 10")
    workers()
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run.refresh_from_db()
    assert run.attempt == 2
    log = _log(run, attempt=2)
    if changed:
        assert run.metrics["resumed_from"] == 0 and run.metrics["rows_read"] == ROWS
        assert "starting the copy again from row 0, not resuming: rows were inserted" in log
    else:
        assert run.metrics["resumed_from"] >= 2 * BATCH  # ranges of pages: about BATCH rows
        assert run.metrics["rows_read"] == ROWS - run.metrics["resumed_from"]
        assert "resuming after batch" in log
    got = _typed(check.query("SELECT id, name, amount, created_at FROM dst")[1])
    expected = _source_rows(slow_keyless_source)
    assert checksum(got) == checksum(expected), diff(got, expected)
    assert len(got) == ROWS and (not changed or ("updated" in {r[1] for r in got}))


SQLITE_ROWS = 300_000


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("destination", ["postgresql"], indirect=True)
def test_a_keyless_sqlite_table_resumes_by_rowid_after_its_worker_is_sigkilled(
    workers: Any, destination: tuple[str, Any], settings: Any, tmp_path: Path
) -> None:
    """No slow rows here: enough of them that the copy is killed after its first batches."""
    _, check = destination
    settings.DATA_ROOT = tmp_path  # the workers get it from the settings at start
    with sqlite3.connect(tmp_path / "src.sqlite3") as db:
        db.execute("CREATE TABLE src (id INTEGER NOT NULL, name TEXT)")
        db.executemany(
            "INSERT INTO src VALUES (?, ?)", ((i, f"name {i}") for i in range(1, SQLITE_ROWS + 1))
        )
        db.execute("DELETE FROM src WHERE id % 7 = 0")  # rowid gaps
    expected = [(i, f"name {i}") for i in range(1, SQLITE_ROWS + 1) if i % 7]
    connection_create(name="src", kind="sqlite", config={"path": "src.sqlite3"})
    workers()
    execution, run = _killed_after(1, "rowid", check)
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run.refresh_from_db()
    assert run.attempt == 2
    assert 0 < run.metrics["resumed_from"] < len(expected)
    assert run.metrics["rows_read"] == len(expected) - run.metrics["resumed_from"]
    assert "resuming after batch" in _log(run, attempt=2)
    got = sorted(check.query("SELECT id, name FROM dst")[1])
    assert got == expected, diff(got, expected)
