"""Task type name → implementation. Adding a type = a class and one line here."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from pipelines.tasktypes.base import TaskType

TASK_TYPES: dict[str, str] = {
    "sql": "pipelines.tasktypes.sql.SqlTask",
    "check": "pipelines.tasktypes.check.CheckTask",
    "copy": "pipelines.tasktypes.copy.CopyTask",
}


@cache
def task_type(name: str) -> TaskType:
    module_name, _, class_name = TASK_TYPES[name].rpartition(".")
    return getattr(import_module(module_name), class_name)()  # type: ignore[no-any-return]
