"""A table in a SQL database as a copy destination; the dialect says how.

Per mode: ``append`` inserts (with ``keys``: only rows whose keys are not in
the table yet); ``upsert`` inserts or updates by the keys (both through the
dialect's temporary table, or row by row); ``replace`` empties
and loads the table in one transaction where DDL is transactional, else
loads a shadow table swapped in after the commit (the unit marker records
the pending swap, so a retry finishes it). A *staged* load commits its
batches into a stage table of the unit (resumable, see connectors.copy.resume)
and moves them into the table in the final transaction.
"""

from __future__ import annotations

# Security review (bandit B608, marked "# nosec B608" line by line): the SQL
# built here with f-strings joins only identifiers quoted by the dialect
# (connectors.base refuses what quoting cannot make safe) and SQL this module
# generated; values always travel as bound parameters.
import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from connectors.base import (
    TEMP_STAGE,
    BatchWriter,
    ConnectorError,
    SqlConnector,
    check_identifier,
    split_table,
)
from connectors.copy.markers import SqlMarkers
from connectors.copy.schema_changes import SchemaPlan, describe, reconcile
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, Unit, side_error
from connectors.types import Column


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
        schema_policy: str = "evolve",
        log: Callable[[str], Any] | None = None,
    ) -> None:
        self.c = connector
        self.d = connector.dialect
        self.table = table
        self.mode = mode
        self.keys = keys
        # Rows go in by their keys: upsert updates a row whose keys exist, a
        # keyed append skips it (an incremental copy reads such rows again).
        self.keyed = bool(keys) and mode in ("upsert", "append")
        self.unit = unit
        self.timeout = timeout
        schema, name = split_table(table)
        self.schema = schema
        # The shadow table a ``replace`` loads before the swap (dialects
        # without transactional DDL).
        self.shadow = (f"{schema}." if schema else "") + f"{name[:40]}__dd_new"
        self.markers = SqlMarkers(connector, schema, unit, self._txn, self._ddl)
        # A staged load (see begin) commits its batches into this table, one
        # per unit, so a killed attempt's next one finds them there.
        digest = hashlib.sha256(
            f"{unit.execution_id}/{unit.task_name}/{unit.index}".encode()
        ).hexdigest()[:10]
        self.stage = (f"{schema}." if schema else "") + f"{name[:30]}__dd_s{digest}"
        self.staged = False
        self.batch = 0
        self._create_final: str | None = None
        self._stack: ExitStack | None = None
        self.conn: Any = None
        self.target = table
        self.columns: list[Column] = []
        self.written_columns: list[Column] = []
        # An upsert through the dialect's temporary table (merged at commit).
        self._through_temp = False
        # The batch writer of the open transaction (see write).
        self._writer: BatchWriter | None = None
        # destination.schema (connectors.copy.schema_changes) and what it changed.
        self.schema_policy = schema_policy
        self.schema_plan: SchemaPlan | None = None
        self.schema_changes: list[dict[str, Any]] = []
        self._log = log

    @property
    def _swapped(self) -> bool:
        """Whether this load swaps a shadow table in after its commit."""
        return self.mode == "replace" and not self.d.transactional_ddl

    def _error(self, exc: BaseException) -> ConnectorError:
        """A failure of this sink, as a copy error naming the destination."""
        return side_error("destination", self.c.map_error(exc))

    # ----- transactions

    @contextmanager
    def _txn(self) -> Iterator[Any]:
        with self.c.connect(timeout_s=self.timeout()) as conn:
            yield conn

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
                    raise side_error("destination", error) from exc

    def _drop_stage(self) -> None:
        self._ddl([f"DROP TABLE IF EXISTS {self.d.table(self.stage)}"])

    # ----- markers

    def committed(self) -> dict[str, Any] | None:
        try:
            self.markers.ensure()
            with self._txn() as conn:
                info = self.markers.read(conn, self.unit.index)
            if info is not None and not self.d.transactional_ddl:
                # The DDL committed on its own, after the marker: finish what
                # a crash may have left (the swap, the stage).
                if info.get("stage"):
                    self.shadow = str(info["stage"])
                if info.get("swap"):
                    self._swap()
                elif info.get("stage"):
                    self._drop_stage()
            return info
        except ConnectorError as exc:
            raise self._error(exc) from exc
        except Exception as exc:
            raise self._error(exc) from exc

    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return self.markers.plan(compute)

    def resume_point(self) -> dict[str, Any] | None:
        """The last batch a staged load of this unit committed, or None.

        ``{batch, rows, position, watermark}``: the marker of the batch and the
        state the copy stored with it. None when no batch committed or its
        stage table is gone (then the unit starts again from its first row).
        """
        try:
            with self._txn() as conn:
                last = self.markers.last_batch(conn)
                if last is None or self.c.table_columns(conn, self.stage) is None:
                    return None
                # The stage must hold what the markers say (an UNLOGGED stage
                # is emptied by a PostgreSQL crash; someone may truncate it).
                cur = conn.cursor()
                try:
                    cur.execute(f"SELECT COUNT(*) FROM {self.d.table(self.stage)}")  # nosec B608
                    staged = cur.fetchone()
                finally:
                    cur.close()
                if staged is None or int(staged[0]) != last[1]:
                    return None
        except ConnectorError as exc:
            raise self._error(exc) from exc
        except Exception as exc:
            raise self._error(exc) from exc
        batch, rows, state = last
        return {**state, "batch": batch, "rows": rows}

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
                raise CopyFailed(
                    f"destination key {key!r} is not a column of the copied rows"
                    f" (columns: {', '.join(sorted(names))})"
                )
        with self._or_rollback():
            existing = self._existing()
            create_in_txn = None
            if existing is None:
                existing = columns
                create = self._create_sql(self.table, columns)
                if self.mode == "replace" and self.d.transactional_ddl:
                    # Created in the load's transaction: nobody sees it empty.
                    create_in_txn = create
                else:
                    self._ddl([create])
            self.written_columns = self._reconcile(existing, columns)
            self.columns = existing
            if self.keyed or self.mode == "upsert":
                self._ensure_unique_index()
            self.staged = staged
            if staged:
                self._begin_stage(existing, create_in_txn, resume)
                return
            if self._swapped:
                self._ddl(
                    [
                        f"DROP TABLE IF EXISTS {self.d.table(self.shadow)}",
                        self._shadow_sql(existing),
                    ]
                )
            self._open()
            cur = self.conn.cursor()
            if self.mode == "replace" and self.d.transactional_ddl:
                # Replace in place: DELETE and load in one transaction.
                # Readers see the old rows until the commit, then the new
                # ones. (A swap by RENAME is not safe there: a reader whose
                # statement began before the commit and waited on the lock
                # would read the new table with its old snapshot and find it
                # empty.)
                cur.execute(create_in_txn or f"DELETE FROM {self.d.table(self.table)}")  # nosec B608
            temp = self.d.upsert_temp_table(self.table) if self.keyed else None
            if temp:
                cur.execute(temp)
            cur.close()
            self._through_temp = temp is not None
            if self._swapped:
                self.target = self.shadow
            elif temp:
                self.target = TEMP_STAGE

    @contextmanager
    def _or_rollback(self) -> Iterator[None]:
        """Roll the unit's transaction back on any error; driver errors as ConnectorError."""
        try:
            yield
        except ConnectorError as exc:
            self.rollback()
            raise self._error(exc) from exc
        except Exception as exc:
            self.rollback()
            raise self._error(exc) from exc

    def _open(self) -> None:
        self._stack = ExitStack()
        self._writer = None
        self.conn = self._stack.enter_context(self._txn())

    def _end_txn(self) -> None:
        """Commit the open transaction (leaving the connect() context commits)."""
        stack, self._stack = self._stack, None
        self._writer = None
        assert stack is not None  # nosec B101 - narrows the type; nothing relies on it at run time
        stack.close()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _begin_stage(
        self, existing: list[Column], create: str | None, resume: dict[str, Any] | None
    ) -> None:
        # The table is created (transactional replace) in the final commit's
        # transaction, as on the unstaged path.
        self._create_final = create
        self.batch = int(resume["batch"]) if resume else 0
        if self._swapped:
            # The stage is the shadow table the swap puts in place.
            self.shadow = self.stage
            stage_sql = self._shadow_sql(existing)
        else:
            stage_sql = self._create_sql(self.stage, self.written_columns).replace(
                " IF NOT EXISTS", "", 1
            )
        if resume is None:
            self._ddl(
                [f"DROP TABLE IF EXISTS {self.d.table(self.stage)}", self.d.stage_table(stage_sql)]
            )
            with self._txn() as conn:
                self.markers.delete_batches(conn)
        self._open()
        self.target = self.stage

    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        """Commit the stage's rows so far with a batch marker holding ``state``; go on."""
        with self._or_rollback():
            self._close_writer()
            self.batch += 1
            cur = self.conn.cursor()
            self.markers.insert(cur, self.batch, rows, state)
            cur.close()
            self._end_txn()
            self._open()

    def discard(self) -> None:
        if not self.markers.exists():
            return  # no copy ever ran here: nothing was staged
        self._drop_stage()
        with self._txn() as conn:
            self.markers.delete_batches(conn)

    def _move_stage(self, cur: Any) -> None:
        """In the final transaction: the staged rows into the table, by mode."""
        if self._swapped:
            return  # the stage is swapped in after the commit
        table, stage = self.d.table(self.table), self.d.table(self.stage)
        names = [c.name for c in self.written_columns]
        if self.mode == "replace":
            cur.execute(self._create_final or f"DELETE FROM {table}")  # nosec B608
        if self.keyed:
            cur.execute(self._merge_sql(stage))
            return
        cols = ", ".join(self.d.quote(n) for n in names)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}")  # nosec B608

    def _merge_sql(self, source: str) -> str:
        """Rows of table ``source`` (quoted) into the table by the keys: upserted,
        or for a keyed append only those whose keys are not there yet."""
        names = [c.name for c in self.written_columns]
        if self.mode == "upsert":
            return self.d.upsert_select(self.table, names, self.keys, source)
        cols = ", ".join(self.d.quote(n) for n in names)
        # Updating only the keys is the dialect's "leave the row as it is".
        return (
            f"INSERT INTO {self.d.table(self.table)} ({cols}) SELECT {cols} FROM {source}"  # nosec B608
            f"{self.d.select_conflict_guard}{self.d.upsert_clause(self.keys, self.keys)}"
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
        """The shadow table: the same definition as the table it replaces."""
        if self._existing() is not None:
            return self.d.create_like(self.shadow, self.table)
        return self._create_sql(self.shadow, existing).replace(" IF NOT EXISTS", "", 1)

    def _reconcile(self, existing: list[Column], columns: list[Column]) -> list[Column]:
        """Apply destination.schema to the table (DDL before any row); the columns written."""
        plan = reconcile(
            self.schema_policy,
            f"destination {self.c.where()}: table {self.table!r}",
            existing,
            columns,
            keep_order=False,
            new_type=self.d.ddl_type,
            widen_to=self.d.widen_to,
        )
        self.schema_plan = plan
        statements = [self.d.add_column(self.table, c.name, str(c.native)) for c in plan.added]
        statements += [self.d.widen_column(self.table, c, to) for c, to in plan.widened]
        if statements:
            self._ddl(statements)
        self.schema_changes = plan.changes()
        for change in self.schema_changes:
            if self._log is not None:
                self._log(describe(change))
        return plan.columns

    @property
    def projects(self) -> bool:
        """Whether rows are reshaped for the table (source columns dropped)."""
        return self.schema_plan is not None and not self.schema_plan.identity

    def _ensure_unique_index(self) -> None:
        if not self.keys:
            raise CopyFailed("upsert needs keys")
        # The conflict clause of a keyed write needs a unique index on the keys.
        wanted = sorted(self.keys)
        with self._txn() as conn:
            if any(sorted(found) == wanted for found in self.d.unique_keys(conn, self.table)):
                return
        _, name = split_table(self.table)
        digest = hashlib.sha256(",".join(self.keys).encode()).hexdigest()[:8]
        index = f"{name[:40]}_dd_uk_{digest}"
        self._ddl([self.d.create_unique_index(self.table, index, self.keys)])

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.schema_plan is not None:
            rows = self.schema_plan.project(rows)
        try:
            if self.keyed and not self._through_temp and not self.staged:
                self.c.upsert_rows(
                    self.conn,
                    self.table,
                    self.written_columns,
                    self.keys,
                    rows,
                    skip_existing=self.mode == "append",
                )
            else:
                # One writer per transaction: it may read the table's types once.
                if self._writer is None:
                    self._writer = self.c.row_writer(self.conn, self.target, self.written_columns)
                self._writer(rows)
        except Exception as exc:
            raise self._error(exc) from exc

    def takes_text(self) -> bool:
        """Whether the destination kind writes text values unparsed (PostgreSQL's text COPY).

        Not when rows go in one by one by their keys (``upsert_rows``): that
        statement binds typed values.
        """
        by_keys = self.keyed and not self._through_temp and not self.staged
        return self.c.writes_text and not by_keys

    def write_text(self, rows: list[tuple], types: list[str]) -> None:
        if not rows:
            return
        if self.schema_plan is not None:
            rows = self.schema_plan.project(rows)
            types = [t or "text" for t in self.schema_plan.project([tuple(types)])[0]]
        try:
            if self._writer is None:
                self._writer = self.c.text_writer(
                    self.conn, self.target, self.written_columns, types
                )
            self._writer(rows)
        except Exception as exc:
            raise self._error(exc) from exc

    def commit(self, rows: int, info: dict[str, Any]) -> None:
        with self._or_rollback():
            self._close_writer()
            cur = self.conn.cursor()
            if self.staged:
                self._move_stage(cur)
                self.markers.delete_batches(self.conn)
                if self.d.transactional_ddl:
                    cur.execute(f"DROP TABLE {self.d.table(self.stage)}")
                else:
                    info = {**info, "stage": self.stage}
            elif self._through_temp:
                cur.execute(self._merge_sql(TEMP_STAGE))
            if self._swapped:
                info = {**info, "swap": True}
            self.markers.insert(cur, 0, rows, info)
            cur.close()
            self._end_txn()
        if self._swapped:
            # DDL commits implicitly: the swap comes after the commit. A
            # crash in between leaves the marker with "swap" and the shadow
            # table; the retry's committed() finishes the swap.
            self._swap()
        elif self.staged and not self.d.transactional_ddl:
            self._drop_stage()

    def _swap(self) -> None:
        _, name = split_table(self.table)
        with self._txn() as conn:
            if self.c.table_columns(conn, self.shadow) is None:
                return
            exists = self.c.table_columns(conn, self.table) is not None
        old = (f"{self.schema}." if self.schema else "") + f"{name[:40]}__dd_old"
        self._ddl(self.d.swap(self.table, self.shadow, old, exists))

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
