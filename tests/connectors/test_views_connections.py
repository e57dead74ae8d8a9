"""Connection pages: list, form per kind, write-only secrets, test, share, delete."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Level
from connectors.models import Connection
from connectors.services import connection_create
from tests.factories import share
from tests.http import HTMX

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Value-never-shown"


@pytest.fixture
def pg(developer: Any) -> Connection:
    """A PostgreSQL connection with a password (never connected to here)."""
    return connection_create(
        name="shop_pg",
        kind="postgresql",
        actor=Actor.of(developer),
        config={
            "host": "db.internal",
            "port": 5432,
            "database": "shop",
            "username": "etl",
            "password": SECRET,
        },
    )


def test_it_lists_visible_connections_only(
    pg: Any, developer: Any, other_developer: Any, client_for: Any
) -> None:
    content = client_for(developer).get("/connections").content.decode()
    assert "shop_pg" in content and "db.internal:5432/shop" in content
    other = client_for(other_developer).get("/connections")
    assert other.status_code == 200 and b"shop_pg" not in other.content
    fragment = client_for(developer).get(
        "/connections", {"kind": "postgresql", "q": "shop"}, **HTMX
    )
    assert b"<html" not in fragment.content and b"shop_pg" in fragment.content
    assert b"shop_pg" not in client_for(developer).get("/connections", {"kind": "mysql"}).content


@pytest.mark.parametrize(
    "kind,fields",
    [
        ("postgresql", ["host", "port", "database", "username", "password", "sslmode", "options"]),
        ("mysql", ["host", "port", "database", "username", "password"]),
        ("sqlite", ["path", "options"]),
        ("csv", ["path"]),
        ("jsonl", ["path"]),
    ],
)
def test_it_builds_a_form_per_kind(
    kind: str, fields: list[str], developer: Any, client_for: Any
) -> None:
    content = client_for(developer).get("/connections/new", {"kind": kind}).content.decode()
    for field in fields:
        assert f'name="{field}"' in content, field
    if "password" in fields:
        assert 'type="password" name="password"' in content
    fragment = (
        client_for(developer).get("/connections/new", {"kind": kind}, **HTMX).content.decode()
    )
    assert "<html" not in fragment and 'id="connection-form"' in fragment


def test_it_refuses_new_connections_to_read_only_roles(
    operator: Any, viewer: Any, client_for: Any
) -> None:
    for user in (operator, viewer):
        assert client_for(user).get("/connections/new").status_code == 403
        response = client_for(user).post(
            "/connections/new", {"kind": "sqlite", "name": "x", "path": "x.db"}
        )
        assert response.status_code == 403
    assert b"New connection" not in client_for(viewer).get("/connections").content


def test_it_creates_a_connection_with_a_write_only_secret(developer: Any, client_for: Any) -> None:
    client = client_for(developer)
    response = client.post(
        "/connections/new",
        {
            "kind": "postgresql",
            "name": "wh_pg",
            "host": "127.0.0.1",
            "port": "5432",
            "database": "wh",
            "username": "u",
            "password": SECRET,
        },
    )
    conn = Connection.objects.get(name="wh_pg")
    assert response.status_code == 302 and response["Location"] == f"/connections/{conn.pk}"
    assert conn.full_config()["password"] == SECRET and "password" not in conn.config
    page = client.get(f"/connections/{conn.pk}").content.decode()
    assert SECRET not in page
    assert "Write-only: set" in page


def test_it_shows_service_errors_at_their_fields(pg: Any, developer: Any, client_for: Any) -> None:
    client = client_for(developer)
    response = client.post(
        "/connections/new", {"kind": "postgresql", "name": "bad name!", "database": "x"}
    )
    content = response.content.decode()
    assert response.status_code == 400
    assert "This field is required" in content  # host
    taken = client.post("/connections/new", {"kind": "sqlite", "name": "shop_pg", "path": "a.db"})
    assert taken.status_code == 400 and b"already exists" in taken.content
    bad_name = client.post("/connections/new", {"kind": "sqlite", "name": "9 bad", "path": "a.db"})
    assert bad_name.status_code == 400 and b"must match" in bad_name.content


def test_it_keeps_a_secret_left_blank(pg: Any, developer: Any, client_for: Any) -> None:
    form = {
        "name": "shop_pg",
        "host": "db.internal",
        "port": "5432",
        "database": "shop",
        "username": "etl",
        "password": "",
        "connect_timeout": "20",
    }
    response = client_for(developer).post(f"/connections/{pg.pk}", form)
    assert response.status_code == 302
    pg.refresh_from_db()
    assert pg.config["connect_timeout"] == 20 and pg.full_config()["password"] == SECRET
    # A new host is another endpoint: the blank password is not carried over (SPEC §10).
    moved = client_for(developer).post(f"/connections/{pg.pk}", {**form, "host": "db2.internal"})
    assert moved.status_code == 302
    pg.refresh_from_db()
    assert pg.config["host"] == "db2.internal" and "password" not in pg.full_config()


def test_it_shows_a_shared_connection_read_only(pg: Any, viewer: Any, client_for: Any) -> None:
    share(pg, viewer, Level.VIEW)
    client = client_for(viewer)
    content = client.get(f"/connections/{pg.pk}").content.decode()
    assert "db.internal" in content and SECRET not in content
    assert "Test connection" not in content and "Delete…" not in content and "Save" not in content
    assert client.post(f"/connections/{pg.pk}", {"name": "x"}).status_code == 403
    assert client.post(f"/connections/{pg.pk}/test").status_code == 403
    assert client.post(f"/connections/{pg.pk}/delete").status_code == 403


def test_it_hides_connections_from_outsiders(
    pg: Any, other_developer: Any, client_for: Any
) -> None:
    client = client_for(other_developer)
    assert client.get(f"/connections/{pg.pk}").status_code == 404
    for url in ["", "/test", "/share", "/delete"]:
        assert client.post(f"/connections/{pg.pk}{url}").status_code == 404, url


def test_it_tests_a_connection(developer: Any, sqlite_connection: Any, client_for: Any) -> None:
    conn = sqlite_connection("wh", user=developer)
    client = client_for(developer)
    fragment = client.post(f"/connections/{conn.pk}/test", **HTMX).content.decode()
    assert "<html" not in fragment and "Connected" in fragment and " ms" in fragment
    page = client.post(f"/connections/{conn.pk}/test")  # without JavaScript: the whole page
    assert page.status_code == 200 and b"<html" in page.content and b"Connected" in page.content


def test_it_shows_a_failed_test_without_secrets(
    pg: Any, developer: Any, client_for: Any, settings: Any
) -> None:
    conn = connection_create(
        name="dead_pg",
        kind="postgresql",
        actor=Actor.of(developer),
        config={
            "host": "127.0.0.1",
            "port": 1,
            "database": "x",
            "password": SECRET,
            "connect_timeout": 2,
        },
    )
    content = client_for(developer).post(f"/connections/{conn.pk}/test", **HTMX).content.decode()
    assert "Could not connect" in content and SECRET not in content


def test_it_lets_operators_test_shared_connections(
    pg: Any, operator: Any, client_for: Any, sqlite_connection: Any, developer: Any
) -> None:
    conn = sqlite_connection("wh", user=developer)
    share(conn, operator, Level.OPERATE)
    content = client_for(operator).get(f"/connections/{conn.pk}").content.decode()
    assert "Test connection" in content
    assert client_for(operator).post(f"/connections/{conn.pk}/test", **HTMX).status_code == 200


def test_it_shares_a_connection(
    pg: Any, developer: Any, other_developer: Any, client_for: Any
) -> None:
    response = client_for(developer).post(
        f"/connections/{pg.pk}/share",
        {"principal_type": "user", "name": "dev2", "level": "operate"},
    )
    assert response.status_code == 302
    assert client_for(other_developer).get(f"/connections/{pg.pk}").status_code == 200
    bad = client_for(developer).post(
        f"/connections/{pg.pk}/share", {"principal_type": "group", "name": "nope", "level": "view"}
    )
    assert bad.status_code == 400 and b"no group named" in bad.content


def test_it_refuses_to_delete_a_connection_in_use(
    owned: Any, developer: Any, client_for: Any
) -> None:
    conn = Connection.objects.get(name="wh")
    client = client_for(developer)
    assert client.get(f"/connections/{conn.pk}/delete").status_code == 200
    response = client.post(f"/connections/{conn.pk}/delete")
    assert response.status_code == 409 and b"used by p1" in response.content
    assert Connection.objects.filter(pk=conn.pk).exists()


def test_it_deletes_an_unused_connection(pg: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post(f"/connections/{pg.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/connections"
    assert not Connection.objects.filter(pk=pg.pk).exists()
