"""JSON log lines (``LOG_JSON=true``), carrying execution and task ids when set."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_EXTRA_KEYS = ("execution_id", "task_id", "task_name", "pipeline", "attempt")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)
