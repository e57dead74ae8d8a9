"""MySQL / MariaDB through PyMySQL: streaming reads, batched multi-row writes."""

from __future__ import annotations

import datetime as dt
import json
import operator
import secrets
import socket
import ssl
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]
from pymysql import _auth  # type: ignore[import-untyped]
from pymysql.constants import CLIENT, CR, FIELD_TYPE  # type: ignore[import-untyped]

from connectors import pools
from connectors.base import (
    BatchWriter,
    Connector,
    ConnectorError,
    FastCopyTarget,
    ServerConnector,
    SqlConnector,
    Watchdog,
    on_destination,
    scrub,
    split_table,
)
from connectors.mysql.dialect import MysqlDialect, from_mysql
from connectors.types import Column
from core import outbound

__all__ = ["MysqlConnector", "MysqlDialect"]

# Error codes worth a retry: cannot connect / lost connection, deadlock,
# lock wait timeout, statement time limit, interrupted, too many connections.
_TRANSIENT_CODES = {1040, 1053, 1205, 1213, 1317, 1969, 2002, 2003, 2006, 2013, 2055, 3024, 4031}

# Fixed words for server error codes at connect (the server's text is never
# shown, SPEC §10); other failures are judged by connect_failure.
_CONNECT_CODES = {
    1040: "too many connections",
    1044: "authentication failed (no access to the database)",
    1045: "authentication failed",
    1049: "database does not exist",
    1130: "authentication failed (the server does not allow this login)",
    2026: "TLS failed",
}

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


SSLMODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
# A CA certificate is public, but an unbounded text field is not.
MAX_SSLROOTCERT_CHARS = 64 * 1024


class CleartextRefused(pymysql.err.OperationalError):  # type: ignore[misc]
    """The server asked for the password in a form it could read; refused."""


class SafeConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's connection without the ways a server can read the password (SPEC §10).

    PyMySQL answers whatever plugin the server names: ``mysql_clear_password``
    and ``dialog`` get the password as it is, and the "full authentication"
    of ``sha256_password`` / ``caching_sha2_password`` sends it in cleartext
    over any TLS (verified or not) or encrypted with a public key the server
    itself hands over. A server on a host an editor controls would read it
    every time. Here the cleartext plugins are refused always, and the full
    authentication only runs over TLS whose certificate was verified
    (``sslmode`` ``verify-ca`` / ``verify-full``), where the server is the
    one configured. The scrambles (``mysql_native_password``, the
    ``caching_sha2_password`` fast path, ``client_ed25519``) still work:
    they prove the password without revealing it.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["auth_plugin_map"] = {"caching_sha2_password": _CachingSha2}
        # The server may ask for LOAD DATA LOCAL data (the LOCAL_FILES
        # capability), but files are never read (local_infile stays off):
        # only the stream a row writer hands over for its own statement is
        # sent (see _StreamResult).
        kwargs["client_flag"] = kwargs.get("client_flag", 0) | CLIENT.LOCAL_FILES
        kwargs["local_infile"] = False
        super().__init__(**kwargs)
        # (name, data) of the LOAD DATA LOCAL statement running now, else None.
        self.infile: tuple[str, bytes] | None = None

    def _read_query_result(self, unbuffered: bool = False) -> Any:
        self._result = None
        result = _StreamResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows

    def password_may_reach_server(self) -> bool:
        """Whether this connection's TLS is verified, so the server may read the password."""
        ctx = getattr(self, "ctx", None)
        return bool(self._ssl_required and ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED)

    def refuse_unless_verified(self, plugin: str) -> None:
        if self.password and not self.password_may_reach_server():
            raise CleartextRefused(
                CR.CR_AUTH_PLUGIN_ERR,
                f"server asked for the password in a form it can read ({plugin} without a"
                " verified certificate); refused. Use sslmode verify-ca or verify-full",
            )

    def _request_authentication(self) -> None:
        # With sha256_password as the server's default plugin, PyMySQL puts
        # the password into its very first answer (cleartext inside any TLS).
        if self._auth_plugin_name == "sha256_password":
            self.refuse_unless_verified("sha256_password")
        super()._request_authentication()

    def _process_auth(self, plugin_name: bytes, auth_packet: Any, handler: Any = None) -> Any:
        if plugin_name in (b"mysql_clear_password", b"dialog"):
            raise CleartextRefused(
                CR.CR_AUTH_PLUGIN_ERR, "server asked for a cleartext password; refused"
            )
        if plugin_name == b"sha256_password":
            self.refuse_unless_verified("sha256_password")
        return super()._process_auth(plugin_name, auth_packet, handler)


