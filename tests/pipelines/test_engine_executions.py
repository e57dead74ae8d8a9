"""pipelines.engine.executions: freeing a slot, and what a finished run tells its receivers.

Driven in-process on the test database, the broker hop replaced by a list of
sent ids (``no_broker``); a second thread (its own database connection) plays
a worker finishing a run while this one creates another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction

from pipelines import signals
from pipelines.engine.attempts import task_run_claim, task_run_fail, task_run_succeed
from pipelines.models import Execution, ExecutionStatus, TaskRun
from pipelines.services import execution_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]


def claimed(execution: Execution) -> TaskRun:
    task_run = task_run_claim(task_id=execution.tasks.get().pk, worker="w1")
    assert task_run is not None
    return task_run


def succeed(task_run: TaskRun) -> None:
    task_run_succeed(
        task_run=task_run, attempt=task_run.attempt, metrics={}, log_lines=[], worker="w1"
    )


@pytest.fixture
def finished() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``execution_finished`` sent."""
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    signals.execution_finished.connect(receiver, weak=False)
    yield sent
    signals.execution_finished.disconnect(receiver)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs a second writer while this transaction is open (SQLite has one writer)",
)
def test_a_run_queued_while_the_last_slot_frees_starts_without_the_reaper(
    make_pipeline: Callable[..., Any],
) -> None:
    pipeline = make_pipeline(max_active_runs=1)
    first = execution_create(pipeline=pipeline)
    assert first.status == ExecutionStatus.RUNNING
    run = claimed(first)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            succeed(run)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        second = execution_create(pipeline=pipeline)
        assert second.status == ExecutionStatus.QUEUED  # the first holds the only slot
        # The first finishes (and commits, and looks for queued runs) before this
        # creation commits: it cannot see the second, and does not wait for it.
        finishing = threading.Thread(target=worker)
        finishing.start()
        finishing.join(timeout=30)
        assert not finishing.is_alive() and errors == []
        first.refresh_from_db()
        assert first.status == ExecutionStatus.SUCCESS
    # Committed: the creation looked again and found the slot free.
    second.refresh_from_db()
    assert second.status == ExecutionStatus.RUNNING
    assert second.tasks.get().status == "queued"


def test_a_finish_starts_the_queued_run_and_says_how_the_run_ended(
    make_pipeline: Callable[..., Any], finished: list[dict[str, Any]]
) -> None:
    pipeline = make_pipeline(max_active_runs=1)
    first = execution_create(pipeline=pipeline)
    second = execution_create(pipeline=pipeline)
    third = execution_create(pipeline=pipeline)
    assert (second.status, third.status) == (ExecutionStatus.QUEUED, ExecutionStatus.QUEUED)
    succeed(claimed(first))
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, third.status) == (ExecutionStatus.RUNNING, ExecutionStatus.QUEUED)
    assert finished == [
        {
            "signal": signals.execution_finished,
            "execution_id": first.pk,
            "status": ExecutionStatus.SUCCESS,
        }
    ]
    run = claimed(second)
    task_run_fail(
        task_run=run, attempt=run.attempt, error="boom", transient=False, actor="w1", base_delay=0
    )
    third.refresh_from_db()
    assert third.status == ExecutionStatus.RUNNING
    assert [(f["execution_id"], f["status"]) for f in finished] == [
        (first.pk, ExecutionStatus.SUCCESS),
        (second.pk, ExecutionStatus.FAILED),
    ]
