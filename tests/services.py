"""Finding the real services tests need.

A test that needs PostgreSQL, MariaDB, Redis or Chromium uses it when it is
there and skips with the reason when it is not. With REQUIRE_SERVICES=1 (CI)
a missing service fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Skip (or fail under REQUIRE_SERVICES) because ``what`` is not available."""
    message = f"{what} not available"
    if required():
        pytest.fail(f"{message} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _port_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def need_postgres() -> str:
    if not _port_open(PG_ADMIN_URL, 5432):
        missing(f"PostgreSQL at {PG_ADMIN_URL}")
    return PG_ADMIN_URL


def need_mysql() -> str:
    if not _port_open(MYSQL_ADMIN_URL, 3306):
        missing(f"MariaDB/MySQL at {MYSQL_ADMIN_URL}")
    return MYSQL_ADMIN_URL


def need_redis() -> str:
    if not _port_open(REDIS_TEST_URL, 6379):
        missing(f"Redis at {REDIS_TEST_URL}")
    return REDIS_TEST_URL


def need_chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing(f"Chromium at {CHROMIUM}")
    return CHROMIUM


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def scratch_postgres_db() -> Iterator[str]:
    """A new empty PostgreSQL database, dropped afterwards; yields its URL."""
    import psycopg

    admin = need_postgres()
    name = unique_name("dd_scratch")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parsed = urlparse(admin)
    url = parsed._replace(path=f"/{name}").geturl()
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_mysql_db() -> Iterator[dict[str, object]]:
    """A new empty MariaDB database, dropped afterwards; yields connect kwargs."""
    import pymysql

    admin = urlparse(need_mysql())
    kwargs: dict[str, object] = {
        "host": admin.hostname or "127.0.0.1",
        "port": admin.port or 3306,
        "user": admin.username or "root",
        "password": admin.password or "",
    }
    name = unique_name("dd_scratch")
    conn = pymysql.connect(**kwargs)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    try:
        yield {**kwargs, "database": name}
    finally:
        conn = pymysql.connect(**kwargs)  # type: ignore[arg-type]
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()
