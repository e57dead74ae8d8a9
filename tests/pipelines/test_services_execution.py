"""Execution and task-run state changes, driven in-process (no worker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.actor import Actor
from core.errors import Conflict, InvalidInput
from pipelines.engine.attempts import task_run_claim, task_run_fail, task_run_succeed
from pipelines.engine.reaper import reap
from pipelines.engine.task_runs import task_run_heartbeat
from pipelines.models import (
    Execution,
    ExecutionStatus,
    TaskRun,
    TaskRunStatus,
    Transition,
    Trigger,
)
from pipelines.services import execution_cancel, execution_create, execution_rerun
from pipelines.tasktypes.base import LeaseLost

DIAMOND = [
    {"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
    {"name": "b", "type": "sql", "connection": "wh", "sql": "SELECT 1", "depends_on": ["a"]},
    {"name": "c", "type": "sql", "connection": "wh", "sql": "SELECT 1", "depends_on": ["a"]},
    {"name": "d", "type": "sql", "connection": "wh", "sql": "SELECT 1", "depends_on": ["b", "c"]},
]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record enqueued ids instead of sending them: these tests drive claims by hand.

    The worker path with a real broker is covered in test_engine_workers.
    """
    sent: list[Any] = []
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", sent.extend)
    monkeypatch.setattr("pipelines.engine.reaper.enqueue_task_runs", sent.extend)
    return sent


def statuses(execution: Execution) -> dict[str, str]:
    return dict(execution.tasks.values_list("task_name", "status"))


def run_ok(execution: Execution, name: str) -> None:
    task_run = execution.tasks.get(task_name=name)
    claimed = task_run_claim(task_id=task_run.pk, worker="w1")
    assert claimed is not None
    task_run_succeed(
        task_run=claimed,
        attempt=claimed.attempt,
        metrics={"rows_written": 2},
        log_lines=[],
        worker="w1",
    )


def run_fail(execution: Execution, name: str, *, transient: bool = False) -> str | None:
    task_run = execution.tasks.get(task_name=name)
    claimed = task_run_claim(task_id=task_run.pk, worker="w1")
    assert claimed is not None
    return task_run_fail(
        task_run=claimed,
        attempt=claimed.attempt,
        error="boom",
        transient=transient,
        actor="w1",
        base_delay=0,
    )


@pytest.mark.django_db(transaction=True)
def test_it_enqueues_roots_then_downstream_in_diamond_order(
    make_pipeline: Any, no_broker: list[Any]
) -> None:
    pipeline = make_pipeline(tasks=DIAMOND)
    execution = execution_create(pipeline=pipeline)
    assert execution.status == ExecutionStatus.RUNNING
    assert statuses(execution) == {"a": "queued", "b": "pending", "c": "pending", "d": "pending"}
    run_ok(execution, "a")
    assert statuses(execution)["b"] == statuses(execution)["c"] == "queued"
    run_ok(execution, "b")
    assert statuses(execution)["d"] == "pending"  # still waits for c
    run_ok(execution, "c")
    assert statuses(execution)["d"] == "queued"
    run_ok(execution, "d")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCESS
    assert execution.metrics["tasks_completed"] == 4
    assert execution.metrics["rows_written"] == 8
    assert execution.ended_at is not None
    assert len(no_broker) == 4


@pytest.mark.django_db(transaction=True)
def test_it_marks_downstream_upstream_failed_and_lets_branches_go_on(make_pipeline: Any) -> None:
    pipeline = make_pipeline(tasks=DIAMOND)
    execution = execution_create(pipeline=pipeline)
    run_ok(execution, "a")
    assert run_fail(execution, "b") == TaskRunStatus.FAILED
    assert statuses(execution)["d"] == "upstream_failed"
    assert statuses(execution)["c"] == "queued"  # the independent branch goes on
    run_ok(execution, "c")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED
    assert "b: boom" in execution.error


@pytest.mark.django_db(transaction=True)
def test_it_retries_transient_errors_only_up_to_retries(make_pipeline: Any) -> None:
    pipeline = make_pipeline(
        tasks=[
            {
                "name": "t",
                "type": "sql",
                "connection": "wh",
                "sql": "SELECT 1",
                "retries": 2,
                "retry_delay": 0,
            }
        ]
    )
    execution = execution_create(pipeline=pipeline)
    assert run_fail(execution, "t", transient=True) == TaskRunStatus.UP_FOR_RETRY
    reap()  # due retries are enqueued by the reaper
    assert run_fail(execution, "t", transient=True) == TaskRunStatus.UP_FOR_RETRY
    reap()
    assert run_fail(execution, "t", transient=True) == TaskRunStatus.FAILED
    task_run = execution.tasks.get()
    assert task_run.retry_count == 2
    assert task_run.attempt == 3


