"""destination.schema: evolve, freeze and discard (connectors.copy.schema_changes).

Against the real PostgreSQL, MariaDB and SQLite, and CSV/JSONL files: a
column the destination lacks, a column the source no longer has, a column
whose source type is wider, each under the three policies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from pipelines.definition import load
from tests.connectors.conftest import copy_task, run
from tests.pipelines.definition_examples import copy_task as definition_task
from tests.pipelines.definition_examples import example, pipeline, problems

KINDS = ["postgresql", "mysql", "sqlite"]


def _dest(kind: str, request: Any) -> Any:
    return request.getfixturevalue({"postgresql": "pg2", "mysql": "my", "sqlite": "lite"}[kind])


def _columns(connector: Any, table: str) -> dict[str, str]:
    with connector.connect() as conn:
        found = connector.table_columns(conn, table)
    return {c.name: (c.native or c.type).lower() for c in found}


def _source(pg: Any) -> None:
    pg.execute("CREATE TABLE src (id integer PRIMARY KEY, name text, extra text)")
    pg.execute("INSERT INTO src VALUES (1, 'a', 'x1'), (2, 'b', 'x2')")


def _task(schema: str | None, table: str = "dst", **destination: Any) -> dict[str, Any]:
    dst = {"table": table, **destination}
    if schema is not None:
        dst["schema"] = schema
    return copy_task("src", "dst", {"table": "src"}, dst)


@pytest.mark.parametrize("kind", KINDS)
def test_evolve_adds_a_new_source_column(kind: str, pg: Any, request: Any) -> None:
    dst = _dest(kind, request)
    _source(pg)
    dst.execute("CREATE TABLE dst (id integer, name text)")
    dst.execute("INSERT INTO dst VALUES (0, 'old')")
    ctx = run(_task(None), {"src": pg, "dst": dst})
    assert "extra" in _columns(dst, "dst")
    got = sorted(dst.query("SELECT id, name, extra FROM dst")[1])
    assert [tuple(r) for r in got] == [(0, "old", None), (1, "a", "x1"), (2, "b", "x2")]
    changes = ctx.metrics["schema_changes"]
    assert [(c["change"], c["column"]) for c in changes] == [("add_column", "extra")]
    assert any("schema: added column 'extra'" in m for _, m in ctx.logs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_column_the_source_no_longer_has_gets_null(kind: str, pg: Any, request: Any) -> None:
    dst = _dest(kind, request)
    _source(pg)
    dst.execute("CREATE TABLE dst (id integer, name text, extra text, gone text)")
    ctx = run(_task("evolve"), {"src": pg, "dst": dst})
    got = sorted(dst.query("SELECT id, gone FROM dst")[1])
    assert [tuple(r) for r in got] == [(1, None), (2, None)]
    assert ctx.metrics["schema_changes"] == [{"change": "null_for_missing", "column": "gone"}]


@pytest.mark.parametrize("kind", KINDS)
def test_freeze_fails_before_writing_naming_the_columns(kind: str, pg: Any, request: Any) -> None:
    dst = _dest(kind, request)
    _source(pg)
    dst.execute("CREATE TABLE dst (id integer, name text, gone text)")
    with pytest.raises(ConnectorError) as err:
        run(_task("freeze"), {"src": pg, "dst": dst})
    message = str(err.value)
    assert "schema is frozen" in message
    assert "new in the source: extra" in message
    assert "not in the source: gone" in message
    assert message.startswith("destination ")
    # Nothing written, nothing altered.
    assert dst.query("SELECT COUNT(*) FROM dst")[1][0][0] == 0
    assert set(_columns(dst, "dst")) == {"id", "name", "gone"}


@pytest.mark.parametrize("kind", KINDS)
def test_freeze_copies_when_the_columns_match(kind: str, pg: Any, request: Any) -> None:
    dst = _dest(kind, request)
    _source(pg)
    dst.execute("CREATE TABLE dst (id integer, name text, extra text)")
    ctx = run(_task("freeze"), {"src": pg, "dst": dst})
    assert dst.query("SELECT COUNT(*) FROM dst")[1][0][0] == 2
    assert "schema_changes" not in ctx.metrics


@pytest.mark.parametrize("kind", KINDS)
def test_discard_drops_source_columns_the_destination_lacks(
    kind: str, pg: Any, request: Any
) -> None:
    dst = _dest(kind, request)
    _source(pg)
    dst.execute("CREATE TABLE dst (id integer, name text)")
    ctx = run(_task("discard"), {"src": pg, "dst": dst})
    assert set(_columns(dst, "dst")) == {"id", "name"}
    got = sorted(dst.query("SELECT id, name FROM dst")[1])
    assert [tuple(r) for r in got] == [(1, "a"), (2, "b")]
    assert ctx.metrics["schema_changes"] == [{"change": "drop_source_column", "column": "extra"}]


def test_discard_with_upsert_keys(pg: Any, pg2: Any) -> None:
    _source(pg)
    pg2.execute("CREATE TABLE dst (name text, id integer PRIMARY KEY)")
    task = _task("discard", mode="upsert", keys=["id"])
    run(task, {"src": pg, "dst": pg2})
    pg.execute("UPDATE src SET name = 'changed' WHERE id = 1")
    run(task, {"src": pg, "dst": pg2})
    got = sorted(pg2.query("SELECT id, name FROM dst")[1])
    assert [tuple(r) for r in got] == [(1, "changed"), (2, "b")]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_evolve_widens_in_place(kind: str, pg: Any, request: Any) -> None:
    dst = _dest(kind, request)
    pg.execute("CREATE TABLE src (n bigint, s varchar(50), f double precision)")
    pg.execute("INSERT INTO src VALUES (5000000000, 'a string longer than five', 1.0000000001)")
    # MariaDB's REAL is a double: its single precision is FLOAT.
    single = "real" if kind == "postgresql" else "float"
    dst.execute(f"CREATE TABLE dst (n integer, s varchar(5), f {single})")
    ctx = run(_task(None), {"src": pg, "dst": dst})
    types = _columns(dst, "dst")
    assert types["n"] in {"int8", "bigint", "bigint(20)"}
    assert types["s"] in {"character varying(50)", "varchar(50)"}
    assert types["f"] in {"float8", "double precision", "double"}
    got = dst.query("SELECT n, s, f FROM dst")[1]
    assert [tuple(r) for r in got] == [(5000000000, "a string longer than five", 1.0000000001)]
    widened = {c["column"]: c for c in ctx.metrics["schema_changes"]}
    assert set(widened) == {"n", "s", "f"}
    assert all(c["change"] == "widen" for c in widened.values())
    assert any("schema: widened column 'n'" in m for _, m in ctx.logs)


def test_evolve_widens_bigint_to_numeric_and_varchar_to_text(pg: Any, pg2: Any) -> None:
    pg.execute("CREATE TABLE src (n numeric(38,10), s text)")
    pg.execute("INSERT INTO src VALUES (12345678901234567890.0123456789, %(s)s)", {"s": "x" * 5000})
    pg2.execute("CREATE TABLE dst (n bigint, s varchar(10))")
    run(_task(None), {"src": pg, "dst": pg2})
    types = _columns(pg2, "dst")
    assert types == {"n": "numeric(38,10)", "s": "text"}
    got = pg2.query("SELECT n::text, length(s) FROM dst")[1]
    assert [tuple(r) for r in got] == [("12345678901234567890.0123456789", 5000)]


def test_freeze_refuses_a_wider_source_column(pg: Any, pg2: Any) -> None:
    pg.execute("CREATE TABLE src (n bigint)")
    pg.execute("INSERT INTO src VALUES (1)")
    pg2.execute("CREATE TABLE dst (n integer)")
    with pytest.raises(ConnectorError, match=r"wider in the source: n \(int4 -> int8\)"):
        run(_task("freeze"), {"src": pg, "dst": pg2})
    assert _columns(pg2, "dst") == {"n": "int4"}


def test_sqlite_takes_wider_values_without_a_change(pg: Any, lite: Any) -> None:
    pg.execute("CREATE TABLE src (n bigint, s text)")
    pg.execute("INSERT INTO src VALUES (5000000000, 'long text')")
    lite.execute("CREATE TABLE dst (n integer, s varchar(3))")
    ctx = run(_task(None), {"src": pg, "dst": lite})
    assert "schema_changes" not in ctx.metrics
    assert [tuple(r) for r in lite.query("SELECT n, s FROM dst")[1]] == [(5000000000, "long text")]


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_csv_evolve_rewrites_the_header(mode: str, pg: Any, csvc: Any, data_root: Path) -> None:
    _source(pg)
    path = data_root / "csv" / "dst.csv"
    path.write_text("id,name\n0,old\n")
    ctx = run(_task(None, "dst.csv", mode=mode), {"src": pg, "dst": csvc})
    lines = path.read_text().splitlines()
    assert lines[0] == "id,name,extra"
    expected = ["1,a,x1", "2,b,x2"] if mode == "replace" else ["0,old,", "1,a,x1", "2,b,x2"]
    assert sorted(lines[1:]) == expected
    assert ctx.metrics["schema_changes"][0] == {
        "change": "add_column",
        "column": "extra",
        "type": "text",
    }


def test_csv_freeze_and_discard(pg: Any, csvc: Any, data_root: Path) -> None:
    _source(pg)
    path = data_root / "csv" / "dst.csv"
    path.write_text("id,gone,name\n0,g,old\n")
    with pytest.raises(ConnectorError, match="new in the source: extra; not in the source: gone"):
        run(_task("freeze", "dst.csv"), {"src": pg, "dst": csvc})
    assert path.read_text() == "id,gone,name\n0,g,old\n"
    run(_task("discard", "dst.csv"), {"src": pg, "dst": csvc})
    assert path.read_text().splitlines() == ["id,gone,name", "0,g,old", "1,,a", "2,,b"]


def test_jsonl_takes_new_keys(pg: Any, jsonlc: Any, data_root: Path) -> None:
    _source(pg)
    path = data_root / "jsonl" / "dst.jsonl"
    path.write_text('{"id": 0, "name": "old", "gone": true}\n')
    ctx = run(_task(None, "dst.jsonl"), {"src": pg, "dst": jsonlc})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"id": 0, "name": "old", "gone": True}
    assert rows[1:] == [
        {"id": 1, "name": "a", "gone": None, "extra": "x1"},
        {"id": 2, "name": "b", "gone": None, "extra": "x2"},
    ]
    assert {c["change"] for c in ctx.metrics["schema_changes"]} == {
        "add_column",
        "null_for_missing",
    }


def test_the_definition_checks_the_schema_key() -> None:
    data = example()
    data["tasks"][0]["destination"]["schema"] = "merge"
    assert problems(data) == [
        "tasks[0].destination.schema: unknown schema 'merge'"
        " (expected one of: discard, evolve, freeze)"
    ]
    destination = {"connection": "dst", "table": "t", "schema": "freeze"}
    task = load(pipeline(definition_task(destination=destination)))["tasks"][0]
    assert task["destination"]["schema"] == "freeze"