class _StreamResult(pymysql.connections.MySQLResult):  # type: ignore[misc]
    """A statement's result; LOAD DATA LOCAL gets the row writer's data, never a file.

    A server asks for the file a ``LOAD DATA LOCAL INFILE`` names. Only the
    statement a ``LoadDataWriter`` runs gets an answer: the data it handed
    over under a random name. Any other request (a user's ``sql`` task
    naming a client file, a server asking on its own) gets an empty file
    and an error, so no file of the worker's host ever leaves it.
    """

    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn = self.connection
        wanted = pymysql.connections.LoadLocalPacketWrapper(first_packet).filename
        infile, conn.infile = conn.infile, None
        ours = infile is not None and wanted == infile[0].encode()
        try:
            if ours:
                assert infile is not None  # nosec B101 - type narrowing
                data = memoryview(infile[1])
                step = min(conn.max_allowed_packet, 1 << 20) - 16
                for start in range(0, len(data), step):
                    conn.write_packet(data[start : start + step])
        finally:
            conn.write_packet(b"")  # the end of the data
            ok_packet = conn._read_packet()
        if not ok_packet.is_ok_packet():
            raise pymysql.err.OperationalError(CR.CR_COMMANDS_OUT_OF_SYNC, "Commands Out of Sync")
        self._read_ok_packet(ok_packet)
        if not ours:
            # PyMySQL's own error class: mapped like any driver error.
            raise pymysql.err.OperationalError(
                CR.CR_UNKNOWN_ERROR,
                "LOAD DATA LOCAL INFILE is not allowed (client files are never sent)",
            )


class _CachingSha2:
    """``caching_sha2_password`` as PyMySQL does it, full authentication only when verified.

    PyMySQL calls ``authenticate`` both on a switch to this plugin and on the
    server's answer to the fast path: 3 (done) or 4 (send the full password).
    """

    def __init__(self, conn: SafeConnection) -> None:
        self.conn = conn

    def authenticate(self, pkt: Any) -> Any:
        conn = self.conn
        if conn.password and pkt.is_auth_switch_request():
            # The fast path first (a scramble), as PyMySQL would.
            conn.salt = pkt.read_all().removesuffix(b"\0")
            pkt = _auth._roundtrip(conn, _auth.scramble_caching_sha2(conn.password, conn.salt))
        if pkt.is_extra_auth_data() and pkt.get_all_data()[1:2] == b"\x04":
            conn.refuse_unless_verified("caching_sha2_password full authentication")
        return _auth.caching_sha2_password_auth(conn, pkt)