@pytest.mark.django_db(transaction=True)
def test_it_does_not_retry_permanent_errors(make_pipeline: Any) -> None:
    pipeline = make_pipeline(
        tasks=[{"name": "t", "type": "sql", "connection": "wh", "sql": "SELECT 1", "retries": 3}]
    )
    execution = execution_create(pipeline=pipeline)
    assert run_fail(execution, "t", transient=False) == TaskRunStatus.FAILED
    assert execution.tasks.get().retry_count == 0


@pytest.mark.django_db(transaction=True)
def test_it_fences_a_stale_attempt(make_pipeline: Any, settings: Any) -> None:
    pipeline = make_pipeline(
        tasks=[
            {
                "name": "t",
                "type": "sql",
                "connection": "wh",
                "sql": "SELECT 1",
                "retries": 1,
                "retry_delay": 0,
            }
        ]
    )
    execution = execution_create(pipeline=pipeline)
    task_run = execution.tasks.get()
    stale = task_run_claim(task_id=task_run.pk, worker="w-stale")
    assert stale is not None
    TaskRun.objects.filter(pk=task_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    result = reap()
    assert result.expired == [str(task_run.pk)]
    reap()
    fresh = task_run_claim(task_id=task_run.pk, worker="w-fresh")
    assert fresh is not None and fresh.attempt == stale.attempt + 1
    with pytest.raises(LeaseLost):
        task_run_heartbeat(
            task_id=task_run.pk,
            attempt=stale.attempt,
            log_lines=[{"at": timezone.now(), "level": "INFO", "message": "late"}],
        )
    with pytest.raises(LeaseLost):
        task_run_succeed(
            task_run=stale, attempt=stale.attempt, metrics={}, log_lines=[], worker="w-stale"
        )
    assert (
        task_run_fail(
            task_run=stale,
            attempt=stale.attempt,
            error="x",
            transient=False,
            actor="w-stale",
            base_delay=0,
        )
        is None
    )
    task_run.refresh_from_db()
    assert task_run.status == TaskRunStatus.RUNNING and task_run.worker == "w-fresh"
    assert not task_run.log_lines.filter(message="late").exists()


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_duplicate_claim(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = execution.tasks.get()
    assert task_run_claim(task_id=task_run.pk, worker="w1") is not None
    assert task_run_claim(task_id=task_run.pk, worker="w2") is None


@pytest.mark.django_db(transaction=True)
def test_it_resends_lost_messages(make_pipeline: Any, no_broker: list[Any]) -> None:
    execution = execution_create(pipeline=make_pipeline())
    task_run = execution.tasks.get()
    no_broker.clear()
    TaskRun.objects.filter(pk=task_run.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    result = reap()
    assert result.requeued == [str(task_run.pk)]
    assert no_broker == [task_run.pk]
    assert reap().requeued == []  # not again at once


@pytest.mark.django_db(transaction=True)
def test_it_cancels_waiting_tasks_at_once(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=DIAMOND))
    execution = execution_cancel(execution=execution)
    assert execution.status == ExecutionStatus.CANCELLED
    assert set(statuses(execution).values()) == {"cancelled"}
    task_run = execution.tasks.get(task_name="a")
    assert task_run_claim(task_id=task_run.pk, worker="w1") is None
    with pytest.raises(Conflict):
        execution_cancel(execution=execution)


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_running_tasks_when_cancelling(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=DIAMOND))
    task_run = task_run_claim(task_id=execution.tasks.get(task_name="a").pk, worker="w1")
    assert task_run is not None
    execution = execution_cancel(execution=execution)
    assert execution.status == ExecutionStatus.CANCELLING
    assert (
        task_run_heartbeat(task_id=task_run.pk, attempt=task_run.attempt, log_lines=[])
        == "cancelling"
    )
    from pipelines.engine.attempts import task_run_cancelled

    assert task_run_cancelled(
        task_run=task_run,
        attempt=task_run.attempt,
        actor="w1",
        reason="stop",
        log_lines=[],
        metrics={},
    )
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_it_queues_runs_beyond_max_active_runs(make_pipeline: Any) -> None:
    pipeline = make_pipeline(max_active_runs=1)
    first = execution_create(pipeline=pipeline)
    second = execution_create(pipeline=pipeline)
    assert first.status == ExecutionStatus.RUNNING
    assert second.status == ExecutionStatus.QUEUED
    run_ok(first, "t1")
    second.refresh_from_db()
    assert second.status == ExecutionStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_it_deduplicates_by_idempotency_key(make_pipeline: Any, developer: Any) -> None:
    pipeline = make_pipeline(user=developer)
    one = execution_create(pipeline=pipeline, actor=Actor.of(developer), idempotency_key="k1")
    two = execution_create(pipeline=pipeline, actor=Actor.of(developer), idempotency_key="k1")
    three = execution_create(pipeline=pipeline, actor=Actor.of(developer), idempotency_key="k2")
    assert one.pk == two.pk != three.pk


@pytest.mark.django_db(transaction=True)
def test_it_reruns_failed_tasks_and_skips_the_rest(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=DIAMOND))
    run_ok(execution, "a")
    run_fail(execution, "b")
    run_ok(execution, "c")
    execution.refresh_from_db()
    rerun = execution_rerun(execution=execution)
    assert rerun.trigger == Trigger.RERUN and rerun.rerun_of_id == execution.pk
    assert statuses(rerun) == {"a": "skipped", "b": "queued", "c": "skipped", "d": "pending"}
    from_c = execution_rerun(execution=execution, from_task="c")
    assert statuses(from_c) == {"a": "skipped", "b": "skipped", "c": "queued", "d": "pending"}
    with pytest.raises(InvalidInput):
        execution_rerun(execution=execution, from_task="nope")


