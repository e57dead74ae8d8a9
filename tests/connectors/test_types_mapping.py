"""The type table of docs/types.md, value by value, through the real copy engine.

One table of edge values (NULL in every type, timestamps with and without a
zone before 1970 and with microseconds, numeric(38,10) at full precision,
nested unicode JSON, booleans, 1 MB+ multibyte text, an empty string) is
copied between kinds and read back from the destination. Where a kind cannot
hold a value exactly, the test pins what docs/types.md says it does.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from connectors.copy import run_copy
from tests.connectors.conftest import FakeContext, copy_task

UTC = dt.UTC
BIG = "é✓€" * 350_000 + "end"  # 1,050,003 characters, 2,800,003 UTF-8 bytes
N_POS = Decimal("1234567890123456789012345678.0123456789")
N_NEG = Decimal("-1234567890123456789012345678.0123456789")
DOC = {"a": [1, {"b": "ünï ✓", "c": None}], "e": {}, "z": [True, False]}
ARR = [{"k": "日本"}, [1, 2, [3]], "x", None]

# id, t (text), e (empty string), ts, tz, n, j, b, big
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "plain",
        "",
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
        dt.datetime(
            2024, 2, 29, 23, 59, 59, 654321, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
        ),
        N_POS,
        DOC,
        True,
        BIG,
    ),
    (
        2,
        "tab\tline\nback\\slash",
        "",
        dt.datetime(1969, 7, 20, 20, 17, 40, 1),
        dt.datetime(1901, 1, 1, 0, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
        N_NEG,
        ARR,
        False,
        "short",
    ),
    (3, None, None, None, None, None, None, None, None),
]
PG_DDL = (
    "CREATE TABLE edge (id bigint, t text, e text, ts timestamp(6), tz timestamptz,"
    " n numeric(38,10), j jsonb, b boolean, big text)"
)


def load_pg(pg: Any) -> None:
    pg.execute(PG_DDL)
    with pg.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO edge VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [r[:6] + (None if r[6] is None else json.dumps(r[6]),) + r[7:] for r in ROWS],
        )
        conn.commit()


def copy(src: Any, dst: Any, table: str, into: str, **kwargs: Any) -> FakeContext:
    """One copy through the engine (``passthrough=False``: the typed-row path)."""
    ctx = FakeContext(copy_task("src", "dst", {"table": table}, {"table": into}))
    run_copy(ctx, src, dst, **kwargs)
    return ctx


COLS = "id, t, e, ts, tz, n, j, b, big"


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamptz as every kind without a zone holds it: the UTC wall time."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def iso(value: dt.datetime | None, sep: str = " ") -> str | None:
    """How SQLite, CSV and JSONL hold a timestamp: ISO text, microseconds, UTC offset."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat(sep)


def json_text(value: Any) -> Any:
    return None if value is None else json.loads(value)


def rows_of(connector: Any, table: str) -> list[tuple]:
    return [tuple(r) for r in connector.query(f"SELECT {COLS} FROM {table} ORDER BY id")[1]]


@pytest.mark.parametrize("passthrough", [True, False])
def test_pg_to_pg_keeps_every_value(passthrough: bool, pg: Any, pg2: Any) -> None:
    load_pg(pg)
    copy(pg, pg2, "edge", "dest", passthrough=passthrough)
    got = rows_of(pg2, "dest")
    # Aware datetimes compare by instant: the offset itself is PostgreSQL's
    # (timestamptz stores the instant, not the offset it was written with).
    assert got == ROWS
    assert got[0][5].as_tuple() == N_POS.as_tuple()  # every digit, no float on the way
    assert got[0][8] == BIG and got[1][2] == "" and got[2][2] is None


def test_pg_to_mysql(pg: Any, my: Any) -> None:
    load_pg(pg)
    copy(pg, my, "edge", "dest")
    got = rows_of(my, "dest")
    expected = [
        # DATETIME(6) has no zone: a timestamptz is written as its UTC wall
        # time; BOOLEAN is tinyint(1): 1/0; JSON comes back as its text.
        (i, t, e, ts, utc(tz), n, j, None if b is None else int(b), big)
        for i, t, e, ts, tz, n, j, b, big in ROWS
    ]
    assert [r[:6] + (json_text(r[6]),) + r[7:] for r in got] == expected
    assert got[1][3] == dt.datetime(1969, 7, 20, 20, 17, 40, 1)
    assert got[1][4] == dt.datetime(1901, 1, 1, 8, 0, 0, 999999)
    assert got[1][5] == N_NEG


