"""Writes of the pipelines app as users, commands and the scheduler ask for them.

The moves of executions and task runs are the engine's (``pipelines.engine``).
"""

from pipelines.services.execution import (
    execution_cancel,
    execution_create,
    execution_rerun,
)
from pipelines.services.pipeline import (
    pipeline_create,
    pipeline_delete,
    pipeline_set_enabled,
    pipeline_update,
    pipeline_validate,
)
from pipelines.services.schedule import pipeline_backfill, schedule_tick
from pipelines.services.watermark import watermark_reset

__all__ = [
    "execution_cancel",
    "execution_create",
    "execution_rerun",
    "pipeline_backfill",
    "pipeline_create",
    "pipeline_delete",
    "pipeline_set_enabled",
    "pipeline_update",
    "pipeline_validate",
    "schedule_tick",
    "watermark_reset",
]