def tls_context(sslmode: str, sslrootcert: str | None) -> ssl.SSLContext:
    """The TLS context of ``sslmode`` ``require`` / ``verify-ca`` / ``verify-full``.

    ``sslrootcert`` is PEM text, never a path: a path the user names would
    make the connection test a file-read oracle. Without it the system's
    certificate store is used. PyMySQL names the configured host in the TLS
    handshake, so ``verify-full`` checks the certificate against it.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if sslmode == "require":
        # Encrypted, not authenticated, as in libpq: the password then only
        # leaves as a scramble (SafeConnection).
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if sslrootcert:
        ctx.load_verify_locations(cadata=sslrootcert)
    else:
        ctx.load_default_certs()
    ctx.check_hostname = sslmode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def sslrootcert_problem(value: Any) -> str | None:
    """Why ``options.sslrootcert`` is unusable, or None."""
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        return "must be PEM certificate text (-----BEGIN CERTIFICATE-----…); paths are not read"
    if len(value) > MAX_SSLROOTCERT_CHARS:
        return f"longer than {MAX_SSLROOTCERT_CHARS} characters"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=value)
    except (ssl.SSLError, ValueError):
        return "is not a readable PEM certificate"
    return None


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
    conn = SafeConnection(**kwargs, defer_connect=True)
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
    # The connection's database only: its grants may show others.
    tables_sql = (
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = DATABASE() ORDER BY table_name"
    )
    multiline_fields = frozenset({"options.sslrootcert"})

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        problems = super().validate_config(config)
        if isinstance(config, dict):
            options = config.get("options", {})
            if not isinstance(options, dict):
                problems.append(("options", "must be an object"))
            else:
                problems += [(f"options.{k}", m) for k, m in pools.pool_size_problems(options)]
                if options.get("sslrootcert") is not None:
                    problem = sslrootcert_problem(options["sslrootcert"])
                    if problem:
                        problems.append(("options.sslrootcert", problem))
            if config.get("sslmode") not in (None, *SSLMODES):
                problems.append(("sslmode", f"must be one of {', '.join(SSLMODES)}"))
        return problems

    def _options(self) -> dict[str, Any]:
        options = self.config.get("options") or {}
        return options if isinstance(options, dict) else {}

    def _connect_kwargs(self, target: outbound.Target) -> dict[str, Any]:
        """PyMySQL keywords for this connection (secret included: never log them)."""
        options = self._options()
        kwargs: dict[str, Any] = {
            "host": target.host,
            "port": int(self.config.get("port", 3306)),
            "user": self.config.get("username") or "root",
            "password": self.config.get("password") or "",
            "database": self.config.get("database"),
            "connect_timeout": self.connect_timeout_s(),
            "charset": str(options.get("charset", "utf8mb4")),
            "autocommit": False,
            "local_infile": False,
            # Every session in UTC, like PostgreSQL sessions here.
            "init_command": "SET time_zone = '+00:00'",
        }
        sslmode = self.config.get("sslmode") or "prefer"
        if sslmode == "disable":
            kwargs["ssl_disabled"] = True
        elif sslmode != "prefer":  # "prefer": PyMySQL's default, TLS when the server offers it
            try:
                kwargs["ssl"] = tls_context(sslmode, options.get("sslrootcert"))
            except (ssl.SSLError, ValueError) as exc:
                raise ConnectorError(f"{self.where()}: sslrootcert is not usable") from exc
        return kwargs

    def _raw_connect(self) -> pymysql.connections.Connection:
        """A connection outside the pool (connection tests, KILL QUERY)."""
        target = self.target()
        kwargs = self._connect_kwargs(target)
        try:
            return _connect_to(target, kwargs)
        except Exception as exc:
            raise self.connect_error(exc) from exc

    def _pool(self) -> pools.QueuePool[Any]:
        """This process's pool for these settings and the host's addresses checked now.

        Every new connection of the pool goes through ``_connect_to`` (the
        checked address, ``SafeConnection``); the addresses are part of the
        pool's key, so a host that resolves elsewhere gets another pool.
        """
        target = self.target()
        kwargs = self._connect_kwargs(target)
        options = self._options()
        material = {
            **{k: v for k, v in kwargs.items() if k != "ssl"},
            "addresses": target.addresses,
            "sslmode": self.config.get("sslmode"),
            "sslrootcert": options.get("sslrootcert"),
        }

        def connect() -> Any:
            try:
                return _connect_to(target, kwargs)
            except Exception as exc:
                raise self.connect_error(exc) from exc

        min_size, max_size = pools.pool_sizes(options)
        return pools.get_queue_pool(
            label=self.connection_id,
            key_material=material,
            connect=connect,
            check=_alive,
            min_size=min_size,
            max_size=max_size,
            timeout=float(kwargs["connect_timeout"]) + 5,
        )

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Iterator[Any]:
        pool = self._pool()
        try:
            conn = pool.getconn()
        except pools.PoolTimeout:
            raise ConnectorError(
                f"{self.where()}: connection pool exhausted", transient=True
            ) from None
        reusable = False
        try:
            cur = conn.cursor()
            if timeout_s is not None:
                cur.execute(self._timeout_sql(conn), [self._timeout_value(conn, timeout_s)])
            if read_only:
                # Without SESSION: for the next transaction only, so the
                # pooled connection keeps nothing for its next use.
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            else:
                cur.execute("START TRANSACTION")
            cur.close()
            yield conn
            conn.commit()
            reusable = True
        except BaseException:
            try:
                conn.rollback()
                reusable = True
            except Exception:  # noqa: BLE001 - connection broken: the pool closes it  # nosec B110
                pass
            raise
        finally:
            if reusable and timeout_s is not None:
                # The statement limit is per session: the next use of this
                # connection must not inherit it.
                try:
                    with conn.cursor() as cur:
                        cur.execute(self._timeout_sql(conn) % "DEFAULT")
                except Exception:  # noqa: BLE001 - broken after all
                    reusable = False
            pool.putconn(conn, broken=not reusable)

    def _timeout_sql(self, conn: Any) -> str:
        if self._is_mariadb(conn):
            return "SET SESSION max_statement_time = %s"
        return "SET SESSION max_execution_time = %s"

    def _timeout_value(self, conn: Any, timeout_s: float) -> float | int:
        # MariaDB counts seconds (fractions allowed), MySQL milliseconds.
        if self._is_mariadb(conn):
            return max(0.001, timeout_s)
        return max(1, int(timeout_s * 1000))

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
            # Still the connection test: the server's text is not echoed.
            raise self.connect_error(exc) from exc
        finally:
            conn.close()

    def connect_phrase(self, exc: BaseException) -> str:
        if isinstance(exc, CleartextRefused):
            return str(exc.args[1])  # our own words
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return _CONNECT_CODES.get(code or 0) or super().connect_phrase(exc)

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
            cur.execute(f"SELECT * FROM ({sql}) AS _dd_describe LIMIT 0", params or None)  # nosec B608 - quoted names
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

    def fast_copy_to(self, destination: Connector) -> _TextLines | None:
        """MySQL → a kind that reads PostgreSQL's COPY text: the server writes the lines."""
        if isinstance(destination, SqlConnector) and destination.writes_text:
            return _TextLines(self, destination)
        return None

    # ----- writing

    def insert_rows(self, conn: Any, table: str, columns: list[Column], rows: list[tuple]) -> None:
        self._insert(conn, table, columns, rows, "")

    def row_writer(self, conn: Any, table: str, columns: list[Column]) -> BatchWriter:
        """Each batch in one ``LOAD DATA LOCAL INFILE`` of the batch's rows (see LoadDataWriter)."""
        return LoadDataWriter(self, conn, table, columns)

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
        sql = f"INSERT INTO {self.dialect.table(table)} ({names}) VALUES ({marks}){suffix}"  # nosec B608 - quoted names
        with conn.cursor() as cur:
            # PyMySQL turns executemany of INSERT … VALUES into multi-row
            # statements up to max_allowed_packet.
            cur.executemany(sql, rows)


