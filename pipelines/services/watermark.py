"""Resetting the watermark of an incremental copy (SPEC §9)."""

from __future__ import annotations

from django.db import transaction

from accounts.actor import SYSTEM, Actor
from accounts.services import audit_record
from core.errors import NotFound
from pipelines.models import Pipeline, Watermark


@transaction.atomic
def watermark_reset(*, pipeline: Pipeline, task_name: str, actor: Actor = SYSTEM) -> None:
    """Forget ``task_name``'s watermark: its next run copies every row. Audited.

    NotFound when the task has no watermark. A run of the task under way
    still commits the watermark it staged when it succeeds (it read from the
    old one); reset after it, or disable the pipeline first.
    """
    mark = (
        Watermark.objects.select_for_update().filter(pipeline=pipeline, task_name=task_name).first()
    )
    if mark is None:
        raise NotFound(f"task '{task_name}' has no watermark")
    mark.delete()
    audit_record(
        action="watermark_reset",
        obj=pipeline,
        by=actor,
        details={"task": task_name, "column": mark.column, "value": mark.value},
    )
