"""Task type name -> its implementation. A new type is one module and one line here.

The definition checker takes its list of types and each type's check from
here, the engine each type's run: one registration serves both.
"""

from __future__ import annotations

from pipelines.tasktypes.base import TaskType
from pipelines.tasktypes.check import CheckTask
from pipelines.tasktypes.copy import CopyTask
from pipelines.tasktypes.dbt import DbtTask
from pipelines.tasktypes.python import PythonTask
from pipelines.tasktypes.sql import SqlTask
from pipelines.tasktypes.wait import WaitTask

TASK_TYPES: dict[str, TaskType] = {
    "copy": CopyTask(),
    "sql": SqlTask(),
    "check": CheckTask(),
    "python": PythonTask(),
    "wait": WaitTask(),
    "dbt": DbtTask(),
}


def task_type(name: str) -> TaskType:
    """The registered task type called ``name`` (KeyError when there is none)."""
    return TASK_TYPES[name]
