"""The interface every connector plugin implements. Imports no Django.

Two families share it:

- ``SqlConnector`` (``postgresql``, ``mysql``, ``sqlite``): runs SQL, so
  ``sql``/``check`` tasks work on it and the copy engine pushes
  transformations down into its queries. A subclass supplies a ``Dialect``
  (quoting, types, expressions) and a handful of hooks (connect, stream a
  query, bulk insert, upsert).
- ``FileConnector`` (``csv``, ``jsonl``): a directory under ``DATA_ROOT``;
  a task's ``table`` is a file name in it.

The copy engine (``connectors.copy``) drives both through these methods.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

from connectors.types import Column
from core import outbound
from core.names import identifier_problem, sql_parameters, table_problem

logger = logging.getLogger(__name__)


class ConnectorError(Exception):
    """A connector failed. ``transient`` says whether retrying may help.

    Messages name the host and the cause, never a secret.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def on_destination(exc: BaseException) -> BaseException:
    """Mark a driver error raised by a copy's destination connection (see copy errors).

    A fast copy moves rows between two connections in one call; the copy
    reports a marked error against the destination, any other against the
    source.
    """
    exc.copy_side = "destination"  # type: ignore[attr-defined]
    return exc


# ------------------------------------------------------------ identifiers

# Identifier and table-name rules live once in core.names (the definition
# checker applies the same ones before a pipeline is saved); these two raise
# them as connector errors right before SQL is built.


def check_identifier(name: Any) -> str:
    """``name`` when it is a safe column name; ConnectorError otherwise."""
    problem = identifier_problem(name)
    if problem:
        raise ConnectorError(f"column name {str(name)[:40]!r} is not a safe identifier: {problem}")
    return str(name)


def split_table(name: Any) -> tuple[str | None, str]:
    """``(schema, table)`` of a checked table name; ConnectorError when unsafe."""
    problem = table_problem(name)
    if problem:
        raise ConnectorError(f"table name {str(name)[:40]!r} is not safe: {problem}")
    schema, _, table = str(name).rpartition(".")
    return (schema or None), table


# --------------------------------------------------------------- helpers


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory file connectors and SQLite paths are confined to.

    Read from Django settings lazily (connectors otherwise need no Django),
    or from ``DATA_ROOT`` in the environment when Django is not configured.
    """
    if explicit is not None:
        return Path(explicit).resolve()
    if "django.conf" in sys.modules or "django" in sys.modules:
        try:
            from django.conf import settings

            return Path(settings.DATA_ROOT).resolve()
        except Exception:  # noqa: BLE001 - settings not configured: fall back  # nosec B110
            pass
    return Path(os.environ.get("DATA_ROOT", "var/data")).resolve()


def resolve_under(root: Path, relative: Any, *, what: str, root_name: str = "DATA_ROOT") -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and links out of ``root``.

    ``root_name`` names the root in the refusal.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise ConnectorError(f"{what} must be a non-empty relative path")
    if os.path.isabs(relative) or relative.startswith("~"):
        raise ConnectorError(f"{what} {relative!r}: absolute paths are refused")
    if ".." in Path(relative).parts:
        raise ConnectorError(f"{what} {relative!r}: '..' is refused")
    candidate = (root / relative).resolve()  # follows symlinks
    if candidate != root and root not in candidate.parents:
        raise ConnectorError(f"{what} {relative!r} resolves outside {root_name}; refused")
    return candidate


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a database driver (and so becomes a ConnectorError)."""
    module = type(exc).__module__
    return module.startswith(("psycopg", "pymysql", "sqlite3", "_sqlite3")) or isinstance(
        exc, OSError | TimeoutError
    )


