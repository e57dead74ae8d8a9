"""Connection secrets: encrypted at rest, rotatable, never shown."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db

from connectors.crypto import SecretDecryptError
from connectors.models import Connection
from connectors.services import connection_create, connection_update

PLAINTEXT = "pa55-Word-never-shown"


def make() -> Connection:
    return connection_create(
        name="pgsec",
        kind="postgresql",
        config={"host": "db.example", "database": "shop", "username": "u", "password": PLAINTEXT},
    )


@pytest.mark.django_db
def test_it_stores_the_secret_encrypted() -> None:
    conn = make()
    with db.cursor() as cursor:
        cursor.execute("SELECT config, secrets FROM connectors_connection WHERE name = 'pgsec'")
        config, secrets = cursor.fetchone()
    assert PLAINTEXT not in str(config) and PLAINTEXT not in secrets
    assert "password" not in conn.config
    assert conn.full_config()["password"] == PLAINTEXT
    assert conn.secret_keys_set() == ["password"]


@pytest.mark.django_db
def test_it_keeps_the_secret_when_a_change_leaves_it_out() -> None:
    conn = make()
    conn = connection_update(
        connection=conn,
        config={"host": "db.example", "database": "shop", "username": "u", "sslmode": "require"},
    )
    assert conn.full_config()["password"] == PLAINTEXT
    assert conn.config["sslmode"] == "require"


@pytest.mark.django_db
def test_it_rotates_keys_and_stays_readable(settings: Any) -> None:
    conn = make()
    old_keys = list(settings.FERNET_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, *old_keys]
    call_command("rotate_fernet_keys")
    settings.FERNET_KEYS = [new_key]  # old key dropped after rotation
    conn.refresh_from_db()
    assert conn.full_config()["password"] == PLAINTEXT
    settings.FERNET_KEYS = old_keys
    with pytest.raises(SecretDecryptError):
        Connection.objects.get(pk=conn.pk).full_config()


@pytest.mark.django_db
def test_it_never_shows_the_secret_in_repr_or_admin(admin_client: Any) -> None:
    conn = make()
    assert PLAINTEXT not in repr(conn) and PLAINTEXT not in str(conn)
    for url in ("/admin/connectors/connection/", f"/admin/connectors/connection/{conn.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert PLAINTEXT not in response.content.decode()
