"""MySQL / MariaDB through PyMySQL: streaming reads, batched multi-row writes."""

from __future__ import annotations

import datetime as dt
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]
from pymysql.constants import FIELD_TYPE  # type: ignore[import-untyped]

from connectors.base import ConnectorError, Dialect, ServerConnector, scrub
from connectors.types import Column, from_mysql, to_mysql
from core import outbound

__all__ = ["MysqlConnector", "MysqlDialect"]

# Error codes worth a retry: cannot connect / lost connection, deadlock,
# lock wait timeout, statement time limit, interrupted, too many connections.
_TRANSIENT_CODES = {1040, 1053, 1205, 1213, 1317, 1969, 2002, 2003, 2006, 2013, 2055, 3024, 4031}

_FIELD_TYPES = {
    FIELD_TYPE.TINY: "integer",
    FIELD_TYPE.SHORT: "integer",
    FIELD_TYPE.LONG: "integer",
    FIELD_TYPE.INT24: "integer",
    FIELD_TYPE.YEAR: "integer",
    FIELD_TYPE.LONGLONG: "bigint",
    FIELD_TYPE.FLOAT: "float",
    FIELD_TYPE.DOUBLE: "float",
    FIELD_TYPE.DECIMAL: "numeric",
    FIELD_TYPE.NEWDECIMAL: "numeric",
    FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date",
    FIELD_TYPE.TIME: "time",
    FIELD_TYPE.DATETIME: "timestamp",
    FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.JSON: "json",
}
_BINARY_CHARSET = 63


class MysqlDialect(Dialect):
    kind = "mysql"
    quote_char = "`"

    def ddl_type(self, column: Column, *, key: bool = False) -> str:
        return to_mysql(column, key=key)

    def cast(self, expr: str, type_: str, source_type: str = "text") -> str:
        if type_ in {"integer", "bigint"}:
            return f"CAST({expr} AS SIGNED)"
        if type_ == "numeric":
            return f"CAST({expr} AS DECIMAL(38,10))"
        if type_ in {"text", "json"}:
            # MariaDB has no CAST AS JSON; JSON is text there.
            return f"CAST({expr} AS CHAR)"
        if type_ == "boolean":
            if source_type in {"boolean", "integer", "bigint"}:
                return f"({expr} <> 0)"
            return self.bool_from_text(expr, "SIGNED")
        if type_ == "date":
            return f"CAST({expr} AS DATE)"
        if type_ == "timestamp":
            return f"CAST({expr} AS DATETIME(6))"
        raise ConnectorError(f"cast to {type_!r} is not supported on mysql")

    def sha256(self, expr: str) -> str:
        return f"SHA2({expr}, 256)"

    def null_of(self, column: Column) -> str:
        return "NULL"


