"""``sql`` and ``check`` tasks on every SQL kind; cancel and timeout stop the query."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connectors.base import ConnectorError
from pipelines.tasktypes.base import TaskCancelled, TaskFailed
from pipelines.tasktypes.check import CheckTask
from pipelines.tasktypes.sql import SqlTask
from tests.connectors import data
from tests.connectors.conftest import FakeContext

KINDS = ["postgresql", "mysql", "sqlite"]
LOADERS = {"postgresql": data.load_pg, "mysql": data.load_mysql, "sqlite": data.load_sqlite}
FIXTURES = {"postgresql": "pg", "mysql": "my", "sqlite": "lite"}


def _loaded(kind: str, request: Any) -> Any:
    connector = request.getfixturevalue(FIXTURES[kind])
    LOADERS[kind](connector)
    return connector


@pytest.mark.parametrize("kind", KINDS)
def test_it_runs_sql_statements_with_bound_parameters(kind: str, request: Any) -> None:
    db = _loaded(kind, request)
    task = {
        "name": "s",
        "type": "sql",
        "connection": "db",
        "sql": [
            "CREATE TABLE totals (n INTEGER, label VARCHAR(50))",
            "INSERT INTO totals SELECT COUNT(*), %(label)s FROM orders WHERE amount >="
            " %(min_amount)s",
            "UPDATE totals SET label = 'x''; DROP TABLE orders; --' WHERE n < 0",
        ],
    }
    ctx = FakeContext(task, {"db": db}, params={"label": "it's 100%", "min_amount": 500})
    SqlTask().run(ctx)
    expected = db.query("SELECT COUNT(*) FROM orders WHERE amount >= 500")[1][0][0]
    assert db.query("SELECT n, label FROM totals")[1] == [(expected, "it's 100%")]
    assert ctx.metrics["statements"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_it_rolls_back_every_statement_when_one_fails(kind: str, request: Any) -> None:
    db = _loaded(kind, request)
    task = {
        "name": "s",
        "type": "sql",
        "connection": "db",
        "sql": ["DELETE FROM orders", "SELECT * FROM missing_table"],
    }
    with pytest.raises(ConnectorError) as caught:
        SqlTask().run(FakeContext(task, {"db": db}))
    assert caught.value.transient is False
    assert db.query("SELECT COUNT(*) FROM orders")[1][0][0] == 500


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_unknown_parameters(kind: str, request: Any) -> None:
    db = request.getfixturevalue(FIXTURES[kind])
    task = {"name": "s", "type": "sql", "connection": "db", "sql": "SELECT %(nope)s"}
    with pytest.raises(ConnectorError, match="nope"):
        SqlTask().run(FakeContext(task, {"db": db}))


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_it_stops_the_query_in_the_database_on_cancel(kind: str, request: Any) -> None:
    db = request.getfixturevalue(FIXTURES[kind])
    sleep = "SELECT pg_sleep(30)" if kind == "postgresql" else "SELECT SLEEP(30)"
    task = {"name": "s", "type": "sql", "connection": "db", "sql": sleep}

    class Cancelling(FakeContext):
        cancelled = False

        def check(self) -> None:
            if self.cancelled:
                raise TaskCancelled("cancelled by user")

    ctx = Cancelling(task, {"db": db})
    timer = threading.Timer(1.0, lambda: setattr(ctx, "cancelled", True))
    timer.start()
    started = time.monotonic()
    with pytest.raises(TaskCancelled):
        SqlTask().run(ctx)
    assert time.monotonic() - started < 8
    if kind == "postgresql":
        active = db.query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%%' AND"
            " state = 'active'",
            {},
        )
        assert active[1][0][0] == 0


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_it_times_out_a_long_statement_as_transient(kind: str, request: Any) -> None:
    db = request.getfixturevalue(FIXTURES[kind])
    sql = {
        "postgresql": "SELECT pg_sleep(30)",
        "mysql": "SELECT SLEEP(30) FROM (SELECT 1) AS x WHERE 1 = 1",
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT"
        " COUNT(*) FROM c",
    }[kind]
    task = {"name": "s", "type": "sql", "connection": "db", "sql": sql}
    started = time.monotonic()
    try:
        SqlTask().run(FakeContext(task, {"db": db}, timeout=1.5))
    except ConnectorError as exc:
        assert exc.transient is True
    else:
        # MariaDB's SLEEP() returns 1 when interrupted instead of failing.
        assert kind == "mysql"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("kind", KINDS)
def test_it_passes_checks(kind: str, request: Any) -> None:
    db = _loaded(kind, request)
    task = {
        "name": "c",
        "type": "check",
        "connection": "db",
        "table": "orders",
        "checks": [
            {"row_count": {"min": 1, "max": 1000}},
            {"not_null": ["id", "name"]},
            {"unique": ["id"]},
            {"sql": "SELECT id FROM orders WHERE amount < %(floor)s"},
        ],
    }
    ctx = FakeContext(task, {"db": db}, params={"floor": 0})
    CheckTask().run(ctx)
    assert ctx.metrics["checks_failed"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_it_fails_checks_saying_which_and_how_many(kind: str, request: Any) -> None:
    db = _loaded(kind, request)
    task = {
        "name": "c",
        "type": "check",
        "connection": "db",
        "table": "orders",
        "checks": [
            {"row_count": {"min": 1000}},
            {"not_null": ["email"]},
            {"unique": ["account_id"]},
            {"sql": "SELECT id FROM orders WHERE id <= 3"},
            {"row_count": {"max": 10}},
        ],
    }
    with pytest.raises(TaskFailed) as caught:
        CheckTask().run(FakeContext(task, {"db": db}))
    message = str(caught.value)
    assert "checks[0] row_count: 500 rows, fewer than min 1000" in message
    assert "checks[1] not_null email: 29 rows with NULL" in message
    assert "checks[2] unique [account_id]: 97 values appear more than once" in message
    assert "checks[3] sql: returned 3 rows" in message
    assert "checks[4] row_count: 500 rows, more than max 10" in message


def test_it_refuses_unsafe_check_names(pg: Any) -> None:
    data.load_pg(pg)
    task = {
        "name": "c",
        "type": "check",
        "connection": "db",
        "table": "orders",
        "checks": [{"not_null": ['id" IS NULL OR "1']}],
    }
    with pytest.raises(ConnectorError, match="not a safe identifier"):
        CheckTask().run(FakeContext(task, {"db": pg}))
