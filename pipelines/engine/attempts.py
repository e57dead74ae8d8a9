"""What a worker (or the reaper) reports about an attempt: claimed, succeeded, failed, cancelled.

Every report is fenced by the attempt: a worker whose lease was taken over
finds its writes refused (``LeaseLost``, or None).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from pipelines.engine.executions import advance_after
from pipelines.engine.task_runs import (
    execution_lock,
    retry_delay_seconds,
    write_log_lines,
)
from pipelines.engine.transitions import (
    TaskRunEvent,
    task_run_claim_queued,
    task_run_move,
    transitions_batched,
)
from pipelines.models import ExecutionStatus, TaskRun, TaskRunStatus, Transition, Watermark
from pipelines.tasktypes.base import LeaseLost


def task_run_claim(*, task_id: Any, worker: str) -> TaskRun | None:
    """queued → running for a new attempt; None when this message is stale.

    One ``UPDATE … RETURNING`` claims the run while its execution is
    running. Otherwise: a duplicate message (re-sent by the reaper) finds
    the row no longer ``queued`` and does nothing; a queued run of an
    execution cancelled meanwhile is cancelled here.
    """
    claimed = task_run_claim_queued(task_id, worker=worker)
    if claimed is not None:
        return claimed
    with transaction.atomic(), transitions_batched():
        task_run = TaskRun.objects.filter(pk=task_id).first()
        if task_run is None or task_run.status != TaskRunStatus.QUEUED:
            return None
        if execution_lock(task_run.execution_id).status == ExecutionStatus.RUNNING:
            return None  # no longer queued when claimed: another worker has it
        # Cancelled (or cancelling) executions never start a queued task.
        if task_run_move(
            task_run,
            TaskRunEvent.CANCEL,
            actor=worker,
            reason="execution cancelled before the task started",
            ended_at=timezone.now(),
        ):
            advance_after(task_run, actor=worker)
        return None


@transaction.atomic
@transitions_batched()
def task_run_succeed(
    *,
    task_run: TaskRun,
    attempt: int,
    metrics: dict[str, Any],
    log_lines: list[dict[str, Any]],
    watermark: Any = None,
    worker: str,
    follow: bool = False,
    output: dict[str, Any] | None = None,
) -> TaskRun | None:
    """running → success for ``attempt``; commits the staged watermark with it.

    With ``follow``, returns a downstream task run already claimed for
    ``worker`` (see ``executions._advance``), or None.

    Only a task with no downstream locks the execution row: it may be the
    last to finish, and two last tasks finishing at once must not both miss
    that the execution is done. Readiness of downstream tasks needs no such
    lock: each decrement of ``waiting_for`` takes the downstream row's lock,
    so exactly one upstream sees the count reach zero.
    """
    execution = execution_lock(task_run.execution_id) if not task_run.downstream else None
    if not task_run_move(
        task_run,
        TaskRunEvent.SUCCEED,
        fence=attempt,
        actor=worker,
        ended_at=timezone.now(),
        metrics=metrics,
        output=output,
    ):
        raise LeaseLost(f"task run {task_run.pk} attempt {attempt} lost its lease")
    write_log_lines(task_run.pk, attempt, log_lines)
    if watermark is not None:
        Watermark.objects.update_or_create(
            pipeline_id=task_run.execution.pipeline_id,
            task_name=task_run.definition_task,
            defaults={"column": watermark["column"], "value": watermark["value"]},
        )
    return advance_after(task_run, actor=worker, execution=execution, follow=follow)


@transaction.atomic
@transitions_batched()
def task_run_fail(
    *,
    task_run: TaskRun,
    attempt: int | None,
    error: str,
    transient: bool,
    actor: str,
    base_delay: float,
    metrics: dict[str, Any] | None = None,
    log_lines: list[dict[str, Any]] | None = None,
    heartbeat_before: datetime | None = None,
) -> TaskRunStatus | None:
    """running → up_for_retry (transient error, retries left) or failed.

    ``attempt`` fences a worker's report. The reaper passes no attempt but
    ``heartbeat_before``: the lease is checked again under the lock, so a
    heartbeat that arrived since the reaper's scan keeps the task alive.
    Returns the new status, or None when the move was refused.
    """
    execution_lock(task_run.execution_id)
    task_run.refresh_from_db()
    if task_run.status != TaskRunStatus.RUNNING or (
        attempt is not None and task_run.attempt != attempt
    ):
        return None
    if heartbeat_before is not None and (
        task_run.heartbeat_at is not None and task_run.heartbeat_at >= heartbeat_before
    ):
        return None
    now = timezone.now()
    fields: dict[str, Any] = {"error": error[:10000], "metrics": metrics or task_run.metrics}
    if transient and task_run.retry_count < task_run.max_retries:
        retry_number = task_run.retry_count + 1
        delay = retry_delay_seconds(base=base_delay, retry_number=retry_number)
        event = TaskRunEvent.RETRY
        reason = f"retry {retry_number} of {task_run.max_retries} in {delay:.1f}s: {error[:500]}"
        fields.update(retry_count=retry_number, next_retry_at=now + timedelta(seconds=delay))
    else:
        event, reason = TaskRunEvent.FAIL, error[:1000]
    if not task_run_move(
        task_run, event, fence=task_run.attempt, actor=actor, reason=reason, ended_at=now, **fields
    ):
        return None
    new_status = TaskRunStatus(task_run.status)
    write_log_lines(task_run.pk, task_run.attempt, log_lines or [])
    advance_after(task_run, actor=actor)
    return new_status


@transaction.atomic
@transitions_batched()
def task_run_cancelled(
    *,
    task_run: TaskRun,
    attempt: int,
    actor: str,
    reason: str,
    log_lines: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> bool:
    """running → cancelled, reported by the worker that stopped the task."""
    execution_lock(task_run.execution_id)
    moved = task_run_move(
        task_run,
        TaskRunEvent.STOP,
        fence=attempt,
        actor=actor,
        reason=reason,
        ended_at=timezone.now(),
        metrics=metrics,
    )
    if moved:
        write_log_lines(task_run.pk, attempt, log_lines)
        advance_after(task_run, actor=actor)
    return moved


@transaction.atomic
def task_run_wait(
    *,
    task_run: TaskRun,
    attempt: int,
    check_in: float,
    actor: str,
    reason: str,
    log_lines: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> TaskRunStatus | None:
    """running → waiting until the next check of a sensor whose condition is false.

    A sensor's ``timeout`` counts from its first attempt: the next check is
    due in ``check_in`` seconds or at that deadline, whichever comes first,
    and a check still false at the deadline fails the run without retry. A
    run whose execution is being cancelled stops instead. No worker holds a
    waiting run: the reaper queues it when ``next_check_at`` is due. Returns
    the new status, or None when the attempt no longer owns the run.
    """
    execution = execution_lock(task_run.execution_id)
    if execution.status != ExecutionStatus.RUNNING:
        cancelled = task_run_cancelled(
            task_run=task_run,
            attempt=attempt,
            actor=actor,
            reason="execution cancelled",
            log_lines=log_lines,
            metrics=metrics,
        )
        return TaskRunStatus.CANCELLED if cancelled else None
    now = timezone.now()
    timeout = float(task_run.spec.get("timeout", 3600))
    deadline = _first_attempt_at(task_run) + timedelta(seconds=timeout)
    if now >= deadline:
        return task_run_fail(
            task_run=task_run,
            attempt=attempt,
            error=f"timed out after {timeout:g}s: {reason}",
            transient=False,
            actor=actor,
            base_delay=0,
            metrics=metrics,
            log_lines=log_lines,
        )
    if not task_run_move(
        task_run,
        TaskRunEvent.WAIT,
        fence=attempt,
        actor=actor,
        reason=reason[:1000],
        next_check_at=min(now + timedelta(seconds=check_in), deadline),
        metrics=metrics,
    ):
        return None
    write_log_lines(task_run.pk, attempt, log_lines)
    return TaskRunStatus.WAITING


def _first_attempt_at(task_run: TaskRun) -> datetime:
    """When the run was first claimed (its first move into running)."""
    first = (
        Transition.objects.filter(task_run=task_run, to_status=TaskRunStatus.RUNNING)
        .order_by("at", "id")
        .values_list("at", flat=True)
        .first()
    )
    return first or task_run.started_at or timezone.now()
