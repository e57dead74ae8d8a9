"""connectors.mysql.dialect: its type map, its SQL on a real server, the replace swap."""

from __future__ import annotations

from typing import Any

from connectors.copy import run_copy
from connectors.mysql import MysqlConnector
from connectors.mysql.dialect import from_mysql, to_mysql
from connectors.types import Column
from tests.connectors import data, dialects
from tests.connectors.conftest import FakeContext, copy_task


def test_it_maps_mysql_types() -> None:
    assert from_mysql("tinyint(1)") == "boolean" and from_mysql("decimal(12,2)") == "numeric"
    numeric = Column("n", "numeric", "numeric(12,2)", "postgresql")
    assert to_mysql(numeric) == "DECIMAL(12,2)"
    assert to_mysql(Column("k", "text"), key=True) == "VARCHAR(255)"


def test_its_types_round_trip(my: MysqlConnector) -> None:
    # DATETIME has no zone, MariaDB's JSON is text, and there is no UUID type.
    kept = {"integer", "bigint", "float", "numeric", "text", "boolean", "date", "time"}
    dialects.check_type_map(my, kept | {"timestamp", "bytes"})


def test_its_upserts_update_by_key(my: MysqlConnector) -> None:
    dialects.check_upserts(my)


def test_its_insert_ignore_adds_a_row_once(my: MysqlConnector) -> None:
    dialects.check_insert_ignore(my)


def test_it_reads_keys_and_creates_unique_indexes(my: MysqlConnector) -> None:
    dialects.check_keys(my)


def test_its_ddl_commits_so_replace_swaps_a_shadow_table(my: MysqlConnector) -> None:
    d = my.dialect
    dialects.check_transactional_ddl(my)
    dialects.make_keyed(my, "rep", "PRIMARY KEY")
    my.execute(d.create_like("rep__dd_new", "rep"))
    my.execute("INSERT INTO rep__dd_new (k, v) VALUES (9, 'z')")
    my.run_statements(d.swap("rep", "rep__dd_new", "rep__dd_old", True))
    assert dialects.rows(my, "rep") == [(9, "z")]
    assert my.query("SHOW TABLES LIKE 'rep__dd_%'")[1] == []
    # The shadow keeps the table's definition (its key).
    with my.connect(read_only=True) as conn:
        assert d.primary_key(conn, "rep") == ["k"]
    my.execute(d.create_like("new__dd_new", "rep"))
    my.run_statements(d.swap("new", "new__dd_new", "new__dd_old", False))
    assert dialects.rows(my, "new") == []


def test_it_finishes_a_mysql_replace_interrupted_between_commit_and_swap(pg: Any, my: Any) -> None:
    """MySQL DDL commits on its own: a crash after the load's commit leaves a pending swap."""
    from connectors.copy.spec import Unit
    from connectors.copy.sql_sink import SqlSink

    data.load_pg(pg)
    task = copy_task("s", "d", {"table": "orders"}, {"table": "rep", "mode": "replace"})
    run_copy(FakeContext(task, execution_id="e0"), pg, my)
    pg.execute("DELETE FROM orders WHERE id > 10")
    original = SqlSink._swap
    SqlSink._swap = lambda self: None  # type: ignore[method-assign]  # the crash
    try:
        run_copy(FakeContext(task, execution_id="e1"), pg, my)
    finally:
        SqlSink._swap = original  # type: ignore[method-assign]
    assert my.query("SELECT COUNT(*) FROM rep")[1][0][0] == 500
    result = run_copy(FakeContext(task, execution_id="e1", attempt=2), pg, my)
    assert result["skipped"]
    assert my.query("SELECT COUNT(*) FROM rep")[1][0][0] == 10
    assert Unit  # imported for the marker key shape
