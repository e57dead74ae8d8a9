"""The fast write paths of copies (issue 12 item 4), against the real MariaDB.

MySQL destinations take row batches by ``LOAD DATA LOCAL INFILE`` fed from
memory: values of every kind come back as they went in, a value the column
cannot hold fails the batch (LOCAL would otherwise turn it into a warning
and store something else), and no statement but the writer's own can make
the client send data: a user's SQL naming a client file gets an error and
the file's content never reaches the server.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.base import ConnectorError
from connectors.copy.overlap import prefetched
from connectors.mysql import LoadDataWriter, MysqlConnector
from connectors.types import Column

COLUMNS = [
    Column("id", "integer"),
    Column("name", "text"),
    Column("amount", "numeric", "decimal(12,2)"),
    Column("at", "timestamp"),
    Column("day", "date"),
    Column("flag", "boolean"),
    Column("score", "float"),
    Column("doc", "json"),
]
DDL = (
    "CREATE TABLE t (id int, name longtext, amount decimal(12,2), at datetime(6), day date,"
    " flag tinyint(1), score double, doc json)"
)


def test_load_data_round_trips_every_kind_of_value(my: MysqlConnector) -> None:
    my.execute(DDL)
    rows = [
        (
            1,
            "tab\there\nnewline \\ backslash \\N not null \r é 😀",
            Decimal("12345.67"),
            dt.datetime(2024, 3, 1, 12, 30, 1, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.date(2024, 2, 29),
            True,
            1.5e-7,
            {"a": [1, "x\ty"]},
        ),
        (2, None, None, None, None, None, None, None),
        (
            3,
            "",
            Decimal("-0.01"),
            dt.datetime(1999, 12, 31, 23, 59, 59),
            dt.date(1, 1, 1),
            False,
            -2.0,
            [1, 2],
        ),
        (4, "x" * 200_000, Decimal("0"), None, None, None, 1e300, None),
    ]
    with my.connect() as conn:
        writer = my.row_writer(conn, "t", COLUMNS)
        assert isinstance(writer, LoadDataWriter)
        writer(rows[:2])
        writer(rows[2:])
        writer.close()
    got = my.query("SELECT * FROM t ORDER BY id")[1]
    assert got[0][:3] == (1, rows[0][1], Decimal("12345.67"))
    assert got[0][3] == dt.datetime(2024, 3, 1, 10, 30, 1, 250000)  # stored in UTC
    assert got[0][4:7] == (dt.date(2024, 2, 29), 1, 1.5e-7)
    assert json.loads(got[0][7]) == {"a": [1, "x\ty"]}
    assert got[1] == (2, None, None, None, None, None, None, None)
    assert got[2][1:7] == (
        "",
        Decimal("-0.01"),
        dt.datetime(1999, 12, 31, 23, 59, 59),
        dt.date(1, 1, 1),
        0,
        -2.0,
    )
    assert json.loads(got[2][7]) == [1, 2]
    assert got[3][1] == "x" * 200_000 and got[3][6] == 1e300


def test_a_value_the_column_cannot_hold_fails_the_batch(my: MysqlConnector) -> None:
    my.execute("CREATE TABLE t (id int, name varchar(3))")
    with pytest.raises(ConnectorError, match="(?i)out of range|data too long|truncat") as info:
        with my.connect() as conn:
            writer = my.row_writer(conn, "t", [Column("id", "integer"), Column("name", "text")])
            writer([(1, "ok")])
            try:
                writer([(5_000_000_000, "abc")])
            except Exception as exc:
                raise my.map_error(exc) from exc
    assert "5000000000" in str(info.value) or "id" in str(info.value)
    # The transaction rolled back: not even the good batch stayed.
    assert my.query("SELECT COUNT(*) FROM t")[1][0][0] == 0
    with pytest.raises(ConnectorError, match="(?i)data too long|truncat"):
        with my.connect() as conn:
            writer = my.row_writer(conn, "t", [Column("id", "integer"), Column("name", "text")])
            try:
                writer([(1, "four")])
            except Exception as exc:
                raise my.map_error(exc) from exc
    assert my.query("SELECT COUNT(*) FROM t")[1][0][0] == 0


def test_user_sql_cannot_load_data_local(my: MysqlConnector, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret-line\n")
    my.execute("CREATE TABLE t (line text)")
    for statement in (
        f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE t",
        f"LOAD DATA LOCAL INFILE '{secret}' IGNORE INTO TABLE t",
    ):
        with pytest.raises(ConnectorError, match="LOAD DATA LOCAL INFILE is not allowed"):
            my.execute(statement)
    # A name a row writer used before is no key either: each is used once.
    with my.connect() as conn:
        writer = my.row_writer(conn, "t", [Column("line", "text")])
        writer([("written",)])
        assert conn.infile is None
    with pytest.raises(ConnectorError, match="not allowed"):
        my.execute(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE t")
    assert my.query("SELECT line FROM t")[1] == [("written",)]
    # The pooled connection still works after a refusal.
    assert my.query("SELECT 1")[1] == [(1,)]


def test_prefetched_reads_ahead_in_order_and_hands_over_errors() -> None:
    def batches(fail_at: int | None) -> Iterator[list[tuple]]:
        for i in range(5):
            if i == fail_at:
                raise RuntimeError(f"source broke at {i}")
            yield [(i, threading.current_thread().name)]

    got = list(prefetched(batches(None)))
    assert [b[0][0] for b in got] == [0, 1, 2, 3, 4]
    assert {b[0][1] for b in got} == {"copy-reader"}  # read by the reader thread
    seen = []
    with pytest.raises(RuntimeError, match="source broke at 3"):
        for batch in prefetched(batches(3)):
            seen.append(batch[0][0])
    assert seen == [0, 1, 2]


def test_closing_prefetched_early_stops_the_reader_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[list[tuple]]:
        try:
            i = 0
            while True:
                i += 1
                yield [(i,)]
        finally:
            closed.set()

    before = threading.active_count()
    with closing(prefetched(endless(), depth=2)) as batches:
        for batch in batches:
            if batch[0][0] == 3:
                break
    assert closed.is_set()  # the reader closed the source before close() returned
    assert threading.active_count() == before


def test_a_server_refusing_local_gets_inserts(my: MysqlConnector) -> None:
    """local_infile=OFF (MySQL 8's default): the writer falls back to INSERT, same rows."""
    my.execute("CREATE TABLE t (id int, name varchar(20))")
    columns = [Column("id", "integer"), Column("name", "text")]
    my.execute("SET GLOBAL local_infile = 0")
    try:
        with my.connect() as conn:
            writer = my.row_writer(conn, "t", columns)
            writer([(1, "a"), (2, None)])
            assert isinstance(writer, LoadDataWriter) and writer.insert
            writer([(3, "c")])
    finally:
        my.execute("SET GLOBAL local_infile = 1")
    assert sorted(my.query("SELECT id, name FROM t")[1]) == [(1, "a"), (2, None), (3, "c")]
