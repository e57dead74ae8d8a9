"""SQLite files under DATA_ROOT (``config.path`` relative to it)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import ConnectorError, SqlConnector, resolve_under
from connectors.sqlite.confinement import ConfinedConnection, Guard, confine
from connectors.sqlite.dialect import SqliteDialect, from_sqlite
from connectors.types import Column, infer_text_type
from core.names import replace_sql_parameters

__all__ = ["SqliteConnector", "SqliteDialect", "sqlite_files"]


def sqlite_files(path: Path) -> list[Path]:
    """A database file and the files SQLite keeps beside it (WAL, shared memory, journal).

    Whoever may open one of them can corrupt or read the database.
    """
    return [path, *(path.with_name(path.name + side) for side in ("-wal", "-shm", "-journal"))]


def to_sqlite_value(value: Any) -> Any:
    """A value sqlite3 can bind, stored as text where SQLite has no type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class SqliteConnector(SqlConnector):
    kind = "sqlite"
    required_fields = frozenset({"path"})
    allowed_fields = frozenset({"path", "options"})
    dialect: ClassVar[SqliteDialect] = SqliteDialect()
    # SQLite stores text for dates, decimals and booleans as integers: the
    # copy engine parses values by their declared type.
    typed_values = False
    tables_sql = (
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    )

    def file(self) -> Path:
        return resolve_under(self.data_root, self.config.get("path"), what="sqlite path")

    def data_paths(self) -> list[Path]:
        return sqlite_files(self.file())

    def to_driver_sql(self, sql: str) -> str:
        # pyformat -> sqlite3's named style; ``%%`` is a literal ``%``.
        return replace_sql_parameters(sql, lambda name: f":{name}")

    def _raw_connect(self) -> ConfinedConnection:
        """A connection confined to the file (SPEC §10) before any statement runs."""
        path = self.file()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                str(path),
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
                factory=ConfinedConnection,
            )
        except sqlite3.Error as exc:
            raise self.map_error(exc) from exc
        confine(conn)
        return conn

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Iterator[Any]:
        conn = self._raw_connect()
        try:
            with conn.guard.product():
                try:
                    # WAL lets a reader's snapshot and a writer coexist (a copy
                    # from and to the same file, a check while a copy runs).
                    conn.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:
                    pass
                conn.execute("PRAGMA query_only = ON" if read_only else "PRAGMA query_only = OFF")
            if timeout_s is not None:
                deadline = time.monotonic() + timeout_s
                # Returning non-zero aborts the statement (SQLITE_INTERRUPT).
                conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10000)
            # IMMEDIATE takes the write lock up front: two writers wait for
            # each other instead of failing halfway with SQLITE_BUSY.
            conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            yield _SqliteConn(conn, self)
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        finally:
            conn.close()

    def cancel_handle(self, conn: Any) -> Callable[[], None]:
        return conn.raw.interrupt  # type: ignore[no-any-return]

    def test(self) -> None:
        with self.connect(read_only=True) as conn:
            conn.cursor().execute("SELECT 1")

    def map_error(self, exc: BaseException) -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if text == "not authorized":
            # The confinement guard refused a statement outside a cursor (the
            # cursor names what); never worth a retry.
            return ConnectorError(
                f"{self.where()}: statement refused (it reaches outside the file)"
            )
        transient = isinstance(exc, sqlite3.OperationalError) and (
            "locked" in text or "busy" in text or "interrupted" in text
        )
        return ConnectorError(f"sqlite {self.config.get('path')!r}: {text}", transient=transient)

    def where(self) -> str:
        return f"sqlite {self.config.get('path')!r}"

    # ----- reading

    def describe_query(self, conn: Any, sql: str, params: dict[str, Any]) -> list[Column]:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM ({sql}) AS _dd_describe LIMIT 200", params or None)  # nosec B608 - the author's own SQL
        names = [d[0] for d in cur.description or []]
        sample = cur.fetchall()
        columns = []
        for i, name in enumerate(names):
            values = [r[i] for r in sample if r[i] is not None]
            columns.append(Column(name, _infer_python(values)))
        return columns

    def table_columns(self, conn: Any, table: str) -> list[Column] | None:
        rows = self.dialect.table_info(conn, table)
        if not rows:
            return None
        return [Column(r[1], from_sqlite(r[2]), r[2] or None, "sqlite", not r[3]) for r in rows]

    def iter_batches(
        self, conn: Any, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[list[tuple]]:
        cur = conn.cursor()
        cur.execute(sql, params or None)
        while True:
            rows = cur.fetchmany(size)
            if not rows:
                break
            yield rows

    # ----- writing

    def insert_rows(self, conn: Any, table: str, columns: list[Column], rows: list[tuple]) -> None:
        self._insert(conn, table, columns, rows, "")

    def _insert(
        self, conn: Any, table: str, columns: list[Column], rows: list[tuple], suffix: str
    ) -> None:
        if not rows:
            return
        names = ", ".join(self.dialect.quote(c.name) for c in columns)
        marks = ", ".join(["?"] * len(columns))
        rows = [tuple(to_sqlite_value(v) for v in row) for row in rows]
        sql = f"INSERT INTO {self.dialect.table(table)} ({names}) VALUES ({marks}){suffix}"  # nosec B608 - quoted names
        conn.raw.executemany(sql, rows)


class _SqliteConn:
    """A sqlite3 connection whose cursors take pyformat SQL like the other kinds."""

    def __init__(self, raw: ConfinedConnection, connector: SqliteConnector) -> None:
        self.raw = raw
        self.connector = connector

    def cursor(self) -> _SqliteCursor:
        return _SqliteCursor(self.raw.cursor(), self.connector, self.raw.guard)

    def commit(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")
        self.raw.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")


class _SqliteCursor:
    def __init__(self, cur: sqlite3.Cursor, connector: SqliteConnector, guard: Guard) -> None:
        self._cur = cur
        self._connector = connector
        self._guard = guard

    def execute(self, sql: str, params: Any = None) -> _SqliteCursor:
        if params is not None:
            sql = self._connector.to_driver_sql(sql)
            if isinstance(params, dict):
                params = {k: to_sqlite_value(v) for k, v in params.items()}
            else:
                params = [to_sqlite_value(v) for v in params]
        self._guard.take()  # a refusal of an earlier statement is not this one's
        try:
            if params is None:
                # Like psycopg: without parameters the SQL is sent as written.
                self._cur.execute(sql)
            else:
                self._cur.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            refused = self._guard.take()
            if refused is None:
                raise
            # SQLite only says "not authorized"; the guard knows what was refused.
            raise ConnectorError(f"{self._connector.where()}: {refused}") from exc
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def close(self) -> None:
        self._cur.close()

    def __enter__(self) -> _SqliteCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cur.close()


def _infer_python(values: list[Any]) -> str:
    if not values:
        return "text"
    if all(isinstance(v, int) for v in values):
        return "bigint"
    if all(isinstance(v, int | float) for v in values):
        return "float"
    if all(isinstance(v, bytes) for v in values):
        return "bytes"
    if all(isinstance(v, str) for v in values):
        inferred = infer_text_type(values)
        return "text" if inferred == "bigint" else inferred
    return "text"
