"""The reaper: makes runs reliable on top of an at-most-once broker.

One pass:
- running task runs whose heartbeat is older than the lease: their worker
  died or hung; they are retried (attempt fencing keeps a late worker out)
  or failed (``abandoned``: no attempt ran any code at its end, so what it
  left is cleaned by ``pipelines.tasks.abandoned_sweep``);
- queued task runs nobody claimed in time: their message was lost; it is
  sent again (a duplicate is harmless: the claim is conditional);
- task runs due for retry, and waiting sensors due for their next check,
  are enqueued;
- running executions whose tasks are all finished, or whose pending tasks
  became ready, are advanced (a crash between two commits cannot strand them);
- queued executions start when their pipeline has a free slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from pipelines.engine.attempts import task_run_fail
from pipelines.engine.executions import advance, executions_start_queued
from pipelines.engine.task_runs import task_runs_enqueue
from pipelines.models import Execution, ExecutionStatus, Pipeline, TaskRun, TaskRunStatus
from pipelines.queue import enqueue_task_runs

logger = logging.getLogger(__name__)

ACTOR = "reaper"


@dataclass
class ReapResult:
    expired: list[str] = field(default_factory=list)
    # Of ``expired``: failed for good (no retry left), their last attempt killed.
    abandoned: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    advanced: int = 0
    started: int = 0

    def __str__(self) -> str:
        return (
            f"expired leases {len(self.expired)}, re-sent {len(self.requeued)}, "
            f"retries enqueued {len(self.retried)}, checks enqueued {len(self.checks)}, "
            f"executions advanced {self.advanced}, "
            f"started {self.started}"
        )


def reap() -> ReapResult:
    """One reaper pass (see the module docstring)."""
    result = ReapResult()
    now = timezone.now()
    _expire_leases(now, result)
    _resend_lost(now, result)
    _enqueue_due_retries(now, result)
    _enqueue_due_checks(now, result)
    _advance_stranded(result)
    _start_queued(result)
    if result.expired or result.requeued or result.retried:
        logger.info("reaper: %s", result)
    return result


def _expire_leases(now: datetime, result: ReapResult) -> None:
    cutoff = now - timedelta(seconds=settings.TASK_LEASE_SECONDS)
    stale = TaskRun.objects.filter(status=TaskRunStatus.RUNNING, heartbeat_at__lt=cutoff)
    for task_run in stale:
        task = task_run.spec
        status = task_run_fail(
            task_run=task_run,
            attempt=None,
            error=(
                f"worker {task_run.worker or '?'} lost: no heartbeat for more than "
                f"{settings.TASK_LEASE_SECONDS}s"
            ),
            transient=True,
            actor=ACTOR,
            base_delay=float(task.get("retry_delay", 10)),
            heartbeat_before=cutoff,
        )
        if status is not None:
            result.expired.append(str(task_run.pk))
            if status == TaskRunStatus.FAILED:
                result.abandoned.append(str(task_run.pk))


def _resend_lost(now: datetime, result: ReapResult) -> None:
    cutoff = now - timedelta(seconds=settings.QUEUED_GRACE_SECONDS)
    ids = []
    for task_run in TaskRun.objects.filter(status=TaskRunStatus.QUEUED, queued_at__lt=cutoff).only(
        "pk"
    ):
        # Push queued_at forward so the next pass does not send it again at once.
        if TaskRun.objects.filter(
            pk=task_run.pk, status=TaskRunStatus.QUEUED, queued_at__lt=cutoff
        ).update(queued_at=now):
            ids.append(task_run.pk)
    if ids:
        enqueue_task_runs(ids)
        result.requeued.extend(str(i) for i in ids)


def _enqueue_due_retries(now: datetime, result: ReapResult) -> None:
    due = TaskRun.objects.filter(status=TaskRunStatus.UP_FOR_RETRY, next_retry_at__lte=now)
    _enqueue_due(due, result.retried, lambda task_run: f"retry {task_run.retry_count}")


def _enqueue_due_checks(now: datetime, result: ReapResult) -> None:
    # A waiting sensor holds no worker; its next check goes through the broker.
    due = TaskRun.objects.filter(status=TaskRunStatus.WAITING, next_check_at__lte=now)
    _enqueue_due(due, result.checks, lambda task_run: "next check due")


def _enqueue_due(due: QuerySet[TaskRun], into: list[str], why: Callable[[TaskRun], str]) -> None:
    for task_id, execution_id in due.values_list("pk", "execution_id"):
        with transaction.atomic():
            execution = Execution.objects.select_for_update().get(pk=execution_id)
            task_run = TaskRun.objects.get(pk=task_id)
            if execution.status != ExecutionStatus.RUNNING:
                continue  # cancel already moved it
            if task_runs_enqueue([task_run], actor=ACTOR, reason=why(task_run)):
                into.append(str(task_id))


def _advance_stranded(result: ReapResult) -> None:
    # Running executions with nothing queued or running: either finished or
    # with ready tasks whose enqueue was lost in a crash.
    busy = TaskRun.objects.in_flight().values("execution_id")
    stranded = Execution.objects.holding_slot().exclude(pk__in=busy).values_list("pk", flat=True)
    for execution_id in stranded:
        advance(execution_id=execution_id, actor=ACTOR)
        result.advanced += 1


def _start_queued(result: ReapResult) -> None:
    waiting = Execution.objects.queued().values_list("pipeline_id", flat=True).distinct()
    for pipeline_id in list(waiting):
        with transaction.atomic():
            pipeline = (
                Pipeline.objects.select_for_update(skip_locked=True).filter(pk=pipeline_id).first()
            )
            if pipeline is not None:
                result.started += len(executions_start_queued(pipeline=pipeline))
