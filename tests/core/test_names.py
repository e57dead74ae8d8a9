"""One name rule (core.names): the definition checker and the connectors answer alike.

The connectors apply the rule again right before building SQL, so a table
name the definition would refuse is refused against a real database too,
even when the definition check is bypassed (a saved definition read back,
a direct call).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from connectors import pools
from connectors.base import ConnectorError, check_identifier, split_table
from connectors.postgresql import PostgresqlConnector
from core.names import identifier_problem, table_problem
from tests.factories import pg_config
from tests.services import need_postgres, scratch_postgres_db

UNSAFE_TABLES = [
    "",
    "../etc/passwd",
    "dir/orders",
    "dir\\orders",
    "a..b",
    "a.b.c",
    'staging."x',
    "s" * 64 + ".t",
    "a%b",
    "a\nb",
    "a\u2028b",
]
SAFE_TABLES = ["orders", "staging.orders", "orders.csv", "my orders", "é" * 31, "a;b", "o'rders"]


@pytest.mark.parametrize("table", UNSAFE_TABLES)
def test_it_refuses_an_unsafe_table_in_the_connectors_and_the_definition(table: str) -> None:
    problem = table_problem(table)
    assert problem
    with pytest.raises(ConnectorError, match="is not safe") as caught:
        split_table(table)
    # The connector's message carries the shared rule's own words.
    assert problem in str(caught.value)


@pytest.mark.parametrize("table", SAFE_TABLES)
def test_it_accepts_a_safe_table_in_both(table: str) -> None:
    assert table_problem(table) is None
    schema, name = split_table(table)
    assert (f"{schema}.{name}" if schema else name) == table


@pytest.mark.parametrize("name", ["", 'a"b', "a`b", "a%b", "a\x00b", "a\x7fb", "x" * 64, 3])
def test_it_refuses_an_unsafe_column_in_both(name: Any) -> None:
    problem = identifier_problem(name)
    assert problem
    with pytest.raises(ConnectorError, match="not a safe identifier"):
        check_identifier(name)


def test_it_refuses_a_path_like_table_against_real_postgresql() -> None:
    """Before the rules were one, the connector read a table named ``a/b``."""
    need_postgres()
    with scratch_postgres_db() as url:
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute('CREATE TABLE "a/b" (id int)')
            raw.execute('CREATE TABLE "my orders" (id int)')
        connector = PostgresqlConnector(name="pg", config=pg_config(url))
        with connector.connect(read_only=True) as conn:
            columns = connector.table_columns(conn, "my orders")
            assert columns is not None and [c.name for c in columns] == ["id"]
            with pytest.raises(ConnectorError, match="must not contain '/'"):
                connector.table_columns(conn, "a/b")
        pools.close_all()
