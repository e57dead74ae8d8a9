"""Completion markers: what a destination keeps so a retried unit never copies twice.

A SQL destination keeps them in the table ``_datadog_copy_markers``, a file
destination in a sidecar ``.<file>.ddmarkers.json``. Per unit: a *unit*
marker (batch 0, written in the transaction that publishes the unit's rows),
the *batch* markers of a staged load (batch > 0, one per committed batch),
and per execution the partition *plan* (chunk ``PLAN_CHUNK``).
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from connectors.base import SqlConnector
from connectors.copy.spec import Unit

MARKER_TABLE = "_datadog_copy_markers"
# Chunk number of the row that stores a partitioned copy's key ranges.
PLAN_CHUNK = -1


class SqlMarkers:
    """The marker rows of one unit in a SQL destination.

    ``txn`` opens a destination transaction; ``ddl`` runs DDL in its own
    (racing parallel chunks allowed).
    """

    def __init__(
        self,
        connector: SqlConnector,
        schema: str | None,
        unit: Unit,
        txn: Callable[[], AbstractContextManager[Any]],
        ddl: Callable[[list[str]], None],
    ) -> None:
        self.c = connector
        self.d = connector.dialect
        self.table = (f"{schema}." if schema and self.d.markers_in_schema else "") + MARKER_TABLE
        self.unit = unit
        self._txn = txn
        self._ddl = ddl

    def _key(self, chunk: int | None = None) -> dict[str, Any]:
        return {
            "e": self.unit.execution_id,
            "t": self.unit.task_name,
            "c": self.unit.index if chunk is None else chunk,
        }

    def ensure(self) -> None:
        """Create the marker table when it is missing."""
        self._ddl(
            [
                f"CREATE TABLE IF NOT EXISTS {self.d.table(self.table)} ("
                " execution_id VARCHAR(64) NOT NULL, task_name VARCHAR(100) NOT NULL,"
                " chunk INTEGER NOT NULL, batch INTEGER NOT NULL, rows_written BIGINT NOT NULL,"
                " info TEXT, committed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
                " PRIMARY KEY (execution_id, task_name, chunk, batch))"
            ]
        )

    def exists(self) -> bool:
        """Whether the marker table exists (a copy ever ran here)."""
        with self._txn() as conn:
            return self.c.table_columns(conn, self.table) is not None

    def read(self, conn: Any, chunk: int) -> dict[str, Any] | None:
        """The unit marker of ``chunk``: its info with ``rows_written``, or None."""
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT rows_written, info FROM {self.d.table(self.table)}"  # nosec B608
                " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s AND batch = 0",
                self._key(chunk),
            )
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        info = json.loads(row[1]) if row[1] else {}
        info["rows_written"] = int(row[0])
        return info

    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The execution's partition plan: the first chunk's ``compute()``, stored once."""
        self.ensure()
        with self._txn() as conn:
            found = self.read(conn, PLAN_CHUNK)
        if found is None:
            columns = ["execution_id", "task_name", "chunk", "batch", "rows_written", "info"]
            with self._txn() as conn:
                cur = conn.cursor()
                cur.execute(
                    self.d.insert_ignore(self.table, columns, "%(e)s, %(t)s, %(c)s, 0, 0, %(i)s"),
                    {**self._key(PLAN_CHUNK), "i": json.dumps(compute())},
                )
                cur.close()
            with self._txn() as conn:
                found = self.read(conn, PLAN_CHUNK) or {}
        found.pop("rows_written", None)
        return found

    def insert(self, cur: Any, batch: int, rows: int, info: dict[str, Any]) -> None:
        """Add the marker of ``batch`` (0: the unit's) in ``cur``'s transaction."""
        cur.execute(
            f"INSERT INTO {self.d.table(self.table)}"  # nosec B608
            " (execution_id, task_name, chunk, batch, rows_written, info)"
            " VALUES (%(e)s, %(t)s, %(c)s, %(b)s, %(r)s, %(i)s)",
            {**self._key(), "b": batch, "r": rows, "i": json.dumps(info, default=str)},
        )

    def last_batch(self, conn: Any) -> tuple[int, int, dict[str, Any]] | None:
        """``(batch, rows, state)`` of the unit's last batch marker, or None."""
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT batch, rows_written, info FROM {self.d.table(self.table)}"  # nosec B608
                " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s"
                " AND batch > 0 ORDER BY batch DESC LIMIT 1",
                self._key(),
            )
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        return int(row[0]), int(row[1]), json.loads(row[2]) if row[2] else {}

    def delete_batches(self, conn: Any) -> None:
        """Drop the unit's batch markers in ``conn``'s transaction."""
        cur = conn.cursor()
        cur.execute(
            f"DELETE FROM {self.d.table(self.table)}"  # nosec B608
            " WHERE execution_id = %(e)s AND task_name = %(t)s AND chunk = %(c)s AND batch > 0",
            self._key(),
        )
        cur.close()


class FileMarkers:
    """The sidecar of a file destination: every unit's markers, under the file's lock."""

    def __init__(self, path: Path) -> None:
        self.sidecar = path.with_name(f".{path.name}.ddmarkers.json")
        self.lockfile = path.with_name(f".{path.name}.lock")

    def load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.sidecar.read_text()))
        except FileNotFoundError:
            return {}

    def save(self, markers: dict[str, Any]) -> None:
        """Replace the sidecar atomically (a crash leaves the old one or the new one)."""
        tmp = self.sidecar.with_name(self.sidecar.name + f".{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(markers, default=str))
        os.replace(tmp, self.sidecar)

    def pop(self, key: str) -> None:
        """Drop the marker ``key`` when there is one."""
        markers = self.load()
        if markers.pop(key, None) is not None:
            self.save(markers)

    def lock(self) -> Any:
        """Take the file's lock (``unlock`` it): writers of one file take turns."""
        handle = open(self.lockfile, "a")  # noqa: SIM115 - closed in unlock
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    @staticmethod
    def unlock(handle: Any) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        handle = self.lock()
        try:
            yield
        finally:
            self.unlock(handle)
