"""connectors.sqlite.dialect: its type map, and its SQL on a real database file."""

from __future__ import annotations

from connectors.sqlite import SqliteConnector
from connectors.sqlite.dialect import from_sqlite, to_sqlite
from connectors.types import CANONICAL_TYPES, Column
from tests.connectors import dialects


def test_it_maps_sqlite_types() -> None:
    assert from_sqlite("DECIMAL_TEXT") == "numeric" and from_sqlite("TIMESTAMPTZ") == "timestamptz"
    assert to_sqlite(Column("n", "numeric")) == "DECIMAL_TEXT"
    assert to_sqlite(Column("n", "numeric", "DECIMAL(4,1)", "sqlite")) == "DECIMAL(4,1)"


def test_its_types_round_trip(lite: SqliteConnector) -> None:
    # INTEGER is SQLite's rowid type, read back as bigint.
    dialects.check_type_map(lite, set(CANONICAL_TYPES) - {"integer"})


def test_its_upserts_update_by_key(lite: SqliteConnector) -> None:
    """Including INSERT … SELECT, whose ON CONFLICT needs the WHERE true guard."""
    dialects.check_upserts(lite)


def test_its_upserts_use_a_unique_index_as_key(lite: SqliteConnector) -> None:
    dialects.make_keyed(lite, "up", "")
    lite.execute(lite.dialect.create_unique_index("up", "up_k", ["k"]))
    lite.execute(
        "INSERT INTO \"up\" (k, v) VALUES (1, 'A')" + lite.dialect.upsert_clause(["k", "v"], ["k"])
    )
    assert dialects.rows(lite, "up") == [(1, "A"), (2, "b")]


def test_its_insert_ignore_adds_a_row_once(lite: SqliteConnector) -> None:
    dialects.check_insert_ignore(lite)


def test_it_reads_keys_and_creates_unique_indexes(lite: SqliteConnector) -> None:
    dialects.check_keys(lite)


def test_its_ddl_is_transactional(lite: SqliteConnector) -> None:
    dialects.check_transactional_ddl(lite)
    assert lite.dialect.upsert_temp_table("t") is None
    assert lite.fast_copy_to(lite) is None


def test_it_binds_parameters_by_the_one_placeholder_rule(lite: SqliteConnector) -> None:
    """core.names reads the placeholders; sqlite3 gets its own :name style."""
    sql = "SELECT %(a)s, '5%%' WHERE %(a)s = %(b)s"
    assert lite.to_driver_sql(sql) == "SELECT :a, '5%' WHERE :a = :b"
    assert lite.query(sql, {"a": 1, "b": 1})[1] == [
        (
            1,
            "5%",
        )
    ]
