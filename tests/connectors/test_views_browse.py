"""The connection browser: tables, columns and 20 sample rows for users who may use it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any
from urllib.parse import urlencode

import pytest

from accounts.actor import Actor
from accounts.models import AuditEvent
from accounts.permissions import Level
from connectors import pools
from connectors.browse import MAX_VALUE_CHARS, SAMPLE_ROWS
from connectors.models import Connection
from connectors.mysql import MysqlConnector
from connectors.services import connection_create
from tests.factories import pg_config, share
from tests.http import HTMX

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Value-never-shown"
LONG = "x" * 5000


def _url(conn: Connection, table: str | None = None) -> str:
    return f"/connections/{conn.pk}/browse" + (f"?{urlencode({'table': table})}" if table else "")


@pytest.fixture
def lite(developer: Any, settings: Any, tmp_path: Any) -> Connection:
    """An SQLite connection with a table of 30 rows (one long value) and a view."""
    settings.DATA_ROOT = tmp_path
    db = sqlite3.connect(tmp_path / "shop.sqlite")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT, amount REAL)")
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        [(i, LONG if i == 1 else f"note {i}", i * 1.5) for i in range(1, 31)],
    )
    db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    db.commit()
    db.close()
    return connection_create(
        name="shop_lite", kind="sqlite", config={"path": "shop.sqlite"}, actor=Actor.of(developer)
    )


def test_sqlite_tables_columns_and_twenty_rows(
    lite: Connection, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    page = client.get(f"/connections/{lite.pk}").content.decode()
    assert 'id="browse-connection"' in page
    listing = client.get(_url(lite), **HTMX)
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "<html" not in body and 'data-table="customers"' in body
    assert 'data-table="orders"' in body and "sqlite_" not in body
    sample = client.get(_url(lite, "orders"), **HTMX).content.decode()
    rows = sample.split('id="sample-rows"')[1]
    assert rows.count("<tr>") == 1 + SAMPLE_ROWS  # the header and 20 rows
    assert "note 20" in sample and "note 21" not in sample
    assert LONG not in sample and "x" * (MAX_VALUE_CHARS - 1) + "…" in sample
    assert ">amount<" in sample and "REAL" in sample
    full = client.get(_url(lite, "orders"))
    assert full.status_code == 200 and b"<html" in full.content and b"note 20" in full.content
    event = AuditEvent.objects.filter(action="browse").order_by("-pk").first()
    assert event is not None and event.details["table"] == "orders" and event.details["ok"]


def test_a_missing_or_unsafe_table_is_an_error_on_the_page(
    lite: Connection, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    missing = client.get(_url(lite, "nope"), **HTMX)
    assert missing.status_code == 200
    assert b"table &#x27;nope&#x27; does not exist" in missing.content
    assert b'data-table="orders"' in missing.content  # the list still shows
    odd = client.get(_url(lite, 'orders"; DROP TABLE orders; --'), **HTMX)
    assert b"is not safe: must not contain a double quote" in odd.content
    assert b"note 2" in client.get(_url(lite, "orders"), **HTMX).content
    assert AuditEvent.objects.filter(action="browse", details__ok=False).count() == 2
    assert AuditEvent.objects.filter(action="browse", details__ok=True).count() == 1


def test_only_users_who_may_use_it_browse(
    lite: Connection, other_developer: Any, viewer: Any, operator: Any, client_for: Any
) -> None:
    assert client_for(other_developer).get(_url(lite)).status_code == 404
    share(lite, viewer, Level.VIEW)
    assert client_for(viewer).get(_url(lite, "orders")).status_code == 403
    page = client_for(viewer).get(f"/connections/{lite.pk}").content
    assert b"browse-connection" not in page
    # An operator tests a shared connection but may not use it: no browsing.
    share(lite, operator, Level.OPERATE)
    assert client_for(operator).get(_url(lite)).status_code == 403
    share(lite, other_developer, Level.OPERATE)
    ok = client_for(other_developer).get(_url(lite, "orders"), **HTMX)
    assert ok.status_code == 200 and b"note 3" in ok.content
    assert client_for(other_developer).post(_url(lite)).status_code == 405


def test_files_csv_and_jsonl(developer: Any, settings: Any, tmp_path: Any, client_for: Any) -> None:
    settings.DATA_ROOT = tmp_path
    (tmp_path / "in").mkdir()
    lines = ["id,city"] + [f"{i},city {i}" for i in range(50)]
    (tmp_path / "in" / "cities.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "in" / "notes.txt").write_text("not a table\n")
    (tmp_path / "js").mkdir()
    rows = [json.dumps({"id": i, "tags": ["a", "b"], "name": f"n{i}"}) for i in range(3)]
    (tmp_path / "js" / "events.jsonl").write_text("\n".join(rows) + "\n")
    files = connection_create(
        name="files", kind="csv", config={"path": "in"}, actor=Actor.of(developer)
    )
    events = connection_create(
        name="events", kind="jsonl", config={"path": "js"}, actor=Actor.of(developer)
    )
    client = client_for(developer)
    listing = client.get(_url(files), **HTMX).content.decode()
    assert 'data-table="cities.csv"' in listing and "notes.txt" not in listing
    sample = client.get(_url(files, "cities.csv"), **HTMX).content.decode()
    assert "city 19" in sample and "city 20" not in sample
    outside = client.get(_url(files, "../js/events.jsonl"), **HTMX).content.decode()
    assert "must be a file name" in outside and "n1" not in outside
    sample = client.get(_url(events, "events.jsonl"), **HTMX).content.decode()
    assert "n2" in sample and ">tags<" in sample


@pytest.fixture
def pg_conn(developer: Any, pg_url: str) -> tuple[Connection, str]:
    conn = connection_create(
        name="shop_pg",
        kind="postgresql",
        # The server trusts local users: the password is stored, never shown.
        config={**pg_config(pg_url), "password": SECRET},
        actor=Actor.of(developer),
    )
    return conn, pg_url


def test_postgresql_schemas_tables_and_rows(
    pg_conn: tuple[Connection, str], developer: Any, client_for: Any
) -> None:
    import psycopg

    conn, url = pg_conn
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE SCHEMA sales")
        db.execute("CREATE TABLE sales.orders (id int, payload jsonb, raw bytea)")
        db.execute(
            "INSERT INTO sales.orders SELECT g, jsonb_build_object('n', g), '\\x0102'::bytea"
            " FROM generate_series(1, 25) g"
        )
        db.execute(
            "CREATE TABLE public.wide AS SELECT " + ", ".join(f"{i} AS c{i}" for i in range(60))
        )
    client = client_for(developer)
    listing = client.get(_url(conn), **HTMX).content.decode()
    assert "<code>sales</code>" in listing and 'data-table="sales.orders"' in listing
    assert 'data-table="public.wide"' in listing and "pg_catalog" not in listing
    sample = client.get(_url(conn, "sales.orders"), **HTMX).content.decode()
    assert "&quot;n&quot;: 20" in sample and "&quot;n&quot;: 21" not in sample
    assert "&lt;2 bytes&gt;" in sample and "jsonb" in sample
    wide = client.get(_url(conn, "public.wide"), **HTMX).content.decode()
    assert ">c49<" in wide and ">c50<" not in wide
    for page in (listing, sample, client.get(f"/connections/{conn.pk}").content.decode()):
        assert SECRET not in page


def test_mysql_tables_and_rows(my: MysqlConnector, developer: Any, client_for: Any) -> None:
    with my.connect() as db, db.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20))")
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s)", [(i, f"item {i}") for i in range(1, 40)]
        )
    conn = connection_create(
        name="shop_my", kind="mysql", config=my.config, actor=Actor.of(developer)
    )
    client = client_for(developer)
    try:
        listing = client.get(_url(conn), **HTMX).content.decode()
        assert 'data-table="items"' in listing and "information_schema" not in listing
        sample = client.get(_url(conn, "items"), **HTMX).content.decode()
        assert "item 20" in sample and "item 21" not in sample and "varchar(20)" in sample
    finally:
        pools.close_all()


def test_an_unreachable_server_is_named_without_secrets(developer: Any, client_for: Any) -> None:
    conn = connection_create(
        name="gone",
        kind="postgresql",
        config={
            "host": "127.0.0.1",
            "port": 1,
            "database": "x",
            "username": "u",
            "password": SECRET,
        },
        actor=Actor.of(developer),
    )
    answer = client_for(developer).get(_url(conn), **HTMX)
    assert answer.status_code == 200 and b"Could not read" in answer.content
    assert SECRET.encode() not in answer.content


def test_kinds_without_tables_offer_no_browser(developer: Any, client_for: Any) -> None:
    conn = connection_create(
        name="api",
        kind="http",
        config={"base_url": "https://api.example.com"},
        actor=Actor.of(developer),
    )
    client = client_for(developer)
    assert b"browse-connection" not in client.get(f"/connections/{conn.pk}").content
    answer = client.get(_url(conn), **HTMX)
    assert b"http connections cannot be browsed" in answer.content
