"""MySQL connections are pooled per process (issue 15), against real MariaDB servers.

The boundaries tried: a pool never opens more than its size on the server;
a connection the server killed, or lost in a restart, is never handed out
again; a pool never crosses a fork; the host is checked at every use even
with idle connections; a session limit does not outlive its use; pools are
named by connection id only. The restart test runs its own private MariaDB
(never the shared one on 3306).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
from rest_framework.test import APIClient

from connectors import pools
from connectors.base import ConnectorError
from connectors.mysql import MysqlConnector, SafeConnection
from tests.services import missing, need_mysql
from tests.workers import wait_for


@pytest.fixture(autouse=True)
def no_pools() -> Iterator[None]:
    """Each test starts and ends with no pool in this process."""
    pools.close_all()
    yield
    pools.close_all()


def server_id(connector: MysqlConnector) -> int:
    """The server's id of the session that ``connector`` gets from its pool now."""
    return int(connector.query("SELECT CONNECTION_ID()")[1][0][0])


def stats_of(name: str) -> dict[str, Any]:
    return next(s for s in pools.stats() if s["name"] == name)


def with_options(connector: MysqlConnector, **options: Any) -> MysqlConnector:
    config = {**connector.config, "options": options}
    return MysqlConnector(name=connector.name, config=config, connection_id="conn-42")


def sessions_on(database: str) -> int:
    """Sessions the shared server has open on ``database`` (seen from another login)."""
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root")
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE db = %s", [database]
            )
            return int(cur.fetchone()[0])
    finally:
        admin.close()


def kill(thread_id: int, port: int = 3306) -> None:
    admin = pymysql.connect(host="127.0.0.1", port=port, user="root")
    try:
        with admin.cursor() as cur:
            cur.execute("KILL CONNECTION %s", [thread_id])
    finally:
        admin.close()


# ------------------------------------------------------------ reuse and bounds


def test_it_reuses_one_server_session_across_uses(my: MysqlConnector) -> None:
    pooled = with_options(my)
    first = server_id(pooled)
    assert server_id(pooled) == first
    assert pooled.execute("SELECT 1") == 1
    assert server_id(pooled) == first
    assert stats_of("conn-42") == {
        "name": "conn-42",
        "size": 1,
        "in_use": 0,
        "waiting": 0,
        "errors": 0,
    }
    with pooled.connect() as conn:
        assert isinstance(conn, SafeConnection)  # the cleartext refusal holds in the pool
        assert stats_of("conn-42")["in_use"] == 1


def test_it_opens_at_most_pool_max_size_sessions_and_makes_the_next_wait(
    my: MysqlConnector,
) -> None:
    pooled = MysqlConnector(
        name="my",
        config={**my.config, "connect_timeout": 1, "options": {"pool_max_size": 2}},
        connection_id="conn-42",
    )
    database = str(my.config["database"])
    release = threading.Event()
    holding = threading.Barrier(3)
    got: list[int] = []

    def hold() -> None:
        with pooled.connect() as conn:
            holding.wait(10)
            release.wait(20)
            got.append(conn.thread_id())

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    holding.wait(10)
    assert sessions_on(database) == 2

    waiter_result: list[int] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(server_id(pooled)))
    waiter.start()
    wait_for(lambda: stats_of("conn-42")["waiting"] == 1, timeout=5, what="a waiting request")
    assert stats_of("conn-42")["size"] == 2
    release.set()
    waiter.join(10)
    for thread in holders:
        thread.join(10)
    # The waiter got one of the two sessions; the server never saw a third.
    assert waiter_result and waiter_result[0] in got
    assert sessions_on(database) == 2

    # All lent and nobody gives back: the request times out (connect_timeout
    # + 5 s), transient, counted as an error.
    with pooled.connect(), pooled.connect():
        started = time.monotonic()
        with pytest.raises(ConnectorError, match="connection pool exhausted") as caught:
            server_id(pooled)
        assert 5 <= time.monotonic() - started < 10
    assert caught.value.transient
    assert stats_of("conn-42")["errors"] == 1
    assert sessions_on(database) == 2


def test_it_caps_pool_sizes_and_answers_400_outside_them(developer: Any) -> None:
    config = {"host": "127.0.0.1", "port": 3306, "database": "shop", "username": "etl"}
    stored = MysqlConnector(
        name="big", config={**config, "options": {"pool_min_size": 50, "pool_max_size": 500}}
    )
    assert pools.pool_sizes(stored._options()) == (pools.MAX_POOL_SIZE, pools.MAX_POOL_SIZE)
    client = APIClient()
    client.force_authenticate(developer)
    answer = client.post(
        "/api/v1/connections/",
        {"name": "big", "kind": "mysql", "config": {**config, "options": {"pool_max_size": 11}}},
        format="json",
    )
    assert answer.status_code == 400, answer.content
    errors = answer.json()["errors"]
    assert {"path": "config.options.pool_max_size", "message": "must be an integer 1-10"} in errors


