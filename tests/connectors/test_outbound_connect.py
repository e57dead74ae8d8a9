"""PostgreSQL and MySQL connect to the address the outbound policy checked (SPEC §10).

A rebinding DNS server (the one part simulated: ``RebindingDns`` answers
127.0.0.1 first, 127.0.0.2 afterwards) must not be able to send the driver
elsewhere after the check: the real server on 127.0.0.1 answers, and a real
listener on 127.0.0.2, same port, must see no connection. libpq cannot
resolve the made-up name at all, so without ``hostaddr`` the connect fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from connectors import pools
from connectors.base import ConnectorError
from connectors.mysql import MysqlConnector
from connectors.postgresql import PostgresqlConnector
from tests.net import Listener, RebindingDns
from tests.services import need_mysql, need_postgres

NAME = "db.rebind.test"


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> RebindingDns:
    return RebindingDns(monkeypatch, NAME, ["127.0.0.1", "127.0.0.2"])


@pytest.fixture(autouse=True)
def close_pools() -> Iterator[None]:
    yield
    pools.close_all()


def evil_listener(port: int) -> Listener:
    try:
        return Listener("127.0.0.2", port)
    except OSError as exc:  # the real server listens on every address here
        pytest.skip(f"cannot listen on 127.0.0.2:{port}: {exc}")


@pytest.mark.postgres
def test_it_pins_postgresql_to_the_checked_address(rebinding: RebindingDns) -> None:
    admin = urlparse(need_postgres())
    port = admin.port or 5432
    evil = evil_listener(port)
    try:
        connector = PostgresqlConnector(
            name="pg",
            config={
                "host": NAME,
                "port": port,
                "database": admin.path.lstrip("/") or "postgres",
                "username": admin.username or "postgres",
            },
        )
        connector.test()
        assert rebinding.lookups == 1
        # Every connect checks afresh (one lookup each); the pool path too.
        rebinding.answers = ["127.0.0.1"]
        _, rows = connector.query("SELECT host(inet_server_addr())")
        assert rows == [("127.0.0.1",)]
        assert evil.accepted == []
    finally:
        evil.close()


@pytest.mark.mysql
def test_it_pins_mysql_to_the_checked_address(rebinding: RebindingDns) -> None:
    admin = urlparse(need_mysql())
    port = admin.port or 3306
    evil = evil_listener(port)
    try:
        connector = MysqlConnector(
            name="my",
            config={
                "host": NAME,
                "port": port,
                "database": "mysql",
                "username": admin.username or "root",
                "password": admin.password or "",
            },
        )
        connector.test()
        assert rebinding.lookups == 1
        rebinding.answers = ["127.0.0.1"]
        _, rows = connector.query("SELECT 1")
        assert rows == [(1,)]
        assert evil.accepted == []
    finally:
        evil.close()


@pytest.mark.parametrize("cls", [PostgresqlConnector, MysqlConnector])
def test_it_fails_an_unresolved_name_at_connect_time(cls: Any) -> None:
    connector = cls(name="x", config={"host": "db.x.invalid", "port": 5432, "database": "d"})
    with pytest.raises(ConnectorError) as caught:
        connector.test()
    assert str(caught.value) == f"{cls.kind}: host 'db.x.invalid': name not resolved"
    assert caught.value.transient is True
