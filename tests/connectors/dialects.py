"""Checks every SQL dialect passes on its real server (test_dialect_<kind>.py).

Each runs the SQL the dialect builds for the copy engine against the
connector's own database: upserts (VALUES and INSERT … SELECT), the
insert-that-ignores of the partition plan, key introspection, the type map
round trip and whether a rollback undoes DDL.
"""

from __future__ import annotations

from connectors.base import SqlConnector
from connectors.types import CANONICAL_TYPES, Column


def rows(connector: SqlConnector, table: str) -> list[tuple]:
    q = connector.dialect.table(table)
    return [tuple(r) for r in connector.query(f"SELECT k, v FROM {q} ORDER BY k")[1]]  # nosec B608


def make_keyed(connector: SqlConnector, table: str, key_ddl: str) -> None:
    """``table (k, v)`` keyed by ``k`` (``key_ddl``), holding (1, 'a') and (2, 'b')."""
    d = connector.dialect
    connector.execute(f"CREATE TABLE {d.table(table)} (k INTEGER {key_ddl}, v VARCHAR(20))")
    connector.execute(f"INSERT INTO {d.table(table)} (k, v) VALUES (1, 'a'), (2, 'b')")  # nosec B608


def check_upserts(connector: SqlConnector, key_ddl: str = "PRIMARY KEY") -> None:
    """``upsert_clause`` after VALUES and ``upsert_select`` from a table update by key."""
    d = connector.dialect
    make_keyed(connector, "up", key_ddl)
    connector.execute(
        f"INSERT INTO {d.table('up')} (k, v) VALUES (2, 'B'), (3, 'c')"  # nosec B608
        + d.upsert_clause(["k", "v"], ["k"])
    )
    assert rows(connector, "up") == [(1, "a"), (2, "B"), (3, "c")]
    # Keys only: nothing to update, existing rows stay, new ones come in.
    connector.execute(
        f"INSERT INTO {d.table('up')} (k) VALUES (3), (4)" + d.upsert_clause(["k"], ["k"])  # nosec B608
    )
    assert rows(connector, "up") == [(1, "a"), (2, "B"), (3, "c"), (4, None)]
    connector.execute(f"CREATE TABLE {d.table('src')} (k INTEGER, v VARCHAR(20))")
    connector.execute(f"INSERT INTO {d.table('src')} (k, v) VALUES (1, 'A'), (5, 'e')")  # nosec B608
    connector.execute(d.upsert_select("up", ["k", "v"], ["k"], d.table("src")))
    assert rows(connector, "up") == [(1, "A"), (2, "B"), (3, "c"), (4, None), (5, "e")]


def check_insert_ignore(connector: SqlConnector) -> None:
    """The plan's insert adds a row once; the second one is ignored, not an error."""
    d = connector.dialect
    make_keyed(connector, "ign", "PRIMARY KEY")
    for value in ("x", "y"):
        connector.execute(d.insert_ignore("ign", ["k", "v"], "%(k)s, %(v)s"), {"k": 7, "v": value})
    assert rows(connector, "ign") == [(1, "a"), (2, "b"), (7, "x")]


def check_keys(connector: SqlConnector) -> None:
    """``primary_key`` in key order; ``unique_keys`` sees an index ``create_unique_index`` made."""
    d = connector.dialect
    connector.execute(
        f"CREATE TABLE {d.table('keyed')} (a INTEGER NOT NULL, b INTEGER NOT NULL,"
        " c INTEGER, PRIMARY KEY (b, a))"
    )
    connector.execute(d.create_unique_index("keyed", "keyed_c", ["c"]))
    connector.execute(d.create_unique_index("keyed", "keyed_c", ["c"]))  # IF NOT EXISTS
    with connector.connect(read_only=True) as conn:
        assert d.primary_key(conn, "keyed") == ["b", "a"]
        assert d.primary_key(conn, "nokey_missing") == []
        found = sorted(sorted(k) for k in d.unique_keys(conn, "keyed"))
    assert ["c"] in found and ["a", "b"] in found


def check_type_map(connector: SqlConnector, kept: set[str]) -> None:
    """Columns created from canonical types read back as the same types (those in ``kept``)."""
    d = connector.dialect
    body = ", ".join(
        f"{d.quote('c_' + t)} {d.ddl_type(Column('c_' + t, t))}" for t in CANONICAL_TYPES
    )
    connector.execute(f"CREATE TABLE {d.table('typed_map')} ({body})")
    with connector.connect(read_only=True) as conn:
        columns = connector.table_columns(conn, "typed_map")
    assert columns is not None
    back = {c.name.removeprefix("c_"): c.type for c in columns}
    assert {t: back[t] for t in kept} == {t: t for t in kept}
    # A column of this kind keeps its native type.
    assert all(d.ddl_type(c) == c.native for c in columns if c.native)


def check_transactional_ddl(connector: SqlConnector) -> None:
    """A rolled-back CREATE TABLE is gone exactly when the dialect says DDL is transactional."""
    d = connector.dialect

    class Rollback(Exception):
        pass

    try:
        with connector.connect() as conn:
            cur = conn.cursor()
            cur.execute(f"CREATE TABLE {d.table('ddl_txn')} (k INTEGER)")
            cur.close()
            raise Rollback
    except Rollback:
        pass
    with connector.connect(read_only=True) as conn:
        exists = connector.table_columns(conn, "ddl_txn") is not None
    assert exists is not d.transactional_ddl
