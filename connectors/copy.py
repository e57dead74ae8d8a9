"""The copy engine: source → transformations → destination, exactly once.

One run of ``run_copy`` copies one *unit*: the whole copy, or chunk ``i`` of
``n`` of a partitioned copy. A unit's rows and its completion marker (a row
in ``_datadog_copy_markers`` in the destination database, or a sidecar file
next to a CSV/JSONL destination) commit together in one destination
transaction, so a retried attempt either finds the marker and skips the unit
or finds nothing and redoes it: never a duplicate, never a gap.

Reading: SQL sources get the transformations compiled into their query
(``connectors.transform``) and are read inside one read-only snapshot, so
the partition bounds, the incremental watermark and the rows agree.
PostgreSQL → PostgreSQL without leftover steps streams raw COPY bytes from
one server to the other. Everything else streams in batches of
``batch_size`` rows; memory stays bounded by the batch size.
"""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters. A source `query` or a
# `sql` check is the pipeline author's own SQL, run on a connection they may
# use (SPEC §5), so it is not an injection.
import datetime as dt
import fcntl
import hashlib
import json
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from connectors.base import (
    Connector,
    ConnectorError,
    FileConnector,
    SqlConnector,
    Watchdog,
    _used_params,
    check_identifier,
    is_driver_error,
    split_table,
)
from connectors.postgresql import PostgresqlConnector
from connectors.transform import (
    BatchTransformer,
    TextLineTransformer,
    compile_pushdown,
    needed_columns,
)
from connectors.types import Column, parser_for

MARKER_TABLE = "_datadog_copy_markers"
MODES = ("append", "replace", "upsert")
# Chunk number of the row that stores a partitioned copy's key ranges.
PLAN_CHUNK = -1
# Rows held as Python objects at once on the batch path (memory bound).
FETCH_ROWS = 5000


class CopyFailed(ConnectorError):
    """A copy cannot run as defined (bad mode, missing column …); not transient."""


# ---------------------------------------------------------------- the spec


class Unit:
    """Who is copying: the marker key of this unit of work."""

    def __init__(self, execution_id: str, task_name: str, chunk: tuple[int, int] | None) -> None:
        self.execution_id = str(execution_id)
        self.task_name = str(task_name)
        self.chunk = chunk
        self.index = chunk[0] if chunk else 0


def _json_value(value: Any) -> Any:
    """A watermark or bound as JSON (the engine stores watermarks as JSON)."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# -------------------------------------------------------------------- sinks


class Sink(ABC):
    """Where a unit's rows go; one destination transaction per unit."""

    columns: list[Column]
    unit: Unit
    # Batches of a staged load committed so far (see commit_batch).
    batch: int = 0

    @abstractmethod
    def committed(self) -> dict[str, Any] | None:
        """The marker info when this unit already committed (finishing a pending swap)."""

    @abstractmethod
    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The partition plan of this execution: stored once, read by every chunk."""

    @abstractmethod
    def begin(
        self, columns: list[Column], *, staged: bool = False, resume: dict[str, Any] | None = None
    ) -> None:
        """Create what is missing and open the transaction.

        ``staged``: a load whose batches commit one by one (``commit_batch``)
        where readers do not see them, until ``commit`` publishes the unit.
        ``resume`` (from ``resume_point``) continues such a load.
        """

    @abstractmethod
    def resume_point(self) -> dict[str, Any] | None:
        """``{batch, rows, position, watermark}`` of the last batch a staged load committed."""

    @abstractmethod
    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        """Commit a staged load's rows so far with a batch marker holding ``state``; go on."""

    @abstractmethod
    def discard(self) -> None:
        """Drop a staged load's stage and batch markers: no attempt will resume it."""

    @abstractmethod
    def write(self, rows: list[tuple]) -> None:
        """Add rows to the open transaction."""

    @abstractmethod
    def commit(self, rows: int, info: dict[str, Any]) -> None:
        """Commit the rows with the unit's marker, atomically."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo everything since ``begin``."""