# ------------------------------------------------------------ broken connections


def test_it_never_hands_out_a_session_the_server_killed(my: MysqlConnector) -> None:
    pooled = with_options(my)
    first = server_id(pooled)
    kill(first)
    second = server_id(pooled)
    assert second != first
    assert stats_of("conn-42") == {
        "name": "conn-42",
        "size": 1,
        "in_use": 0,
        "waiting": 0,
        "errors": 1,
    }


def test_it_drops_a_session_that_broke_while_lent(my: MysqlConnector) -> None:
    pooled = with_options(my)
    with pytest.raises(pymysql.err.OperationalError):
        with pooled.connect() as conn:
            kill(conn.thread_id())
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
    assert stats_of("conn-42")["size"] == 0
    assert stats_of("conn-42")["errors"] == 1
    assert server_id(pooled) > 0


def test_it_does_not_carry_a_statement_limit_to_the_next_use(my: MysqlConnector) -> None:
    pooled = with_options(my)
    default = pooled.query("SELECT @@GLOBAL.max_statement_time")[1][0][0]
    with pooled.connect(timeout_s=0.5) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.max_statement_time")
            assert float(cur.fetchone()[0]) == 0.5
        session = conn.thread_id()
    with pooled.connect() as conn:
        assert conn.thread_id() == session  # the same session, reused
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.max_statement_time, @@SESSION.tx_read_only")
            limit, read_only = cur.fetchone()
    assert float(limit) == float(default)
    assert read_only == 0


# ------------------------------------------------------------ the outbound check


def test_it_checks_the_host_at_every_use_with_idle_sessions(
    my: MysqlConnector, settings: Any
) -> None:
    pooled = with_options(my)
    server_id(pooled)
    assert stats_of("conn-42")["size"] == 1
    settings.OUTBOUND_DENY_NETWORKS = ["127.0.0.0/8"]
    with pytest.raises(ConnectorError, match="refused|not allowed|denied"):
        server_id(pooled)


# ------------------------------------------------------------ fork


def test_it_never_lets_a_forked_child_use_or_close_the_parent_sessions(
    my: MysqlConnector,
) -> None:
    pooled = with_options(my)
    parent_session = server_id(pooled)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            answer = str(server_id(pooled)).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            answer = f"error {exc!r}".encode()
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_answer = os.read(read, 1000).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_answer.isdigit(), child_answer
    assert int(child_answer) != parent_session
    # The child neither used nor closed (COM_QUIT) the parent's session.
    assert server_id(pooled) == parent_session


# ------------------------------------------------------------ a private server restarted


class PrivateMariadb:
    """A throwaway mariadbd on a free loopback port with its own data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.datadir = root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.root / 'sock'}",
                f"--pid-file={self.root / 'pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                *user,
            ],
            stdout=(self.root / "server.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root").close()
                return True
            except pymysql.err.OperationalError:
                return False

        wait_for(up, timeout=60, interval=0.2, what="the private MariaDB to start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean shutdown, as a restart does
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture
def private_mariadb() -> Iterator[PrivateMariadb]:
    if not (shutil.which("mariadbd") and shutil.which("mariadb-install-db")):
        missing("mariadbd and mariadb-install-db")
    root = Path(tempfile.mkdtemp(prefix="dd-mariadb-"))
    server = PrivateMariadb(root)
    server.start()
    try:
        yield server
    finally:
        pools.close_all()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_it_recovers_when_the_server_restarts_mid_run(private_mariadb: PrivateMariadb) -> None:
    need_mysql()  # the skip rule of the MySQL tests, though this server is private
    pooled = MysqlConnector(
        name="private",
        config={"host": "127.0.0.1", "port": private_mariadb.port, "username": "root"},
        connection_id="conn-7",
    )
    pooled.execute("CREATE DATABASE shop")
    # Two sessions in the pool: one idle through the restart, one lent.
    with pooled.connect(), pooled.connect():
        pass
    assert stats_of("conn-7")["size"] == 2

    with pytest.raises(pymysql.err.OperationalError) as caught:
        with pooled.connect() as lent:
            private_mariadb.stop()
            private_mariadb.start()
            with lent.cursor() as cur:
                cur.execute("SELECT 1")
    # The engine retries a transient failure: this one is.
    assert pooled.map_error(caught.value).transient, caught.value
    assert stats_of("conn-7")["size"] == 1  # the lent one was closed, not kept

    # The next use gets a working session: the dead idle one is discarded.
    assert pooled.query("SELECT 40 + 2")[1] == [(42,)]
    after = stats_of("conn-7")
    assert after["size"] == 1
    assert after["errors"] == 2  # the broken lent one and the dead idle one
    assert pooled.execute("CREATE TABLE shop.t (id int)") == 0
