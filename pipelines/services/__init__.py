"""Writes of the pipelines app: every state change has one function here."""

from pipelines.services.execution import (
    actor_of,
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
from pipelines.services.reaper import reap
from pipelines.services.schedule import pipeline_backfill, schedule_tick

__all__ = [
    "actor_of",
    "execution_cancel",
    "execution_create",
    "execution_rerun",
    "pipeline_backfill",
    "pipeline_create",
    "pipeline_delete",
    "pipeline_set_enabled",
    "pipeline_update",
    "pipeline_validate",
    "reap",
    "schedule_tick",
]