class SqlSink(Sink):
    """A table in a SQL database."""

    def __init__(
        self,
        connector: SqlConnector,
        table: str,
        mode: str,
        keys: list[str],
        unit: Unit,
        timeout: Callable[[], float | None],
    ) -> None:
        self.c = connector
        self.d = connector.dialect
        self.table = table
        self.mode = mode
        self.keys = keys
        self.unit = unit
        self.timeout = timeout
        schema, name = split_table(table)
        self.schema = schema
        # The shadow table a ``replace`` loads before the swap.
        # (MySQL: DDL commits implicitly, so there the load goes into a
        # shadow table swapped in with one atomic RENAME TABLE.)
        self.shadow = (f"{schema}." if schema else "") + f"{name[:40]}__dd_new"
        self.marker_table = (
            f"{schema}." if schema and connector.kind == "postgresql" else ""
        ) + MARKER_TABLE
        # A staged load (see begin) commits its batches into this table, one
        # per unit, so a killed attempt's next one finds them there.
        digest = hashlib.sha256(
            f"{unit.execution_id}/{unit.task_name}/{unit.index}".encode()
        ).hexdigest()[:10]
        self.stage = (f"{schema}." if schema else "") + f"{name[:30]}__dd_s{digest}"
        self.staged = False
        self.batch = 0
        self._create_final: str | None = None
        self.kind = connector.kind
        self._stack: ExitStack | None = None
        self.conn: Any = None
        self.target = table
        self.columns: list[Column] = []
        self.written_columns: list[Column] = []
        # PostgreSQL's COPY writer of the open transaction (see row_writer).
        self._writer: Any = None

    # ----- markers

    @contextmanager
    def _txn(self) -> Iterator[Any]:
        with self.c.connect(timeout_s=self.timeout()) as conn:
            yield conn

    def _ensure_markers(self) -> None:
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {self.d.table(self.marker_table)} ("
            " execution_id VARCHAR(64) NOT NULL, task_name VARCHAR(100) NOT NULL,"
            " chunk INTEGER NOT NULL, batch INTEGER NOT NULL, rows_written BIGINT NOT NULL,"
            " info TEXT, committed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
            " PRIMARY KEY (execution_id, task_name, chunk, batch))"
        )
        self._ddl([ddl])

    def _ddl(self, statements: list[str]) -> None:
        """Run DDL in its own transaction; parallel chunks may race to create the same thing."""
        for attempt in range(3):
            try:
                with self._txn() as conn:
                    cur = conn.cursor()
                    for statement in statements:
                        cur.execute(statement)
                    cur.close()
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                error = self.c.map_error(exc)
                racing = "already exists" in str(error) or "duplicate key" in str(error)
                if attempt == 2 or not racing:
                    raise error from exc

    def _marker(self, conn: Any, chunk: int) -> dict[str, Any] | None:
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT rows_written, info FROM {self.d.table(self.marker_table)}"  # nosec B608
                " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s AND batch = 0",
                {"e": self.unit.execution_id, "t": self.unit.task_name, "c": chunk},
            )
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        info = json.loads(row[1]) if row[1] else {}
        info["rows_written"] = int(row[0])
        return info

    def committed(self) -> dict[str, Any] | None:
        try:
            self._ensure_markers()
            with self._txn() as conn:
                info = self._marker(conn, self.unit.index)
            if info is not None and self.kind == "mysql":
                # MySQL DDL commits implicitly, so it comes after the marker:
                # finish what a crash may have left (the swap, the stage).
                if info.get("stage"):
                    self.shadow = str(info["stage"])
                if info.get("swap"):
                    self._mysql_swap()
                elif info.get("stage"):
                    self._ddl([f"DROP TABLE IF EXISTS {self.d.table(self.stage)}"])
            return info
        except ConnectorError:
            raise
        except Exception as exc:
            raise self.c.map_error(exc) from exc

    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self._ensure_markers()
        with self._txn() as conn:
            found = self._marker(conn, PLAN_CHUNK)
        if found is not None:
            found.pop("rows_written", None)
            return found
        plan = compute()
        ignore = "INSERT IGNORE" if self.kind == "mysql" else "INSERT"
        conflict = "" if self.kind == "mysql" else " ON CONFLICT DO NOTHING"
        with self._txn() as conn:
            cur = conn.cursor()
            cur.execute(
                f"{ignore} INTO {self.d.table(self.marker_table)}"
                " (execution_id, task_name, chunk, batch, rows_written, info)"
                f" VALUES (%(e)s, %(t)s, %(c)s, 0, 0, %(i)s){conflict}",
                {
                    "e": self.unit.execution_id,
                    "t": self.unit.task_name,
                    "c": PLAN_CHUNK,
                    "i": json.dumps(plan),
                },
            )
            cur.close()
        with self._txn() as conn:
            stored = self._marker(conn, PLAN_CHUNK) or {}
        stored.pop("rows_written", None)
        return stored

    def resume_point(self) -> dict[str, Any] | None:
        """The last batch a staged load of this unit committed, or None.

        ``{batch, rows, position, watermark}``: the marker of the batch and the
        state the copy stored with it. None when no batch committed or its
        stage table is gone (then the unit starts again from its first row).
        """
        try:
            with self._txn() as conn:
                cur = conn.cursor()
                try:
                    cur.execute(
                        f"SELECT batch, rows_written, info FROM {self.d.table(self.marker_table)}"  # nosec B608
                        " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s"
                        " AND batch > 0 ORDER BY batch DESC LIMIT 1",
                        {
                            "e": self.unit.execution_id,
                            "t": self.unit.task_name,
                            "c": self.unit.index,
                        },
                    )
                    row = cur.fetchone()
                finally:
                    cur.close()
                if row is None or self.c.table_columns(conn, self.stage) is None:
                    return None
                # The stage must hold what the markers say (an UNLOGGED stage
                # is emptied by a PostgreSQL crash; someone may truncate it).
                cur = conn.cursor()
                try:
                    cur.execute(f"SELECT COUNT(*) FROM {self.d.table(self.stage)}")  # nosec B608
                    staged = cur.fetchone()
                finally:
                    cur.close()
                if staged is None or int(staged[0]) != int(row[1]):
                    return None
        except ConnectorError:
            raise
        except Exception as exc:
            raise self.c.map_error(exc) from exc
        state = json.loads(row[2]) if row[2] else {}
        return {**state, "batch": int(row[0]), "rows": int(row[1])}

    # ----- the unit's transaction

    def begin(
        self, columns: list[Column], *, staged: bool = False, resume: dict[str, Any] | None = None
    ) -> None:
        """Open the unit's transaction; ``staged`` loads into the unit's stage table.

        A staged load commits each batch there with a batch marker
        (``commit_batch``) and moves the rows into the table in the final
        commit, so the table still changes once, atomically, per unit.
        ``resume`` (from ``resume_point``) continues the stage an earlier
        attempt left; without it the stage starts empty.
        """
        for name in self.keys:
            check_identifier(name)
        names = {c.name for c in columns}
        for key in self.keys:
            if key not in names:
                raise CopyFailed(f"upsert key {key!r} is not a column of the copied rows")
        with self._or_rollback():
            existing = self._existing()
            transactional_ddl = self.kind != "mysql"
            create_in_txn = None
            if existing is None:
                existing = columns
                create = self._create_sql(self.table, columns)
                if self.mode == "replace" and transactional_ddl:
                    # Created in the load's transaction: nobody sees it empty.
                    create_in_txn = create
                else:
                    self._ddl([create])
            self._check_columns(existing, columns)
            self.columns = existing
            by_name = {c.name: c for c in existing}
            self.written_columns = [by_name[c.name] for c in columns]
            if self.mode == "upsert":
                self._ensure_unique_index()
            self.staged = staged
            if staged:
                self._begin_stage(existing, create_in_txn, resume)
                return
            if self.mode == "replace" and not transactional_ddl:
                self._ddl(
                    [
                        f"DROP TABLE IF EXISTS {self.d.table(self.shadow)}",
                        self._shadow_sql(existing),
                    ]
                )
            self._stack = ExitStack()
            self._writer = None
            self.conn = self._stack.enter_context(self._txn())
            cur = self.conn.cursor()
            if self.mode == "replace" and transactional_ddl:
                # PostgreSQL and SQLite replace in place: DELETE and load in
                # one transaction. Readers see the old rows until the commit,
                # then the new ones. (A swap by RENAME is not safe there: a
                # reader whose statement began before the commit and waited
                # on the lock would read the new table with its old snapshot
                # and find it empty.)
                if create_in_txn:
                    cur.execute(create_in_txn)
                else:
                    cur.execute(f"DELETE FROM {self.d.table(self.table)}")  # nosec B608
            if self.mode == "upsert" and self.kind == "postgresql":
                cur.execute(
                    f"CREATE TEMP TABLE _dd_stage (LIKE {self.d.table(self.table)}"
                    " INCLUDING DEFAULTS) ON COMMIT DROP"
                )
            cur.close()
            self.target = {
                "replace": self.table if transactional_ddl else self.shadow,
                "upsert": "_dd_stage" if self.kind == "postgresql" else self.table,
            }.get(self.mode, self.table)

    @contextmanager
    def _or_rollback(self) -> Iterator[None]:
        """Roll the unit's transaction back on any error; driver errors as ConnectorError."""
        try:
            yield
        except ConnectorError:
            self.rollback()
            raise
        except Exception as exc:
            self.rollback()
            raise self.c.map_error(exc) from exc

    def _end_txn(self) -> None:
        """Commit the open transaction (leaving the connect() context commits)."""
        stack, self._stack = self._stack, None
        self._writer = None
        assert stack is not None  # nosec B101 - narrows the type; nothing relies on it at run time
        stack.close()

    def _begin_stage(
        self, existing: list[Column], create: str | None, resume: dict[str, Any] | None
    ) -> None:
        # The table is created (PostgreSQL/SQLite replace) in the final
        # commit's transaction, as on the unstaged path.
        self._create_final = create
        self.batch = int(resume["batch"]) if resume else 0
        if self.kind == "mysql" and self.mode == "replace":
            # The stage is the shadow table the final RENAME swaps in.
            self.shadow = self.stage
            stage_sql = self._shadow_sql(existing)
        else:
            stage_sql = self._create_sql(self.stage, self.written_columns).replace(
                " IF NOT EXISTS", "", 1
            )
        if self.kind == "postgresql":
            # No WAL for rows that are written again at the final commit
            # (half the cost of staging); a server crash empties the stage,
            # which resume_point notices.
            stage_sql = stage_sql.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)
        if resume is None:
            self._ddl([f"DROP TABLE IF EXISTS {self.d.table(self.stage)}", stage_sql])
            with self._txn() as conn:
                self._delete_batches(conn)
        self._open()
        self.target = self.stage

    def _open(self) -> None:
        self._stack = ExitStack()
        self._writer = None
        self.conn = self._stack.enter_context(self._txn())

    def _delete_batches(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute(
            f"DELETE FROM {self.d.table(self.marker_table)}"  # nosec B608
            " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s AND batch > 0",
            {"e": self.unit.execution_id, "t": self.unit.task_name, "c": self.unit.index},
        )
        cur.close()

    def _insert_marker(self, cur: Any, batch: int, rows: int, info: dict[str, Any]) -> None:
        cur.execute(
            f"INSERT INTO {self.d.table(self.marker_table)}"  # nosec B608
            " (execution_id, task_name, chunk, batch, rows_written, info)"
            " VALUES (%(e)s, %(t)s, %(c)s, %(b)s, %(r)s, %(i)s)",
            {
                "e": self.unit.execution_id,
                "t": self.unit.task_name,
                "c": self.unit.index,
                "b": batch,
                "r": rows,
                "i": json.dumps(info, default=str),
            },
        )

    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        """Commit the stage's rows so far with a batch marker holding ``state``; go on."""
        with self._or_rollback():
            if self._writer is not None:
                self._writer.close()
            self.batch += 1
            cur = self.conn.cursor()
            self._insert_marker(cur, self.batch, rows, state)
            cur.close()
            self._end_txn()
            self._open()

    def discard(self) -> None:
        with self._txn() as conn:
            if self.c.table_columns(conn, self.marker_table) is None:
                return  # no copy ever ran here: nothing was staged
        self._ddl([f"DROP TABLE IF EXISTS {self.d.table(self.stage)}"])
        with self._txn() as conn:
            self._delete_batches(conn)

    def _move_stage(self, cur: Any) -> None:
        """In the final transaction: the staged rows into the table, by mode."""
        q = self.d.quote
        table, stage = self.d.table(self.table), self.d.table(self.stage)
        cols = ", ".join(q(c.name) for c in self.written_columns)
        if self.mode == "replace":
            if self.kind == "mysql":
                return  # the stage is swapped in by RENAME after the commit
            cur.execute(self._create_final or f"DELETE FROM {table}")  # nosec B608
        if self.mode == "upsert" and self.kind == "postgresql":
            cur.execute(self._pg_upsert_sql(stage))
            return
        suffix = ""
        if self.mode == "upsert":
            keys = ", ".join(q(k) for k in self.keys)
            others = [c.name for c in self.written_columns if c.name not in self.keys]
            if self.kind == "mysql":
                first = q(self.keys[0])
                sets = [f"{q(c)} = VALUES({q(c)})" for c in others] or [f"{first} = {first}"]
                suffix = " ON DUPLICATE KEY UPDATE " + ", ".join(sets)
            else:
                # SQLite: "WHERE true" tells the parser ON CONFLICT is not a join's ON.
                action = (
                    "DO UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in others)  # nosec B608
                    if others
                    else "DO NOTHING"
                )
                suffix = f" WHERE true ON CONFLICT ({keys}) {action}"
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}{suffix}")  # nosec B608

    def _pg_upsert_sql(self, source: str) -> str:
        q = self.d.quote
        cols = ", ".join(q(c.name) for c in self.written_columns)
        keys = ", ".join(q(k) for k in self.keys)
        others = [c.name for c in self.written_columns if c.name not in self.keys]
        action = (
            "DO UPDATE SET " + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in others)  # nosec B608
            if others
            else "DO NOTHING"
        )
        # DISTINCT ON: a key twice in one copy would make ON CONFLICT
        # touch a row twice, which PostgreSQL refuses.
        return (
            f"INSERT INTO {self.d.table(self.table)} ({cols})"  # nosec B608
            f" SELECT DISTINCT ON ({keys}) {cols} FROM {source} ORDER BY {keys}"
            f" ON CONFLICT ({keys}) {action}"
        )

    def _existing(self) -> list[Column] | None:
        with self._txn() as conn:
            return self.c.table_columns(conn, self.table)

    def _create_sql(self, table: str, columns: list[Column]) -> str:
        keys = set(self.keys)
        body = ", ".join(
            f"{self.d.quote(c.name)} {self.d.ddl_type(c, key=c.name in keys)}" for c in columns
        )
        return f"CREATE TABLE IF NOT EXISTS {self.d.table(table)} ({body})"

    def _shadow_sql(self, existing: list[Column]) -> str:
        """MySQL's shadow table: the same definition as the table it replaces."""
        if self._existing() is not None:
            return f"CREATE TABLE {self.d.table(self.shadow)} LIKE {self.d.table(self.table)}"
        return self._create_sql(self.shadow, existing).replace(" IF NOT EXISTS", "", 1)

    def _check_columns(self, existing: list[Column], columns: list[Column]) -> None:
        have = {c.name for c in existing}
        missing = [c.name for c in columns if c.name not in have]
        if missing:
            raise CopyFailed(
                f"{self.c.where()}: table {self.table!r} has no column(s) {', '.join(missing)}"
            )

    def _ensure_unique_index(self) -> None:
        if not self.keys:
            raise CopyFailed("upsert needs keys")
        with self._txn() as conn:
            if self._has_unique(conn):
                return
        _, name = split_table(self.table)
        digest = hashlib.sha256(",".join(self.keys).encode()).hexdigest()[:8]
        index = f"{name[:40]}_dd_uk_{digest}"
        cols = ", ".join(self.d.quote(k) for k in self.keys)
        if self.kind == "postgresql":
            sql = (
                f"CREATE UNIQUE INDEX IF NOT EXISTS {self.d.quote(index)}"
                f" ON {self.d.table(self.table)} ({cols})"
            )
        elif self.kind == "sqlite":
            schema, _ = split_table(self.table)
            qualified = (
                f"{self.d.quote(schema)}.{self.d.quote(index)}" if schema else self.d.quote(index)
            )
            sql = f"CREATE UNIQUE INDEX IF NOT EXISTS {qualified} ON {self.d.quote(name)} ({cols})"
        else:
            sql = (
                f"CREATE UNIQUE INDEX IF NOT EXISTS {self.d.quote(index)}"
                f" ON {self.d.table(self.table)} ({cols})"
            )
        self._ddl([sql])

    def _has_unique(self, conn: Any) -> bool:
        wanted = sorted(self.keys)
        cur = conn.cursor()
        try:
            if self.kind == "postgresql":
                cur.execute(
                    "SELECT array_agg(a.attname::text) FROM pg_index i"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                    " WHERE i.indrelid = to_regclass(%(t)s) AND i.indisunique AND i.indpred IS NULL"
                    " GROUP BY i.indexrelid",
                    {"t": self.d.table(self.table)},
                )
                return any(sorted(r[0]) == wanted for r in cur.fetchall())
            if self.kind == "mysql":
                schema, name = split_table(self.table)
                cur.execute(
                    "SELECT index_name, GROUP_CONCAT(column_name)"
                    " FROM information_schema.statistics"
                    " WHERE table_schema = COALESCE(%(s)s, DATABASE()) AND table_name = %(t)s"
                    " AND non_unique = 0 GROUP BY index_name",
                    {"s": schema, "t": name},
                )
                return any(sorted(r[1].split(",")) == wanted for r in cur.fetchall())
            schema, name = split_table(self.table)
            prefix = f"{self.d.quote(schema)}." if schema else ""
            raw = conn.raw
            for row in raw.execute(f"PRAGMA {prefix}index_list({self.d.quote(name)})").fetchall():
                if row[2]:
                    cols = [
                        r[2]
                        for r in raw.execute(f"PRAGMA {prefix}index_info({self.d.quote(row[1])})")
                    ]
                    if sorted(cols) == wanted:
                        return True
            return False
        finally:
            cur.close()

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        try:
            if self.mode == "upsert" and self.kind != "postgresql" and not self.staged:
                self.c.upsert_rows(self.conn, self.table, self.written_columns, self.keys, rows)  # type: ignore[attr-defined]
            elif hasattr(self.c, "row_writer"):
                # One writer per transaction: it reads the table's types once.
                if self._writer is None:
                    self._writer = self.c.row_writer(self.conn, self.target, self.written_columns)
                self._writer(rows)
            else:
                self.c.insert_rows(self.conn, self.target, self.written_columns, rows)
        except Exception as exc:
            raise self.c.map_error(exc) from exc

    def commit(self, rows: int, info: dict[str, Any]) -> None:
        with self._or_rollback():
            if self._writer is not None:
                self._writer.close()
            cur = self.conn.cursor()
            if self.staged:
                self._move_stage(cur)
                self._delete_batches(self.conn)
                if self.kind == "mysql":
                    info = {**info, "stage": self.stage}
                else:
                    cur.execute(f"DROP TABLE {self.d.table(self.stage)}")
            elif self.mode == "upsert" and self.kind == "postgresql":
                cur.execute(self._pg_upsert_sql("_dd_stage"))
            if self.mode == "replace" and self.kind == "mysql":
                info = {**info, "swap": True}
            self._insert_marker(cur, 0, rows, info)
            cur.close()
            self._end_txn()
        if self.mode == "replace" and self.kind == "mysql":
            # MySQL DDL commits implicitly: the rename comes after the commit.
            # A crash in between leaves the marker with "swap" and the shadow
            # table; the retry's committed() finishes the swap.
            self._mysql_swap()
        elif self.staged and self.kind == "mysql":
            self._ddl([f"DROP TABLE IF EXISTS {self.d.table(self.stage)}"])

    def _mysql_swap(self) -> None:
        shadow, table = self.d.table(self.shadow), self.d.table(self.table)
        _, name = split_table(self.table)
        with self._txn() as conn:
            if self.c.table_columns(conn, self.shadow) is None:
                return
            exists = self.c.table_columns(conn, self.table) is not None
        old = self.d.table((f"{self.schema}." if self.schema else "") + f"{name[:40]}__dd_old")
        statements = [f"DROP TABLE IF EXISTS {old}"]
        if exists:
            # One RENAME of both: readers see the old table or the new one.
            statements.append(f"RENAME TABLE {table} TO {old}, {shadow} TO {table}")
            statements.append(f"DROP TABLE {old}")
        else:
            statements.append(f"RENAME TABLE {shadow} TO {table}")
        self._ddl(statements)

    def rollback(self) -> None:
        stack, self._stack = self._stack, None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
        if stack is not None:
            # Leaving the connect() context through an exception rolls back.
            try:
                stack.__exit__(RuntimeError, RuntimeError("rollback"), None)
            except Exception:  # noqa: BLE001 - the connection may be gone already  # nosec B110
                pass
        self.conn = None


