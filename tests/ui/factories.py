"""Row factories for UI tests: executions in given states, sharing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.permissions import Level, levels_up_to, perm_codename
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Trigger


def share(obj: Any, user: Any, level: Level) -> None:
    """Share ``obj`` with ``user`` at ``level`` (guardian, as sharing_set does)."""
    from guardian.shortcuts import assign_perm

    for lvl in levels_up_to(level):
        assign_perm(perm_codename(obj._meta.model_name, lvl), user, obj)


def make_execution(
    pipeline: Any,
    status: str = ExecutionStatus.SUCCESS,
    *,
    ago: float = 60,
    tasks: dict[str, str] | None = None,
    error: str = "",
) -> Execution:
    """An execution row with task runs in the given states (no engine involved)."""
    now = timezone.now()
    version = pipeline.versions.order_by("-version").first()
    execution = Execution.objects.create(
        pipeline=pipeline,
        version=version,
        status=status,
        trigger=Trigger.MANUAL,
        started_at=now - timedelta(seconds=ago),
        error=error,
        ended_at=None
        if status in {"queued", "running", "cancelling"}
        else now - timedelta(seconds=ago - 5),
    )
    Execution.objects.filter(pk=execution.pk).update(created_at=now - timedelta(seconds=ago))
    names = [t["name"] for t in pipeline.definition["tasks"]]
    deps = {t["name"]: t.get("depends_on", []) for t in pipeline.definition["tasks"]}
    statuses = tasks or {
        name: (TaskRunStatus.SUCCESS if status == "success" else TaskRunStatus.PENDING)
        for name in names
    }
    TaskRun.objects.bulk_create(
        [
            TaskRun(
                execution=execution,
                task_name=name,
                definition_task=name,
                task_type="sql",
                status=statuses.get(name, TaskRunStatus.PENDING),
                depends_on=deps[name],
                started_at=now - timedelta(seconds=ago - i)
                if statuses.get(name) not in (None, "pending")
                else None,
                ended_at=now - timedelta(seconds=ago - i - 1)
                if statuses.get(name) in ("success", "failed")
                else None,
                metrics={"rows_read": 3, "rows_written": 3}
                if statuses.get(name) == "success"
                else {},
                error="boom: no such table" if statuses.get(name) == "failed" else "",
            )
            for i, name in enumerate(names)
        ]
    )
    execution.refresh_from_db()
    return execution