def test_pg_to_sqlite(pg: Any, lite: Any) -> None:
    load_pg(pg)
    copy(pg, lite, "edge", "dest")
    got = rows_of(lite, "dest")
    expected = [
        # Timestamps as ISO text (timestamptz in UTC, "+00:00"), numeric as
        # its digits (text affinity), JSON as text, booleans as 1/0.
        (
            i,
            t,
            e,
            iso(ts),
            iso(tz),
            None if n is None else str(n),
            j,
            None if b is None else int(b),
            big,
        )
        for i, t, e, ts, tz, n, j, b, big in ROWS
    ]
    assert [r[:6] + (json_text(r[6]),) + r[7:] for r in got] == expected
    assert got[0][4] == "2024-02-29 18:29:59.654321+00:00"
    assert got[1][5] == "-1234567890123456789012345678.0123456789"


def test_pg_to_csv(pg: Any, csvc: Any) -> None:
    load_pg(pg)
    copy(pg, csvc, "edge", "dest.csv")
    with (csvc.directory() / "dest.csv").open(newline="", encoding="utf-8") as handle:
        got = list(csv.reader(handle))
    assert got[0] == COLS.split(", ")
    expected = [
        # An empty cell is NULL and the empty string alike.
        [
            str(i),
            t or "",
            "",
            iso(ts) or "",
            iso(tz) or "",
            "" if n is None else str(n),
            "" if j is None else json.dumps(j, ensure_ascii=False),
            "" if b is None else ("true" if b else "false"),
            big or "",
        ]
        for i, t, e, ts, tz, n, j, b, big in ROWS
    ]
    assert got[1:] == expected
    assert got[3] == ["3", "", "", "", "", "", "", "", ""]


def test_pg_to_jsonl(pg: Any, jsonlc: Any) -> None:
    load_pg(pg)
    copy(pg, jsonlc, "edge", "dest.jsonl")
    lines = (jsonlc.directory() / "dest.jsonl").read_text(encoding="utf-8").splitlines()
    got = [json.loads(line) for line in lines]
    expected = [
        # Numeric as a JSON string (every digit), JSON as the value itself,
        # timestamps as ISO text with a "T"; NULL is null, "" stays "".
        dict(
            zip(
                COLS.split(", "),
                (
                    i,
                    t,
                    e,
                    iso(ts, "T"),
                    iso(tz, "T"),
                    None if n is None else str(n),
                    j,
                    b,
                    big,
                ),
                strict=True,
            )
        )
        for i, t, e, ts, tz, n, j, b, big in ROWS
    ]
    assert got == expected
    assert "日本" in lines[1]  # written as UTF-8, not \u escapes


PG_TYPES = [
    ("id", "bigint"),
    ("t", "text"),
    ("e", "text"),
    ("ts", "timestamp without time zone"),
    ("tz", "timestamp with time zone"),
    ("n", "numeric"),
    ("j", "jsonb"),
    ("b", "boolean"),
    ("big", "text"),
]


def types_of(pg: Any, table: str) -> list[tuple]:
    return [
        tuple(r)
        for r in pg.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_name = '{table}' ORDER BY ordinal_position"
        )[1]
    ]


@pytest.mark.parametrize("passthrough", [True, False], ids=["text-path", "typed-rows"])
@pytest.mark.parametrize("kind", ["mysql", "sqlite", "csv", "jsonl"])
def test_back_into_pg(
    kind: str, passthrough: bool, pg: Any, pg2: Any, my: Any, lite: Any, csvc: Any, jsonlc: Any
) -> None:
    """PostgreSQL → ``kind`` → PostgreSQL: MySQL→PG, SQLite→PG, CSV→PG, JSONL→PG."""
    load_pg(pg)
    middle, table = {
        "mysql": (my, "edge"),
        "sqlite": (lite, "edge"),
        "csv": (csvc, "edge.csv"),
        "jsonl": (jsonlc, "edge.jsonl"),
    }[kind]
    copy(pg, middle, "edge", table)
    copy(middle, pg2, table, "back", passthrough=passthrough)
    got = rows_of(pg2, "back")
    types = dict(PG_TYPES)
    expected = list(ROWS)
    if kind == "mysql":
        # MySQL has no zone (UTC wall time, read back as timestamp), MariaDB's
        # JSON is LONGTEXT (text), BOOLEAN is tinyint(1) (an integer 0..127).
        types.update(tz="timestamp without time zone", j="text", b="integer")
        expected = [
            (i, t, e, ts, utc(tz), n, j, None if b is None else int(b), big)
            for i, t, e, ts, tz, n, j, b, big in ROWS
        ]
        got = [r[:6] + (json_text(r[6]),) + r[7:] for r in got]
    if kind == "csv":
        # An empty cell is NULL: the empty string comes back NULL.
        expected = [r[:2] + (None,) + r[3:] for r in ROWS]
    assert types_of(pg2, "back") == list(types.items())
    assert got == expected
    assert got[0][5].as_tuple() == N_POS.as_tuple()
    assert got[0][8] == BIG
