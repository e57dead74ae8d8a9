"""NUL (0x00) in text: PostgreSQL refuses it naming the column, the others keep it.

PostgreSQL text cannot hold NUL, so a copy into PostgreSQL fails naming the
destination and the column, on the text path and the typed-row path alike,
and writes nothing. MySQL, SQLite, CSV and JSONL store it: it round-trips.
Real servers and files.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.copy import run_copy
from connectors.http import HttpConnector
from tests.connectors.conftest import FakeContext, copy_task
from tests.rest_api import RestApi

NOTE = "a\x00b"
# A Python step (on the batch path) makes the copy take typed rows.
STEP = [{"name": "up", "function": "rename", "params": {"mapping": {"id": "id"}}}]


def _sqlite_source(data_root: Path) -> None:
    path = data_root / "db" / "test.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, note TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "ok"), (2, NOTE), (3, None)])
    conn.commit()
    conn.close()


def _copy(src: Any, dst: Any, source: dict[str, Any], *, typed: bool, into: str = "dst") -> Any:
    task = copy_task("src", "dst", source, {"table": into}, transformations=STEP if typed else [])
    return run_copy(FakeContext(task), src, dst, pushdown=False)


def _refused(pg: Any, src: Any, source: dict[str, Any], typed: bool, *, row: bool = True) -> None:
    pg.execute("CREATE TABLE dst (id bigint, note text)")
    with pytest.raises(ConnectorError) as err:
        _copy(src, pg, source, typed=typed)
    message = str(err.value)
    assert message.startswith(f"destination {pg.where()}: "), message
    assert 'column "note"' in message and "NUL" in message, message
    assert "(row 2 of its batch)" in message, message
    assert pg.query("SELECT COUNT(*) FROM dst")[1] == [(0,)]


@pytest.mark.parametrize("typed", [False, True])
def test_pg_refuses_nul_from_sqlite(typed: bool, lite: Any, pg: Any, data_root: Path) -> None:
    _sqlite_source(data_root)
    _refused(pg, lite, {"table": "t"}, typed)


@pytest.mark.parametrize("typed", [False, True])
def test_pg_refuses_nul_from_csv(typed: bool, csvc: Any, pg: Any) -> None:
    (csvc.directory() / "t.csv").write_text(f"id,note\n1,ok\n2,{NOTE}\n")
    _refused(pg, csvc, {"table": "t.csv"}, typed)


@pytest.mark.parametrize("typed", [False, True])
def test_pg_refuses_nul_from_jsonl(typed: bool, jsonlc: Any, pg: Any) -> None:
    lines = [{"id": 1, "note": "ok"}, {"id": 2, "note": NOTE}]
    (jsonlc.directory() / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    _refused(pg, jsonlc, {"table": "t.jsonl"}, typed)


@pytest.mark.parametrize("typed", [False, True])
def test_pg_refuses_nul_from_mysql(typed: bool, my: Any, pg: Any) -> None:
    my.execute("CREATE TABLE t (id bigint, note longtext)")
    my.execute("INSERT INTO t VALUES (1, 'ok'), (2, CONCAT('a', CHAR(0), 'b'))")
    _refused(pg, my, {"table": "t"}, typed)


def test_mysql_keeps_nul(lite: Any, my: Any, data_root: Path) -> None:
    _sqlite_source(data_root)
    _copy(lite, my, {"table": "t"}, typed=False)
    assert my.query("SELECT note FROM dst ORDER BY id")[1] == [("ok",), (NOTE,), (None,)]


def test_sqlite_keeps_nul(pg: Any, lite: Any, my: Any) -> None:
    my.execute("CREATE TABLE t (id bigint, note longtext)")
    my.execute("INSERT INTO t VALUES (1, 'ok'), (2, CONCAT('a', CHAR(0), 'b'))")
    _copy(my, lite, {"table": "t"}, typed=False)
    assert lite.query("SELECT note FROM dst ORDER BY id")[1] == [("ok",), (NOTE,)]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_files_keep_nul(kind: str, lite: Any, request: Any, data_root: Path) -> None:
    _sqlite_source(data_root)
    files = request.getfixturevalue(f"{kind}c")
    _copy(lite, files, {"table": "t"}, typed=False, into=f"out.{kind}")
    # Read back through the file connector as a source, into SQLite.
    _copy(files, lite, {"table": f"out.{kind}"}, typed=False, into="back")
    got = lite.query("SELECT note FROM back ORDER BY id")[1]
    assert got == [("ok",), (NOTE,), (None,)]


def test_pg_refuses_nul_from_an_http_source(settings: Any, pg: Any) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    with RestApi([{"id": 1, "note": "ok"}, {"id": 2, "note": NOTE}]) as server:
        api = HttpConnector(name="api", config={"base_url": server.base_url})
        _refused(pg, api, {"path": "/all"}, typed=False)