# LOAD DATA's default escapes (FIELDS ESCAPED BY '\\').
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _load_field(value: Any) -> str:
    """One value as a field of LOAD DATA's tab-separated text (``\\N`` is NULL)."""
    kind = type(value)
    if kind is str:
        return value.translate(_ESCAPES)  # type: ignore[no-any-return]
    if value is None:
        return "\\N"
    if kind is int or kind is float:
        return repr(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is Decimal:
        return format(value, "f")
    if kind is dt.datetime:
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ")  # type: ignore[no-any-return]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str).translate(_ESCAPES)
    return str(value).translate(_ESCAPES)


_SPECIAL = frozenset("\\\t\n\r\0")
_ZERO = dt.timedelta(0)


def _load_column(values: list[Any]) -> list[str] | Iterator[str]:
    """One column of a batch as LOAD DATA fields: whole-column fast paths, else per value."""
    kinds = set(map(type, values))
    if kinds == {str}:
        if _SPECIAL.isdisjoint("".join(values)):
            return values
    elif kinds == {int}:
        return map(str, values)
    elif kinds == {dt.datetime}:
        if {v.utcoffset() for v in values} == {_ZERO}:
            # Already UTC (PostgreSQL sessions here run in UTC): drop "+00:00".
            return [v.isoformat(" ")[:-6] for v in values]
    elif kinds == {Decimal}:
        return [format(v, "f") for v in values]
    return map(_load_field, values)


def _load_text(rows: list[tuple], width: int) -> bytes:
    """Rows as LOAD DATA's tab-separated lines, built column by column."""
    if len(set(map(len, rows))) != 1 or len(rows[0]) != width:
        raise ValueError(f"rows of {width} values expected")
    columns = [_load_column(list(map(operator.itemgetter(i), rows))) for i in range(width)]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


# Server errors refusing LOAD DATA LOCAL itself (local_infile=OFF): MySQL's
# ER_NOT_ALLOWED_COMMAND and ER_CLIENT_LOCAL_FILES_DISABLED, MariaDB's
# ER_LOAD_INFILE_CAPABILITY_DISABLED.
LOCAL_REFUSED = frozenset({1148, 3948, 4166})


class LoadDataWriter:
    """Row batches into a table by ``LOAD DATA LOCAL INFILE``, one statement a batch.

    The rows travel as tab-separated text from memory (``_StreamResult``
    sends them; no file is written or read), parsed by the server in one
    statement: faster than multi-row INSERTs (bench/RESULTS.md, Copy). With
    LOCAL the server turns data errors into warnings and goes on, so any
    warning fails the batch with the server's first one (the transaction
    rolls back: nothing is kept half-converted). Batches with binary values
    go through INSERT, and so does every batch once the server refuses
    LOCAL (``local_infile=OFF``, MySQL 8's default).
    """

    def __init__(self, connector: MysqlConnector, conn: Any, table: str, columns: list[Column]):
        self.connector, self.conn, self.table, self.columns = connector, conn, table, columns
        names = ", ".join(connector.dialect.quote(c.name) for c in columns)
        # INSERT instead: binary values, or a server that refuses LOCAL.
        self.insert = any(c.type == "bytes" for c in columns)
        self.sql_tail = (
            f"' INTO TABLE {connector.dialect.table(table)} CHARACTER SET utf8mb4"
            " FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
            f" ({names})"
        )

    def __call__(self, rows: list[tuple]) -> None:
        if not rows:
            return
        if not self.insert:
            try:
                self._load(rows)
                return
            except (pymysql.err.OperationalError, pymysql.err.InternalError) as exc:
                if exc.args[0] not in LOCAL_REFUSED:
                    raise
                # Refused before any row was read: nothing to undo.
                self.insert = True
        self.connector.insert_rows(self.conn, self.table, self.columns, rows)

    def _load(self, rows: list[tuple]) -> None:
        data = _load_text(rows, len(self.columns))
        name = f"dd_rows_{secrets.token_hex(8)}"
        self.conn.infile = (name, data)
        try:
            with self.conn.cursor() as cur:
                loaded = cur.execute(f"LOAD DATA LOCAL INFILE '{name}{self.sql_tail}")
                if cur._result is not None and cur._result.warning_count:
                    cur.execute("SHOW WARNINGS LIMIT 1")
                    level, code, message = cur.fetchone()
                    raise pymysql.err.DataError(int(code), str(message))
                if loaded != len(rows):
                    raise pymysql.err.DataError(0, f"LOAD DATA took {loaded} of {len(rows)} rows")
        finally:
            self.conn.infile = None

    def close(self) -> None:
        """Nothing stays open between batches."""

    def abort(self) -> None:
        """Nothing to abandon."""


# Canonical types whose MySQL text never holds a tab, newline or backslash.
_PLAIN_TEXT = frozenset(
    {"integer", "bigint", "float", "numeric", "boolean", "date", "time", "timestamp"}
)
# Lines read at a time by _TextLines.
TEXT_LINES = 10_000


def copy_text_sql(quoted: str, type_: str) -> str:
    """The SQL of one column as a field of PostgreSQL's COPY text, in MySQL.

    Hex literals (binary strings) instead of quoted ones: their meaning does
    not depend on the session's sql_mode (NO_BACKSLASH_ESCAPES). Text gets
    COPY's backslash escapes, binary values bytea's hex form, NULL ``\\N``.
    """
    if type_ == "bytes":
        field = f"CONCAT(X'5C5C78', HEX(CAST({quoted} AS BINARY)))"
    elif type_ in _PLAIN_TEXT:
        field = quoted
    else:
        field = quoted
        # \ first, then tab, newline, carriage return.
        for char, escaped in (("5C", "5C5C"), ("09", "5C74"), ("0A", "5C6E"), ("0D", "5C72")):
            field = f"REPLACE({field}, X'{char}', X'{escaped}')"
    return f"IFNULL({field}, X'5C4E')"


class _TextLines:
    """MySQL → PostgreSQL (``SqlConnector.fast_copy_to``): COPY text built by MySQL.

    PyMySQL decodes every value of every row in Python; here the server
    joins each row into one line of PostgreSQL's COPY text (one field a
    row to decode) and the lines go into a text COPY as they are, checked
    by PostgreSQL's input functions. MySQL's text of numbers, DECIMAL,
    DATE, DATETIME, TIME and tinyint(1) (``1``/``0``) is what PostgreSQL's
    input functions read; a value they refuse (a zero date) fails the copy
    naming the destination column.
    """

    accepts_lines = False

    def __init__(self, source: MysqlConnector, destination: SqlConnector) -> None:
        self.source = source
        self.destination = destination

    def __call__(
        self,
        ctx: Any,
        src_conn: Any,
        sql: str,
        params: dict[str, Any],
        sink: FastCopyTarget,
        columns: list[Column],
        lines: Callable[[list[bytes]], list[bytes]] | None,
    ) -> int:
        d = self.source.dialect
        fields = ", ".join(copy_text_sql(d.quote(c.name), c.type) for c in columns)
        text_sql = f"SELECT CONCAT_WS(X'09', {fields}) FROM ({sql}) AS _dd_text"  # nosec B608 - quoted names
        writer = self.destination.text_writer(
            sink.conn, sink.target, columns, [c.type for c in columns]
        )
        copied = 0
        cancels = (self.source.cancel_handle(src_conn), sink.conn.cancel_safe)
        try:
            with Watchdog(ctx, *cancels):
                for rows in self.source.iter_batches(src_conn, text_sql, params, TEXT_LINES):
                    block = _block(rows, columns, self.source.where(), self.destination.where())
                    try:
                        writer.write(block)
                    except Exception as exc:
                        raise on_destination(exc) from None
                    copied += len(rows)
                    ctx.check()
                try:
                    writer.close()
                except Exception as exc:
                    raise on_destination(exc) from None
        except BaseException:
            writer.abort()
            raise
        return copied


def _block(rows: list[tuple], columns: list[Column], source: str, destination: str) -> bytes:
    """Lines of one batch joined; refuses what PostgreSQL cannot take, naming the column."""
    got = list(map(operator.itemgetter(0), rows))
    if None in got:
        # MySQL's CONCAT gives NULL for a result over max_allowed_packet.
        raise ConnectorError(
            f"{source}: a row is longer than the server's max_allowed_packet as COPY text"
        )
    if set(map(type, got)) == {bytes}:
        block = b"\n".join(got) + b"\n"
    else:  # a text result (no binary part in the line): the connection decoded it
        block = "\n".join(map(str, got)).encode() + b"\n"
    if b"\x00" in block:
        # One line per row (COPY text escapes newlines in values).
        number, line = next((n, v) for n, v in enumerate(block.split(b"\n"), 1) if b"\x00" in v)
        at = line.split(b"\t").index(next(f for f in line.split(b"\t") if b"\x00" in f))
        raise ConnectorError(
            f'destination {destination}: column "{columns[at].name}": text with a'
            f" NUL (0x00) character; PostgreSQL cannot store it (row {number} of its batch)"
        )
    return block


def _alive(conn: Any) -> None:
    """Raise unless the server answers on ``conn``.

    Never ``ping(reconnect=True)``: PyMySQL would reconnect by resolving the
    host itself, around the outbound check and its checked address.
    """
    conn.ping(reconnect=False)


def _split(table: str) -> tuple[str | None, str]:
    return split_table(table)
