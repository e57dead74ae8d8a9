"""Cross-kind type mapping: a destination table created from each source kind."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.copy import run_copy
from connectors.types import infer_text_type
from tests.connectors import data
from tests.connectors.conftest import FakeContext, copy_task

TYPES_DDL = (
    "CREATE TABLE typed (i integer, b bigint, f double precision, n numeric(12,2), t text,"
    " v varchar(40), ok boolean, d date, ts timestamp, tz timestamptz, j jsonb, raw bytea, u uuid)"
)
TYPES_ROW = (
    "INSERT INTO typed VALUES (1, 9000000000, 1.5, 12.50, 'x', 'y', true, '2024-02-29',"
    " '2024-02-29 12:00:00', '2024-02-29 12:00:00+00', '{\"a\": 1}', '\\x00ff',"
    " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')"
)

EXPECTED = {
    "postgresql": {
        "i": "integer",
        "b": "bigint",
        "f": "double precision",
        "n": "numeric",
        "t": "text",
        "v": "character varying",
        "ok": "boolean",
        "d": "date",
        "ts": "timestamp without time zone",
        "tz": "timestamp with time zone",
        "j": "jsonb",
        "raw": "bytea",
        "u": "uuid",
    },
    "mysql": {
        "i": "int",
        "b": "bigint",
        "f": "double",
        "n": "decimal",
        "t": "longtext",
        "v": "varchar",
        "ok": "tinyint",
        "d": "date",
        "ts": "datetime",
        "tz": "datetime",
        "j": "longtext",
        "raw": "longblob",
        "u": "char",
    },
}


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_creates_destination_tables_with_mapped_types(kind: str, pg: Any, request: Any) -> None:
    pg.execute(TYPES_DDL)
    pg.execute(TYPES_ROW)
    dst = request.getfixturevalue({"postgresql": "pg2", "mysql": "my", "sqlite": "lite"}[kind])
    run_copy(FakeContext(copy_task("s", "d", {"table": "typed"}, {"table": "typed_copy"})), pg, dst)
    if kind == "sqlite":
        with dst.connect(read_only=True) as conn:
            columns = dst.table_columns(conn, "typed_copy")
        got = {c.name: c.type for c in columns}
        assert got == {
            # SQLite INTEGER is 64-bit: it reads back as bigint.
            "i": "bigint",
            "b": "bigint",
            "f": "float",
            "n": "numeric",
            "t": "text",
            "v": "text",
            "ok": "boolean",
            "d": "date",
            "ts": "timestamp",
            "tz": "timestamptz",
            "j": "json",
            "raw": "bytes",
            "u": "uuid",
        }
        row = dst.query("SELECT n, ok, d FROM typed_copy")[1][0]
        assert row == ("12.50", 1, "2024-02-29")
        return
    query = (
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = 'typed_copy'"
        + (" AND table_schema = DATABASE()" if kind == "mysql" else "")
    )
    got = {name: str(type_).lower() for name, type_ in dst.query(query)[1]}
    expected = EXPECTED[kind]
    if kind == "mysql" and got["j"] == "json":
        expected = {**expected, "j": "json"}
    assert got == expected
    assert dst.query("SELECT COUNT(*) FROM typed_copy")[1][0][0] == 1


def test_it_keeps_native_types_between_the_same_kind(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    run_copy(FakeContext(copy_task("s", "d", {"table": "orders"}, {"table": "o"})), pg, pg2)
    got = dict(
        pg2.query(
            "SELECT column_name, character_maximum_length FROM information_schema.columns WHERE"
            " table_name = 'o'"
        )[1]
    )
    assert got["email"] == 120
    precision = pg2.query(
        "SELECT numeric_precision, numeric_scale FROM information_schema.columns WHERE"
        " table_name = 'o' AND column_name = 'amount'"
    )[1]
    assert precision == [(12, 2)]


@pytest.mark.parametrize(
    "cells,expected",
    [
        (["1", "2", ""], "bigint"),
        (["1.5", "2.25"], "numeric"),
        (["2024-01-01", "2024-12-31"], "date"),
        (["2024-01-01 10:00:00", "2024-01-01T11:00"], "timestamp"),
        (["2024-01-01 10:00:00+00:00"], "timestamptz"),
        (["true", "f"], "boolean"),
        (['{"a": 1}', "[1]"], "json"),
        (["1", "x"], "text"),
    ],
)
def test_it_infers_csv_column_types(cells: list[str], expected: str) -> None:
    assert infer_text_type(cells) == expected


def test_it_describes_csv_and_jsonl_files(csvc: Any, jsonlc: Any) -> None:
    data.write_csv(csvc.directory() / "o.csv")
    data.write_jsonl(jsonlc.directory() / "o.jsonl")
    csv_types = {c.name: c.type for c in csvc.describe(table="o.csv")}
    jsonl_types = {c.name: c.type for c in jsonlc.describe(table="o.jsonl")}
    assert csv_types == {
        "id": "bigint",
        "account_id": "bigint",
        "name": "text",
        "email": "text",
        "amount": "numeric",
        "created_at": "timestamptz",
        "active": "boolean",
        "attrs": "json",
    }
    assert jsonl_types == {**csv_types, "id": "bigint"}
