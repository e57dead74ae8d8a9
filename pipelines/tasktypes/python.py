"""``python`` task: a function from an installed module the operator allowed (SPEC §8).

The worker calls ``function(ctx, **kwargs)``; ``ctx`` is a ``PythonContext``.
Only modules under a package listed in the ``PYTHON_TASK_MODULES`` setting
may be called (empty by default: every python task is refused). A
definition is checked by importing the module on the host that saves it, so
the package must be installed beside the product on every host, web and
workers (docs/python-tasks.md).

Stopping: code that is not ours cannot be interrupted safely, so on a cancel
or a timeout ``ctx.cancelled()`` turns true and the function is expected to
return; one still running ``stop_grace`` seconds later has its worker
process ended by the engine's watchdog (``pipelines.runner``), which records
the run's end first.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from core.checker import NAME_SCHEMA, Checker, at, idx, quoted
from pipelines.tasktypes.base import (
    VALUES_SCHEMA,
    Key,
    LeaseLost,
    TaskCancelled,
    TaskContext,
    TaskFailed,
    TaskTimedOut,
    TaskType,
    bind_values,
    check_values,
)

_CALLABLE = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
_CALLABLE_RE = re.compile(rf"\A{_CALLABLE}\Z")
_STOPS = (TaskCancelled, TaskTimedOut, LeaseLost)
SETTING = "PYTHON_TASK_MODULES"


def allowed_packages() -> list[str]:
    """The packages python tasks may call into (``PYTHON_TASK_MODULES``).

    Read from Django settings lazily (the definition checker imports no
    Django), or from the environment when Django is not configured.
    """
    if "django.conf" in sys.modules:
        try:
            from django.conf import settings

            return [p for p in getattr(settings, SETTING, []) if p]
        except Exception:  # noqa: BLE001 - settings not configured: fall back  # nosec B110
            pass
    # As the settings parse it (core.env.env_list, which would import Django).
    return [p.strip() for p in os.environ.get(SETTING, "").split(",") if p.strip()]


def refusal(module: str) -> str | None:
    """Why ``module`` may not be called, or None when a listed package holds it.

    Matched by dotted path: ``acme_jobs`` allows ``acme_jobs`` and
    ``acme_jobs.orders``, not ``acme_jobsx``.
    """
    packages = allowed_packages()
    if not packages:
        return (
            f"python tasks are turned off on this installation: {SETTING} is empty "
            "(set it to the packages whose functions tasks may call, e.g. acme_jobs)"
        )
    if any(module == p or module.startswith(p + ".") for p in packages):
        return None
    listed = ", ".join(packages)
    return f"module {quoted(module)} is not under a package listed in {SETTING} ({listed})"


def load_callable(spec: str) -> Callable[..., Any]:
    """The function ``module:function`` names; TaskFailed saying why it cannot be had."""
    module_name, _, attribute = spec.partition(":")
    problem = refusal(module_name)
    if problem:
        raise TaskFailed(problem)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the module's own code may raise anything
        raise TaskFailed(
            f"cannot import module {quoted(module_name)}: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise TaskFailed(f"module {quoted(module_name)} has no attribute {quoted(attribute)}")
    if not callable(function):
        raise TaskFailed(f"{quoted(spec)} is not callable")
    return function  # type: ignore[no-any-return]


class PythonContext:
    """What a python task's function gets as ``ctx`` (SPEC §8)."""

    def __init__(self, ctx: TaskContext, connections: list[str]) -> None:
        self.execution_id: str = ctx.execution_id
        self.task_name: str = ctx.task_name
        # The run's logical date (a timezone-aware datetime) and every parameter of
        # the run as the engine binds them (built-ins as ISO strings).
        self.logical_date: datetime | None = _moment(ctx.params.get("logical_date"))
        self.parameters: dict[str, Any] = dict(ctx.params)
        self._ctx = ctx
        self._connections = list(connections)

    def log(self, message: Any) -> None:
        """Append a line to the task's log."""
        self._ctx.log(str(message))

    def cancelled(self) -> bool:
        """True once the run is cancelled or timed out: return soon (within 10 s)."""
        try:
            self._ctx.check()
        except _STOPS:
            return True
        return False

    def checkpoint_get(self) -> dict[str, Any] | None:
        """What ``checkpoint_set`` saved in this execution (an earlier attempt too), or None."""
        return self._ctx.checkpoint_load()

    def checkpoint_set(self, state: dict[str, Any]) -> None:
        """Save progress (a dict, kept 24 h) for a retried attempt to resume from."""
        if not isinstance(state, dict):
            raise TypeError(f"checkpoint_set takes a dict, got {type(state).__name__}")
        self._ctx.checkpoint_save(state)

    @contextmanager
    def connection(self, name: str) -> Iterator[Any]:
        """A DB-API connection to ``name``, one of the task's ``connections``, in a transaction.

        Committed when the block ends, rolled back when it raises. A cancel
        or timeout stops its running statement in the database.
        """
        if name not in self._connections:
            declared = ", ".join(self._connections) or "none"
            raise TaskFailed(
                f"connection {quoted(name)} is not one of this task's connections ({declared})"
            )
        connector = self._ctx.connection(name)
        if not getattr(connector, "speaks_sql", False):
            raise TaskFailed(f"connection {quoted(name)} ({connector.kind}) is not a database")
        with connector.connect(timeout_s=max(self._ctx.seconds_left(), 1)) as conn:  # type: ignore[attr-defined]
            stop = connector.cancel_handle(conn)  # type: ignore[attr-defined]
            self._ctx.on_cancel(stop)
            try:
                yield conn
            finally:
                self._ctx.remove_cancel(stop)


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class PythonTask(TaskType):
    """Call ``callable`` (``module:function``) with a ``PythonContext`` and ``kwargs``.

    Its return value (a JSON object, or None) is the task's output. An
    exception fails the attempt, retried per ``retries``: its type and
    message are the error, its traceback goes to the log.
    """

    name: ClassVar[str] = "python"
    stop_grace: ClassVar[float | None] = 10.0
    keys: ClassVar[dict[str, Key]] = {
        "callable": Key({"type": "string", "pattern": f"^{_CALLABLE}$"}, required=True),
        "connections": Key({"type": "array", "items": NAME_SCHEMA, "uniqueItems": True}),
        "kwargs": Key(VALUES_SCHEMA),
    }

    def check(self, c: Checker, path: str, task: dict[str, Any]) -> dict[str, Any]:
        """The module allowed and importable, the function callable with these ``kwargs``."""
        out: dict[str, Any] = {"callable": None, "connections": [], "kwargs": {}}
        if "connections" in task:
            out["connections"] = _connections(c, at(path, "connections"), task["connections"])
        if "kwargs" in task:
            kpath = at(path, "kwargs")
            out["kwargs"] = check_values(c, kpath, task["kwargs"], shadow=True)
            for name in out["kwargs"] or {}:
                if not name.isidentifier() or keyword.iskeyword(name):
                    c.add(at(kpath, name), f"{quoted(name)} is not a Python argument name")
        if "callable" in task:
            cpath = at(path, "callable")
            spec = c.string(cpath, task["callable"])
            if spec is not None and not _CALLABLE_RE.match(spec):
                c.add(
                    cpath,
                    "expected 'module:function' (e.g. 'acme_jobs.orders:enrich'),"
                    f" got {quoted(spec)}",
                )
            elif spec is not None:
                out["callable"] = _function(c, cpath, spec, out["kwargs"], at(path, "kwargs"))
        return out

    def run(self, ctx: TaskContext) -> None:
        task = ctx.task
        function = load_callable(task["callable"])
        kwargs = bind_values(task.get("kwargs") or {}, ctx.params)
        pctx = PythonContext(ctx, task.get("connections") or [])
        ctx.log(f"calling {task['callable']}")
        try:
            result = function(pctx, **kwargs)
        except (*_STOPS, TaskFailed):
            raise
        except (Exception, SystemExit) as exc:
            ctx.check()  # stopped meanwhile: that is the reason, not what the code raised
            ctx.log(traceback.format_exc(), "ERROR")
            raise TaskFailed(f"{type(exc).__name__}: {exc}", transient=True) from None
        # Told to stop and returned: the run is cancelled (or timed out), whatever it did.
        ctx.check()
        ctx.output = result


def _connections(c: Checker, path: str, raw: Any) -> list[str] | None:
    """The connections the function may open: distinct names."""
    items = c.list_of(path, raw)
    if items is None:
        return None
    names: list[str] = []
    for i, item in enumerate(items):
        name = c.connection(idx(path, i), item)
        if name is not None and name in names:
            c.add(idx(path, i), f"connection {quoted(name)} is listed twice")
        elif name is not None:
            names.append(name)
    return names


def _function(c: Checker, path: str, spec: str, kwargs: Any, kpath: str) -> str | None:
    """``spec`` when its function can be called with ``kwargs``; else the problem, at ``path``."""
    try:
        function = load_callable(spec)
    except TaskFailed as exc:
        c.add(path, str(exc))
        return None
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return spec  # a builtin without a signature: the call will tell
    try:
        signature.bind(None, **(kwargs or {}))
    except TypeError as exc:
        c.add(kpath, f"{spec} cannot be called as function(ctx, **kwargs): {exc}")
    return spec
