"""pipelines.engine.task_runs and .attempts: each move, its transition row, its fence.

Driven in-process on the test database: the moves are the same functions the
worker and the reaper call; only the broker hop is a list of sent ids.
test_services_execution covers whole executions; this file covers the moves
one by one (what each writes, what each refuses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pipelines import signals
from pipelines.engine.attempts import (
    task_run_cancelled,
    task_run_claim,
    task_run_fail,
    task_run_succeed,
)
from pipelines.engine.executions import advance
from pipelines.engine.task_runs import retry_delay_seconds, task_run_heartbeat, task_run_status
from pipelines.models import (
    Execution,
    ExecutionStatus,
    TaskLogLine,
    TaskRun,
    TaskRunStatus,
    Transition,
    Watermark,
)
from pipelines.services import execution_cancel, execution_create
from pipelines.tasktypes.base import LeaseLost

# Task runs sent to the broker are recorded in ``no_broker`` (no worker runs here).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]

CHAIN = [
    {"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
    {"name": "b", "type": "sql", "connection": "wh", "sql": "SELECT 1", "depends_on": ["a"]},
]


@pytest.fixture
def finished() -> Iterator[list[dict[str, Any]]]:
    """The task_run_finished signals sent (after commit), as their kwargs."""
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append({k: v for k, v in kwargs.items() if k != "signal"})

    signals.task_run_finished.connect(receiver, weak=False)
    yield seen
    signals.task_run_finished.disconnect(receiver)


def moves(task_run: TaskRun) -> list[tuple[str, str, str]]:
    return list(
        Transition.objects.filter(task_run=task_run)
        .order_by("at", "id")
        .values_list("from_status", "to_status", "actor")
    )


def claim(execution: Execution, name: str, worker: str = "w1") -> TaskRun:
    claimed = task_run_claim(task_id=execution.tasks.get(task_name=name).pk, worker=worker)
    assert claimed is not None
    return claimed


def line(message: str) -> dict[str, Any]:
    return {"at": timezone.now(), "level": "INFO", "message": message}


def test_it_claims_with_the_next_attempt_and_records_the_move(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = claim(execution, "t1", worker="worker:h:1")
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.status == TaskRunStatus.RUNNING and stored.attempt == 1
    assert stored.worker == "worker:h:1" and stored.heartbeat_at is not None
    assert moves(task_run)[-1] == ("queued", "running", "worker:h:1")
    assert task_run_status(task_id=task_run.pk) == ("running", 1, "running")
    assert task_run_claim(task_id=task_run.pk, worker="w2") is None  # already running
    assert task_run_claim(task_id="00000000-0000-0000-0000-000000000000", worker="w2") is None


def test_it_cancels_a_queued_task_claimed_after_its_execution_was_cancelling(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(
        pipeline=make_pipeline(
            tasks=CHAIN
            + [
                {"name": "c", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
            ]
        )
    )
    running = claim(execution, "a")
    execution = execution_cancel(execution=execution)
    assert execution.status == ExecutionStatus.CANCELLING  # a is still running
    # c's message was sent before the cancel; it arrives now. (The cancel moved
    # it already; force it back to queued to model the message racing the cancel.)
    late = execution.tasks.get(task_name="c")
    TaskRun.objects.filter(pk=late.pk).update(status=TaskRunStatus.QUEUED)
    assert task_run_claim(task_id=late.pk, worker="w2") is None
    late.refresh_from_db()
    assert late.status == TaskRunStatus.CANCELLED
    assert moves(late)[-1] == ("queued", "cancelled", "w2")
    assert running.status == TaskRunStatus.RUNNING


def test_it_renews_the_lease_and_writes_log_lines_only_for_the_owner(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = claim(execution, "t1")
    TaskRun.objects.filter(pk=task_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    status = task_run_heartbeat(
        task_id=task_run.pk, attempt=1, log_lines=[line("one"), line("two")]
    )
    assert status == ExecutionStatus.RUNNING
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.heartbeat_at is not None
    assert stored.heartbeat_at > timezone.now() - timedelta(minutes=1)
    rows = list(TaskLogLine.objects.filter(task_run=task_run).values_list("seq", "message"))
    base = TaskLogLine.SEQ_PER_ATTEMPT
    assert rows == [(base, "one"), (base + 1, "two")]
    with pytest.raises(LeaseLost):
        task_run_heartbeat(task_id=task_run.pk, attempt=2, log_lines=[line("intruder")])
    assert not TaskLogLine.objects.filter(message="intruder").exists()


def test_it_commits_the_watermark_with_the_success_and_signals_after_commit(
    make_pipeline: Callable[..., Any], finished: list[dict[str, Any]]
) -> None:
    pipeline = make_pipeline()
    execution = execution_create(pipeline=pipeline)
    task_run = claim(execution, "t1")
    task_run_succeed(
        task_run=task_run,
        attempt=1,
        metrics={"rows_written": 7},
        log_lines=[line("done")],
        watermark={"column": "updated_at", "value": "2026-01-02"},
        worker="w1",
    )
    mark = Watermark.objects.get(pipeline=pipeline, task_name="t1")
    assert (mark.column, mark.value) == ("updated_at", "2026-01-02")
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.status == TaskRunStatus.SUCCESS and stored.metrics == {"rows_written": 7}
    assert moves(task_run)[-1] == ("running", "success", "w1")
    assert finished == [{"task_id": task_run.pk, "task_type": "sql", "status": "success"}]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCESS  # the last task finished it


def test_it_refuses_a_success_from_an_attempt_that_lost_its_lease(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = claim(execution, "t1")
    with pytest.raises(LeaseLost):
        task_run_succeed(
            task_run=task_run,
            attempt=5,
            metrics={},
            log_lines=[line("late")],
            watermark={"column": "c", "value": 1},
            worker="w1",
        )
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.RUNNING
    assert not Watermark.objects.exists()
    assert not TaskLogLine.objects.filter(message="late").exists()


def test_it_hands_the_ready_downstream_task_to_the_same_worker_with_follow(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=CHAIN))
    no_broker.clear()
    first = claim(execution, "a", worker="w1")
    follow = task_run_succeed(
        task_run=first, attempt=1, metrics={}, log_lines=[], worker="w1", follow=True
    )
    assert follow is not None and follow.task_name == "b"
    stored = TaskRun.objects.get(pk=follow.pk)
    assert stored.status == TaskRunStatus.RUNNING and stored.worker == "w1"
    assert moves(follow) == [("pending", "queued", "w1"), ("queued", "running", "w1")]
    assert no_broker == []  # no broker message for the task the worker keeps


def test_it_enqueues_the_downstream_task_without_follow(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=CHAIN))
    no_broker.clear()
    first = claim(execution, "a")
    assert (
        task_run_succeed(task_run=first, attempt=1, metrics={}, log_lines=[], worker="w1") is None
    )
    second = execution.tasks.get(task_name="b")
    assert second.status == TaskRunStatus.QUEUED and no_broker == [second.pk]


def test_it_fails_a_transient_error_into_a_retry_with_a_delay(
    make_pipeline: Callable[..., Any], finished: list[dict[str, Any]]
) -> None:
    task = {**CHAIN[0], "retries": 1, "retry_delay": 60}
    execution = execution_create(pipeline=make_pipeline(tasks=[task]))
    task_run = claim(execution, "a")
    before = timezone.now()
    status = task_run_fail(
        task_run=task_run,
        attempt=1,
        error="connection reset",
        transient=True,
        actor="w1",
        base_delay=60,
        log_lines=[line("failing")],
    )
    assert status == TaskRunStatus.UP_FOR_RETRY
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.retry_count == 1 and stored.error == "connection reset"
    assert stored.next_retry_at is not None
    # 60 s ± 20 % jitter.
    assert before + timedelta(seconds=47) < stored.next_retry_at < before + timedelta(seconds=73)
    reason = Transition.objects.filter(task_run=task_run).latest("at").reason
    assert reason.startswith("retry 1 of 1 in ") and reason.endswith(": connection reset")
    assert finished[-1]["status"] == "up_for_retry"
    assert TaskLogLine.objects.filter(task_run=task_run, message="failing").exists()
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.RUNNING  # waiting for the retry


def test_it_fails_for_good_when_no_retry_is_left_and_blocks_downstream(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=CHAIN))
    task_run = claim(execution, "a")
    status = task_run_fail(
        task_run=task_run, attempt=1, error="x" * 20000, transient=True, actor="w1", base_delay=0
    )
    assert status == TaskRunStatus.FAILED
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert len(stored.error) == 10000  # capped
    downstream = execution.tasks.get(task_name="b")
    assert downstream.status == TaskRunStatus.UPSTREAM_FAILED
    assert Transition.objects.get(task_run=downstream, to_status="upstream_failed").reason == (
        "upstream task 'a' did not succeed"
    )
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED


def test_it_keeps_a_task_whose_heartbeat_arrived_after_the_reaper_scan(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = claim(execution, "t1")
    scan = timezone.now() - timedelta(seconds=30)  # the reaper's cutoff
    # The heartbeat (now) is newer than the cutoff: the reaper must not fail it.
    assert (
        task_run_fail(
            task_run=task_run,
            attempt=None,
            error="lost",
            transient=True,
            actor="reaper",
            base_delay=0,
            heartbeat_before=scan,
        )
        is None
    )
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.RUNNING
    assert moves(task_run)[-1][1] == "running"


def test_it_records_a_cancel_reported_by_the_worker_once(
    make_pipeline: Callable[..., Any],
) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = claim(execution, "t1")
    execution_cancel(execution=execution)
    kwargs: dict[str, Any] = {
        "task_run": task_run,
        "attempt": 1,
        "actor": "w1",
        "reason": "execution cancelled",
        "log_lines": [line("stopping")],
        "metrics": {"rows_written": 3},
    }
    assert task_run_cancelled(**kwargs) is True
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert stored.status == TaskRunStatus.CANCELLED and stored.metrics == {"rows_written": 3}
    assert moves(task_run)[-1] == ("running", "cancelled", "w1")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED  # the last running task stopped
    assert task_run_cancelled(**kwargs) is False  # a second report changes nothing
    assert TaskLogLine.objects.filter(task_run=task_run, message="stopping").count() == 1


def test_it_advances_an_execution_whose_enqueue_was_lost(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=CHAIN))
    first = claim(execution, "a")
    task_run_succeed(task_run=first, attempt=1, metrics={}, log_lines=[], worker="w1")
    # Model a crash between the success and the enqueue of b: b back to pending.
    TaskRun.objects.filter(execution=execution, task_name="b").update(
        status=TaskRunStatus.PENDING, queued_at=None
    )
    no_broker.clear()
    advance(execution_id=execution.pk, actor="reaper")
    second = execution.tasks.get(task_name="b")
    assert second.status == TaskRunStatus.QUEUED and no_broker == [second.pk]
    assert moves(second)[-1] == ("pending", "queued", "reaper")


@pytest.mark.parametrize(
    ("base", "retry", "low", "high"),
    [(10, 1, 8, 12), (10, 3, 32, 48), (10, 50, 0.8 * 3600, 1.2 * 3600), (0, 4, 0, 0)],
)
def test_it_doubles_the_retry_delay_up_to_the_cap_with_jitter(
    settings: Any, base: float, retry: int, low: float, high: float
) -> None:
    settings.RETRY_DELAY_CAP_SECONDS = 3600
    delays = [retry_delay_seconds(base=base, retry_number=retry) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    if base:
        assert len(set(delays)) > 1  # jittered, not one fixed value
