"""PostgreSQL through psycopg 3, pooled per worker process, binary COPY both ways."""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
import select
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from itertools import islice
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import Loader
from psycopg_pool import PoolTimeout

from connectors import pools
from connectors.base import (
    Connector,
    ConnectorError,
    Dialect,
    FastCopyTarget,
    ServerConnector,
    Watchdog,
    on_destination,
    scrub,
)
from connectors.postgresql.copytext import copy_text, nul_error
from connectors.postgresql.dialect import PostgresDialect, from_pg
from connectors.types import Column

__all__ = ["PostgresqlConnector", "PostgresDialect"]

# SQLSTATE classes worth a retry: connection exceptions, serialization
# failure, deadlock, statement timeout / cancel, server shutting down.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57014", "57P01", "57P02", "57P03", "55P03", "53300"}

# libpq's list of authentication methods it will answer: everything but a
# cleartext password. ``require_auth`` needs libpq 16 or newer (the
# psycopg[binary] wheel bundles 17+; a system libpq may be older).
REQUIRE_AUTH = "!password"
_REQUIRE_AUTH_LIBPQ = 160000

# Re-exported: the cap on pool sizes lives with the pools.
MAX_POOL_SIZE = pools.MAX_POOL_SIZE

# Where a COPY FROM failed, in the error's context: "COPY dst, line 3, column total: …".
_COPY_CONTEXT = re.compile(r"^COPY .*?, line (\d+), column ([^:]+):")

# Types whose binary representation is the same, for COPY pass-through.
_BINARY_SAME = {"varchar": "text", "bpchar": "text", "text": "text", "name": "text"}


