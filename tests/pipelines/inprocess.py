"""Running executions in this process, as workers would (only the broker hop is a list).

With the ``no_broker`` fixture the task runs the engine sends are recorded
in a list; ``run_all`` hands them to ``pipelines.runner.run_task`` one by
one until none is left.
"""

from __future__ import annotations

from typing import Any

from pipelines.models import Execution, TaskLogLine, TaskRunStatus
from pipelines.runner import run_task


def run_all(execution: Execution, sent: list[Any]) -> Execution:
    """Run the execution's queued task runs and those they make ready; the execution reloaded."""
    sent[:] = [tr.pk for tr in execution.tasks.filter(status=TaskRunStatus.QUEUED)]
    while sent:
        run_task(str(sent.pop(0)))
    execution.refresh_from_db()
    return execution


def log_messages(task_run: Any) -> list[str]:
    """The task run's log, in order."""
    return list(
        TaskLogLine.objects.filter(task_run=task_run)
        .order_by("seq")
        .values_list("message", flat=True)
    )
