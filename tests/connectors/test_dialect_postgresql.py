"""connectors.postgresql.dialect: its type map, and its SQL on a real server."""

from __future__ import annotations

from connectors.postgresql import PostgresqlConnector
from connectors.postgresql.dialect import PostgresDialect, from_pg, to_pg
from connectors.types import CANONICAL_TYPES, Column
from tests.connectors import dialects


def test_it_maps_postgresql_types() -> None:
    assert (
        from_pg("int4") == "integer"
        and from_pg("jsonb") == "json"
        and from_pg("varchar(3)") == "text"
    )
    numeric = Column("n", "numeric", "numeric(12,2)", "postgresql")
    assert to_pg(numeric) == "numeric(12,2)"
    assert to_pg(Column("x", "bigint", "BIGINT", "mysql")) == "bigint"
    assert PostgresDialect().ddl_type(numeric) == "numeric(12,2)"


def test_its_types_round_trip(pg: PostgresqlConnector) -> None:
    dialects.check_type_map(pg, set(CANONICAL_TYPES))


def test_its_upserts_update_by_key(pg: PostgresqlConnector) -> None:
    dialects.check_upserts(pg)


def test_its_upsert_select_keeps_one_row_per_key(pg: PostgresqlConnector) -> None:
    """DISTINCT ON: a key twice in the source does not make ON CONFLICT fail."""
    d = pg.dialect
    dialects.make_keyed(pg, "up", "PRIMARY KEY")
    pg.execute("CREATE TABLE src (k INTEGER, v VARCHAR(20))")
    pg.execute("INSERT INTO src VALUES (2, 'x'), (2, 'x'), (3, 'c')")
    pg.execute(d.upsert_select("up", ["k", "v"], ["k"], d.table("src")))
    assert dialects.rows(pg, "up") == [(1, "a"), (2, "x"), (3, "c")]


def test_its_upserts_go_through_a_temp_table(pg: PostgresqlConnector) -> None:
    d = pg.dialect
    dialects.make_keyed(pg, "up", "PRIMARY KEY")
    temp = d.upsert_temp_table("up")
    assert temp is not None
    with pg.connect() as conn:
        conn.execute(temp)
        conn.execute("INSERT INTO _dd_stage VALUES (1, 'A'), (9, 'i')")
        conn.execute(d.upsert_select("up", ["k", "v"], ["k"], "_dd_stage"))
    assert dialects.rows(pg, "up") == [(1, "A"), (2, "b"), (9, "i")]
    # ON COMMIT DROP: gone with the transaction.
    assert pg.query("SELECT to_regclass('_dd_stage')")[1] == [(None,)]


def test_its_insert_ignore_adds_a_row_once(pg: PostgresqlConnector) -> None:
    dialects.check_insert_ignore(pg)


def test_it_reads_keys_and_creates_unique_indexes(pg: PostgresqlConnector) -> None:
    dialects.check_keys(pg)


def test_its_ddl_is_transactional_and_stages_are_unlogged(pg: PostgresqlConnector) -> None:
    d = pg.dialect
    dialects.check_transactional_ddl(pg)
    assert d.markers_in_schema
    pg.execute(d.stage_table("CREATE TABLE st (k INTEGER)"))
    assert pg.query("SELECT relpersistence FROM pg_class WHERE relname = 'st'")[1] == [("u",)]


def test_it_offers_a_fast_copy_to_postgresql_only(pg: PostgresqlConnector, lite: object) -> None:
    hook = pg.fast_copy_to(pg)
    assert hook is not None and hook.accepts_lines
    assert pg.fast_copy_to(lite) is None  # type: ignore[arg-type]