class PostgresqlConnector(ServerConnector):
    kind = "postgresql"
    default_port = 5432
    dialect = PostgresDialect()
    tables_sql = (
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_schema NOT LIKE 'pg\\_%' ORDER BY table_schema, table_name"
    )
    # libpq's words for why a connect failed (first match wins); see connect_failure.
    connect_markers = (
        ("cleartext password", "server asked for a cleartext password; refused"),
        ("authentication method requirement", "server asked for a refused authentication method"),
        ("no password supplied", "authentication failed (the server wants a password)"),
        ("authentication failed", "authentication failed"),
        ("no pg_hba.conf entry", "authentication failed (the server does not allow this login)"),
        ("connection refused", "connection refused"),
        ("timeout expired", "timed out"),
        ("could not translate host name", "host name not resolved"),
        ("certificate", "TLS certificate verification failed"),
        ("ssl", "TLS failed"),
        ("does not exist", "database or user does not exist"),
    )

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        problems = super().validate_config(config)
        if isinstance(config, dict):
            options = config.get("options", {})
            if not isinstance(options, dict | str):
                problems.append(("options", "must be an object or a libpq options string"))
            elif isinstance(options, dict):
                problems += [(f"options.{k}", m) for k, m in pools.pool_size_problems(options)]
        return problems

    # ----- connecting

    def _options(self) -> dict[str, Any]:
        options = self.config.get("options") or {}
        return options if isinstance(options, dict) else {"libpq_options": options}

    def connect_kwargs(self) -> dict[str, Any]:
        """libpq keywords for this connection (secret included: never log them)."""
        options = self._options()
        pg_options = ["-c TimeZone=UTC"]
        statement_timeout = options.get("statement_timeout")
        if statement_timeout:
            pg_options.append(f"-c statement_timeout={int(float(statement_timeout) * 1000)}")
        if options.get("libpq_options"):
            pg_options.append(str(options["libpq_options"]))
        kwargs: dict[str, Any] = {
            "host": self.config.get("host", "127.0.0.1"),
            "port": int(self.config.get("port", 5432)),
            "dbname": self.config.get("database"),
            "user": self.config.get("username") or "postgres",
            "connect_timeout": self.connect_timeout_s(),
            "options": " ".join(pg_options),
            "application_name": str(options.get("application_name", "datadog-platform")),
        }
        if self.config.get("password"):
            kwargs["password"] = self.config["password"]
        # Never answer a cleartext password request (SPEC §10): a server that
        # asks for one (a fake server on a changed host, LDAP/PAM/RADIUS
        # auth) would receive the password itself. Set even without a
        # password, so one from PGPASSWORD or ~/.pgpass cannot leak either.
        # md5 and SCRAM stay: both prove the password without sending it,
        # and a server that picks the salt (and, for SCRAM, the iteration
        # count) can guess offline either way; md5 is still the method of
        # many servers upgraded from PostgreSQL 13 and older.
        if pq.version() < _REQUIRE_AUTH_LIBPQ:  # pragma: no cover - see _REQUIRE_AUTH_LIBPQ
            raise ConnectorError(
                f"{self.where()}: libpq {pq.version()} cannot refuse cleartext passwords;"
                " version 16 or newer is needed"
            )
        kwargs["require_auth"] = REQUIRE_AUTH
        if self.config.get("sslmode"):
            kwargs["sslmode"] = self.config["sslmode"]
        return kwargs

    def checked_kwargs(self) -> dict[str, Any]:
        """``connect_kwargs`` with the host checked now and libpq pinned to its addresses.

        ``hostaddr`` makes libpq connect to the addresses the outbound policy
        checked instead of resolving the name again (DNS rebinding), while
        ``host`` keeps the name for ``verify-full`` certificate checks. A
        name with several addresses becomes libpq's host list, tried in order.
        """
        target = self.target()
        kwargs = self.connect_kwargs()
        kwargs["host"] = ",".join([target.host] * len(target.addresses))
        kwargs["hostaddr"] = ",".join(target.addresses)
        return kwargs

    def pool_sizes(self) -> tuple[int, int]:
        """``(min, max)`` connections of the pool: the options', capped to 1-MAX_POOL_SIZE."""
        return pools.pool_sizes(self._options())

    def _pool(self, kwargs: dict[str, Any]) -> Any:
        min_size, max_size = self.pool_sizes()
        return pools.get_pool(
            label=self.connection_id,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=float(kwargs["connect_timeout"]) + 5,
        )

    def direct_connect(self) -> psycopg.Connection:
        """A connection outside the pool (tests, ``test()``, raw pass-through)."""
        kwargs = self.checked_kwargs()
        try:
            return psycopg.connect(**kwargs)
        except Exception as exc:
            raise self.connect_error(exc) from exc

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection]:
        kwargs = self.checked_kwargs()
        pool = self._pool(kwargs)
        try:
            conn = pool.getconn()
        except PoolTimeout:
            # The pool hides why it could not connect: ask libpq directly,
            # and drop a pool whose settings do not work.
            try:
                psycopg.connect(**kwargs).close()
            except Exception as exc:
                pools.discard(pool)
                raise self.connect_error(exc) from exc
            raise ConnectorError(
                f"{self.where()}: connection pool exhausted", transient=True
            ) from None
        try:
            yield conn
        finally:
            pool.putconn(conn)

    @contextmanager
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Iterator[Any]:
        with self._pooled() as conn:
            try:
                if read_only:
                    # One snapshot for every statement: partition bounds,
                    # watermark and rows agree with each other.
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if timeout_s is not None:
                    ms = max(1, int(timeout_s * 1000))
                    conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{ms}ms"])
                yield conn
                conn.commit()
            except BaseException:
                if not conn.closed:
                    try:
                        conn.rollback()
                    except Exception:  # noqa: BLE001 - the connection is broken; the pool checks it  # nosec B110
                        pass
                raise

    def cancel_handle(self, conn: Any) -> Callable[[], None]:
        return conn.cancel_safe  # type: ignore[no-any-return]

    def test(self) -> None:
        conn = self.direct_connect()
        try:
            conn.execute("SELECT 1")
        except Exception as exc:
            # Still the connection test: a server that lets the login pass
            # and then answers with its own text is not echoed either.
            raise self.connect_error(exc) from exc
        finally:
            conn.close()

    # ----- errors

    def map_error(self, exc: BaseException) -> ConnectorError:
        if isinstance(exc, ConnectorError):
            return exc
        secret = self.config.get("password")
        text = scrub(str(exc).strip(), secret)
        text = text.removeprefix("connection failed: ")
        sqlstate = getattr(exc, "sqlstate", None) or ""
        lowered = text.lower()
        transient = False
        if sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08"):
            transient = True
        elif isinstance(exc, psycopg.OperationalError) and not sqlstate:
            # Connect-time errors carry no SQLSTATE; judge by libpq's text.
            transient = (
                not any(
                    marker in lowered
                    for marker in (
                        "password",
                        "authentication",
                        "does not exist",
                        "no pg_hba",
                        "permission denied",
                        "ssl",
                    )
                )
                or "timeout" in lowered
            )
        elif isinstance(exc, PoolTimeout | TimeoutError | ConnectionError):
            transient = True
        first_line = text.splitlines()[0] if text else type(exc).__name__
        context = getattr(getattr(exc, "diag", None), "context", None) or ""
        found = _COPY_CONTEXT.search(context)
        if found:
            # A value a COPY FROM refused: name the column (the line counts
            # rows from the start of that COPY).
            first_line = f'column "{found[2]}": {first_line} (COPY line {found[1]})'
        return ConnectorError(f"{self.where()}: {first_line}", transient=transient)

    # ----- reading

    def describe_query(self, conn: Any, sql: str, params: dict[str, Any]) -> list[Column]:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT * FROM ({sql}) AS _dd_describe LIMIT 0", params or None)  # nosec B608 - quoted names
            return self._columns_of(conn, cur.description or [])
        finally:
            cur.close()

    def _columns_of(self, conn: Any, description: Any) -> list[Column]:
        columns = []
        for d in description:
            info = conn.adapters.types.get(d.type_code)
            typname = info.name if info else "text"
            columns.append(
                Column(d.name, from_pg(typname), d.type_display or typname, "postgresql")
            )
        return columns

    def table_columns(self, conn: Any, table: str) -> list[Column] | None:
        qualified = self.dialect.table(table)
        exists = conn.execute("SELECT to_regclass(%s)", [qualified]).fetchone()[0]
        if exists is None:
            return None
        cur = conn.execute(f"SELECT * FROM {qualified} LIMIT 0")  # nosec B608 - quoted names
        return self._columns_of(conn, cur.description or [])

    def iter_batches(
        self, conn: Any, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[list[tuple]]:
        if pq.version() >= 170000:
            # libpq 17+: the server streams the result, libpq hands it over
            # ``size`` rows at a time (chunked rows mode); no FETCH round
            # trip per batch, and memory does not grow with the table.
            cur = conn.cursor(binary=True)
            _text_json(cur)
            stream = cur.stream(sql, params or None, size=size)
            try:
                while rows := list(islice(stream, size)):
                    yield rows
            finally:
                stream.close()
                cur.close()
            return
        # A named (server-side) cursor: rows arrive ``size`` at a time, so
        # memory does not grow with the table.
        cur = conn.cursor(name=f"dd_{uuid.uuid4().hex[:12]}", binary=True)
        _text_json(cur)
        try:
            cur.execute(sql, params or None)
            while True:
                rows = cur.fetchmany(size)
                if not rows:
                    break
                yield rows
        finally:
            cur.close()

    def binary_types(self, columns: list[Column]) -> list[str]:
        return [
            _BINARY_SAME.get((c.native or "").split("(")[0], (c.native or "").split("(")[0])
            for c in columns
        ]

    # ----- writing

    def insert_rows(self, conn: Any, table: str, columns: list[Column], rows: list[tuple]) -> None:
        writer = self.row_writer(conn, table, columns)
        writer(rows)
        writer.close()

    def row_writer(self, conn: Any, table: str, columns: list[Column]) -> _RowWriter:
        """A writer of row batches into ``table`` for one open transaction.

        Batches whose Python values all fit the binary format of the
        destination columns go in binary COPY (``set_types``, no text to
        parse server-side); any other batch goes in text COPY as before. The
        destination's types are read once, inside the transaction (whose
        lock keeps them from changing), so a writer must not outlive it.
        Batches of the same format share one COPY, so the server takes in a
        batch while the next one is read: ``close()`` it before running
        anything else on ``conn``, ``abort()`` it before a rollback.
        """
        return _RowWriter(self.dialect, conn, table, columns)

    writes_text = True

    def text_writer(
        self, conn: Any, table: str, columns: list[Column], types: list[str]
    ) -> _TextWriter:
        """A writer of a text source's rows into ``table`` by text COPY, values unparsed.

        ``types`` are the source's canonical types of ``columns`` (see
        ``connectors.postgresql.copytext``); PostgreSQL's input functions check
        the values. Its ``write`` takes COPY text already formatted (a source
        that builds the lines itself). Same rules as ``row_writer``: one COPY
        stays open between batches; ``close()`` or ``abort()`` it.
        """
        return _TextWriter(self.dialect, conn, table, columns, types)

    def fast_copy_to(self, destination: Connector) -> _PassThrough | None:
        """PostgreSQL → PostgreSQL: raw COPY bytes from one server to the other."""
        return _PassThrough(self) if isinstance(destination, PostgresqlConnector) else None

    def copy_through(
        self,
        src_conn: Any,
        src_sql: str,
        dst_conn: Any,
        dst_table: str,
        dst_columns: list[str],
        *,
        binary: bool,
        check: Callable[[], None] | None = None,
        flush_bytes: int = 1 << 20,
        transform: Callable[[list[bytes]], list[bytes]] | None = None,
    ) -> int:
        """Stream ``COPY (src_sql) TO STDOUT`` into ``COPY dst FROM STDIN``; rows copied.

        Raw bytes go from one libpq connection to the other through a 1 MiB
        buffer: no per-row Python objects, bounded memory. ``src_sql`` must
        be a complete statement (parameters already bound client-side: COPY
        takes no bind parameters). ``check`` runs about once a second; when
        it raises, both COPYs are aborted and the exception propagates.

        With ``transform`` (text format only), blocks of COPY text lines
        (without their newline) pass through it on the way.
        """
        if transform is not None and binary:
            raise ValueError("a transform needs text COPY")
        fmt = " (FORMAT binary)" if binary else ""
        names = ", ".join(self.dialect.quote(c) for c in dst_columns)
        out_sql = f"COPY ({src_sql}) TO STDOUT{fmt}".encode()
        in_sql = f"COPY {self.dialect.table(dst_table)} ({names}) FROM STDIN{fmt}".encode()
        s, d = src_conn.pgconn, dst_conn.pgconn
        saved = s.nonblocking, d.nonblocking
        # Blocking libpq calls: get_copy_data waits for data, put_copy_data
        # for room, without a Python-level wait loop per row.
        s.nonblocking = 0
        d.nonblocking = 0
        try:
            d.send_query(in_sql)
            res = d.get_result()
            if res is None or res.status != pq.ExecStatus.COPY_IN:
                _drain(d)
                raise on_destination(_result_error(res, dst_conn))
            s.send_query(out_sql)
            # The source may think for minutes before its first row (a sort, an
            # aggregate): wait on the socket, not in libpq, so other threads
            # (the engine's heartbeat and cancel watchdog) keep running.
            _wait_ready(s, check)
            res = s.get_result()
            if res is None or res.status != pq.ExecStatus.COPY_OUT:
                _drain(s)
                d.put_copy_end(b"source failed")
                _drain(d)
                raise _result_error(res, src_conn)
            last_check = time.monotonic()
            get, put = s.get_copy_data, d.put_copy_data
            try:
                buf = bytearray()
                while True:
                    n, data = get(1)  # async: 0 means no complete row yet
                    if n == 0:
                        # Blocking in libpq would hold the GIL; select() does not.
                        select.select([s.socket], [], [], 1.0)
                        s.consume_input()
                        if check is not None and time.monotonic() - last_check > 1.0:
                            last_check = time.monotonic()
                            check()
                        continue
                    if n < 0:
                        break
                    buf += data
                    if len(buf) >= flush_bytes:
                        if transform is not None:
                            # Text COPY lines through ``transform``, a block at a
                            # time: no typed values, only touched fields change.
                            block = transform(bytes(buf).split(b"\n")[:-1])
                            ok = put(b"\n".join(block) + b"\n") if block else 1
                        else:
                            ok = put(buf)
                        if ok != 1:
                            raise on_destination(_conn_error(dst_conn))
                        del buf[:]
                        if check is not None and time.monotonic() - last_check > 1.0:
                            last_check = time.monotonic()
                            check()
                if buf:
                    if transform is not None:
                        block = transform(bytes(buf).split(b"\n")[:-1])
                        ok = put(b"\n".join(block) + b"\n") if block else 1
                    else:
                        ok = put(buf)
                    if ok != 1:
                        raise on_destination(_conn_error(dst_conn))
            except BaseException:
                # Abort both sides so the connections can roll back cleanly.
                try:
                    src_conn.cancel_safe()
                except Exception:  # noqa: BLE001  # nosec B110 - best-effort cleanup
                    pass
                _drain_copy_out(s)
                try:
                    d.put_copy_end(b"copy aborted")
                except Exception:  # noqa: BLE001  # nosec B110 - best-effort cleanup
                    pass
                _drain(d)
                raise
            src_error = _drain(s)
            if src_error is not None:
                d.put_copy_end(b"source failed")
                _drain(d)
                raise src_error
            d.put_copy_end(None)
            rows = 0
            dst_error = None
            while (res := d.get_result()) is not None:
                if res.status == pq.ExecStatus.COMMAND_OK:
                    rows = int(res.command_tuples or 0)
                elif dst_error is None:
                    dst_error = _result_error(res, dst_conn)
            if dst_error is not None:
                raise on_destination(dst_error)
            return rows
        finally:
            s.nonblocking, d.nonblocking = saved


class _PassThrough:
    """The fast copy of PostgreSQL to PostgreSQL (``SqlConnector.fast_copy_to``).

    Binary COPY when the types line up. With ``lines`` (steps left after
    push-down that work on text fields), text COPY lines pass through it.
    """

    accepts_lines = True

    def __init__(self, source: PostgresqlConnector) -> None:
        self.source = source

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
        # COPY takes no bind parameters: bind client-side with psycopg's own
        # literal quoting (the values still never pass through string formatting).
        src_sql = psycopg.ClientCursor(src_conn).mogrify(sql, params) if params else sql
        target_types = self.source.binary_types(sink.written_columns)
        binary = lines is None and self.source.binary_types(columns) == target_types
        dst_conn = sink.conn
        # Make sure the destination transaction has begun (psycopg begins lazily).
        dst_conn.execute("SELECT 1")
        # The engine's watchdog stops both COPYs at once on cancel or timeout.
        with Watchdog(ctx, src_conn.cancel_safe, dst_conn.cancel_safe):
            rows: int = self.source.copy_through(
                src_conn,
                src_sql,
                dst_conn,
                sink.target,
                [c.name for c in columns],
                binary=binary,
                check=ctx.check,
                transform=lines,
            )
        return rows


# Binary COPY of a batch: the destination type (by OID), the exact Python
# types whose binary form psycopg writes for it, with the same meaning as
# the text form. Anything else (other types, subclasses, naive datetimes in
# timestamptz, out-of-range ints, special decimals, NUL in text) goes in text
# COPY, so values and errors stay exactly as before.
_BINARY_COPY: dict[int, tuple[str, frozenset[type]]] = {
    16: ("bool", frozenset({bool})),
    20: ("int8", frozenset({int})),
    21: ("int2", frozenset({int})),
    23: ("int4", frozenset({int})),
    25: ("text", frozenset({str})),
    701: ("float8", frozenset({float})),
    1043: ("varchar", frozenset({str})),
    1082: ("date", frozenset({dt.date})),
    1184: ("timestamptz", frozenset({dt.datetime})),
    1700: ("numeric", frozenset({Decimal})),
    2950: ("uuid", frozenset({uuid.UUID})),
}
_INT_RANGE = {"int2": 1 << 15, "int4": 1 << 31, "int8": 1 << 63}
_NOT_NONE = partial(operator.is_not, None)
_NONE_TYPE = type(None)


class _OpenCopy:
    """A COPY FROM left open between batches of one transaction."""

    def __init__(self, dialect: Dialect, conn: Any, table: str, columns: list[Column]) -> None:
        self.conn = conn
        self.columns = columns
        names = ", ".join(dialect.quote(c.name) for c in columns)
        self.table_sql = f"{dialect.table(table)} ({names})"
        # The COPY left open between batches: (its context, binary, Copy).
        self._open: tuple[Any, bool, Any] | None = None

    def close(self) -> None:
        """End the open COPY (the server's errors surface here)."""
        opened, self._open = self._open, None
        if opened is not None:
            opened[0].__exit__(None, None, None)

    def abort(self) -> None:
        """Abandon the open COPY, if any (the transaction is rolling back)."""
        opened, self._open = self._open, None
        if opened is not None:
            try:
                error = RuntimeError("copy aborted")
                opened[0].__exit__(RuntimeError, error, None)
            except Exception:  # noqa: BLE001 - the connection may be gone already  # nosec B110
                pass


class _TextWriter(_OpenCopy):
    """A text source's rows (or COPY text) into one table by text COPY."""

    def __init__(
        self, dialect: Dialect, conn: Any, table: str, columns: list[Column], types: list[str]
    ) -> None:
        super().__init__(dialect, conn, table, columns)
        self.names = [c.name for c in columns]
        self.types = types

    def __call__(self, rows: list[tuple]) -> None:
        if rows:
            self.write(copy_text(rows, self.names, self.types))

    def write(self, data: bytes) -> None:
        """Lines of COPY text, each ending in a newline."""
        if self._open is None:
            manager = self.conn.cursor().copy(f"COPY {self.table_sql} FROM STDIN")
            self._open = (manager, False, manager.__enter__())
        manager, _, copy = self._open
        try:
            copy.write(data)
        except BaseException as exc:
            self._open = None
            manager.__exit__(type(exc), exc, exc.__traceback__)
            raise


class _RowWriter(_OpenCopy):
    """Row batches into one table, binary COPY when the values allow it."""

    def __init__(self, dialect: Dialect, conn: Any, table: str, columns: list[Column]) -> None:
        super().__init__(dialect, conn, table, columns)
        names = ", ".join(dialect.quote(c.name) for c in columns)
        self.select_sql = f"SELECT {names} FROM {dialect.table(table)} LIMIT 0"  # nosec B608 - quoted names
        # JSON objects may also land in text columns (a file source's guess).
        self.json_idx = [i for i, c in enumerate(columns) if c.type in ("json", "text")]
        self.types: list[str | None] | None = None
        self.allowed: list[frozenset[type]] = []

    def _load_types(self) -> None:
        cur = self.conn.execute(self.select_sql)
        found = [_BINARY_COPY.get(d.type_code) for d in cur.description or []]
        self.types = [f[0] if f else None for f in found]
        self.allowed = [f[1] | {_NONE_TYPE} if f else frozenset() for f in found]

    def _binary_ok(self, rows: list[tuple]) -> bool:
        if self.types is None:
            self._load_types()
        assert self.types is not None  # nosec B101 - type narrowing
        if None in self.types or len(rows[0]) != len(self.types):
            return False
        if len(set(map(len, rows))) != 1:
            return False
        for i, (type_, allowed) in enumerate(zip(self.types, self.allowed, strict=True)):
            column = list(map(operator.itemgetter(i), rows))
            found = set(map(type, column))
            if not found <= allowed:
                return False
            values = list(filter(_NOT_NONE, column)) if _NONE_TYPE in found else column
            if not values:
                continue
            if type_ in _INT_RANGE:
                bound = _INT_RANGE[type_]
                if min(values) < -bound or max(values) >= bound:
                    return False
            elif type_ in ("text", "varchar"):
                if "\x00" in "".join(values):
                    return False
            elif type_ == "numeric":
                if not all(map(Decimal.is_finite, values)):
                    return False
            elif type_ == "timestamptz":
                if None in set(map(operator.attrgetter("tzinfo"), values)):
                    return False
        return True

    def __call__(self, rows: list[tuple]) -> None:
        if not rows:
            return
        binary = self._binary_ok(rows)
        if self._open is not None and self._open[1] != binary:
            self.close()
        if self._open is None:
            fmt = " (FORMAT binary)" if binary else ""
            manager = self.conn.cursor().copy(f"COPY {self.table_sql} FROM STDIN{fmt}")
            copy = manager.__enter__()
            self._open = (manager, binary, copy)
            if binary:
                copy.set_types(self.types)
        manager, _, copy = self._open
        try:
            write = copy.write_row
            if binary:
                for row in rows:
                    write(row)
                return
            # Only the columns that hold something else than text need converting.
            convert = [
                i
                for i in self.json_idx
                if not set(map(type, map(operator.itemgetter(i), rows))) <= {str, _NONE_TYPE}
            ]
            if convert:
                for row in rows:
                    values = list(row)
                    for i in convert:
                        if values[i] is not None and not isinstance(values[i], str):
                            values[i] = json.dumps(values[i], default=str)
                    write(values)
            else:
                for row in rows:
                    write(row)
        except BaseException as exc:
            self._open = None
            manager.__exit__(type(exc), exc, exc.__traceback__)
            # psycopg's refusal names no column: name it and the row.
            if isinstance(exc, psycopg.DataError) and "NUL" in str(exc):
                found = nul_error(rows, [c.name for c in self.columns])
                if found is not None:
                    raise found from exc
            raise


def _text_json(cur: Any) -> None:
    # JSON stays text (exactly PostgreSQL's ``::text``): a copy moves it,
    # it need not parse it. Writers that need objects parse it themselves.
    cur.adapters.register_loader("jsonb", _JsonbTextLoader)
    cur.adapters.register_loader("json", _JsonTextLoader)


class _JsonbTextLoader(Loader):
    format = pq.Format.BINARY

    def load(self, data: Any) -> str:
        # Binary jsonb is a version byte (1) and the JSON text.
        return bytes(data[1:]).decode()


class _JsonTextLoader(Loader):
    format = pq.Format.BINARY

    def load(self, data: Any) -> str:
        return bytes(data).decode()


def _result_error(res: Any, conn: Any) -> Exception:
    if res is None:
        return psycopg.OperationalError("no result from server")
    return pg_errors.error_from_result(res, encoding=conn.info.encoding)


def _conn_error(conn: Any) -> Exception:
    message = conn.pgconn.error_message.decode(errors="replace") or "connection lost"
    return psycopg.OperationalError(message)


def _wait_ready(pgconn: Any, check: Callable[[], None] | None) -> None:
    """Wait until a result can be read without blocking, checking once a second.

    libpq's blocking calls keep the GIL (psycopg's binary build does not
    release it), which would freeze the worker's heartbeat thread; select()
    releases it.
    """
    last_check = time.monotonic()
    pgconn.consume_input()
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [], 1.0)
        pgconn.consume_input()
        if check is not None and time.monotonic() - last_check > 1.0:
            last_check = time.monotonic()
            check()


def _drain_copy_out(pgconn: Any) -> None:
    try:
        while True:
            n, _ = pgconn.get_copy_data(0)
            if n < 0:
                break
    except Exception:  # noqa: BLE001  # nosec B110 - best-effort cleanup
        pass
    _drain(pgconn)


def _drain(pgconn: Any) -> Exception | None:
    """Consume the remaining results; the first error among them, if any."""
    error: Exception | None = None
    try:
        while (res := pgconn.get_result()) is not None:
            if res.status == pq.ExecStatus.COPY_OUT:
                _drain_copy_out(pgconn)
                continue
            if res.status == pq.ExecStatus.COPY_IN:
                pgconn.put_copy_end(b"aborted")
                continue
            if (
                res.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
                and error is None
            ):
                error = pg_errors.error_from_result(res, encoding="utf-8")
    except Exception as exc:  # noqa: BLE001
        error = error or exc
    return error
