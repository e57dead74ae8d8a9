"""pipelines.engine.reaper: one pass, each of its five repairs, on the test database.

Every case puts the database in the state a crash or a lost message leaves
(a stale heartbeat, an old ``queued_at``, a due retry, a stranded execution,
a queued execution behind a finished one), runs ``reap()`` and checks the
rows it moved, the transition rows it wrote and what it sent to the broker
(recorded in a list instead of sent: no worker runs here).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from pipelines.engine.attempts import task_run_claim, task_run_fail, task_run_succeed
from pipelines.engine.reaper import ReapResult, reap
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Transition
from pipelines.services import execution_cancel, execution_create

# Task runs sent to the broker are recorded in ``no_broker`` (no worker runs here).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]

LONG_AGO = timedelta(hours=1)


def task(name: str = "t", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": "wh", "sql": "SELECT 1", **extra}


def claimed(execution: Execution, name: str = "t", worker: str = "worker:h:1") -> TaskRun:
    task_run = task_run_claim(task_id=execution.tasks.get(task_name=name).pk, worker=worker)
    assert task_run is not None
    return task_run


def last_move(task_run: TaskRun) -> Transition:
    return Transition.objects.filter(task_run=task_run).latest("at", "id")


def test_it_retries_a_task_whose_worker_stopped_beating(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task(retries=1)]))
    task_run = claimed(execution)
    TaskRun.objects.filter(pk=task_run.pk).update(heartbeat_at=timezone.now() - LONG_AGO)
    result = reap()
    assert result.expired == [str(task_run.pk)] and result.abandoned == []  # a retry comes
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.status == TaskRunStatus.UP_FOR_RETRY and stored.retry_count == 1
    lease = settings.TASK_LEASE_SECONDS
    assert f"worker worker:h:1 lost: no heartbeat for more than {lease}s" in stored.error
    move = last_move(stored)
    assert (move.from_status, move.to_status, move.actor) == ("running", "up_for_retry", "reaper")


def test_it_fails_a_lost_task_with_no_retry_left_and_finishes_the_execution(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task()]))
    task_run = claimed(execution)
    TaskRun.objects.filter(pk=task_run.pk).update(heartbeat_at=timezone.now() - LONG_AGO)
    result = reap()
    # Failed for good: the maintenance pass lets its type clean up (TaskType.abandon).
    assert result.expired == result.abandoned == [str(task_run.pk)]
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.FAILED
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED and "no heartbeat" in execution.error


def test_it_leaves_a_task_with_a_fresh_heartbeat_alone(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task()]))
    task_run = claimed(execution)
    no_broker.clear()
    result = reap()
    assert result == ReapResult()
    assert str(result) == (
        "expired leases 0, re-sent 0, retries enqueued 0, checks enqueued 0, "
        "executions advanced 0, started 0"
    )
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.RUNNING
    assert no_broker == []


def test_it_resends_a_queued_message_nobody_claimed_once_per_grace_period(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task()]))
    task_run = execution.tasks.get()
    no_broker.clear()
    assert reap().requeued == []  # still within the grace period
    TaskRun.objects.filter(pk=task_run.pk).update(queued_at=timezone.now() - LONG_AGO)
    assert reap().requeued == [str(task_run.pk)]
    assert no_broker == [task_run.pk]
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.status == TaskRunStatus.QUEUED  # the claim decides; the re-send moves nothing
    assert stored.queued_at is not None and stored.queued_at > timezone.now() - timedelta(minutes=1)
    assert reap().requeued == []


def test_it_enqueues_due_retries_only(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(
        pipeline=make_pipeline(tasks=[task("a", retries=2), task("b", retries=2)])
    )
    for name in ("a", "b"):
        task_run = claimed(execution, name)
        status = task_run_fail(
            task_run=task_run, attempt=1, error="reset", transient=True, actor="w", base_delay=600
        )
        assert status == TaskRunStatus.UP_FOR_RETRY
    due = execution.tasks.get(task_name="a")
    TaskRun.objects.filter(pk=due.pk).update(next_retry_at=timezone.now() - timedelta(seconds=1))
    no_broker.clear()
    result = reap()
    assert result.retried == [str(due.pk)]
    assert no_broker == [due.pk]
    assert execution.tasks.get(task_name="a").status == TaskRunStatus.QUEUED
    assert execution.tasks.get(task_name="b").status == TaskRunStatus.UP_FOR_RETRY
    move = last_move(due)
    assert (move.to_status, move.actor, move.reason) == ("queued", "reaper", "retry 1")


def test_it_does_not_retry_into_a_cancelled_execution(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task(retries=2)]))
    task_run = claimed(execution)
    task_run_fail(
        task_run=task_run, attempt=1, error="reset", transient=True, actor="w", base_delay=0
    )
    # The reaper read the due retry, then a cancel committed first: the retry's
    # execution is no longer running when the reaper takes its lock.
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.CANCELLING)
    no_broker.clear()
    assert reap().retried == []
    assert no_broker == []
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.UP_FOR_RETRY
    # A real cancel moves the waiting retry to cancelled, and the reaper leaves it.
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING)
    assert execution_cancel(execution=execution).status == ExecutionStatus.CANCELLED
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.CANCELLED
    assert reap().retried == [] and no_broker == []


def test_it_finishes_an_execution_stranded_after_its_last_task(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task()]))
    task_run = claimed(execution)
    task_run_succeed(task_run=task_run, attempt=1, metrics={}, log_lines=[], worker="w")
    # Model a crash between the task's commit and the execution's: still running.
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING, ended_at=None)
    result = reap()
    assert result.advanced == 1
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCESS
    finish = Transition.objects.filter(execution=execution, task_run=None).latest("at", "id")
    assert (finish.to_status, finish.actor) == ("success", "reaper")


def test_it_starts_a_queued_execution_when_its_pipeline_has_a_free_slot(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    pipeline = make_pipeline(tasks=[task()], max_active_runs=1)
    first = execution_create(pipeline=pipeline)
    second = execution_create(pipeline=pipeline)
    assert second.status == ExecutionStatus.QUEUED
    assert reap().started == 0  # the slot is taken
    # The first ends without the usual hand-over (a crash after its commit).
    Execution.objects.filter(pk=first.pk).update(status=ExecutionStatus.CANCELLED)
    TaskRun.objects.filter(execution=first).update(status=TaskRunStatus.CANCELLED)
    no_broker.clear()
    assert reap().started == 1
    second.refresh_from_db()
    assert second.status == ExecutionStatus.RUNNING and second.started_at is not None
    assert no_broker == [second.tasks.get().pk]
    assert reap().started == 0