def test_connection(connector: Connector) -> dict[str, Any]:
    """Run ``connector.test()`` and answer ``{ok, latency_ms, error}`` (SPEC §4).

    ``error`` is the ConnectorError message: it names the host and the cause,
    never a secret. Unexpected exceptions are reported by class name only,
    since their text may come from a driver that echoes the DSN (and a
    connector bug must not become a 500). ``latency_ms`` is None on failure.
    """
    started = time.perf_counter()
    try:
        connector.test()
    except ConnectorError as exc:
        return {"ok": False, "latency_ms": None, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported, never raised to the API
        return {"ok": False, "latency_ms": None, "error": type(exc).__name__}
    latency = round((time.perf_counter() - started) * 1000, 1)
    return {"ok": True, "latency_ms": latency, "error": None}


# Why a connection could not be made, in fixed words (SPEC §10). The
# server's own text is never shown: whatever listens on the host and port a
# user names (an SSH or HTTP service, a fake database) chooses it, and
# echoing it would turn the connection test into a banner grabber.
COULD_NOT_CONNECT = "could not connect (the server's answer is not shown)"


def connect_failure(exc: BaseException, markers: tuple[tuple[str, str], ...] = ()) -> str:
    """A fixed phrase for why connecting failed: refused, timed out, TLS, or a driver marker.

    The exception and its causes are judged by type first; then the first
    of ``markers`` (``(lowercase text in the driver's message, phrase)``)
    found in the message names the cause. The message itself is never
    returned.
    """
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = (
            getattr(current, "original_exception", None) or current.__cause__ or current.__context__
        )
    for error in seen:
        if isinstance(error, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        if isinstance(error, ssl.SSLError):
            return "TLS failed"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return "host name not resolved"
        if isinstance(error, TimeoutError):
            return "timed out"
    text = " ".join(str(error) for error in seen).lower()
    for marker, phrase in markers:
        if marker in text:
            return phrase
    return COULD_NOT_CONNECT


def scrub(message: str, *secrets: Any) -> str:
    """``message`` with every secret value replaced (drivers sometimes echo them)."""
    for secret in secrets:
        if isinstance(secret, str) and secret:
            message = message.replace(secret, "***")
    return message


class Watchdog:
    """Stops a long statement in the database when the run is cancelled or times out.

    ``ctx.check()`` is called between batches and statements, but a single
    statement can run for minutes. When the context offers ``on_cancel``
    (the engine's RunContext, whose own watchdog thread notices cancel,
    timeout and lost leases), the cancel functions are registered there;
    otherwise a thread polls ``ctx.check()``. Either way, when the statement
    fails because it was stopped, the context's reason (TaskCancelled,
    TaskTimedOut, LeaseLost) is raised instead of the driver's error.
    """

    def __init__(self, ctx: Any, *cancels: Callable[[], None], interval: float = 1.0) -> None:
        self.ctx = ctx
        self.cancels = cancels
        self.interval = interval
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        for cancel in self.cancels:
            try:
                cancel()
            except Exception:  # noqa: BLE001 - best effort: the statement may have ended  # nosec B110
                pass

    def __enter__(self) -> Watchdog:
        if self.ctx is None:
            return self
        if hasattr(self.ctx, "on_cancel"):
            self.ctx.on_cancel(self.cancel)
        elif hasattr(self.ctx, "check"):
            self._thread = threading.Thread(target=self._run, name="dd-watchdog", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.ctx.check()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.error = exc
                self.cancel()
                return

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.ctx is not None and hasattr(self.ctx, "remove_cancel"):
            self.ctx.remove_cancel(self.cancel)
        if exc is None or not isinstance(exc, Exception):
            return
        if self.error is not None:
            raise self.error from exc
        if self.ctx is not None and hasattr(self.ctx, "check"):
            # Raises the stop reason when the run was stopped meanwhile.
            self.ctx.check()


# ---------------------------------------------------------------- connector


class Connector(ABC):
    """One kind of connection (``postgresql``, ``csv``, …).

    ``config`` is the full configuration, secrets included; connectors must
    never put a secret into an exception message or a log line.
    """

    kind: ClassVar[str]
    # Config keys stored encrypted and never returned.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Config keys: required ones and every allowed one (for validation).
    required_fields: ClassVar[frozenset[str]] = frozenset()
    allowed_fields: ClassVar[frozenset[str]] = frozenset()
    # Whether the kind runs SQL (``sql`` and ``check`` tasks, push-down).
    speaks_sql: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str,
        config: dict[str, Any],
        data_root: str | os.PathLike[str] | None = None,
        connection_id: str | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._data_root = data_root
        # The stored connection's id, when there is one: what metrics call
        # its pool (never the user, host or database names of the config).
        self.connection_id = connection_id

    def __repr__(self) -> str:
        # Never the config: it holds the secrets.
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def data_root(self) -> Path:
        return data_root(self._data_root)

    def data_paths(self) -> list[Path]:
        """The paths under DATA_ROOT this connection reads and writes (none for servers).

        No two connections may share or nest them (SPEC §10): sharing the
        connection is then the only way to another team's files.
        """
        return []

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        """Problems with ``config`` as ``(key, message)`` pairs; empty when valid."""
        if not isinstance(config, dict):
            return [("", "must be an object")]
        problems: list[tuple[str, str]] = []
        for key in sorted(set(config) - cls.allowed_fields):
            problems.append((key, "unknown key"))
        for key in sorted(cls.required_fields - set(config)):
            problems.append((key, "required"))
        return problems

    @abstractmethod
    def test(self) -> None:
        """Connect and run a trivial operation; raise ConnectorError on failure."""

    @abstractmethod
    def describe(self, table: str | None = None, query: str | None = None) -> list[Column]:
        """The columns of a table (file) or of a query's result."""

    # ----- browsing (the connection page, SPEC §6): read-only, bounded

    @classmethod
    def browsable(cls) -> bool:
        """Whether the kind lists tables and samples rows (the page offers it only then)."""
        return False

    def list_tables(self, limit: int) -> list[str]:
        """At most ``limit`` table (file) names, sorted, with their schema if the kind has any."""
        raise ConnectorError(f"{self.kind} connections cannot be browsed")

    def sample(self, table: str, max_columns: int, rows: int) -> tuple[list[Column], list[tuple]]:
        """The first ``max_columns`` columns of ``table`` and its first ``rows`` rows."""
        raise ConnectorError(f"{self.kind} connections cannot be browsed")


class Dialect:
    """How one SQL kind spells things. Subclasses override what differs."""

    kind: ClassVar[str] = ""
    quote_char: ClassVar[str] = '"'
    # Whether ``sha256`` masking can be computed in SQL.
    has_sha256: ClassVar[bool] = True

    def quote(self, name: str) -> str:
        """A quoted column name (validated first)."""
        check_identifier(name)
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    def table(self, name: str) -> str:
        """A quoted ``schema.table`` (validated first)."""
        schema, table = split_table(name)
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def ddl_type(self, column: Column, *, key: bool = False) -> str:
        raise NotImplementedError

    def cast(self, expr: str, type_: str, source_type: str = "text") -> str:
        """``expr`` (of canonical ``source_type``) cast to a ``cast`` type (SPEC §2)."""
        raise NotImplementedError

    def bool_from_text(self, expr: str, int_cast: str) -> str:
        """SQL turning 'true'/'yes'/'1' (and numbers) into 1/0, NULL for NULL."""
        return (
            f"(CASE WHEN {expr} IS NULL THEN NULL"
            f" WHEN LOWER({expr}) IN ('true','t','yes','y','on') THEN 1"
            f" WHEN LOWER({expr}) IN ('false','f','no','n','off') THEN 0"
            f" ELSE CAST({expr} AS {int_cast}) <> 0 END)"
        )

    def sha256(self, expr: str) -> str:
        """Lowercase hex sha256 of ``expr`` as text, NULL for NULL."""
        raise NotImplementedError

    def null_of(self, column: Column) -> str:
        return "NULL"

    # ----- what the copy engine asks (connectors.copy.sql_sink)

    # DDL inside a transaction is undone by its rollback (PostgreSQL, SQLite).
    # Without it (MySQL commits DDL implicitly) a ``replace`` loads a shadow
    # table and swaps it in after the commit (``create_like``, ``swap``).
    transactional_ddl: ClassVar[bool] = True
    # Whether the copy markers live in the destination table's schema (a
    # PostgreSQL schema is a namespace of the one database) or in the
    # connection's default one.
    markers_in_schema: ClassVar[bool] = False
    # Text between ``INSERT … SELECT … FROM x`` and its conflict clause.
    select_conflict_guard: ClassVar[str] = ""

    def insert_ignore(self, table: str, columns: list[str], values: str) -> str:
        """``INSERT`` of one row of ``values`` that does nothing when its key exists."""
        names = ", ".join(self.quote(c) for c in columns)
        return (
            f"INSERT INTO {self.table(table)} ({names}) VALUES ({values})"  # nosec B608 - quoted names
            " ON CONFLICT DO NOTHING"
        )

    def upsert_clause(self, columns: list[str], keys: list[str]) -> str:
        """What follows an ``INSERT`` so a row whose ``keys`` exist updates the other columns."""
        q = self.quote
        others = [c for c in columns if c not in keys]
        action = (
            "DO UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in others)  # nosec B608 - quoted names
            if others
            else "DO NOTHING"
        )
        return f" ON CONFLICT ({', '.join(q(k) for k in keys)}) {action}"

    def upsert_select(self, table: str, columns: list[str], keys: list[str], source: str) -> str:
        """Upsert every row of table ``source`` (quoted already) into ``table`` by ``keys``."""
        cols = ", ".join(self.quote(c) for c in columns)
        return (
            f"INSERT INTO {self.table(table)} ({cols}) SELECT {cols} FROM {source}"  # nosec B608 - quoted names
            f"{self.select_conflict_guard}{self.upsert_clause(columns, keys)}"
        )

    def upsert_temp_table(self, table: str) -> str | None:
        """DDL of a temporary table ``TEMP_STAGE`` an upsert loads before merging it
        (``upsert_select``) in the same transaction; None: rows are upserted as they come."""
        return None

    def stage_table(self, create: str) -> str:
        """``create`` (a ``CREATE TABLE``) as a staged load's table: rows written again later."""
        return create

    def create_unique_index(self, table: str, index: str, keys: list[str]) -> str:
        cols = ", ".join(self.quote(k) for k in keys)
        return (
            f"CREATE UNIQUE INDEX IF NOT EXISTS {self.quote(index)} ON {self.table(table)} ({cols})"
        )

    def create_like(self, table: str, like: str) -> str:
        """``CREATE TABLE table`` defined as ``like`` (kinds without transactional DDL)."""
        raise NotImplementedError

    def add_column(self, table: str, name: str, ddl_type: str) -> str:
        """``ALTER TABLE`` adding a nullable column (a schema change, SPEC §9)."""
        return f"ALTER TABLE {self.table(table)} ADD COLUMN {self.quote(name)} {ddl_type}"

    def widen_to(self, existing: Column, incoming: Column) -> str | None:
        """The type ``existing`` is widened to in place for ``incoming``'s values.

        None where the kind does not need or cannot (SQLite: types are
        affinities, any value fits).
        """
        return None

    def widen_column(self, table: str, column: Column, ddl_type: str) -> str:
        """``ALTER TABLE`` changing ``column`` to the wider ``ddl_type``."""
        raise NotImplementedError

    def swap(self, table: str, shadow: str, old: str, exists: bool) -> list[str]:
        """Statements putting ``shadow`` in ``table``'s place (kinds without transactional DDL)."""
        raise NotImplementedError

    def primary_key(self, conn: Any, table: str) -> list[str]:
        """The primary key columns of ``table`` in key order (empty when it has none)."""
        raise NotImplementedError

    def unique_keys(self, conn: Any, table: str) -> list[list[str]]:
        """The column sets of ``table``'s unique indexes (no partial ones)."""
        raise NotImplementedError


# The temporary table of ``Dialect.upsert_temp_table``.
TEMP_STAGE = "_dd_stage"


class FastCopyTarget(Protocol):
    """Where a fast copy writes: a destination's open transaction (a copy sink)."""

    conn: Any
    target: str
    written_columns: list[Column]


class FastCopy(Protocol):
    """A source kind's own way of moving rows to one destination kind.

    ``accepts_lines``: steps left after push-down may run on the text lines
    it moves (``connectors.transform.TextLineTransformer``).
    """

    accepts_lines: bool

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
        """Copy the rows of ``sql`` into ``sink``'s open transaction; the rows copied."""


class BatchWriter(Protocol):
    """Row batches into one table of an open transaction (``SqlConnector.row_writer``).

    ``close()`` it before anything else runs on the connection, ``abort()``
    it before a rollback.
    """

    def __call__(self, rows: list[tuple]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class TextWriter(BatchWriter, Protocol):
    """A ``BatchWriter`` of a text source's unparsed values (``SqlConnector.text_writer``).

    ``write`` takes lines already in the destination's text format.
    """

    def write(self, data: bytes) -> None: ...


class InsertWriter:
    """The default ``BatchWriter``: each batch through ``insert_rows``."""

    def __init__(self, connector: SqlConnector, conn: Any, table: str, columns: list[Column]):
        self.connector, self.conn, self.table, self.columns = connector, conn, table, columns

    def __call__(self, rows: list[tuple]) -> None:
        self.connector.insert_rows(self.conn, self.table, self.columns, rows)

    def close(self) -> None:
        """Nothing stays open between batches."""

    def abort(self) -> None:
        """Nothing stays open between batches."""


class SqlConnector(Connector):
    """Base of the SQL kinds: shared statement running, push-down and copy hooks."""

    speaks_sql = True
    dialect: ClassVar[Dialect]
    default_port: ClassVar[int | str] = ""
    # Whether the driver returns typed Python values (SQLite and files
    # return text that the copy engine parses by column type).
    typed_values: ClassVar[bool] = True

    # ----- to implement

    @abstractmethod
    def connect(self, *, read_only: bool = False, timeout_s: float | None = None) -> Any:
        """A context manager yielding a DB-API connection in a transaction.

        Committed on normal exit, rolled back on an exception. ``read_only``
        opens a read-only snapshot (consistent for every statement inside);
        ``timeout_s`` limits each statement.
        """

    @abstractmethod
    def cancel_handle(self, conn: Any) -> Callable[[], None]:
        """A function that stops the statement ``conn`` is running (from another thread)."""

    @abstractmethod
    def iter_batches(
        self, conn: Any, sql: str, params: dict[str, Any], size: int
    ) -> Iterator[list[tuple]]:
        """Stream the rows of ``sql`` in lists of at most ``size`` rows (bounded memory)."""

    @abstractmethod
    def describe_query(self, conn: Any, sql: str, params: dict[str, Any]) -> list[Column]:
        """The columns of ``sql``'s result, without reading its rows."""

    @abstractmethod
    def table_columns(self, conn: Any, table: str) -> list[Column] | None:
        """The columns of ``table``, or None when it does not exist."""

    @abstractmethod
    def insert_rows(self, conn: Any, table: str, columns: list[Column], rows: list[tuple]) -> None:
        """Append ``rows`` to ``table`` as fast as the kind allows."""

    @abstractmethod
    def map_error(self, exc: BaseException) -> ConnectorError:
        """A ConnectorError for a driver exception: host + cause, transient or not."""

    # ----- browsing: one read-only snapshot per call, every statement under ``timeout_s``

    # The kind's tables (one text column, sorted); "" when it cannot list them.
    tables_sql: ClassVar[str] = ""
    browse_timeout_s: ClassVar[float] = 10.0

    @classmethod
    def browsable(cls) -> bool:
        return bool(cls.tables_sql)

    def list_tables(self, limit: int) -> list[str]:
        if not self.tables_sql:
            return super().list_tables(limit)
        try:
            with self.connect(read_only=True, timeout_s=self.browse_timeout_s) as conn:
                first = next(iter(self.iter_batches(conn, self.tables_sql, {}, limit)), [])
        except Exception as exc:
            raise self._browse_error(exc) from None
        return [str(row[0]) for row in first[:limit]]

    def sample(self, table: str, max_columns: int, rows: int) -> tuple[list[Column], list[tuple]]:
        quoted = self.dialect.table(table)  # checks the name before any connection
        try:
            with self.connect(read_only=True, timeout_s=self.browse_timeout_s) as conn:
                columns = self.table_columns(conn, table)
                if columns is None:
                    raise ConnectorError(f"{self.kind} {self.name}: table {table!r} does not exist")
                columns = columns[:max_columns]
                names = ", ".join(self.dialect.quote(c.name) for c in columns)
                sql = f"SELECT {names} FROM {quoted} LIMIT {int(rows)}"  # nosec B608 - quoted, an int
                first = next(iter(self.iter_batches(conn, sql, {}, rows)), [])
        except Exception as exc:
            raise self._browse_error(exc) from None
        return columns, list(first[:rows])

    def _browse_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ConnectorError):
            return exc
        if is_driver_error(exc):
            return self.map_error(exc)
        return exc

    # ----- the copy engine's hooks (defaults)

    def row_writer(self, conn: Any, table: str, columns: list[Column]) -> BatchWriter:
        """A writer of row batches into ``table`` for one open transaction."""
        return InsertWriter(self, conn, table, columns)

    # Whether text_writer exists for this kind (a text source's values go in
    # unparsed, checked by the destination's own input functions).
    writes_text: ClassVar[bool] = False

    def text_writer(
        self, conn: Any, table: str, columns: list[Column], types: list[str]
    ) -> TextWriter:
        """A writer of a text source's rows, values unparsed (only when ``writes_text``)."""
        raise NotImplementedError(f"{self.kind} has no text writer")

    def upsert_rows(
        self,
        conn: Any,
        table: str,
        columns: list[Column],
        keys: list[str],
        rows: list[tuple],
        *,
        skip_existing: bool = False,
    ) -> None:
        """Insert ``rows``, updating those whose ``keys`` exist (unless the dialect
        upserts through a temporary table); ``skip_existing``: leaving them as they are."""
        # Updating only the keys is the dialect's "leave the row as it is".
        updated = keys if skip_existing else [c.name for c in columns]
        self._insert(conn, table, columns, rows, self.dialect.upsert_clause(updated, keys))

    def _insert(
        self, conn: Any, table: str, columns: list[Column], rows: list[tuple], suffix: str
    ) -> None:
        """INSERT ``rows`` followed by ``suffix`` (an upsert clause, or nothing), bound
        the kind's way; kinds that upsert through a temporary table need none."""
        raise NotImplementedError

    def fast_copy_to(self, destination: Connector) -> FastCopy | None:
        """This kind's fast path to ``destination``, when there is one for that pair."""
        return None

    # ----- shared

    def execute(self, sql: str, params: dict[str, Any] | None = None, ctx: Any = None) -> int:
        """Run one statement in its own transaction; the affected row count.

        Parameters are bound by the driver (``%(name)s``), never formatted in.
        With a ``ctx`` the statement gets a timeout from ``ctx.seconds_left()``
        and is cancelled in the database when the run is cancelled.
        """
        timeout = ctx.seconds_left() if ctx is not None else None
        try:
            with self.connect(timeout_s=timeout) as conn:
                with Watchdog(ctx, self.cancel_handle(conn)):
                    cur = conn.cursor()
                    try:
                        cur.execute(sql, _used_params(sql, params))
                        return int(cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0)
                    finally:
                        cur.close()
        except ConnectorError:
            raise
        except Exception as exc:
            if not is_driver_error(exc):
                raise  # TaskCancelled, TaskTimedOut, LeaseLost from the watchdog
            raise self.map_error(exc) from exc

    def run_statements(
        self, statements: list[str], params: dict[str, Any] | None = None, ctx: Any = None
    ) -> list[int]:
        """Run ``statements`` in one transaction (all or nothing); affected row counts.

        ``ctx.check()`` runs between statements; a cancel or timeout rolls
        the whole transaction back. (MySQL commits DDL implicitly: there a
        list of DDL statements is not atomic.)
        """
        counts: list[int] = []
        timeout = ctx.seconds_left() if ctx is not None else None
        try:
            with self.connect(timeout_s=timeout) as conn:
                with Watchdog(ctx, self.cancel_handle(conn)):
                    for statement in statements:
                        if ctx is not None:
                            ctx.check()
                        cur = conn.cursor()
                        try:
                            cur.execute(statement, _used_params(statement, params))
                            counts.append(
                                int(cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0)
                            )
                        finally:
                            cur.close()
                    if ctx is not None:
                        ctx.check()
        except ConnectorError:
            raise
        except Exception as exc:
            if not is_driver_error(exc):
                raise
            raise self.map_error(exc) from exc
        return counts

    def query(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        ctx: Any = None,
        *,
        limit: int | None = None,
    ) -> tuple[list[str], list[tuple]]:
        """Run a read query; ``(column names, rows)`` (at most ``limit`` rows)."""
        timeout = ctx.seconds_left() if ctx is not None else None
        try:
            with self.connect(read_only=True, timeout_s=timeout) as conn:
                with Watchdog(ctx, self.cancel_handle(conn)):
                    cur = conn.cursor()
                    try:
                        cur.execute(sql, _used_params(sql, params))
                        names = [d[0] for d in cur.description or []]
                        rows = cur.fetchall() if limit is None else cur.fetchmany(limit)
                        return names, [tuple(r) for r in rows]
                    finally:
                        cur.close()
        except ConnectorError:
            raise
        except Exception as exc:
            if not is_driver_error(exc):
                raise
            raise self.map_error(exc) from exc

    def describe(self, table: str | None = None, query: str | None = None) -> list[Column]:
        try:
            with self.connect(read_only=True) as conn:
                if table is not None:
                    columns = self.table_columns(conn, table)
                    if columns is None:
                        raise ConnectorError(f"{self.where()}: table {table!r} does not exist")
                    return columns
                return self.describe_query(conn, query or "", {})
        except ConnectorError:
            raise
        except Exception as exc:
            raise self.map_error(exc) from exc

    def where(self) -> str:
        """How error messages name this connection (never a secret)."""
        host = self.config.get("host", "")
        port = self.config.get("port") or self.default_port
        db = self.config.get("database", "")
        return f"{self.kind} {host}:{port}/{db}" if host else f"{self.kind} {self.name}"


def _used_params(sql: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only the parameters ``sql`` names; None when it names none.

    With None, drivers leave ``%`` alone, so a statement without placeholders
    runs as written. When it names a parameter the run does not have, the
    error says which.
    """
    names = set(sql_parameters(sql))
    if not names:
        return None
    params = params or {}
    missing = sorted(names - set(params))
    if missing:
        raise ConnectorError(f"unknown parameter(s) in SQL: {', '.join(missing)}")
    return {name: params[name] for name in names}


# A connection test (or a task) waits at most this long for a server: a
# user-chosen timeout must not hold a web worker for minutes.
MAX_CONNECT_TIMEOUT_S = 30
DEFAULT_CONNECT_TIMEOUT_S = 10


class ServerConnector(SqlConnector):
    """Base of the kinds that reach a database server over the network.

    They share their config keys and the port check; each kind adds what its
    ``options`` may hold.
    """

    secret_fields = frozenset({"password"})
    required_fields = frozenset({"host", "database"})
    allowed_fields = frozenset(
        {
            "host",
            "port",
            "database",
            "username",
            "password",
            "options",
            "sslmode",
            "connect_timeout",
        }
    )
    # Dotted config keys holding multi-line text (a PEM certificate) that is
    # never put into a connection string, so line breaks in it are allowed.
    multiline_fields: ClassVar[frozenset[str]] = frozenset()
    # ``(lowercase text in a driver's connect error, fixed phrase)``, first
    # match wins (``connect_failure``); each kind lists its driver's.
    connect_markers: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def validate_config(cls, config: Any) -> list[tuple[str, str]]:
        problems = super().validate_config(config)
        if isinstance(config, dict):
            # The host rule below names control characters in the host itself.
            problems += [
                (key, "contains control characters")
                for key in _control_keys(config)
                if key not in cls.multiline_fields and key != "host"
            ]
            timeout = config.get("connect_timeout")
            if timeout is not None and (
                not isinstance(timeout, int)
                or isinstance(timeout, bool)
                or not 1 <= timeout <= MAX_CONNECT_TIMEOUT_S
            ):
                problems.append(
                    ("connect_timeout", f"must be an integer 1-{MAX_CONNECT_TIMEOUT_S} (seconds)")
                )
            port = config.get("port", cls.default_port)
            if not isinstance(port, int) or not 0 < port < 65536:
                problems.append(("port", "must be an integer 1-65535"))
            elif "host" in config:
                # The same outbound policy as at connect time; a name that
                # does not resolve here passes (the workers' DNS may know it).
                problem = outbound.validation_problem(
                    config["host"], port, purpose="database", database=config.get("database")
                )
                if problem:
                    problems.append(("host", problem))
        return problems

    def connect_timeout_s(self) -> int:
        """Seconds to wait for a connection: the config's, within 1-30 even if stored larger."""
        value = self.config.get("connect_timeout")
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_CONNECT_TIMEOUT_S
        return min(max(value, 1), MAX_CONNECT_TIMEOUT_S)

    def connect_error(self, exc: BaseException) -> ConnectorError:
        """A failed connect in fixed words (``connect_failure``), never the server's text.

        Retryable as ``map_error`` judges it. The driver's message goes to
        the log for operators, with the password scrubbed.
        """
        if isinstance(exc, ConnectorError):
            return exc
        logger.info(
            "%s: connect failed: %s", self.where(), scrub(str(exc), self.config.get("password"))
        )
        return ConnectorError(
            f"{self.where()}: {self.connect_phrase(exc)}", transient=self.map_error(exc).transient
        )

    def connect_phrase(self, exc: BaseException) -> str:
        """The fixed phrase for a failed connect; kinds with error codes refine it."""
        return connect_failure(exc, self.connect_markers)

    def target(self) -> outbound.Target:
        """Where to connect, checked now (SPEC §10): connect only to its addresses.

        Runs at every connect, so a row whose host was never validated (or a
        DNS answer that changed since) is refused before any packet leaves.
        """
        bad = [key for key in _control_keys(self.config) if key not in self.multiline_fields]
        if bad:
            raise ConnectorError(f"{self.kind} {self.name}: {bad[0]} contains control characters")
        port = self.config.get("port", self.default_port)
        if not isinstance(port, int):
            raise ConnectorError(f"{self.kind} {self.name}: port must be an integer")
        try:
            return outbound.check(
                self.config.get("host"),
                port,
                purpose="database",
                database=self.config.get("database"),
            )
        except outbound.HostUnresolved as exc:
            # DNS may recover: worth a retry.
            raise ConnectorError(f"{self.kind}: {exc}", transient=True) from None
        except outbound.HostRefused as exc:
            raise ConnectorError(f"{self.kind}: {exc}") from None


def _control_keys(value: Any, path: str = "") -> list[str]:
    """The config keys (``options.x`` for nested ones) whose key or text holds control characters.

    Drivers build connection strings from these values; a newline or NUL in
    any of them could start another keyword or cut one short.
    """
    if isinstance(value, str):
        return [path] if _has_control(value) else []
    keys: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            keys += [inner] if _has_control(str(key)) else _control_keys(item, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            keys += _control_keys(item, f"{path}[{index}]")
    return keys


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


class FileConnector(Connector):
    """Base of the file kinds: ``config.path`` is a directory under ``DATA_ROOT``."""

    required_fields = frozenset({"path"})
    allowed_fields = frozenset({"path", "description"})
    extension: ClassVar[str] = ""
    typed_values: ClassVar[bool] = False

    @classmethod
    def browsable(cls) -> bool:
        return True

    def directory(self) -> Path:
        """The connection's directory, checked to lie under DATA_ROOT."""
        root = self.data_root
        return resolve_under(root, self.config.get("path"), what=f"{self.kind} path")

    def data_paths(self) -> list[Path]:
        return [self.directory()]

    def file(self, table: str) -> Path:
        """The file a task's ``table`` names, checked to lie under DATA_ROOT."""
        if not isinstance(table, str) or "/" in table or "\\" in table:
            raise ConnectorError(f"{self.kind} table {table!r} must be a file name")
        directory = self.directory()
        path = resolve_under(directory, table, what=f"{self.kind} file")
        root = self.data_root
        if root not in path.parents:
            raise ConnectorError(f"{self.kind} file {table!r} resolves outside DATA_ROOT; refused")
        return path

    def test(self) -> None:
        directory = self.directory()
        if not directory.is_dir():
            raise ConnectorError(
                f"{self.kind} {self.name}: directory {self.config.get('path')!r} does not exist"
            )
        if not os.access(directory, os.R_OK | os.W_OK):
            raise ConnectorError(f"{self.kind} {self.name}: directory is not readable and writable")

    def list_tables(self, limit: int) -> list[str]:
        directory = self.directory()
        if not directory.is_dir():
            raise ConnectorError(
                f"{self.kind} {self.name}: directory {self.config.get('path')!r} does not exist"
            )
        names = sorted(
            entry.name
            for entry in directory.iterdir()
            if entry.name.endswith(self.extension) and entry.is_file() and not entry.is_symlink()
        )
        return names[:limit]

    def sample(self, table: str, max_columns: int, rows: int) -> tuple[list[Column], list[tuple]]:
        columns = self.describe(table)[:max_columns]
        first = next(iter(self.read_file(self.file(table), columns, rows)), [])
        return columns, first[:rows]

    @abstractmethod
    def read_file(self, path: Path, columns: list[Column], size: int) -> Iterator[list[tuple]]:
        """Rows of ``path`` as tuples in ``columns`` order, in lists of at most ``size``."""

    @abstractmethod
    def write_file(
        self, handle: Any, columns: list[Column], rows: list[tuple], first: bool
    ) -> None:
        """Append ``rows`` to an open text ``handle`` (``first``: write a header if any)."""

    @abstractmethod
    def copy_existing(self, path: Path, handle: Any, columns: list[Column]) -> None:
        """Copy the rows of an existing ``path`` into ``handle`` (append mode)."""
