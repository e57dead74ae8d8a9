"""A CSV or JSONL file as a copy destination: a temp file renamed into place."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, FileConnector
from connectors.copy.markers import FileMarkers
from connectors.copy.schema_changes import SchemaPlan, describe, reconcile
from connectors.copy.sink import Sink
from connectors.copy.spec import CopyFailed, Unit, side_error
from connectors.copy.values import parse_batch, parsers
from connectors.types import Column, text_of


class FileSink(Sink):
    """A CSV/JSONL file: written to a temp file, renamed into place at commit.

    The marker lives in a sidecar ``.<file>.ddmarkers.json``. Commit first
    records the marker as pending with the temp file's inode, then renames,
    then marks it done: after a crash between the two, the inode tells
    whether the rename happened.
    """

    def __init__(
        self,
        connector: FileConnector,
        table: str,
        mode: str,
        unit: Unit,
        keys: list[str] | None = None,
        schema_policy: str = "evolve",
        log: Callable[[str], Any] | None = None,
    ) -> None:
        if mode == "upsert":
            raise CopyFailed(f"{connector.kind} destinations take append or replace, not upsert")
        self.c = connector
        self.table = table
        self.path = connector.file(table)
        # destination.schema (connectors.copy.schema_changes) and what it changed.
        self.schema_policy = schema_policy
        self.schema_plan: SchemaPlan | None = None
        self.schema_changes: list[dict[str, Any]] = []
        self._log = log
        self.mode = mode
        self.unit = unit
        # A keyed append skips rows whose keys the file holds already: the keys
        # of its rows (as text) are read into memory at begin.
        self.keys = list(keys or []) if mode == "append" else []
        self._seen: set[tuple[str | None, ...]] = set()
        self._key_pos: list[int] = []
        self.markers = FileMarkers(self.path)
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
        with self.markers.locked():
            yield

    def committed(self) -> dict[str, Any] | None:
        with self._locked():
            markers = self.markers.load()
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
                    self.markers.save(markers)
                    return None
                entry["state"] = "done"
                self.markers.save(markers)
            return {**entry.get("info", {}), "rows_written": entry.get("rows", 0)}

    def plan(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        plan_key = f"{self.unit.execution_id}/{self.unit.task_name}/plan"
        with self._locked():
            markers = self.markers.load()
            if plan_key not in markers:
                markers[plan_key] = {"state": "plan", "info": compute()}
                self.markers.save(markers)
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
            entry = self.markers.load().get(self.batch_key)
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

    @contextmanager
    def _named(self) -> Iterator[None]:
        """Errors of the file as copy errors naming the destination."""
        try:
            yield
        except ConnectorError as exc:
            raise side_error("destination", exc) from exc
        except OSError as exc:
            error = ConnectorError(f"{self.c.kind} {self.c.name}: {self.path.name}: {exc}")
            raise side_error("destination", error) from exc

    def begin(
        self, columns: list[Column], *, staged: bool = False, resume: dict[str, Any] | None = None
    ) -> None:
        with self._named():
            self._begin(columns, staged, resume)

    def _begin(self, columns: list[Column], staged: bool, resume: dict[str, Any] | None) -> None:
        columns = self._reconcile(columns)
        self.columns = columns
        names = [c.name for c in columns]
        missing = [k for k in self.keys if k not in names]
        if missing:
            raise CopyFailed(
                f"destination key {missing[0]!r} is not a column of the copied rows"
                f" (columns: {', '.join(sorted(names))})"
            )
        self._key_pos = [names.index(k) for k in self.keys]
        self._seen = set()
        # Held until commit or rollback: parallel chunks appending to one
        # file take turns instead of losing each other's rows.
        self._lock = self.markers.lock()
        self.staged = staged
        if staged and resume is not None:
            entry = self.markers.load()[self.batch_key]
            self.batch = int(entry["batch"])
            self._tmp = self.stage
            self._handle = open(self.stage, "r+", encoding="utf-8", newline="")  # noqa: SIM115
            # Bytes after the last committed batch were never committed.
            self._handle.truncate(int(entry["bytes"]))
            self._handle.seek(0, os.SEEK_END)
            self._first = False
            # The stage holds the file's rows and the committed batches.
            self._read_keys(self.stage)
            return
        if staged:
            self.markers.pop(self.batch_key)
            self.batch = 0
            self._tmp = self.stage
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp")
        self._handle = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._first = True
        if self.mode == "append" and self.path.exists() and self.path.stat().st_size > 0:
            self.c.copy_existing(self.path, self._handle, columns)
            self._first = False
            self._read_keys(self.path)
        if self._first:
            self.c.write_file(self._handle, columns, [], True)
            self._first = False

    def _reconcile(self, columns: list[Column]) -> list[Column]:
        """Apply destination.schema against the file's columns; the columns written.

        The file's own columns come first, new ones after: an append copies
        the file into its temp file anyway, so a CSV gets the new header and
        empty cells for the new columns in its old rows (JSONL objects simply
        gain keys). Nothing is written before this (freeze fails first).
        """
        if not (self.path.is_file() and self.path.stat().st_size > 0):
            return columns
        existing = self.c.describe(self.table)
        plan = reconcile(
            self.schema_policy,
            f"destination {self.c.kind} {self.c.name}: file {self.path.name!r}",
            existing,
            columns,
            keep_order=True,
            new_type=lambda c: c.type,
            widen_to=lambda old, new: None,
        )
        self.schema_plan = plan
        self.schema_changes = plan.changes()
        for change in self.schema_changes:
            if self._log is not None:
                self._log(describe(change))
        return plan.columns

    def _key(self, row: tuple) -> tuple[str | None, ...]:
        # As text: the file holds text (CSV) or JSON, the copy typed values.
        return tuple(text_of(row[i]) for i in self._key_pos)

    def _read_keys(self, path: Path) -> None:
        if not self.keys:
            return
        by_name = {c.name: c for c in self.columns}
        key_columns = [by_name[k] for k in self.keys]
        parse = parsers(key_columns)
        for rows in self.c.read_file(path, key_columns, 5000):
            rows = parse_batch(rows, parse, f"{self.c.kind} {path.name}")
            self._seen.update(tuple(text_of(v) for v in row) for row in rows)

    def write(self, rows: list[tuple]) -> None:
        with self._named():
            self._write(rows)

    def _write(self, rows: list[tuple]) -> None:
        if self.schema_plan is not None:
            rows = self.schema_plan.project(rows)
        if self.keys and rows:
            new = []
            for row in rows:
                key = self._key(row)
                if key not in self._seen:
                    self._seen.add(key)
                    new.append(row)
            rows = new
        if rows:
            self.c.write_file(self._handle, self.columns, rows, False)

    def discard(self) -> None:
        with self._locked():
            self.markers.pop(self.batch_key)
            self.stage.unlink(missing_ok=True)

    def commit_batch(self, rows: int, state: dict[str, Any]) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.batch += 1
        markers = self.markers.load()
        entry = markers.get(self.batch_key) or {"dest": self._dest_state()}
        markers[self.batch_key] = {
            **entry,
            "batch": self.batch,
            "rows": rows,
            "bytes": self._handle.tell(),
            "state": state,
        }
        self.markers.save(markers)

    def commit(self, rows: int, info: dict[str, Any]) -> None:
        with self._named():
            self._commit(rows, info)

    def _commit(self, rows: int, info: dict[str, Any]) -> None:
        assert self._tmp is not None  # nosec B101 - narrows the type; nothing relies on it at run time
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        markers = self.markers.load()
        markers.pop(self.batch_key, None)
        markers[self.key] = {
            "state": "pending",
            "inode": self._tmp.stat().st_ino,
            "rows": rows,
            "info": info,
        }
        self.markers.save(markers)
        os.replace(self._tmp, self.path)
        self._tmp = None
        markers[self.key]["state"] = "done"
        self.markers.save(markers)
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
            self.markers.unlock(self._lock)
            self._lock = None
