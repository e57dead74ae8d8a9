"""Object builders shared by the fixtures and the tests.

Users with a role, connections, the tasks of a definition: plain functions,
so a fixture, a test or a helper module builds them the same way. The
fixtures of ``tests/conftest.py`` (``make_user``, ``sqlite_connection``) call
these and add only what pytest provides (the database, a DATA_ROOT per test).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from django.contrib.auth import get_user_model

from accounts.actor import Actor
from accounts.permissions import Role
from accounts.services import user_set_role
from connectors.models import Connection
from connectors.services import connection_create


def user(username: str, role: Role | None = Role.DEVELOPER, *, password: str, **extra: Any) -> Any:
    """A user with ``password`` holding ``role`` (None: no role at all)."""
    made = get_user_model().objects.create_user(username=username, password=password, **extra)
    user_set_role(user=made, role=role)
    return made


def sqlite_connection(name: str = "wh", path: str = "wh.sqlite", user: Any = None) -> Connection:
    """An SQLite connection on ``path`` under DATA_ROOT, owned by ``user``."""
    return connection_create(name=name, kind="sqlite", config={"path": path}, actor=Actor.of(user))


def pg_config(url: str) -> dict[str, Any]:
    """A PostgreSQL connection's config for the database of ``url`` (no password)."""
    parsed = urlparse(url)
    return {
        "host": parsed.hostname,
        "port": parsed.port or 5432,
        "database": parsed.path.lstrip("/"),
        "username": parsed.username or "postgres",
    }


def postgresql_connection(name: str, url: str, *, user: Any = None, **config: Any) -> Connection:
    """A PostgreSQL connection to the database of ``url``; ``config`` adds or overrides keys."""
    return connection_create(
        name=name, kind="postgresql", config={**pg_config(url), **config}, actor=Actor.of(user)
    )


def sql_task(
    name: str, sql: str | list[str] = "SELECT 1", connection: str = "wh", **extra: Any
) -> dict[str, Any]:
    """A ``sql`` task of a definition (``depends_on=[...]`` and other keys in ``extra``)."""
    return {"name": name, "type": "sql", "connection": connection, "sql": sql, **extra}
