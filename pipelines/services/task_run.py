"""State changes of task runs: one function per move, fenced and concurrent-safe.

Every move is a conditional ``UPDATE ... WHERE status = <expected>`` (and,
for a worker's writes, ``AND attempt = <its attempt>``) whose row count says
whether it happened, plus a ``Transition`` row. A worker whose lease was
taken over finds its writes refused (``LeaseLost``).

Moves that can make downstream tasks ready or finish the execution lock the
execution row first, so two tasks finishing at once cannot both miss that
their common downstream task became ready.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pipelines import dag, signals
from pipelines.models import (
    TASK_DONE_OK,
    TASK_FINISHED,
    Execution,
    ExecutionStatus,
    TaskLogLine,
    TaskRun,
    TaskRunStatus,
    Transition,
    Watermark,
)
from pipelines.queue import enqueue_task_runs
from pipelines.tasktypes.base import LeaseLost


def record(
    *,
    execution_id: Any,
    task_run: TaskRun | None,
    from_status: str,
    to_status: str,
    actor: str,
    reason: str = "",
    attempt: int = 0,
) -> None:
    Transition.objects.create(
        execution_id=execution_id,
        task_run=task_run,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:200],
        reason=reason,
        attempt=attempt,
    )


def _move(
    task_run: TaskRun,
    *,
    to: TaskRunStatus,
    expected: set[TaskRunStatus] | frozenset[TaskRunStatus],
    actor: str,
    reason: str = "",
    attempt: int | None = None,
    **fields: Any,
) -> bool:
    """Move ``task_run`` to ``to`` if it is in ``expected`` (and still at ``attempt``)."""
    query = TaskRun.objects.filter(pk=task_run.pk, status__in=expected)
    if attempt is not None:
        query = query.filter(attempt=attempt)
    old = task_run.status
    if query.update(status=to, **fields) != 1:
        return False
    task_run.status = to
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(task_run, name, value)
    record(
        execution_id=task_run.execution_id,
        task_run=task_run,
        from_status=old,
        to_status=to,
        actor=actor,
        reason=reason,
        attempt=task_run.attempt if attempt is None else attempt,
    )
    if to in TASK_FINISHED or to == TaskRunStatus.UP_FOR_RETRY:
        task_id, task_type, status = task_run.pk, task_run.task_type, str(to)
        transaction.on_commit(
            lambda: signals.task_run_finished.send(
                sender=TaskRun, task_id=task_id, task_type=task_type, status=status
            )
        )
    return True


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
        if _move(
            tr,
            to=TaskRunStatus.QUEUED,
            expected={TaskRunStatus.PENDING, TaskRunStatus.UP_FOR_RETRY},
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


@transaction.atomic
def task_run_claim(*, task_id: Any, worker: str) -> TaskRun | None:
    """queued → running for a new attempt; None when this message is stale.

    A duplicate message (re-sent by the reaper) or a run cancelled meanwhile
    finds the row no longer ``queued`` and does nothing.
    """
    # The pipeline's definition can be large (hundreds of tasks); the task's
    # own part is in ``spec``, so it is not loaded and parsed per claim.
    task_run = (
        TaskRun.objects.select_related("execution__pipeline")
        .defer(
            "execution__pipeline__definition",
            "execution__pipeline__parameters",
            "execution__pipeline__description",
            "execution__pipeline__tags",
        )
        .filter(pk=task_id)
        .first()
    )
    if task_run is None or task_run.status != TaskRunStatus.QUEUED:
        return None
    if task_run.execution.status != ExecutionStatus.RUNNING:
        # Cancelled (or cancelling) executions never start a queued task.
        _execution_lock(task_run.execution_id)
        if _move(
            task_run,
            to=TaskRunStatus.CANCELLED,
            expected={TaskRunStatus.QUEUED},
            actor=worker,
            reason="execution cancelled before the task started",
            ended_at=timezone.now(),
        ):
            _advance(task_run.execution_id, actor=worker, changed=task_run)
        return None
    return task_run if _claim(task_run, worker=worker) else None


def _claim(task_run: TaskRun, *, worker: str) -> bool:
    """queued → running with the next attempt number, for ``worker``."""
    now = timezone.now()
    fields = {
        "status": TaskRunStatus.RUNNING,
        "attempt": task_run.attempt + 1,
        "worker": worker[:200],
        "heartbeat_at": now,
        "started_at": now,
        "ended_at": None,
        "error": "",
    }
    # Matching the attempt read before makes the new attempt number exact.
    claimed = TaskRun.objects.filter(
        pk=task_run.pk, status=TaskRunStatus.QUEUED, attempt=task_run.attempt
    ).update(**fields)
    if claimed != 1:
        return False
    for name, value in fields.items():
        setattr(task_run, name, value)
    record(
        execution_id=task_run.execution_id,
        task_run=task_run,
        from_status=TaskRunStatus.QUEUED,
        to_status=TaskRunStatus.RUNNING,
        actor=worker,
        attempt=task_run.attempt,
    )
    return True


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
        _write_log_lines(task_id, attempt, log_lines)
        status = Execution.objects.filter(tasks__pk=task_id).values_list("status", flat=True)[0]
    return status


def task_run_status(*, task_id: Any) -> tuple[str, int, str]:
    """(task status, attempt, execution status), read without locking."""
    row = TaskRun.objects.filter(pk=task_id).values_list("status", "attempt", "execution__status")[
        0
    ]
    return row[0], row[1], row[2]


def _write_log_lines(task_id: Any, attempt: int, lines: list[dict[str, Any]]) -> None:
    """Insert buffered lines; each carries its ``seq`` (numbered per attempt by the worker)."""
    if lines:
        base = attempt * TaskLogLine.SEQ_PER_ATTEMPT
        TaskLogLine.objects.bulk_create(
            TaskLogLine(task_run_id=task_id, attempt=attempt, **{"seq": base + i, **line})
            for i, line in enumerate(lines)
        )


def _execution_lock(execution_id: Any) -> Execution:
    return Execution.objects.select_for_update().only("status").get(pk=execution_id)


@transaction.atomic
def task_run_succeed(
    *,
    task_run: TaskRun,
    attempt: int,
    metrics: dict[str, Any],
    log_lines: list[dict[str, Any]],
    watermark: Any = None,
    worker: str,
    follow: bool = False,
) -> TaskRun | None:
    """running → success for ``attempt``; commits the staged watermark with it.

    With ``follow``, returns a downstream task run already claimed for
    ``worker`` (see ``_advance``), or None.

    Only a task with no downstream locks the execution row: it may be the
    last to finish, and two last tasks finishing at once must not both miss
    that the execution is done. Readiness of downstream tasks needs no such
    lock: each decrement of ``waiting_for`` takes the downstream row's lock,
    so exactly one upstream sees the count reach zero.
    """
    execution = _execution_lock(task_run.execution_id) if not task_run.downstream else None
    if not _move(
        task_run,
        to=TaskRunStatus.SUCCESS,
        expected={TaskRunStatus.RUNNING},
        attempt=attempt,
        actor=worker,
        ended_at=timezone.now(),
        metrics=metrics,
    ):
        raise LeaseLost(f"task run {task_run.pk} attempt {attempt} lost its lease")
    _write_log_lines(task_run.pk, attempt, log_lines)
    if watermark is not None:
        Watermark.objects.update_or_create(
            pipeline_id=task_run.execution.pipeline_id,
            task_name=task_run.definition_task,
            defaults={"column": watermark["column"], "value": watermark["value"]},
        )
    return _advance(
        task_run.execution_id, actor=worker, changed=task_run, execution=execution, follow=follow
    )


def retry_delay_seconds(*, base: float, retry_number: int) -> float:
    """``base`` doubled per earlier retry, capped, with ±20 % jitter.

    Jitter spreads retries of many tasks failing on the same outage.
    """
    delay = min(base * (2 ** max(retry_number - 1, 0)), settings.RETRY_DELAY_CAP_SECONDS)
    return max(0.0, delay * random.uniform(0.8, 1.2))  # nosec B311 - jitter, not a secret


@transaction.atomic
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
    _execution_lock(task_run.execution_id)
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
        moved = _move(
            task_run,
            to=TaskRunStatus.UP_FOR_RETRY,
            expected={TaskRunStatus.RUNNING},
            attempt=task_run.attempt,
            actor=actor,
            reason=f"retry {retry_number} of {task_run.max_retries} in {delay:.1f}s: {error[:500]}",
            retry_count=retry_number,
            next_retry_at=now + timedelta(seconds=delay),
            ended_at=now,
            **fields,
        )
        new_status = TaskRunStatus.UP_FOR_RETRY
    else:
        moved = _move(
            task_run,
            to=TaskRunStatus.FAILED,
            expected={TaskRunStatus.RUNNING},
            attempt=task_run.attempt,
            actor=actor,
            reason=error[:1000],
            ended_at=now,
            **fields,
        )
        new_status = TaskRunStatus.FAILED
    if not moved:
        return None
    _write_log_lines(task_run.pk, task_run.attempt, log_lines or [])
    _advance(task_run.execution_id, actor=actor, changed=task_run)
    return new_status


@transaction.atomic
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
    _execution_lock(task_run.execution_id)
    moved = _move(
        task_run,
        to=TaskRunStatus.CANCELLED,
        expected={TaskRunStatus.RUNNING},
        attempt=attempt,
        actor=actor,
        reason=reason,
        ended_at=timezone.now(),
        metrics=metrics,
    )
    if moved:
        _write_log_lines(task_run.pk, attempt, log_lines)
        _advance(task_run.execution_id, actor=actor, changed=task_run)
    return moved


def _advance(
    execution_id: Any,
    *,
    actor: str,
    changed: TaskRun | None = None,
    execution: Execution | None = None,
    follow: bool = False,
) -> TaskRun | None:
    """After a task moved: enqueue what became ready, block what cannot run, maybe finish.

    The caller holds the execution's row lock. A success touches only the
    changed task's direct downstream rows; other moves (and ``changed=None``,
    used on start and by the reaper) re-read the execution's graph.

    With ``follow`` (a worker reporting a success), one task that became
    ready is claimed for that worker instead of going through the broker,
    and returned: a chain then runs without a broker hop per task.
    """
    runs = TaskRun.objects.filter(execution_id=execution_id)
    enqueued: list[TaskRun] = []
    if changed is not None and changed.status in TASK_DONE_OK:
        if changed.downstream:
            runs.filter(task_name__in=changed.downstream).update(waiting_for=F("waiting_for") - 1)
            # Not checking the execution's state here is deliberate (no read, no
            # lock): a task enqueued for a cancelled execution is cancelled by
            # its claim, and a cancel cancels queued tasks too.
            if execution is None or execution.status == ExecutionStatus.RUNNING:
                ready = list(
                    runs.filter(
                        task_name__in=changed.downstream,
                        status=TaskRunStatus.PENDING,
                        waiting_for=0,
                    )
                )
                keep = None
                if follow and ready and _running(execution_id, execution):
                    keep = ready[0]
                enqueued = task_runs_enqueue(
                    ready, actor=actor, reason="upstream tasks succeeded", keep=keep
                )
                if keep is not None and keep in enqueued and _claim(keep, worker=actor):
                    keep.execution = changed.execution  # same execution, already loaded
                    return keep
    else:
        if execution is None:
            execution = Execution.objects.only("status").get(pk=execution_id)
        _block_downstream_of_failures(execution_id, actor=actor)
        if execution.status == ExecutionStatus.RUNNING:
            ready = list(runs.filter(status=TaskRunStatus.PENDING, waiting_for=0))
            enqueued = task_runs_enqueue(ready, actor=actor, reason="no upstream left to wait for")
    # Something was just enqueued: the execution cannot be finished yet.
    if not enqueued and not runs.exclude(status__in=TASK_FINISHED).exists():
        # The one import left inside a function to break a cycle: finishing an
        # execution starts the next queued one, which advances task runs again.
        # The engine redesign (issue 11 step 2) moves both into one module.
        from pipelines.services.execution import execution_finish

        execution_finish(execution=Execution.objects.get(pk=execution_id), actor=actor)
    return None


def _running(execution_id: Any, execution: Execution | None) -> bool:
    if execution is not None:
        return execution.status == ExecutionStatus.RUNNING
    return Execution.objects.filter(pk=execution_id, status=ExecutionStatus.RUNNING).exists()


def _block_downstream_of_failures(execution_id: Any, *, actor: str) -> None:
    """pending tasks downstream of a task that did not succeed → upstream_failed."""
    rows = list(
        TaskRun.objects.filter(execution_id=execution_id).values_list(
            "task_name", "status", "depends_on"
        )
    )
    not_ok = {TaskRunStatus.FAILED, TaskRunStatus.UPSTREAM_FAILED, TaskRunStatus.CANCELLED}
    failed = sorted(name for name, status, _ in rows if status in not_ok)
    if not failed:
        return
    graph = {name: list(deps) for name, _, deps in rows}
    pending = {name for name, status, _ in rows if status == TaskRunStatus.PENDING}
    now = timezone.now()
    for name in failed:
        blocked = dag.downstream(graph, name) & pending
        for task_run in TaskRun.objects.filter(execution_id=execution_id, task_name__in=blocked):
            if _move(
                task_run,
                to=TaskRunStatus.UPSTREAM_FAILED,
                expected={TaskRunStatus.PENDING},
                actor=actor,
                reason=f"upstream task '{name}' did not succeed",
                ended_at=now,
            ):
                pending.discard(task_run.task_name)


def advance(*, execution_id: Any, actor: str) -> None:
    """Re-evaluate an execution under its lock (used by the reaper and on start)."""
    with transaction.atomic():
        _execution_lock(execution_id)
        _advance(execution_id, actor=actor)