class FileSink(Sink):
    """A CSV/JSONL file: written to a temp file, renamed into place at commit.

    The marker lives in a sidecar ``.<file>.ddmarkers.json``. Commit first
    records the marker as pending with the temp file's inode, then renames,
    then marks it done: after a crash between the two, the inode tells
    whether the rename happened.
    """

    def __init__(self, connector: FileConnector, table: str, mode: str, unit: Unit) -> None:
        if mode == "upsert":
            raise CopyFailed(f"{connector.kind} destinations take append or replace, not upsert")
        self.c = connector
        self.path = connector.file(table)
        self.mode = mode
        self.unit = unit
        self.sidecar = self.path.with_name(f".{self.path.name}.ddmarkers.json")
        self.lockfile = self.path.with_name(f".{self.path.name}.lock")
        self.key = f"{unit.execution_id}/{unit.task_name}/{unit.index}"
        # A staged load's file: a fixed name per unit, so the next attempt finds it.
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:10]
        self.stage = self.path.with_name(f".{self.path.name}.{digest}.stage")
        self.batch_key = f"{self.key}/batch"
        self.staged = False
        self.batch = 0
        self._lock: Any = None
        self._tmp: Path | None = None
        self._handle: Any = None
        self._first = True
        self.columns: list[Column] = []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is not None:
            yield
            return
        with open(self.lockfile, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _markers(self) -> dict[str, Any]:
        try:
            return json.loads(self.sidecar.read_text())
        except FileNotFoundError:
            return {}

    def _save_markers(self, markers: dict[str, Any]) -> None:
        tmp = self.sidecar.with_name(self.sidecar.name + f".{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(markers, default=str))
        os.replace(tmp, self.sidecar)

    def committed(self) -> dict[str, Any] | None:
        with self._locked():
            markers = self._markers()
            entry = markers.get(self.key)
            if entry is None:
                return None
            if entry.get("state") == "pending":
                try:
                    renamed = self.path.stat().st_ino == entry.get("inode")
                except FileNotFoundError:
                    renamed = False
                if not renamed:
                    del markers[self.key]
                    self._save_markers(markers)
                    return None
                entry["state"] = "done"
                self._save_markers(markers)
            return {**entry.get("info", {}), "rows_written": entry.get("rows", 0)}

    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        plan_key = f"{self.unit.execution_id}/{self.unit.task_name}/plan"
        with self._locked():
            markers = self._markers()
            if plan_key not in markers:
                markers[plan_key] = {"state": "plan", "info": compute()}
                self._save_markers(markers)
            return dict(markers[plan_key]["info"])

    def _dest_state(self) -> list[int] | None:
        """What the destination file is now: a staged append copied it at its start."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def resume_point(self) -> dict[str, Any] | None:
        with self._locked():
            entry = self._markers().get(self.batch_key)
        if not entry:
            return None
        try:
            size = self.stage.stat().st_size
        except FileNotFoundError:
            return None
        # The stage must hold the committed bytes, and an append's destination
        # must be the file the stage started from (else its rows would be lost).
        if size < int(entry["bytes"]) or entry.get("dest") != self._dest_state():
            return None
        return {**entry.get("state", {}), "batch": entry["batch"], "rows": entry["rows"]}

    def begin(
        self, columns: list[Column], *, staged: bool = False, resume: dict[str, Any] | None = None
    ) -> None:
        self.columns = columns
        # Held until commit or rollback: parallel chunks appending to one
        # file take turns instead of losing each other's rows.
        handle = open(self.lockfile, "a")  # noqa: SIM115 - closed in _release
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._lock = handle
        self.staged = staged
        if staged and resume is not None:
            entry = self._markers()[self.batch_key]
            self.batch = int(entry["batch"])
            self._tmp = self.stage
            self._handle = open(self.stage, "r+", encoding="utf-8", newline="")  # noqa: SIM115
            # Bytes after the last committed batch were never committed.
            self._handle.truncate(int(entry["bytes"]))
            self._handle.seek(0, os.SEEK_END)
            self._first = False
            return
        if staged:
            markers = self._markers()
            if markers.pop(self.batch_key, None) is not None:
                self._save_markers(markers)
            self.batch = 0
            self._tmp = self.stage
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp")
        self._handle = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._first = True
        if self.mode == "append" and self.path.exists() and self.path.stat().st_size > 0:
            self.c.copy_existing(self.path, self._handle, columns)
            self._first = False
        if self._first:
            self.c.write_file(self._handle, columns, [], True)
            self._first = False

    def write(self, rows: list[tuple]) -> None:
        if rows:
            self.c.write_file(self._handle, self.columns, rows, False)

    def discard(self) -> None:
        with self._locked():
            markers = self._markers()
            if markers.pop(self.batch_key, None) is not None:
                self._save_markers(markers)
            self.stage.unlink(missing_ok=True)

    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.batch += 1
        markers = self._markers()
        entry = markers.get(self.batch_key) or {"dest": self._dest_state()}
        markers[self.batch_key] = {
            **entry,
            "batch": self.batch,
            "rows": rows,
            "bytes": self._handle.tell(),
            "state": state,
        }
        self._save_markers(markers)

    def commit(self, rows: int, info: dict[str, Any]) -> None:
        assert self._tmp is not None  # nosec B101 - narrows the type; nothing relies on it at run time
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        markers = self._markers()
        markers.pop(self.batch_key, None)
        markers[self.key] = {
            "state": "pending",
            "inode": self._tmp.stat().st_ino,
            "rows": rows,
            "info": info,
        }
        self._save_markers(markers)
        os.replace(self._tmp, self.path)
        self._tmp = None
        markers[self.key]["state"] = "done"
        self._save_markers(markers)
        self._release()

    def rollback(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tmp is not None and not self.staged:
            # A stage keeps its committed batches for the next attempt.
            self._tmp.unlink(missing_ok=True)
        self._tmp = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def make_sink(
    connector: Connector,
    table: str,
    mode: str,
    keys: list[str],
    unit: Unit,
    timeout: Callable[[], float | None],
) -> Sink:
    """The sink for a destination connector."""
    if mode not in MODES:
        raise CopyFailed(f"unknown destination mode {mode!r}")
    if mode == "upsert" and not keys:
        raise CopyFailed("upsert needs keys")
    if isinstance(connector, SqlConnector):
        return SqlSink(connector, table, mode, keys, unit, timeout)
    if isinstance(connector, FileConnector):
        return FileSink(connector, table, mode, unit)
    raise CopyFailed(f"{connector.kind} cannot be a copy destination")


# ------------------------------------------------------------------ sources


def _parsers(columns: list[Column]) -> list[tuple[int, Callable[[Any], Any]]]:
    out = []
    for i, c in enumerate(columns):
        parse = parser_for(c.type)
        if parse is not None:
            out.append((i, parse))
    return out


def _parse_batch(
    rows: list[tuple], parsers: list[tuple[int, Callable[[Any], Any]]], where: str
) -> list[tuple]:
    if not parsers or not rows:
        return rows
    columns = list(zip(*rows, strict=True))
    for i, parse in parsers:
        try:
            columns[i] = tuple(map(parse, columns[i]))
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise CopyFailed(f"{where}: column {i + 1}: {exc}") from None
    return list(zip(*columns, strict=True))


def _split_bounds(lo: Any, hi: Any, n: int) -> list[Any]:
    """``n + 1`` boundaries from ``lo`` to ``hi`` (ints, decimals, floats or datetimes)."""
    if isinstance(lo, bool):
        raise CopyFailed("cannot partition on a boolean column")
    if isinstance(lo, int):
        span = hi - lo + 1
        return [lo + span * i // n for i in range(n)] + [hi]
    if isinstance(lo, dt.datetime | dt.date):
        span = hi - lo
        return [lo + span * i / n for i in range(n)] + [hi]
    if isinstance(lo, Decimal | float):
        span = hi - lo
        return [lo + span * i / n for i in range(n)] + [hi]
    raise CopyFailed(f"cannot partition on values like {lo!r} (numbers and timestamps only)")


def _chunk_range(
    plan: dict[str, Any], index: int, count: int, column: Column
) -> tuple[Any, Any, bool] | None:
    """``(low, high, last)`` of chunk ``index``, or None when the source is empty."""
    if plan.get("lo") is None:
        return None
    parse = parser_for(column.type)
    lo, hi = plan["lo"], plan["hi"]
    if parse is not None and isinstance(lo, str):
        lo, hi = parse(lo), parse(hi)
    bounds = _split_bounds(lo, hi, count)
    return bounds[index], bounds[index + 1], index == count - 1


def _in_chunk(value: Any, bounds: tuple[Any, Any, bool] | None, index: int) -> bool:
    if bounds is None:
        return index == 0
    low, high, last = bounds
    if value is None:
        return index == 0  # NULL keys go with the first chunk
    return low <= value and (value <= high if last else value < high)


# ---------------------------------------------------------------- the copy


def run_copy(
    ctx: Any,
    source: Connector,
    destination: Connector,
    *,
    pushdown: bool | int = True,
    passthrough: bool = True,
) -> dict[str, Any]:
    """Copy one unit of ``ctx.task`` (a normalized ``copy`` task) exactly once.

    ``pushdown=False`` forces every transformation onto the batch path (an int:
    push at most that many leading steps) and
    ``passthrough=False`` disables raw COPY (benchmarks and tests).
    Returns ``{rows_read, rows_written, skipped, passthrough}`` and fills
    ``ctx.metrics``; stages the incremental watermark with
    ``ctx.watermark_stage`` (the engine commits it when the run succeeds).
    """
    task = ctx.task
    src_spec = task.get("source") or {}
    dst_spec = task.get("destination") or {}
    transformations = list(task.get("transformations") or [])
    incremental = task.get("incremental") or None
    partition = task.get("partition") or None
    batch_size = max(1, int(task.get("batch_size") or 50000))
    mode = dst_spec.get("mode") or "append"
    keys = list(dst_spec.get("keys") or [])
    chunk = getattr(ctx, "chunk", None) if partition else None
    if partition and chunk is None:
        chunk = (0, 1)
    if partition and mode == "replace" and chunk and chunk[1] > 1:
        raise CopyFailed(
            "mode replace cannot be combined with partition (each chunk would replace the others)"
        )
    unit = Unit(ctx.execution_id, ctx.task_name, chunk)

    def timeout() -> float | None:
        left = ctx.seconds_left() if hasattr(ctx, "seconds_left") else None
        return None if left is None else max(1.0, float(left))

    sink = make_sink(destination, str(dst_spec.get("table") or ""), mode, keys, unit, timeout)
    done = sink.committed()
    if done is not None:
        # An earlier attempt committed this unit: do not copy it again. The
        # watermark is staged again, since that attempt's run did not succeed.
        if done.get("watermark") is not None:
            ctx.watermark_stage(done["watermark"])
        ctx.log(
            f"copy unit {unit.index} already committed"
            f" ({done.get('rows_written', 0)} rows); skipped"
        )
        ctx.metrics["rows_read"] = ctx.metrics.get("rows_read", 0)
        ctx.metrics["rows_written"] = ctx.metrics.get("rows_written", 0)
        return {"rows_read": 0, "rows_written": 0, "skipped": True, "passthrough": False}

    if isinstance(source, SqlConnector):
        result = _copy_from_sql(
            ctx,
            source,
            destination,
            sink,
            src_spec,
            transformations,
            incremental,
            partition,
            chunk,
            batch_size,
            pushdown,
            passthrough,
            timeout,
        )
    elif isinstance(source, FileConnector):
        result = _copy_from_file(
            ctx, source, sink, src_spec, transformations, incremental, partition, chunk, batch_size
        )
    else:
        raise CopyFailed(f"{source.kind} cannot be a copy source")
    ctx.metrics["rows_read"] = ctx.metrics.get("rows_read", 0) + result["rows_read"]
    ctx.metrics["rows_written"] = ctx.metrics.get("rows_written", 0) + result["rows_written"]
    if result.get("watermark") is not None:
        ctx.watermark_stage(result["watermark"])
    if "resumed_from" in result:
        # The task's output (its metrics): rows an earlier attempt committed.
        ctx.metrics["resumed_from"] = result["resumed_from"]
    _checkpoint(
        ctx, {"unit": unit.index, "committed": True, "rows_written": result["rows_written"]}
    )
    return result


def discard_stage(ctx: Any, destination: Connector) -> None:
    """Drop what a staged copy of this unit committed so far (no attempt will resume it).

    For a cancelled execution, or a failed last attempt: the table readers see
    was never touched, and the stage would otherwise stay in the destination.
    """
    task = ctx.task
    dst_spec = task.get("destination") or {}
    chunk = getattr(ctx, "chunk", None) if task.get("partition") else None
    if chunk is not None:
        return  # partitioned copies never stage
    unit = Unit(ctx.execution_id, ctx.task_name, None)
    sink = make_sink(
        destination,
        str(dst_spec.get("table") or ""),
        dst_spec.get("mode") or "append",
        list(dst_spec.get("keys") or []),
        unit,
        lambda: 30.0,
    )
    sink.discard()


def _copy_from_sql(
    ctx: Any,
    source: SqlConnector,
    destination: Connector,
    sink: Sink,
    src_spec: dict[str, Any],
    transformations: list[dict[str, Any]],
    incremental: dict[str, Any] | None,
    partition: dict[str, Any] | None,
    chunk: tuple[int, int] | None,
    batch_size: int,
    pushdown: bool | int,
    passthrough: bool,
    timeout: Callable[[], float | None],
) -> dict[str, Any]:
    d = source.dialect
    run_params = dict(getattr(ctx, "params", {}) or {})
    if src_spec.get("table"):
        base_sql = f"SELECT * FROM {d.table(src_spec['table'])}"  # nosec B608
        base_params: dict[str, Any] = {}
    elif src_spec.get("query"):
        query = str(src_spec["query"]).strip().rstrip(";")
        base_sql = f"SELECT * FROM ({query}) AS _dd_src"  # nosec B608
        base_params = _used_params(query, run_params) or {}
    else:
        raise CopyFailed("copy source needs a table or a query")

    try:
        with source.connect(read_only=True, timeout_s=timeout()) as conn:
            if src_spec.get("table"):
                found = source.table_columns(conn, src_spec["table"])
                if found is None:
                    raise CopyFailed(
                        f"{source.where()}: table {src_spec['table']!r} does not exist"
                    )
                columns = found
            else:
                columns = source.describe_query(conn, base_sql, base_params)
            by_name = {c.name: c for c in columns}
            conditions: list[str] = []
            params = dict(base_params)
            watermark = None
            if incremental:
                column = check_identifier(incremental.get("column"))
                if column not in by_name:
                    raise CopyFailed(f"incremental column {column!r} is not in the source")
                previous = ctx.watermark_load()
                if previous is not None:
                    conditions.append(f"{d.quote(column)} > %(_dd_wm)s")
                    params["_dd_wm"] = previous
                filtered = _where_sql(base_sql, conditions)
                watermark = _scalar(
                    source,
                    conn,
                    f"SELECT MAX({d.quote(column)}) FROM ({filtered}) AS _dd_m",  # nosec B608
                    params,
                )
                if watermark is None:
                    watermark = previous
            if partition and chunk:
                column = check_identifier(partition.get("column"))
                if column not in by_name:
                    raise CopyFailed(f"partition column {column!r} is not in the source")
                filtered = _where_sql(base_sql, conditions)
                bounds_sql = (
                    f"SELECT MIN({d.quote(column)}), MAX({d.quote(column)})"  # nosec B608
                    f" FROM ({filtered}) AS _dd_m"
                )

                def compute() -> dict[str, Any]:
                    lo, hi = _row(source, conn, bounds_sql, params)
                    return {"lo": _json_value(lo), "hi": _json_value(hi)}

                plan = sink.plan(compute)
                bounds = _chunk_range(plan, chunk[0], chunk[1], by_name[column])
                q = d.quote(column)
                if bounds is None:
                    if chunk[0] != 0:
                        conditions.append("1 = 0")
                else:
                    low, high, last = bounds
                    params["_dd_lo"], params["_dd_hi"] = low, high
                    cond = f"({q} >= %(_dd_lo)s AND {q} {'<=' if last else '<'} %(_dd_hi)s)"
                    if chunk[0] == 0:
                        cond = f"({cond} OR {q} IS NULL)"
                    conditions.append(cond)
            # A copy that can resume reads its source in ranges of its key and
            # commits each range (staged); see _resumable for when it can.
            key = _resumable(source, conn, src_spec, transformations, chunk, by_name)
            resume = sink.resume_point() if key else None
            position = None
            if resume is not None and key:
                position = _parse_key(resume.get("position"), key, by_name)
                if incremental and resume.get("watermark") is not None:
                    # The first attempt's watermark, and no row past it: the
                    # rows after the position are the same set the first
                    # attempt would have read (as they are now), and the
                    # next run's `> watermark` misses none.
                    column = check_identifier(incremental.get("column"))
                    parse = parser_for(by_name[column].type)
                    stored = resume["watermark"]
                    watermark = parse(stored) if parse and isinstance(stored, str) else stored
                    conditions.append(f"{d.quote(column)} <= %(_dd_wmhi)s")
                    params["_dd_wmhi"] = watermark
                _log_resume(ctx, resume)
            first_hi = (
                _next_bound(source, conn, base_sql, conditions, params, key, position, batch_size)
                if key
                else None
            )
            # A source that fits in one batch has nothing to resume: it keeps
            # the one-transaction path (no stage table, no second write).
            staged = key is not None and (resume is not None or first_hi is not None)

            def build(extra: list[str], bound: dict[str, Any], describe: bool) -> tuple[Any, list]:
                compiled = compile_pushdown(
                    d,
                    _where_sql(base_sql, conditions + extra),
                    {**params, **bound},
                    columns,
                    transformations,
                    run_params,
                    enabled=pushdown,
                )
                out = compiled.columns
                # Real result types (PostgreSQL/MySQL know them exactly); SQLite
                # knows none for expressions, so keep what the compiler tracked.
                if describe and source.typed_values:
                    described = source.describe_query(conn, compiled.sql, compiled.params)
                    out = [
                        dc if dc.type != "text" or tc.type == "text" else tc
                        for dc, tc in zip(described, compiled.columns, strict=True)
                    ]
                if compiled.rest:
                    # Read only the columns the steps left for batches can use.
                    needed = needed_columns(out, compiled.rest)
                    if needed is not None and len(needed) < len(out):
                        keep = set(needed)
                        compiled.sql = (
                            f"SELECT {', '.join(d.quote(n) for n in needed)}"  # nosec B608
                            f" FROM ({compiled.sql}) AS _dd_cols"
                        )
                        out = [c for c in out if c.name in keep]
                return compiled, out

            compiled, out_columns = build([], {}, True)
            if compiled.sql != base_sql or compiled.rest:
                ctx.log(
                    f"source query: {compiled.sql}"
                    + (f" (+{len(compiled.rest)} step(s) on batches)" if compiled.rest else ""),
                    "DEBUG",
                )
            transformer = BatchTransformer(
                out_columns,
                compiled.rest,
                run_params,
                offset=len(transformations) - len(compiled.rest),
            )
            final_columns = transformer.columns
            info = {"watermark": _json_value(watermark)}

            pg_to_pg = (
                passthrough
                and source.kind == "postgresql"
                and destination.kind == "postgresql"
                and isinstance(sink, SqlSink)
            )
            lines = (
                TextLineTransformer.build(
                    out_columns,
                    compiled.rest,
                    offset=len(transformations) - len(compiled.rest),
                    run_params=run_params,
                )
                if pg_to_pg and compiled.rest
                else None
            )
            raw = pg_to_pg and (not compiled.rest or lines is not None)
            parsers = [] if source.typed_values else _parsers(out_columns)
            # Rows are Python objects here (~0.5 KiB each): fetch at most
            # FETCH_ROWS at a time so memory stays small whatever batch_size.
            fetch = min(batch_size, FETCH_ROWS)

            def copy_rows(batch: Any) -> tuple[int, int]:
                """Rows of one source query into the open transaction: (read, written)."""
                if raw:
                    assert isinstance(sink, SqlSink)  # nosec B101 - narrows the type; nothing relies on it at run time
                    copied = _pg_copy(ctx, source, conn, batch, sink, final_columns, lines)
                    return copied, copied
                n_read = n_written = 0
                for rows in source.iter_batches(conn, batch.sql, batch.params, fetch):
                    n_read += len(rows)
                    rows = _parse_batch(rows, parsers, source.where())
                    if transformer:
                        rows = transformer.apply(rows)
                    sink.write(rows)
                    n_written += len(rows)
                    ctx.check()
                return n_read, n_written

            stage = sink if staged and key else None
            if stage is not None:
                stage.begin(final_columns, staged=True, resume=resume)
            else:
                sink.begin(final_columns)
            resumed_from = int(resume["rows"]) if resume else 0
            try:
                if stage is not None and key:
                    read, written = 0, resumed_from
                    low, high = position, first_hi
                    while True:
                        extra, bound = _key_range(d, key, low, high)
                        n_read, n_written = copy_rows(build(extra, bound, False)[0])
                        read, written = read + n_read, written + n_written
                        ctx.check()
                        if high is None:
                            break
                        state = {"position": [_json_value(v) for v in high], **info}
                        stage.commit_batch(written, state)
                        _checkpoint(
                            ctx, {"unit": stage.unit.index, "batch": stage.batch, "rows": written}
                        )
                        low = high
                        high = _next_bound(
                            source, conn, base_sql, conditions, params, key, low, batch_size
                        )
                else:
                    read, written = copy_rows(compiled)
                tail = transformer.finish()
                sink.write(tail)
                written += len(tail)
                ctx.check()
                sink.commit(written, info)
            except BaseException:
                sink.rollback()
                raise
            result = {
                "rows_read": read,
                "rows_written": written,
                "skipped": False,
                "passthrough": raw,
                "watermark": info["watermark"],
            }
            if stage is not None:
                result["resumed_from"] = resumed_from
            return result
    except ConnectorError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if is_driver_error(exc):
            raise source.map_error(exc) from exc
        raise


def _where_sql(base_sql: str, conditions: list[str]) -> str:
    if not conditions:
        return base_sql
    return f"SELECT * FROM ({base_sql}) AS _dd_w WHERE {' AND '.join(conditions)}"  # nosec B608


def _row(source: SqlConnector, conn: Any, sql: str, params: dict[str, Any]) -> tuple:
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        row = cur.fetchone()
    finally:
        cur.close()
    if not source.typed_values and row is not None:
        return tuple(row)
    return tuple(row) if row is not None else (None, None)


def _scalar(source: SqlConnector, conn: Any, sql: str, params: dict[str, Any]) -> Any:
    return _row(source, conn, sql, params)[0]


def _pg_copy(
    ctx: Any,
    source: SqlConnector,
    conn: Any,
    compiled: Any,
    sink: SqlSink,
    columns: list[Column],
    lines: TextLineTransformer | None = None,
) -> int:
    """PostgreSQL → PostgreSQL into the sink's open transaction: raw COPY bytes.

    Binary when the types line up. With ``lines`` (steps left after push-down
    that work on text fields), text COPY lines pass through it instead.
    """
    assert isinstance(source, PostgresqlConnector)  # nosec B101 - narrows the type; nothing relies on it at run time
    # COPY takes no bind parameters: bind client-side with psycopg's own
    # literal quoting (the values still never pass through string formatting).
    src_sql = (
        psycopg.ClientCursor(conn).mogrify(compiled.sql, compiled.params or None)
        if compiled.params
        else compiled.sql
    )
    target_types = source.binary_types(sink.written_columns)
    binary = lines is None and source.binary_types(columns) == target_types
    dst_conn = sink.conn
    # Make sure the destination transaction has begun (psycopg begins lazily).
    dst_conn.execute("SELECT 1")
    # The engine's watchdog stops both COPYs at once on cancel or timeout.
    with Watchdog(ctx, conn.cancel_safe, dst_conn.cancel_safe):
        rows: int = source.copy_through(
            conn,
            src_sql,
            dst_conn,
            sink.target,
            [c.name for c in columns],
            binary=binary,
            check=ctx.check,
            transform=lines,
        )
    return rows


# Steps whose output for a row depends on other rows of the unit: a range of
# the source copied alone gives another result, so such a copy cannot resume.
WHOLE_SET_STEPS = ("aggregate", "dedupe")


def _resumable(
    source: SqlConnector,
    conn: Any,
    src_spec: dict[str, Any],
    transformations: list[dict[str, Any]],
    chunk: tuple[int, int] | None,
    by_name: dict[str, Column],
) -> list[str] | None:
    """The key a copy reads its source in order of, when it can resume; else None.

    Only an unpartitioned copy of a source *table* with a primary key,
    through row-by-row steps: the key orders the rows totally and
    stays with a row when it is updated, so "after the last committed key"
    is the same set of rows in every attempt (a query has no such key, and
    ctid/rowid move on update or VACUUM).
    """
    if chunk is not None or not src_spec.get("table"):
        return None
    if any(t.get("function") in WHOLE_SET_STEPS for t in transformations):
        return None
    key = _primary_key(source, conn, str(src_spec["table"]))
    if not key or any(k not in by_name for k in key):
        return None
    return key


def _primary_key(source: SqlConnector, conn: Any, table: str) -> list[str]:
    """The primary key columns of ``table`` in key order (empty when it has none)."""
    schema, name = split_table(table)
    cur = conn.cursor()
    try:
        if source.kind == "postgresql":
            cur.execute(
                "SELECT a.attname::text FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = to_regclass(%(t)s) AND i.indisprimary"
                " ORDER BY array_position(i.indkey::int2[], a.attnum)",
                {"t": source.dialect.table(table)},
            )
            return [str(r[0]) for r in cur.fetchall()]
        if source.kind == "mysql":
            cur.execute(
                "SELECT column_name FROM information_schema.key_column_usage"
                " WHERE table_schema = COALESCE(%(s)s, DATABASE()) AND table_name = %(t)s"
                " AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
                {"s": schema, "t": name},
            )
            return [str(r[0]) for r in cur.fetchall()]
        if source.kind == "sqlite":
            prefix = f"{source.dialect.quote(schema)}." if schema else ""
            found = conn.raw.execute(
                f"PRAGMA {prefix}table_info({source.dialect.quote(name)})"
            ).fetchall()
            return [str(r[1]) for r in sorted((r for r in found if r[5]), key=lambda r: r[5])]
        return []
    finally:
        cur.close()


def _key_params(prefix: str, values: list[Any]) -> dict[str, Any]:
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


def _key_condition(d: Any, key: list[str], op: str, prefix: str) -> str:
    """``(k1, k2) op (%(p0)s, %(p1)s)``: row-value comparison, one key column bare."""
    cols = ", ".join(d.quote(k) for k in key)
    marks = ", ".join(f"%({prefix}{i})s" for i in range(len(key)))
    return f"{cols} {op} {marks}" if len(key) == 1 else f"({cols}) {op} ({marks})"


def _key_range(
    d: Any, key: list[str], low: list[Any] | None, high: list[Any] | None
) -> tuple[list[str], dict[str, Any]]:
    """Conditions and parameters of the range ``low < key <= high`` (None: unbounded)."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if low is not None:
        conditions.append(_key_condition(d, key, ">", "_dd_kl"))
        params.update(_key_params("_dd_kl", low))
    if high is not None:
        conditions.append(_key_condition(d, key, "<=", "_dd_kh"))
        params.update(_key_params("_dd_kh", high))
    return conditions, params


def _next_bound(
    source: SqlConnector,
    conn: Any,
    base_sql: str,
    conditions: list[str],
    params: dict[str, Any],
    key: list[str] | None,
    low: list[Any] | None,
    batch_size: int,
) -> list[Any] | None:
    """The key of the ``batch_size``-th row after ``low``; None when fewer rows are left."""
    if key is None:
        return None
    d = source.dialect
    extra, bound = _key_range(d, key, low, None)
    order = ", ".join(d.quote(k) for k in key)
    sql = (
        f"SELECT {order} FROM ({_where_sql(base_sql, conditions + extra)}) AS _dd_b"  # nosec B608
        f" ORDER BY {order} LIMIT 1 OFFSET {int(batch_size) - 1}"
    )
    cur = conn.cursor()
    try:
        cur.execute(sql, {**params, **bound})
        row = cur.fetchone()
    finally:
        cur.close()
    return list(row) if row is not None else None


def _parse_key(stored: Any, key: list[str], by_name: dict[str, Column]) -> list[Any] | None:
    """A position stored as JSON back in the key columns' Python types."""
    if not isinstance(stored, list) or len(stored) != len(key):
        return None
    out = []
    for name, value in zip(key, stored, strict=True):
        parse = parser_for(by_name[name].type)
        out.append(parse(value) if parse is not None and isinstance(value, str) else value)
    return out


def _log_resume(ctx: Any, resume: dict[str, Any]) -> None:
    # The destination's batch marker decides; the checkpoint in the cache
    # only says what the killed attempt reported last (key values are data,
    # so neither line names them).
    hint = None
    try:
        hint = ctx.checkpoint_load()
    except Exception as exc:  # noqa: BLE001 - a checkpoint is a hint; the marker is the truth
        ctx.log(f"checkpoint not read: {type(exc).__name__}", "WARNING")
    ctx.log(
        f"resuming after batch {resume['batch']}: {resume['rows']} rows committed"
        " by an earlier attempt (destination marker)"
        + (
            f"; checkpoint said batch {hint.get('batch')}"
            if isinstance(hint, dict) and hint.get("batch") not in (None, resume["batch"])
            else ""
        )
    )


def _checkpoint(ctx: Any, state: dict[str, Any]) -> None:
    try:
        ctx.checkpoint_save(state)
    except Exception as exc:  # noqa: BLE001 - the marker is the truth; a checkpoint is a hint
        ctx.log(f"checkpoint not saved: {type(exc).__name__}", "WARNING")


def _copy_from_file(
    ctx: Any,
    source: FileConnector,
    sink: Sink,
    src_spec: dict[str, Any],
    transformations: list[dict[str, Any]],
    incremental: dict[str, Any] | None,
    partition: dict[str, Any] | None,
    chunk: tuple[int, int] | None,
    batch_size: int,
) -> dict[str, Any]:
    table = src_spec.get("table")
    if not table:
        raise CopyFailed(f"{source.kind} sources take a table (a file name)")
    path = source.file(table)
    columns = source.describe(table=table)
    by_name = {c.name: c for c in columns}
    position = {c.name: i for i, c in enumerate(columns)}
    parsers = _parsers(columns)
    run_params = dict(getattr(ctx, "params", {}) or {})
    transformer = BatchTransformer(columns, transformations, run_params)

    def rows_of() -> Iterator[list[tuple]]:
        for rows in source.read_file(path, columns, min(batch_size, FETCH_ROWS)):
            yield _parse_batch(rows, parsers, f"{source.kind} {table}")

    previous = watermark = None
    wm_pos = None
    if incremental:
        column = incremental.get("column")
        if column not in by_name:
            raise CopyFailed(f"incremental column {column!r} is not in the source")
        wm_pos = position[column]
        previous = ctx.watermark_load()
        parse = parser_for(by_name[column].type)
        if previous is not None and parse is not None and isinstance(previous, str):
            previous = parse(previous)
        watermark = previous
    bounds = None
    part_pos = None
    if partition and chunk:
        column = partition.get("column")
        if column not in by_name:
            raise CopyFailed(f"partition column {column!r} is not in the source")
        part_pos = position[column]

        def compute() -> dict[str, Any]:
            lo = hi = None
            for rows in rows_of():
                for row in rows:
                    value = row[part_pos]
                    if value is None or (
                        wm_pos is not None
                        and previous is not None
                        and not (row[wm_pos] is not None and row[wm_pos] > previous)
                    ):
                        continue
                    lo = value if lo is None or value < lo else lo
                    hi = value if hi is None or value > hi else hi
            return {"lo": _json_value(lo), "hi": _json_value(hi)}

        bounds = _chunk_range(sink.plan(compute), chunk[0], chunk[1], by_name[column])

    sink.begin(transformer.columns)
    read = written = 0
    try:
        for rows in rows_of():
            read += len(rows)
            if wm_pos is not None:
                if previous is not None:
                    rows = [r for r in rows if r[wm_pos] is not None and r[wm_pos] > previous]
                for r in rows:
                    v = r[wm_pos]
                    if v is not None and (watermark is None or v > watermark):
                        watermark = v
            if part_pos is not None and chunk:
                rows = [r for r in rows if _in_chunk(r[part_pos], bounds, chunk[0])]
            rows = transformer.apply(rows)
            sink.write(rows)
            written += len(rows)
            ctx.check()
        tail = transformer.finish()
        sink.write(tail)
        written += len(tail)
        ctx.check()
        info = {"watermark": _json_value(watermark)}
        sink.commit(written, info)
    except BaseException:
        sink.rollback()
        raise
    return {
        "rows_read": read,
        "rows_written": written,
        "skipped": False,
        "passthrough": False,
        "watermark": info["watermark"],
    }
