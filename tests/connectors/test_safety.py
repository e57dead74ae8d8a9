"""Injection attempts, file paths outside DATA_ROOT, connection errors without secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.base import test_connection as check_connection
from connectors.copy import run_copy
from connectors.csv import CsvConnector
from connectors.mysql import MysqlConnector
from connectors.postgresql import PostgresqlConnector
from connectors.sqlite import SqliteConnector
from tests.connectors import data
from tests.connectors.conftest import FakeContext, copy_task
from tests.services import need_mysql, need_postgres

# Names quoting cannot make safe: refused before any SQL is built.
EVIL_TABLES = [
    'orders"; DROP TABLE orders; --',
    "orders`; DROP TABLE orders; --",
    "a.b.c",
    "orders%(x)s",
    "orders\x00",
    "",
]
EVIL_COLUMNS = ['id"); DROP TABLE orders; --', "id`", "%(x)s", "a\x00b", "a\nb"]
# Names that look like injection but quote safely: used literally.
ODD_NAMES = ["x' OR '1'='1", "a; DROP TABLE orders", "prénom total", "DROP TABLE orders --"]
FIXTURES = {"postgresql": "pg", "mysql": "my", "sqlite": "lite"}
LOADERS = {"postgresql": data.load_pg, "mysql": data.load_mysql, "sqlite": data.load_sqlite}


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("evil", EVIL_TABLES)
def test_it_refuses_injection_in_table_names(kind: str, evil: str, request: Any) -> None:
    source = request.getfixturevalue(FIXTURES[kind])
    LOADERS[kind](source)
    for src, dst in (({"table": evil}, {"table": "ok"}), ({"table": "orders"}, {"table": evil})):
        with pytest.raises(ConnectorError, match="table"):
            run_copy(FakeContext(copy_task("s", "d", src, dst)), source, source)
    assert source.query("SELECT COUNT(*) FROM orders")[1][0][0] == 500


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("evil", EVIL_COLUMNS)
def test_it_refuses_injection_in_column_names(kind: str, evil: str, request: Any) -> None:
    source = request.getfixturevalue(FIXTURES[kind])
    LOADERS[kind](source)
    attempts = [
        [{"name": "s", "function": "select", "params": {"columns": [evil]}}],
        [{"name": "r", "function": "rename", "params": {"mapping": {"id": evil}}}],
        [{"name": "f", "function": "filter", "params": {"where": [[evil, "=", 1]]}}],
        [{"name": "a", "function": "aggregate", "params": {"metrics": {evil: ["count", "*"]}}}],
    ]
    for transformations in attempts:
        task = copy_task(
            "s", "d", {"table": "orders"}, {"table": "ok"}, transformations=transformations
        )
        with pytest.raises(ConnectorError, match="identifier|unknown column"):
            run_copy(FakeContext(task), source, source)
    assert source.query("SELECT COUNT(*) FROM orders")[1][0][0] == 500


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("odd", ODD_NAMES)
def test_it_quotes_odd_names_literally(kind: str, odd: str, request: Any) -> None:
    source = request.getfixturevalue(FIXTURES[kind])
    LOADERS[kind](source)
    task = copy_task(
        "s",
        "d",
        {"table": "orders"},
        {"table": odd},
        transformations=[
            {"name": "s", "function": "select", "params": {"columns": ["id"]}},
            {"name": "r", "function": "rename", "params": {"mapping": {"id": odd}}},
        ],
    )
    run_copy(FakeContext(task), source, source)
    q = source.dialect.quote
    assert source.query(f"SELECT COUNT({q(odd)}) FROM {source.dialect.table(odd)}")[1][0][0] == 500
    assert source.query("SELECT COUNT(*) FROM orders")[1][0][0] == 500


def test_it_binds_filter_values(pg: Any, pg2: Any) -> None:
    data.load_pg(pg)
    evil = "x'; DROP TABLE orders; --"
    task = copy_task(
        "s",
        "d",
        {"table": "orders"},
        {"table": "ok"},
        transformations=[
            {
                "name": "f",
                "function": "filter",
                "params": {"where": [["name", "=", {"param": "who"}]]},
            }
        ],
    )
    run_copy(FakeContext(task, params={"who": evil}), pg, pg2)
    assert pg.query("SELECT COUNT(*) FROM orders")[1][0][0] == 500
    assert pg2.query("SELECT COUNT(*) FROM ok")[1][0][0] == 0


@pytest.mark.parametrize("path", ["../outside", "/etc", "a/../../x", "~/x"])
def test_it_refuses_csv_directories_outside_data_root(path: str, data_root: Path) -> None:
    connector = CsvConnector(name="c", config={"path": path}, data_root=data_root)
    with pytest.raises(ConnectorError):
        connector.directory()
    assert check_connection(connector)["ok"] is False


@pytest.mark.parametrize("table", ["../x.csv", "/etc/passwd", "sub/x.csv", "..", ""])
def test_it_refuses_csv_files_outside_the_directory(table: str, csvc: Any) -> None:
    with pytest.raises(ConnectorError):
        csvc.file(table)


def test_it_refuses_symlinks_out_of_data_root(data_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n1\n")
    (data_root / "link").symlink_to(outside)
    connector = CsvConnector(name="c", config={"path": "link"}, data_root=data_root)
    with pytest.raises(ConnectorError, match="outside DATA_ROOT"):
        connector.directory()
    (data_root / "csv").mkdir()
    os.symlink(outside / "secret.csv", data_root / "csv" / "leak.csv")
    inside = CsvConnector(name="c", config={"path": "csv"}, data_root=data_root)
    with pytest.raises(ConnectorError, match="outside DATA_ROOT"):
        inside.file("leak.csv")


def test_it_refuses_sqlite_paths_outside_data_root(data_root: Path) -> None:
    with pytest.raises(ConnectorError):
        SqliteConnector(name="s", config={"path": "../x.sqlite3"}, data_root=data_root).test()


def test_it_reports_an_unreachable_host_as_transient_without_the_password() -> None:
    need_postgres()
    secret = "s3cr3t-Pa55word"
    for connector in (
        PostgresqlConnector(
            name="p", config={"host": "127.0.0.1", "port": 1, "database": "x", "password": secret}
        ),
        MysqlConnector(
            name="m", config={"host": "127.0.0.1", "port": 1, "database": "x", "password": secret}
        ),
    ):
        with pytest.raises(ConnectorError) as caught:
            connector.test()
        assert caught.value.transient is True
        assert "127.0.0.1" in str(caught.value) and secret not in str(caught.value)
        result = check_connection(connector)
        assert (
            result["ok"] is False
            and secret not in result["error"]
            and "127.0.0.1:1" in result["error"]
        )


def test_it_reports_bad_credentials_as_permanent_without_the_password() -> None:
    need_postgres()
    need_mysql()
    secret = "s3cr3t-Pa55word"
    pg = PostgresqlConnector(
        name="p",
        config={
            "host": "127.0.0.1",
            "database": "postgres",
            "username": "no_such_role",
            "password": secret,
        },
    )
    my = MysqlConnector(
        name="m",
        config={"host": "127.0.0.1", "database": "mysql", "username": "root", "password": secret},
    )
    for connector in (pg, my):
        with pytest.raises(ConnectorError) as caught:
            connector.query("SELECT 1")
        assert caught.value.transient is False
        assert secret not in str(caught.value)
        assert "127.0.0.1" in str(caught.value)
    # The connection test names the cause in fixed words, not the server's (SPEC §10).
    assert str(check_connection(pg)["error"]).endswith(": database or user does not exist")
    assert str(check_connection(my)["error"]).endswith(": authentication failed")


def test_it_refuses_link_local_hosts() -> None:
    for cls in (PostgresqlConnector, MysqlConnector):
        connector = cls(name="x", config={"host": "169.254.169.254", "database": "x"})
        result = check_connection(connector)
        assert result["ok"] is False and "link-local" in result["error"]


def test_it_reports_missing_tables_and_syntax_errors_as_permanent(
    pg: Any, my: Any, lite: Any
) -> None:
    for connector in (pg, my, lite):
        with pytest.raises(ConnectorError) as missing:
            connector.query("SELECT * FROM no_such_table")
        assert missing.value.transient is False
        with pytest.raises(ConnectorError) as syntax:
            connector.execute("SELEC 1")
        assert syntax.value.transient is False


def test_it_keeps_pool_statistics(pg: Any) -> None:
    from connectors import pools

    pg.query("SELECT 1")
    stats = pools.stats()
    assert stats and {"name", "size", "in_use", "waiting"} <= set(stats[0])
    # Without a stored connection the pool gets an opaque name: never the
    # user, host or database of its settings (SPEC §10).
    assert any(s["name"].startswith("pool-") for s in stats)
    for secretish in (pg.config["database"], pg.config["host"], "password"):
        assert all(secretish not in str(s) for s in stats)
