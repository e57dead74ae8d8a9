"""Secrets stay with their endpoint (SPEC §10, issue 10 item 3).

Each test plays the attacker's server for real: a socket server on loopback
that asks for the password in a form it can read and records every byte the
client sends. The assertion is always on what that server received.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.permissions import Level
from accounts.services import sharing_set
from accounts.tokens import token_pair
from connectors.base import ConnectorError
from connectors.models import Connection
from connectors.mysql import MysqlConnector
from connectors.postgresql import PostgresqlConnector
from connectors.services import connection_create, connection_update
from tests.fakeservers import (
    FakeServer,
    mysql_caching_sha2_full_auth,
    mysql_clear_password_switch,
    mysql_load_local,
    mysql_tls,
    pg_cleartext_password,
)
from tests.http import assert_error, url
from tests.net import self_signed

SECRET = "Endpoint-Bound-pw-41x"
PG = {"host": "127.0.0.1", "port": 5432, "database": "shop", "username": "etl", "password": SECRET}


def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair(user)['access_token']}")
    return client


def server_tls(folder: Path, name: str) -> tuple[ssl.SSLContext, str]:
    """A server TLS context with a self-signed certificate for ``name``, and that PEM."""
    cert, key = self_signed(folder, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert.read_text()


def pg(**config: Any) -> PostgresqlConnector:
    return PostgresqlConnector(name="pg", config={**PG, "connect_timeout": 3, **config})


def mysql(**config: Any) -> MysqlConnector:
    return MysqlConnector(name="my", config={**PG, "port": 3306, "connect_timeout": 3, **config})


# ------------------------------------------------------------ service level


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"host": "db.attacker.example"},
        {"port": 6543},
        {"database": "other"},
        {"username": "root"},
        {"kind": "mysql"},
    ],
)
def test_it_drops_stored_secrets_when_the_endpoint_changes(change: dict[str, Any]) -> None:
    conn = connection_create(name="pgsec", kind="postgresql", config=PG)
    kind = change.pop("kind", "postgresql")
    config = {k: v for k, v in PG.items() if k != "password"}
    conn = connection_update(connection=conn, kind=kind, config={**config, **change})
    assert conn.secret_keys_set() == [] and "password" not in conn.full_config()
    event = AuditEvent.objects.filter(action="change", object_id=str(conn.pk)).get()
    assert event.details == {"secrets_dropped": ["password"]}
    assert SECRET not in str(event.details)


@pytest.mark.django_db
def test_it_keeps_secrets_for_the_same_endpoint_or_when_sent_again() -> None:
    conn = connection_create(name="pgsec", kind="postgresql", config=PG)
    config = {k: v for k, v in PG.items() if k != "password"}
    # The same endpoint (an explicit default port counts as the same).
    conn = connection_update(
        connection=conn, config={**config, "port": 5432, "sslmode": "require"}, description="d"
    )
    assert conn.full_config()["password"] == SECRET
    # A new endpoint with the password sent again in the same request.
    conn = connection_update(connection=conn, config={**config, "host": "db2", "password": "n"})
    assert conn.full_config()["password"] == "n"


# ------------------------------------------------------------- PostgreSQL


def test_it_never_answers_a_pg_cleartext_password_request() -> None:
    with FakeServer(pg_cleartext_password) as server:
        with pytest.raises(ConnectorError) as caught:
            pg(port=server.port).test()
    assert "startup" in server.events  # the client did reach the fake server
    assert SECRET.encode() not in server.received
    assert "cleartext" in str(caught.value) and SECRET not in str(caught.value)


def test_it_never_answers_a_pg_cleartext_request_from_the_pool() -> None:
    """The pooled path (every task) refuses as the direct one (the test) does."""
    with FakeServer(pg_cleartext_password) as server:
        with pytest.raises(ConnectorError):
            pg(port=server.port).execute("SELECT 1")
    assert "startup" in server.events
    assert SECRET.encode() not in server.received


# ------------------------------------------------------------------ MySQL


def test_it_never_answers_mysql_clear_password() -> None:
    with FakeServer(mysql_clear_password_switch) as server:
        with pytest.raises(ConnectorError) as caught:
            mysql(port=server.port, sslmode="disable").test()
    assert "handshake response" in server.events
    assert SECRET.encode() not in server.received
    assert "server asked for a cleartext password; refused" in str(caught.value)


def test_it_never_sends_a_worker_file_a_mysql_server_asks_for(tmp_path: Path) -> None:
    """A server may answer any query with a LOAD DATA LOCAL request for a client file."""
    secret_file = tmp_path / "environ"
    secret_file.write_text("FERNET_KEYS=worker-secret-material\n")
    with FakeServer(mysql_load_local(str(secret_file))) as server:
        with pytest.raises(ConnectorError):
            mysql(port=server.port, sslmode="disable").test()
    assert "asked for the file" in server.events
    assert b"worker-secret-material" not in server.received


def test_it_refuses_caching_sha2_full_authentication_without_a_verified_certificate() -> None:
    """The server would decrypt the password with its own RSA key (PyMySQL's default)."""
    with FakeServer(mysql_caching_sha2_full_auth) as server:
        with pytest.raises(ConnectorError) as caught:
            mysql(port=server.port, sslmode="disable").test()
    assert SECRET.encode() not in server.received
    assert "verify-ca or verify-full" in str(caught.value)


def test_it_verifies_the_mysql_certificate_for_verify_full(tmp_path: Path) -> None:
    context, pem = server_tls(tmp_path, "db.example")  # not the host we connect to
    with FakeServer(mysql_tls(context)) as server:
        with pytest.raises(ConnectorError) as wrong_name:
            mysql(port=server.port, sslmode="verify-full", options={"sslrootcert": pem}).test()
        with pytest.raises(ConnectorError) as unknown_ca:  # the system store does not know it
            mysql(port=server.port, sslmode="verify-ca").test()
    for caught in (wrong_name, unknown_ca):
        assert str(caught.value).endswith(": TLS certificate verification failed")
    assert "tls established" not in server.events
    assert "handshake response over tls" not in server.events
    assert SECRET.encode() not in server.received


def test_it_passes_tls_with_the_given_ca_for_verify_ca_and_verify_full(tmp_path: Path) -> None:
    context, pem = server_tls(tmp_path, "localhost")
    for sslmode in ("verify-ca", "verify-full"):
        with FakeServer(mysql_tls(context)) as server:
            with pytest.raises(ConnectorError) as caught:  # the fake server refuses the login
                mysql(
                    host="localhost",
                    port=server.port,
                    sslmode=sslmode,
                    options={"sslrootcert": pem},
                ).test()
        assert server.events == ["tls established", "handshake response over tls"], sslmode
        assert str(caught.value).endswith(": authentication failed")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sslrootcert": "/etc/ssl/certs/ca-certificates.crt"}, "paths are not read"),
        ({"sslrootcert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "PEM"),
    ],
)
def test_it_answers_400_for_an_sslrootcert_that_is_not_pem_text(
    developer: Any, options: dict[str, Any], message: str
) -> None:
    body = {
        "name": "my",
        "kind": "mysql",
        "config": {**PG, "port": 3306, "sslmode": "verify-ca", "options": options},
    }
    answer = api(developer).post(url("connections"), body, format="json")
    errors = assert_error(answer, 400, "config.options.sslrootcert")["errors"]
    assert any(message in e["message"] for e in errors)


# --------------------------------------------------------------- API flow


@pytest.mark.django_db
def test_it_never_gives_the_owners_password_to_an_editors_server(
    developer: Any, other_developer: Any
) -> None:
    owner = api(developer)
    created = owner.post(
        url("connections"), {"name": "shop", "kind": "postgresql", "config": PG}, format="json"
    )
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    sharing_set(obj=Connection.objects.get(pk=cid), users={other_developer: Level.EDIT}, groups={})
    editor = api(other_developer)

    same = editor.patch(url(f"connections/{cid}"), {"description": "mine now"}, format="json")
    assert same.status_code == 200 and same.json()["secrets_set"] == ["password"]

    with FakeServer(pg_cleartext_password) as server:
        moved = editor.patch(
            url(f"connections/{cid}"),
            {"config": {"host": "127.0.0.1", "port": server.port}},
            format="json",
        )
        assert moved.status_code == 200, moved.content
        assert moved.json()["secrets_set"] == []
        tested = editor.post(url(f"connections/{cid}/test"))
    assert tested.status_code == 200 and tested.json()["ok"] is False
    assert "startup" in server.events  # the test did reach the editor's server
    assert SECRET.encode() not in server.received
    assert "password" not in Connection.objects.get(pk=cid).full_config()
