"""Moves of one task run that finish nothing: enqueue, claim, lease, logs, blocking.

Moves that can make downstream tasks ready or finish the execution lock the
execution row first (``execution_lock``), so two tasks finishing at once
cannot both miss that their common downstream task became ready.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipelines import dag
from pipelines.engine.transitions import TaskRunEvent, task_run_move
from pipelines.models import Execution, TaskLogLine, TaskRun, TaskRunStatus
from pipelines.queue import enqueue_task_runs
from pipelines.tasktypes.base import LeaseLost

NOT_OK = frozenset({TaskRunStatus.FAILED, TaskRunStatus.UPSTREAM_FAILED, TaskRunStatus.CANCELLED})


def execution_lock(execution_id: Any) -> Execution:
    return Execution.objects.select_for_update().only("status").get(pk=execution_id)


def task_runs_enqueue(
    task_runs: list[TaskRun], *, actor: str, reason: str = "", keep: TaskRun | None = None
) -> list[TaskRun]:
    """pending/up_for_retry → queued, then send their messages after commit.

    ``keep`` is queued without a message: the calling worker runs it next. If
    that worker dies first, the reaper sends the message like any lost one.
    """
    now = timezone.now()
    queued = [
        tr
        for tr in task_runs
        if task_run_move(
            tr,
            TaskRunEvent.ENQUEUE,
            actor=actor,
            reason=reason,
            queued_at=now,
            next_retry_at=None,
        )
    ]
    ids = [tr.pk for tr in queued if keep is None or tr.pk != keep.pk]
    if ids:
        transaction.on_commit(lambda: enqueue_task_runs(ids))
    return queued


def claim(task_run: TaskRun, *, worker: str) -> bool:
    """queued → running with the next attempt number, for ``worker``."""
    now = timezone.now()
    # Matching the attempt read before makes the new attempt number exact.
    return task_run_move(
        task_run,
        TaskRunEvent.CLAIM,
        actor=worker,
        fence=task_run.attempt,
        attempt=task_run.attempt + 1,
        worker=worker[:200],
        heartbeat_at=now,
        started_at=now,
        ended_at=None,
        error="",
    )


def task_run_heartbeat(*, task_id: Any, attempt: int, log_lines: list[dict[str, Any]]) -> str:
    """Renew the lease and flush buffered log lines; returns the execution status.

    Raises LeaseLost when the attempt no longer owns the run: then nothing,
    not even the log lines, is written.
    """
    with transaction.atomic():
        renewed = TaskRun.objects.filter(
            pk=task_id, attempt=attempt, status=TaskRunStatus.RUNNING
        ).update(heartbeat_at=timezone.now())
        if renewed != 1:
            raise LeaseLost(f"task run {task_id} attempt {attempt} lost its lease")
        write_log_lines(task_id, attempt, log_lines)
        status = Execution.objects.filter(tasks__pk=task_id).values_list("status", flat=True)[0]
    return status


def task_run_status(*, task_id: Any) -> tuple[str, int, str]:
    """(task status, attempt, execution status), read without locking."""
    row = TaskRun.objects.filter(pk=task_id).values_list("status", "attempt", "execution__status")[
        0
    ]
    return row[0], row[1], row[2]


def write_log_lines(task_id: Any, attempt: int, lines: list[dict[str, Any]]) -> None:
    """Insert buffered lines; each carries its ``seq`` (numbered per attempt by the worker)."""
    if lines:
        base = attempt * TaskLogLine.SEQ_PER_ATTEMPT
        TaskLogLine.objects.bulk_create(
            TaskLogLine(task_run_id=task_id, attempt=attempt, **{"seq": base + i, **line})
            for i, line in enumerate(lines)
        )


def retry_delay_seconds(*, base: float, retry_number: int) -> float:
    """``base`` doubled per earlier retry, capped, with ±20 % jitter.

    Jitter spreads retries of many tasks failing on the same outage.
    """
    delay = min(base * (2 ** max(retry_number - 1, 0)), settings.RETRY_DELAY_CAP_SECONDS)
    return max(0.0, delay * random.uniform(0.8, 1.2))  # nosec B311 - jitter, not a secret


def block_downstream_of_failures(execution_id: Any, *, actor: str) -> None:
    """pending tasks downstream of a task that did not succeed → upstream_failed."""
    rows = list(
        TaskRun.objects.filter(execution_id=execution_id).values_list(
            "task_name", "status", "depends_on"
        )
    )
    failed = sorted(name for name, status, _ in rows if status in NOT_OK)
    if not failed:
        return
    graph = {name: list(deps) for name, _, deps in rows}
    pending = {name for name, status, _ in rows if status == TaskRunStatus.PENDING}
    now = timezone.now()
    for name in failed:
        blocked = dag.downstream(graph, name) & pending
        for task_run in TaskRun.objects.filter(execution_id=execution_id, task_name__in=blocked):
            if task_run_move(
                task_run,
                TaskRunEvent.BLOCK,
                actor=actor,
                reason=f"upstream task '{name}' did not succeed",
                ended_at=now,
            ):
                pending.discard(task_run.task_name)