def to_mysql_value(value: Any) -> Any:
    """A Python value PyMySQL can bind for the column types we create."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # DATETIME has no zone: store UTC, as every connection here runs in UTC.
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _connect_to(target: outbound.Target, kwargs: dict[str, Any]) -> Any:
    """A PyMySQL connection over a socket to the checked addresses of ``target``.

    PyMySQL would resolve ``host`` again (DNS rebinding could swap the
    address between check and connect), so the socket is opened here and
    handed over; ``host`` stays the name, which PyMySQL uses as the TLS
    server name for ``verify-full``.
    """
    conn = pymysql.connect(**kwargs, defer_connect=True)
    try:
        sock = outbound.open_socket(target, kwargs["connect_timeout"])
    except OSError as exc:
        # PyMySQL's own words and code (2003, transient) for a failed connect.
        raise pymysql.err.OperationalError(
            2003, f"Can't connect to MySQL server on {target.host!r} ({exc})"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    conn.connect(sock)
    return conn


class MysqlConnector(ServerConnector):
    kind = "mysql"
    default_port = 3306
    dialect = MysqlDialect()

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        problems = super().validate_config(config)
        if isinstance(config, dict):
            if not isinstance(config.get("options", {}), dict):
                problems.append(("options", "must be an object"))
        return problems

    def _raw_connect(self) -> pymysql.connections.Connection:
        target = self.target()
        host = target.host
        options = self.config.get("options") or {}
        kwargs: dict[str, Any] = {
            "host": host,
            "port": int(self.config.get("port", 3306)),
            "user": self.config.get("username") or "root",
            "password": self.config.get("password") or "",
            "database": self.config.get("database"),
            "connect_timeout": int(self.config.get("connect_timeout") or 10),
            "charset": str(options.get("charset", "utf8mb4")),
            "autocommit": False,
            "local_infile": False,
            # Every session in UTC, like PostgreSQL sessions here.
            "init_command": "SET time_zone = '+00:00'",
        }
        if self.config.get("sslmode") in {"require", "verify-ca", "verify-full"}:
            kwargs["ssl"] = {"check_hostname": self.config["sslmode"] == "verify-full"}
        try:
            return _connect_to(target, kwargs)
        except Exception as exc:
            raise self.map_error(exc) from exc

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Iterator[Any]:
        conn = self._raw_connect()
        try:
            cur = conn.cursor()
            if timeout_s is not None:
                if self._is_mariadb(conn):
                    cur.execute("SET SESSION max_statement_time = %s", [max(0.001, timeout_s)])
                else:
                    cur.execute(
                        "SET SESSION max_execution_time = %s", [max(1, int(timeout_s * 1000))]
                    )
            if read_only:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            else:
                cur.execute("START TRANSACTION")
            cur.close()
            yield conn
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - connection already broken
                pass
            raise
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def _is_mariadb(conn: Any) -> bool:
        return "mariadb" in str(conn.get_server_info()).lower()

    def cancel_handle(self, conn: Any) -> Callable[[], None]:
        thread_id = conn.thread_id()

        def cancel() -> None:
            # KILL QUERY must come from another connection.
            killer = self._raw_connect()
            try:
                with killer.cursor() as cur:
                    cur.execute("KILL QUERY %s", [thread_id])
            finally:
                killer.close()

        return cancel

    def test(self) -> None:
        conn = self._raw_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except Exception as exc:
            raise self.map_error(exc) from exc
        finally:
            conn.close()

    def map_error(self, exc: BaseException) -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        text = scrub(text, self.config.get("password"))
        transient = code in _TRANSIENT_CODES or isinstance(exc, TimeoutError | ConnectionError)
        prefix = f"({code}) " if code else ""
        return ConnectorError(
            f"{self.where()}: {prefix}{text.splitlines()[0] if text else type(exc).__name__}",
            transient=transient,
        )

    # ----- reading

    def _columns_of(self, cur: Any) -> list[Column]:
        columns = []
        fields = cur._result.fields if cur._result is not None else []
        for i, d in enumerate(cur.description or []):
            type_code = d[1]
            canonical = _FIELD_TYPES.get(type_code)
            if canonical is None:
                binary = i < len(fields) and fields[i].charsetnr == _BINARY_CHARSET
                canonical = "bytes" if binary and type_code not in {FIELD_TYPE.JSON} else "text"
            if type_code == FIELD_TYPE.TINY and d[2] == 1:
                canonical = "boolean"
            native = None
            if canonical == "numeric" and d[4] is not None:
                native = f"decimal({max(d[4], 1)},{d[5] or 0})"
            columns.append(Column(d[0], canonical, native, None))
        return columns

    def describe_query(self, conn: Any, sql: str, params: dict[str, Any]) -> list[Column]:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM ({sql}) AS _dd_describe LIMIT 0", params or None)
            return self._columns_of(cur)

    def table_columns(self, conn: Any, table: str) -> list[Column] | None:
        schema, name = _split(table)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, column_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s"
                " ORDER BY ordinal_position",
                [schema, name],
            )
            rows = cur.fetchall()
        if not rows:
            return None
        return [Column(r[0], from_mysql(r[1]), r[1], "mysql", r[2] == "YES") for r in rows]

    def iter_batches(
        self, conn: Any, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[list[tuple]]:
        # SSCursor streams rows from the server instead of buffering the
        # whole result in the client.
        cur = conn.cursor(pymysql.cursors.SSCursor)
        try:
            cur.execute(sql, params or None)
            while True:
                rows = cur.fetchmany(size)
                if not rows:
                    break
                yield list(rows)
        finally:
            cur.close()

    # ----- writing

    def insert_rows(self, conn: Any, table: str, columns: list[Column], rows: list[tuple]) -> None:
        self._insert(conn, table, columns, rows, "")

    def upsert_rows(
        self, conn: Any, table: str, columns: list[Column], keys: list[str], rows: list[tuple]
    ) -> None:
        q = self.dialect.quote
        others = [c.name for c in columns if c.name not in keys]
        if others:
            suffix = " ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{q(c)} = VALUES({q(c)})" for c in others
            )
        else:
            first = q(keys[0])
            suffix = f" ON DUPLICATE KEY UPDATE {first} = {first}"
        self._insert(conn, table, columns, rows, suffix)

    def _insert(
        self, conn: Any, table: str, columns: list[Column], rows: list[tuple], suffix: str
    ) -> None:
        if not rows:
            return
        names = ", ".join(self.dialect.quote(c.name) for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        # Text columns may receive JSON objects from another kind: convert
        # every column whose values PyMySQL may not bind as they are.
        convert = [
            i
            for i, c in enumerate(columns)
            if c.type not in {"integer", "bigint", "float", "numeric", "boolean", "date"}
        ]
        if convert:
            fixed = []
            for row in rows:
                values = list(row)
                for i in convert:
                    values[i] = to_mysql_value(values[i])
                fixed.append(tuple(values))
            rows = fixed
        sql = f"INSERT INTO {self.dialect.table(table)} ({names}) VALUES ({marks}){suffix}"
        with conn.cursor() as cur:
            # PyMySQL turns executemany of INSERT … VALUES into multi-row
            # statements up to max_allowed_packet.
            cur.executemany(sql, rows)


def _split(table: str) -> tuple[str | None, str]:
    from connectors.base import split_table

    return split_table(table)
