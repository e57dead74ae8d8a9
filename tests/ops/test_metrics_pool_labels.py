"""``/metrics`` names connector pools by connection id (SPEC §10, issue 10 item 10).

A pool is used for real against PostgreSQL, as a login with a recognisable
user name and database name; the scrape must carry neither, nor the host or
the password, but the connection's id.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.test import Client

from connectors import pools
from connectors.services import connection_create
from tests.ops.conftest import named, scrape
from tests.services import need_postgres, scratch_postgres_db, unique_name


@pytest.fixture
def login() -> Iterator[dict[str, str]]:
    """A role and a database named recognisably, dropped afterwards."""
    admin = need_postgres()
    role = unique_name("dd_metricsuser")
    password = unique_name("pw")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    try:
        with scratch_postgres_db() as db_url:
            yield {"username": role, "password": password, "database": db_url.rsplit("/", 1)[1]}
            pools.close_all()  # before the database is dropped
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.django_db
def test_it_labels_pools_by_connection_id_only(login: dict[str, str]) -> None:
    connection = connection_create(
        name="shop_metrics",
        kind="postgresql",
        config={"host": "127.0.0.1", "port": 5432, **login},
    )
    assert connection.connector().query("SELECT current_user")[1] == [(login["username"],)]

    response = Client().get("/metrics")
    text = response.content.decode()
    pool_lines = [line for line in text.splitlines() if "datadog_connector_pool_" in line]
    assert any(str(connection.pk) in line for line in pool_lines), pool_lines
    for forbidden in (login["username"], login["database"], login["password"], "127.0.0.1"):
        assert forbidden not in text
    sizes = named(scrape(), "datadog_connector_pool_size")
    assert any(dict(labels)["pool"] == str(connection.pk) for labels in sizes)
