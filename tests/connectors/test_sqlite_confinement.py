"""A SQLite connection stays inside its own file (SPEC §10, issue 10 item 1).

Every attack runs the way a pipeline author would: as a ``sql``, ``check``
or ``copy`` task on the connection, against real files. The "metadata
database" is a real SQLite file outside DATA_ROOT with an ``auth_user``
table; the tests read it back byte for byte afterwards.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.sqlite import SqliteConnector
from pipelines.tasktypes.base import TaskFailed
from pipelines.tasktypes.check import CheckTask
from pipelines.tasktypes.sql import SqlTask
from tests.connectors import data
from tests.connectors.conftest import FakeContext, copy_task, run


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    """A SQLite file outside DATA_ROOT shaped like the metadata database."""
    path = tmp_path / "meta.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE auth_user (id INTEGER PRIMARY KEY, username TEXT, is_superuser)")
        db.execute("INSERT INTO auth_user VALUES (1, 'dev1', 0)")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def superusers(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT username FROM auth_user WHERE is_superuser").fetchall()


def sql_task(sql: str | list[str]) -> dict[str, Any]:
    return {"name": "s", "type": "sql", "connection": "db", "sql": sql}


def run_sql(lite: SqliteConnector, sql: str | list[str]) -> ConnectorError:
    """Run ``sql`` as a sql task; the ConnectorError it must fail with."""
    with pytest.raises(ConnectorError) as caught:
        SqlTask().run(FakeContext(sql_task(sql), {"db": lite}))
    assert caught.value.transient is False  # a retry would be refused the same way
    return caught.value


# ------------------------------------------------------------------ ATTACH


@pytest.mark.parametrize(
    "form",
    ["list", "one string", "after COMMIT", "after ROLLBACK"],
)
def test_it_refuses_attaching_the_metadata_database_in_a_sql_task(
    lite: SqliteConnector, meta: Path, form: str
) -> None:
    data.load_sqlite(lite)
    before = digest(meta)
    attach = f"ATTACH DATABASE '{meta}' AS m"
    update = "UPDATE m.auth_user SET is_superuser = 1 WHERE username = 'dev1'"
    forms: dict[str, str | list[str]] = {
        "list": [attach, update],
        "one string": f"{attach}; {update}",
        "after COMMIT": ["COMMIT", attach, update],
        "after ROLLBACK": ["ROLLBACK", attach, update],
    }
    error = run_sql(lite, forms[form])
    assert "ATTACH and VACUUM are not allowed" in str(error)
    assert superusers(meta) == [] and digest(meta) == before


def test_it_refuses_attach_on_a_connection_opened_without_connect(
    lite: SqliteConnector, meta: Path
) -> None:
    # _raw_connect is what every path opens; the guard must not depend on connect().
    raw = lite._raw_connect()
    try:
        with pytest.raises(sqlite3.DatabaseError):
            raw.execute(f"ATTACH DATABASE '{meta}' AS m")
        assert raw.guard.take() is not None
        assert raw.execute("SELECT 1").fetchall() == [(1,)]
    finally:
        raw.close()


def test_it_refuses_detach(lite: SqliteConnector) -> None:
    assert "DETACH is not allowed" in str(run_sql(lite, ["COMMIT", "DETACH DATABASE main"]))


# ------------------------------------------------------------------ VACUUM


@pytest.mark.parametrize("committed", [True, False])
def test_it_refuses_vacuum_into_a_path_outside_data_root(
    lite: SqliteConnector, tmp_path: Path, committed: bool
) -> None:
    data.load_sqlite(lite)
    outside = tmp_path / "outside" / "copy.sqlite3"
    outside.parent.mkdir()
    vacuum = f"VACUUM INTO '{outside}'"
    run_sql(lite, ["COMMIT", vacuum] if committed else [vacuum])
    assert not outside.exists()
    assert list(outside.parent.iterdir()) == []


def test_it_refuses_vacuum_into_a_path_inside_data_root(
    lite: SqliteConnector, data_root: Path
) -> None:
    data.load_sqlite(lite)
    target = data_root / "db" / "stolen.sqlite3"
    error = run_sql(lite, ["COMMIT", f"VACUUM INTO '{target}'"])
    assert "VACUUM" in str(error) and not target.exists()


# -------------------------------------------------------------- extensions


def test_it_refuses_load_extension_in_a_sql_task(lite: SqliteConnector, tmp_path: Path) -> None:
    library = tmp_path / "evil.so"
    library.write_bytes(b"\x7fELF not really")
    error = run_sql(lite, ["COMMIT", f"SELECT load_extension('{library}')"])
    assert "load_extension() is not allowed" in str(error)


def test_it_refuses_load_extension_in_a_check_task(lite: SqliteConnector) -> None:
    data.load_sqlite(lite)
    task = {
        "name": "c",
        "type": "check",
        "connection": "db",
        "table": "orders",
        "checks": [{"sql": "SELECT load_extension('/tmp/x.so') AS e"}],
    }
    with pytest.raises(ConnectorError, match=r"load_extension\(\) is not allowed"):
        CheckTask().run(FakeContext(task, {"db": lite}))


def test_it_refuses_load_extension_in_a_copy_source_query(lite: SqliteConnector, csvc: Any) -> None:
    data.load_sqlite(lite)
    task = copy_task(
        "db",
        "files",
        {"query": "SELECT id, load_extension('/tmp/x.so') AS e FROM orders"},
        {"table": "out.csv", "mode": "replace"},
    )
    with pytest.raises(ConnectorError, match=r"load_extension\(\) is not allowed"):
        run(task, {"db": lite, "files": csvc})


def test_it_refuses_load_extension_when_describing_a_query(lite: SqliteConnector) -> None:
    with pytest.raises(ConnectorError, match=r"load_extension\(\) is not allowed"):
        lite.describe(query="SELECT load_extension('/tmp/x.so')")


# ----------------------------------------------------------------- PRAGMAs


@pytest.mark.parametrize(
    "pragma",
    [
        "PRAGMA writable_schema = ON",
        "PRAGMA main.writable_schema = 1",
        "PRAGMA trusted_schema = ON",
        "PRAGMA temp_store_directory = '/tmp'",
        "PRAGMA data_store_directory = '/tmp'",
        "PRAGMA schema_version = 1",
        "PRAGMA journal_mode = OFF",
        "PRAGMA query_only = OFF",
        "PRAGMA locking_mode = EXCLUSIVE",
        "PRAGMA soft_heap_limit = 1",
        "PRAGMA database_list",
        "SELECT * FROM pragma_database_list",
    ],
)
def test_it_refuses_unsafe_pragmas(lite: SqliteConnector, pragma: str) -> None:
    data.load_sqlite(lite)
    error = run_sql(lite, ["COMMIT", pragma])
    assert "is not allowed" in str(error) and "PRAGMA" in str(error)


def test_it_keeps_a_read_only_connection_read_only(lite: SqliteConnector) -> None:
    # check tasks and queries run on read_only connections: their SQL cannot undo that.
    data.load_sqlite(lite)
    with lite.connect(read_only=True) as conn:
        with pytest.raises(ConnectorError, match="changing PRAGMA query_only is not allowed"):
            conn.cursor().execute("PRAGMA query_only = OFF")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.cursor().execute("DELETE FROM orders")
    assert lite.query("SELECT COUNT(*) FROM orders")[1] == [(500,)]


def test_it_runs_harmless_pragmas_and_the_products_own(lite: SqliteConnector) -> None:
    data.load_sqlite(lite)
    task = sql_task(
        [
            "PRAGMA foreign_keys = ON",
            "PRAGMA user_version = 7",
            "PRAGMA table_info(orders)",
            "PRAGMA index_list(orders)",
            "SELECT * FROM pragma_table_xinfo('orders')",
            "PRAGMA journal_mode",
            "PRAGMA integrity_check",
        ]
    )
    ctx = FakeContext(task, {"db": lite})
    SqlTask().run(ctx)
    assert ctx.metrics["statements"] == 7
    assert lite.query("PRAGMA user_version")[1] == [(7,)]
    # The connector's own PRAGMAs (journal_mode=WAL, query_only) still apply.
    assert lite.query("PRAGMA journal_mode")[1] == [("wal",)]
    with pytest.raises(ConnectorError, match="readonly"):
        lite.query("DELETE FROM orders")
    assert [c.name for c in lite.describe(table="orders")][:2] == ["id", "account_id"]


# ------------------------------------------- the product still works on SQLite


def test_it_still_runs_checks_and_copies_on_a_confined_connection(
    lite: SqliteConnector, csvc: Any
) -> None:
    data.load_sqlite(lite)
    check = {
        "name": "c",
        "type": "check",
        "connection": "db",
        "table": "orders",
        "checks": [{"row_count": {"min": 500}}, {"not_null": ["id"]}, {"unique": ["id"]}],
    }
    CheckTask().run(FakeContext(check, {"db": lite}))
    out = copy_task("db", "files", {"table": "orders"}, {"table": "o.csv", "mode": "replace"})
    assert run(out, {"db": lite, "files": csvc}).metrics["rows_written"] == 500
    back = copy_task("files", "db", {"table": "o.csv"}, {"table": "orders_back", "mode": "replace"})
    run(back, {"db": lite, "files": csvc})
    assert lite.query("SELECT COUNT(*) FROM orders_back")[1] == [(500,)]
    failing = {**check, "checks": [{"sql": "SELECT id FROM orders WHERE id < 0 OR id = 1"}]}
    with pytest.raises(TaskFailed, match="returned 1 rows"):
        CheckTask().run(FakeContext(failing, {"db": lite}))