@pytest.mark.django_db(transaction=True)
def test_it_binds_builtin_and_overridden_parameters(make_pipeline: Any) -> None:
    pipeline = make_pipeline(parameters={"min_amount": 100})
    execution = execution_create(pipeline=pipeline, parameters={"min_amount": 5})
    assert execution.parameters["min_amount"] == 5
    assert execution.parameters["execution_id"] == str(execution.pk)
    assert execution.parameters["logical_date"] == execution.parameters["data_interval_start"]
    with pytest.raises(InvalidInput) as err:
        execution_create(pipeline=pipeline, parameters={"nope": 1})
    assert err.value.errors == [{"path": "parameters.nope", "message": "unknown parameter"}]


@pytest.mark.django_db(transaction=True)
def test_it_records_every_transition(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline())
    run_ok(execution, "t1")
    moves = [
        (t.task_run.task_name if t.task_run else "-", t.from_status, t.to_status)
        for t in Transition.objects.filter(execution=execution)
    ]
    assert moves == [
        ("-", "", "queued"),
        ("-", "queued", "running"),
        ("t1", "pending", "queued"),
        ("t1", "queued", "running"),
        ("t1", "running", "success"),
        ("-", "running", "success"),
    ]


@pytest.mark.django_db(transaction=True)
def test_it_hands_one_ready_task_to_the_worker_that_finished_its_upstream(
    make_pipeline: Any, no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=DIAMOND))
    a = task_run_claim(task_id=execution.tasks.get(task_name="a").pk, worker="w1")
    assert a is not None
    no_broker.clear()
    follow = task_run_succeed(
        task_run=a, attempt=a.attempt, metrics={}, log_lines=[], worker="w1", follow=True
    )
    assert follow is not None and follow.task_name in {"b", "c"}
    assert (follow.status, follow.attempt, follow.worker) == ("running", 1, "w1")
    other = execution.tasks.get(task_name=({"b", "c"} - {follow.task_name}).pop())
    assert other.status == "queued"
    assert no_broker == [other.pk]  # only the other one goes through the broker
    moves = list(Transition.objects.filter(task_run=follow).values_list("from_status", "to_status"))
    assert moves == [("pending", "queued"), ("queued", "running")]
    # The handed-over run finishes like any other.
    task_run_succeed(task_run=follow, attempt=1, metrics={}, log_lines=[], worker="w1", follow=True)
    assert execution.tasks.get(task_name=follow.task_name).status == "success"


@pytest.mark.django_db(transaction=True)
def test_it_hands_nothing_over_for_a_cancelled_execution(make_pipeline: Any) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=DIAMOND))
    a = task_run_claim(task_id=execution.tasks.get(task_name="a").pk, worker="w1")
    assert a is not None
    execution_cancel(execution=execution)
    follow = task_run_succeed(
        task_run=a, attempt=a.attempt, metrics={}, log_lines=[], worker="w1", follow=True
    )
    assert follow is None
    assert set(statuses(execution).values()) <= {"success", "cancelled"}
