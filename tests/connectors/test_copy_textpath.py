"""Text sources into PostgreSQL: values go in as COPY text, unparsed (the text path).

SQLite and CSV values and MySQL lines built by the server are written by
text COPY and checked by PostgreSQL's input functions. Each test compares
the text path with the typed batch path (``passthrough=False``) on the same
rows, or with the values expected, on the real databases.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.copy import run_copy
from connectors.postgresql.copytext import CopyTextError, copy_text
from tests.connectors.conftest import FakeContext, copy_task

TRICKY = [
    "",
    "tab\there",
    "new\nline",
    "cr\rhere",
    "back\\slash \\N \\t",
    "ünïcødé ✓ 日本",
    "\\x41",
]


def copy(src: Any, dst: Any, table: str, into: str, *, text: bool, **extra: Any) -> FakeContext:
    task = copy_task("src", "dst", {"table": table}, {"table": into}, **extra)
    ctx = FakeContext(task)
    run_copy(ctx, src, dst, passthrough=text)
    return ctx


def rows_of(pg: Any, table: str) -> list[tuple]:
    return sorted(pg.query(f"SELECT * FROM {table}")[1], key=lambda r: (r[0] is None, r[0]))


def used_text(ctx: FakeContext) -> bool:
    return any("source's text" in m for _, m in ctx.logs)


def sqlite_file(data_root: Path, ddl: str, rows: list[tuple]) -> None:
    path = data_root / "db" / "test.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(ddl)
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO t VALUES ({marks})", rows)
    conn.commit()
    conn.close()


SQLITE_DDL = (
    "CREATE TABLE t (id INTEGER, txt TEXT, amount DECIMAL(12,2), ratio REAL, ok BOOLEAN,"
    " at TIMESTAMP, day DATE, blob BLOB)"
)


def sqlite_rows() -> list[tuple]:
    rows: list[tuple] = [
        (i, s, "12.50", 0.1 + i, i % 2, None, None, None) for i, s in enumerate(TRICKY)
    ]
    rows += [
        (100, None, None, None, None, None, None, None),
        (
            101,
            "x",
            123456789.12,
            1e300,
            1,
            "2024-02-29 23:59:58.123456",
            "2024-02-29",
            b"\x00\x01\xff",
        ),
        (102, "y", -0.01, -2.5, 0, "2024-01-01T00:00:00", "1999-12-31", b""),
        (103, "", "", "", "", "", "", None),  # empty text: NULL in typed columns
        (104, 7, 3, 5, "true", "2024-06-01 12:00:00+02:00", "2024-06-01", b"\\"),
    ]
    return rows


def test_it_copies_sqlite_values_as_text_like_the_typed_path(
    lite: Any, pg: Any, data_root: Path
) -> None:
    sqlite_file(data_root, SQLITE_DDL, sqlite_rows())
    text = copy(lite, pg, "t", "by_text", text=True, batch_size=3)
    typed = copy(lite, pg, "t", "by_rows", text=False)
    assert used_text(text) and not used_text(typed)
    got, want = rows_of(pg, "by_text"), rows_of(pg, "by_rows")
    assert got == want
    by_id = {r[0]: r for r in got}
    assert [by_id[i][1] for i in range(len(TRICKY))] == TRICKY  # "" stays "" in text
    assert by_id[101][2:] == (
        Decimal("123456789.12"),
        1e300,
        True,
        dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        dt.date(2024, 2, 29),
        b"\x00\x01\xff",
    )
    assert by_id[103][1:7] == ("", None, None, None, None, None)
    assert by_id[104][1] == "7" and by_id[104][7] == b"\\"
    assert by_id[100][1:] == (None,) * 7


def csv_file(csvc: Any, data_root: Path, text: str) -> None:
    (data_root / "csv" / "t.csv").write_text(text, encoding="utf-8")


CSV = (
    "id,name,amount,ok,at,tz,day,doc\n"
    '1,"tab\there",1.50,true,2024-01-01 10:00:00,2024-01-01T10:00:00Z,2024-01-01,'
    '"{""a"": ""b\\\\c""}"\n'
    '2,"multi\nline \\N",-2.25,f,2024-01-02T11:30:00.5,2024-01-02 11:30:00+02:00,2024-01-02,[1]\n'
    "3,,,,,,,\n"
    '4,"ünï ✓ \\\\x41",0.00,t,2024-12-31 23:59:59,2024-12-31 23:59:59-05:00,2024-12-31,{}\n'
)


def test_it_copies_csv_values_as_text_like_the_typed_path(
    csvc: Any, pg: Any, data_root: Path
) -> None:
    csv_file(csvc, data_root, CSV)
    text = copy(csvc, pg, "t.csv", "by_text", text=True)
    typed = copy(csvc, pg, "t.csv", "by_rows", text=False)
    assert used_text(text) and not used_text(typed)
    got = rows_of(pg, "by_text")
    assert got == rows_of(pg, "by_rows")
    assert got[0][1] == "tab\there" and got[1][1] == "multi\nline \\N"
    assert got[3][1] == "ünï ✓ \\\\x41"
    assert got[0][5] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)
    assert got[2][1:] == (None,) * 7  # empty cells are NULL
    assert got[0][7] == {"a": "b\\c"}


def test_it_refuses_a_bad_value_naming_the_destination_column(
    lite: Any, pg: Any, data_root: Path
) -> None:
    sqlite_file(
        data_root,
        "CREATE TABLE t (id INTEGER, at TIMESTAMP)",
        [(i, "2024-01-01 00:00:00") for i in range(50)] + [(50, "not a time")],
    )
    with pytest.raises(ConnectorError) as caught:
        copy(lite, pg, "t", "dst", text=True, batch_size=20)
    message = str(caught.value)
    assert message.startswith(f"destination {pg.where()}: ")
    assert 'column "at"' in message and "not a time" in message
    # Nothing half-written: the table was created, no row is in it.
    assert pg.query("SELECT COUNT(*) FROM dst")[1] == [(0,)]


def test_it_refuses_nul_in_text_naming_the_column(lite: Any, pg: Any, data_root: Path) -> None:
    sqlite_file(data_root, "CREATE TABLE t (id INTEGER, note TEXT)", [(1, "ok"), (2, "a\x00b")])
    with pytest.raises(ConnectorError, match=r'^destination .*column "note": text with a NUL'):
        copy(lite, pg, "t", "dst", text=True)


def test_it_keeps_typed_values_when_a_step_needs_them(lite: Any, pg: Any, data_root: Path) -> None:
    sqlite_file(data_root, SQLITE_DDL, sqlite_rows())
    masked = [{"name": "m", "function": "mask", "params": {"columns": ["txt"], "method": "sha256"}}]
    ctx = copy(lite, pg, "t", "dst", text=True, transformations=masked, pushdown=False)
    assert not used_text(ctx)


def test_it_reads_csv_typed_when_incremental(csvc: Any, pg: Any, data_root: Path) -> None:
    csv_file(csvc, data_root, "id,at\n1,2024-01-01 00:00:00\n2,2024-01-02 00:00:00\n")
    task = copy_task(
        "src",
        "dst",
        {"table": "t.csv"},
        {"table": "dst", "keys": ["id"]},
        incremental={"column": "at"},
    )
    ctx = FakeContext(task)
    result = run_copy(ctx, csvc, pg)
    assert not used_text(ctx)
    assert result["watermark"] == "2024-01-02 00:00:00"
    assert pg.query("SELECT COUNT(*) FROM dst")[1] == [(2,)]


def test_it_upserts_text_rows_by_keys(lite: Any, pg: Any, data_root: Path) -> None:
    sqlite_file(data_root, "CREATE TABLE t (id INTEGER, note TEXT)", [(1, "a"), (2, "b\tc")])
    dst = {"table": "dst", "mode": "upsert", "keys": ["id"]}
    for _ in range(2):
        ctx = FakeContext(copy_task("src", "dst", {"table": "t"}, dst))
        run_copy(ctx, lite, pg)
        assert used_text(ctx)
    assert rows_of(pg, "dst") == [(1, "a"), (2, "b\tc")]


MYSQL_DDL = (
    "CREATE TABLE t (id int, txt text, amount decimal(12,2), ratio double, ok tinyint(1),"
    " at datetime(6), day date, tm time, blob_ varbinary(10), bits bit(3), doc json)"
)


def test_it_copies_mysql_lines_built_by_the_server(my: Any, pg: Any) -> None:
    values = [
        (
            i,
            s,
            Decimal("12.50"),
            0.1 + i,
            i % 2,
            dt.datetime(2024, 1, 1, 0, 0, i, 5),
            dt.date(2024, 1, 1 + i),
            dt.timedelta(hours=i),
            bytes([i, 0, 255]),
            i % 8,
            '{"k": "v\\\\w"}',
        )
        for i, s in enumerate(TRICKY)
    ]
    values.append((100,) + (None,) * 10)
    with my.connect() as conn:
        cur = conn.cursor()
        cur.execute(MYSQL_DDL)
        cur.executemany(f"INSERT INTO t VALUES ({', '.join(['%s'] * 11)})", values)
    text = copy(my, pg, "t", "by_text", text=True, batch_size=3)
    typed = copy(my, pg, "t", "by_rows", text=False)
    assert text.metrics["rows_written"] == typed.metrics["rows_written"] == len(values)
    got = rows_of(pg, "by_text")
    assert got == rows_of(pg, "by_rows")
    assert [r[1] for r in got[: len(TRICKY)]] == TRICKY
    first = got[1]
    assert first[2:9] == (
        Decimal("12.50"),
        1.1,
        True,
        dt.datetime(2024, 1, 1, 0, 0, 1, 5),
        dt.date(2024, 1, 2),
        dt.time(1),
        b"\x01\x00\xff",
    )
    assert got[-1][1:] == (None,) * 10


def test_it_refuses_a_mysql_zero_date_naming_the_destination_column(my: Any, pg: Any) -> None:
    with my.connect() as conn:
        cur = conn.cursor()
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE t (id int, day date)")
        cur.execute("INSERT INTO t VALUES (1, '2024-01-01'), (2, '0000-00-00')")
    with pytest.raises(ConnectorError) as caught:
        copy(my, pg, "t", "dst", text=True)
    message = str(caught.value)
    assert message.startswith(f'destination {pg.where()}: column "day": ')
    assert pg.query("SELECT COUNT(*) FROM dst")[1] == [(0,)]


def test_it_refuses_nul_in_mysql_text_naming_the_column(my: Any, pg: Any) -> None:
    with my.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id int, note text, other text)")
        cur.execute("INSERT INTO t VALUES (1, 'a', 'b'), (2, 'c', CONCAT('x', CHAR(0), 'y'))")
    with pytest.raises(ConnectorError, match=r'^destination .*column "other": text with a NUL'):
        copy(my, pg, "t", "dst", text=True)


def test_it_formats_copy_text() -> None:
    rows = [
        (1, "a\tb", None, 1.5, b"\x00\x01", "", 3),
        (2, "c\\d", "x", None, None, "2024-01-01", 0),
    ]
    names = list("abcdefg")
    types = ["bigint", "text", "text", "numeric", "bytes", "date", "boolean"]
    assert copy_text(rows, names, types) == (
        b"1\ta\\tb\t\\N\t1.5\t\\\\x0001\t\\N\tt\n2\tc\\\\d\tx\t\\N\t\\N\t2024-01-01\tf\n"
    )
    with pytest.raises(CopyTextError, match='column "b": text with a NUL'):
        copy_text([(1, "a\x00")], ["a", "b"], ["bigint", "text"])


JSONL = (
    '{"id": 1, "name": "tab\\there", "n": 1.5, "ok": true, "doc": {"a": [1, "b\\\\c"]},'
    ' "at": "2024-01-01T10:00:00", "mixed": "x"}\n'
    '{"id": 2, "name": "", "n": null, "ok": false, "doc": [], "at": null, "mixed": 3}\n'
    '{"id": 3, "name": null, "n": 2, "ok": null, "doc": null, "at": "2024-01-02 00:00:00",'
    ' "mixed": true}\n'
)


def test_it_copies_jsonl_values_as_text_like_the_typed_path(
    jsonlc: Any, pg: Any, data_root: Path
) -> None:
    (data_root / "jsonl" / "t.jsonl").write_text(JSONL, encoding="utf-8")
    text = copy(jsonlc, pg, "t.jsonl", "by_text", text=True)
    typed = copy(jsonlc, pg, "t.jsonl", "by_rows", text=False)
    assert used_text(text) and not used_text(typed)
    got = rows_of(pg, "by_text")
    assert got == rows_of(pg, "by_rows")
    assert got[0][1] == "tab\there" and got[0][4] == {"a": [1, "b\\c"]}
    assert [r[6] for r in got] == ["x", "3", "true"]  # JSON in a text column, as before


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_it_resumes_a_staged_text_copy(
    kind: str, lite: Any, my: Any, pg: Any, data_root: Path
) -> None:
    from tests.connectors.conftest import Interrupt

    rows = [(i, f"name\t{i}", f"2024-01-01 00:00:{i % 60:02d}") for i in range(200)]
    if kind == "sqlite":
        sqlite_file(
            data_root, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at TIMESTAMP)", rows
        )
        src = lite
    else:
        with my.connect() as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE t (id int PRIMARY KEY, name text, at datetime)")
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s)", rows)
        src = my
    task = copy_task("src", "dst", {"table": "t"}, {"table": "dst"}, batch_size=30)
    store: dict[str, Any] = {}
    first = FakeContext(task, store=store, execution_id="e", fail_after_checks=4)
    with pytest.raises(Interrupt):
        run_copy(first, src, pg)
    assert pg.query("SELECT COUNT(*) FROM dst")[1] == [(0,)]  # only the stage holds rows
    second = FakeContext(task, store=store, execution_id="e", attempt=2)
    result = run_copy(second, src, pg)
    assert 0 < result["resumed_from"] < len(rows)
    # SQLite: rows as text; MySQL: lines built by the server (its fast path).
    assert used_text(second) if kind == "sqlite" else result["passthrough"]
    got = rows_of(pg, "dst")
    assert got == [(i, f"name\t{i}", dt.datetime(2024, 1, 1, 0, 0, i % 60)) for i in range(200)]
