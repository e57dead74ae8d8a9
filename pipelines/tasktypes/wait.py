"""``wait`` task: a sensor that holds no worker while its condition is false (SPEC §8).

One run of the task is one check: a SQL query whose first column of its
first row is truthy, or a file matching a glob in a csv/jsonl connection's
folder. A true check succeeds; a false one raises ``TaskNotReady`` and the
engine moves the run to ``waiting`` until the next check is due (the
reaper queues it again), or fails it once the task's ``timeout``, counted
from the first check, has passed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from connectors.base import FileConnector, resolve_under
from core.checker import NAME_SCHEMA, Checker, at, quoted
from pipelines.tasktypes.base import (
    VALUES_SCHEMA,
    Key,
    TaskContext,
    TaskFailed,
    TaskNotReady,
    TaskType,
    bind_values,
    bound_beside,
)

# Seconds between checks (the reaper queues a due check at its next pass,
# REAPER_SECONDS).
DEFAULT_INTERVAL = 60
MAX_INTERVAL = 86_400
# The matching file names a check lists in its log and output.
MAX_LISTED = 100


class WaitTask(TaskType):
    """Check ``sql`` (on a SQL connection) or ``file`` (on a csv/jsonl one) every ``interval`` s.

    The query's parameters are bound like a ``sql`` task's (``%(name)s``, the
    pipeline's parameters and the task's ``params``). The output names what
    made the check true: ``{value}`` (the query's first column) or ``{files}``.
    The glob is relative to the connection's folder and never leaves it:
    absolute globs and ``..`` are refused, and a match whose real path lies
    outside the folder (through a link) does not count.
    """

    name: ClassVar[str] = "wait"
    keys: ClassVar[dict[str, Key]] = {
        "connection": Key(NAME_SCHEMA, required=True),
        "sql": Key({"type": "string", "minLength": 1}),
        "file": Key({"type": "string", "minLength": 1}),
        "interval": Key(
            {"type": "integer", "minimum": 1, "maximum": MAX_INTERVAL, "default": DEFAULT_INTERVAL}
        ),
        "params": Key(VALUES_SCHEMA),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """``connection``, exactly one of ``sql`` and ``file``, ``interval``, ``params``."""
        out: dict[str, Any] = {"connection": None, "interval": DEFAULT_INTERVAL}
        if "connection" in task:
            out["connection"] = c.connection(at(path, "connection"), task["connection"])
        given = [key for key in ("sql", "file") if key in task]
        if not given:
            c.add(at(path, "sql"), "give 'sql' (a query) or 'file' (a glob) to wait for")
        elif len(given) > 1:
            c.add(at(path, "file"), "give either 'sql' or 'file', not both")
        with bound_beside(c, at(path, "params"), task, out):
            if "sql" in task:
                out["sql"] = c.sql(at(path, "sql"), task["sql"])
        if "file" in task:
            out["file"] = _check_glob(c, at(path, "file"), task["file"])
        if "interval" in task:
            out["interval"] = c.integer(at(path, "interval"), task["interval"], 1, MAX_INTERVAL)
        return out

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        connector = ctx.connection(task["connection"])
        if task.get("sql") is not None:
            found, seen, ctx.output = _query_true(connector, task, ctx)
        else:
            found, seen, ctx.output = _file_found(connector, task)
        ctx.log(f"check {ctx.attempt}: {seen}")
        if not found:
            raise TaskNotReady(seen, check_in=float(task["interval"]))


def _check_glob(c: Checker, path: str, value: Any) -> str | None:
    """A glob relative to the connection's folder: not absolute, no ``..``."""
    text = c.string(path, value, nonempty=True)
    if text is None:
        return None
    problem = _glob_problem(text)
    if problem:
        c.add(path, f"invalid file glob {quoted(text)}: {problem}")
        return None
    return text


def _glob_problem(glob: str) -> str | None:
    """Why ``glob`` could reach outside the connection's folder, or None."""
    if "\x00" in glob or "\\" in glob:
        return "must not contain '\\' or NUL"
    if glob.startswith(("/", "~")) or os.path.isabs(glob):
        return "must be relative to the connection's folder (absolute paths are refused)"
    if ".." in PurePosixPath(glob).parts:
        return "'..' is refused: the glob must stay in the connection's folder"
    return None


def _query_true(
    connector: Any, task: dict[str, Any], ctx: TaskContext
) -> tuple[bool, str, dict[str, Any]]:
    """Whether the first column of the query's first row is truthy, what it saw, the output."""
    if not getattr(connector, "speaks_sql", False):
        raise TaskFailed(
            f"connection {task['connection']!r} ({connector.kind}) does not run SQL; "
            "a wait on 'sql' needs a SQL connection"
        )
    params = {**ctx.params, **bind_values(task.get("params") or {}, ctx.params)}
    _, rows = connector.query(task["sql"], params, ctx, limit=1)
    if not rows or not rows[0]:
        return False, "the query returned no row", {"value": None}
    value = rows[0][0]
    # Dates, decimals and the like reach the output as text.
    plain = value if value is None or isinstance(value, bool | int | float | str) else str(value)
    return bool(value), f"the query returned {repr(value)[:200]}", {"value": plain}


def _file_found(connector: Any, task: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """Whether a file in the folder matches the task's glob, what it saw, the output."""
    if not isinstance(connector, FileConnector):
        raise TaskFailed(
            f"connection {task['connection']!r} ({connector.kind}) has no folder; "
            "a wait on 'file' needs a csv or jsonl connection"
        )
    glob = task["file"]
    problem = _glob_problem(glob)
    if problem:
        raise TaskFailed(f"file glob {glob!r}: {problem}")
    folder = connector.directory()
    # Refuses a glob whose fixed part resolves out of the folder through a link.
    resolve_under(folder, glob, what="file glob")
    names = sorted(islice(_files_in(folder, glob), MAX_LISTED))
    if not names:
        return False, f"no file matches {glob!r}", {"files": []}
    return True, f"{len(names)} file(s) match {glob!r}: {', '.join(names[:10])}", {"files": names}


def _files_in(folder: Path, glob: str) -> Iterator[str]:
    """Names (relative to ``folder``) of the regular files matching ``glob`` inside it."""
    for match in folder.glob(glob):
        real = match.resolve()
        if folder in real.parents and real.is_file():
            yield match.relative_to(folder).as_posix()
