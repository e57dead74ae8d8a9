"""JSON log lines (``LOG_JSON=true``), carrying execution and task ids when known.

Ids come from two places: ``extra={"execution_id": ...}`` on one call, or
the ids bound for the task a worker process is running (set from django-q2's
``pre_execute`` signal by ``ops.metrics``), so every line logged
while a task runs — by the engine, a connector, a library, from any of the
task's threads — names its execution and task without each call passing
them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

_EXTRA_KEYS = ("execution_id", "task_id", "task_name", "pipeline", "attempt")

# Ids bound for one block of code (``bound``), in this thread or task only.
_context: ContextVar[dict[str, str] | None] = ContextVar("datadog_log_context", default=None)
# Ids of the task this *process* runs. A django-q2 worker process runs one
# task at a time, and the task's own threads (the engine's watchdog, a
# connector's) start with an empty context, so the ids are process-wide.
_process: dict[str, str] = {}


def bind(**ids: Any) -> None:
    """Attach ``ids`` to every line this process logs until ``unbind`` (workers only)."""
    _process.clear()
    _process.update({key: str(value) for key, value in ids.items() if value is not None})


def unbind() -> None:
    _process.clear()


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """``bind`` for the duration of a ``with`` block."""
    token = _context.set({key: str(value) for key, value in ids.items() if value is not None})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, str]:
    """The ids a line logged here and now would carry."""
    return {**_process, **(_context.get() or {})}


def json_enabled() -> bool:
    """Whether the console handler writes JSON (LOG_JSON=true)."""
    logging_config: dict[str, Any] = settings.LOGGING
    handlers: dict[str, Any] = logging_config.get("handlers", {})
    return bool(handlers.get("console", {}).get("formatter") == "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, ids, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = current()
        for key in _EXTRA_KEYS:
            # An id passed with the call wins over the bound context.
            value = getattr(record, key, None)
            if value is None:
                value = context.get(key)
            if value is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
