"""pipelines.engine.transitions: the table of legal moves and the two functions that make one.

Each legal move writes its row and exactly one transition; an illegal move
(a state not in its from-states) and a stale attempt fence are refused and
write nothing. Runs on the test database (SQLite, or PostgreSQL when
DATABASE_URL names one, as in CI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipelines.engine.transitions import (
    EXECUTION_MOVES,
    TASK_RUN_MOVES,
    ExecutionEvent,
    TaskRunEvent,
    execution_move,
    task_run_move,
)
from pipelines.models import (
    EXECUTION_FINISHED,
    TASK_ACTIVE,
    TASK_FINISHED,
    Execution,
    ExecutionStatus,
    TaskRun,
    TaskRunStatus,
    Transition,
)
from pipelines.services import execution_create

# Task runs sent to the broker are recorded in ``no_broker`` (no worker runs here).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]


def test_the_table_names_every_event_once_and_only_known_states() -> None:
    assert set(TASK_RUN_MOVES) == set(TaskRunEvent)
    assert set(EXECUTION_MOVES) == set(ExecutionEvent)
    for move in TASK_RUN_MOVES.values():
        assert move.sources and move.sources <= set(TaskRunStatus)
        assert move.target in set(TaskRunStatus)
    for move in EXECUTION_MOVES.values():
        assert move.sources and move.sources <= set(ExecutionStatus)
        assert move.target in set(ExecutionStatus)


def test_every_state_but_pending_is_reached_and_every_active_one_left() -> None:
    # A state no move reaches, or an active one no move leaves (a sensor's
    # waiting included), would strand its task runs.
    targets = {move.target for move in TASK_RUN_MOVES.values()}
    sources = set().union(*(move.sources for move in TASK_RUN_MOVES.values()))
    assert targets == set(TaskRunStatus) - {TaskRunStatus.PENDING}
    assert sources == TASK_ACTIVE


def test_no_move_leaves_a_finished_state() -> None:
    for move in TASK_RUN_MOVES.values():
        assert not move.sources & TASK_FINISHED
    for move in EXECUTION_MOVES.values():
        assert not move.sources & EXECUTION_FINISHED


def test_the_moves_of_a_worker_are_fenced_and_the_others_not() -> None:
    fenced = {event for event, move in TASK_RUN_MOVES.items() if move.fenced}
    assert fenced == {
        TaskRunEvent.CLAIM,
        TaskRunEvent.SUCCEED,
        TaskRunEvent.FAIL,
        TaskRunEvent.RETRY,
        TaskRunEvent.STOP,
        TaskRunEvent.WAIT,
    }
    assert not any(move.fenced for move in EXECUTION_MOVES.values())


def task_run_in(execution: Execution, status: TaskRunStatus, *, attempt: int = 1) -> TaskRun:
    """The execution's one task run, forced into ``status`` (a fixture, not a move)."""
    task_run = execution.tasks.get()
    TaskRun.objects.filter(pk=task_run.pk).update(status=status, attempt=attempt)
    task_run.refresh_from_db()
    return task_run


def transitions(task_run: TaskRun) -> int:
    return Transition.objects.filter(task_run=task_run).count()


@pytest.fixture
def execution(make_pipeline: Callable[..., Any]) -> Execution:
    return execution_create(pipeline=make_pipeline())


@pytest.mark.parametrize("event", list(TaskRunEvent))
def test_each_legal_task_run_move_writes_its_row_and_one_transition(
    execution: Execution, event: TaskRunEvent
) -> None:
    move = TASK_RUN_MOVES[event]
    for source in sorted(move.sources):
        task_run = task_run_in(execution, TaskRunStatus(source), attempt=3)
        before = transitions(task_run)
        fence = 3 if move.fenced else None
        assert task_run_move(task_run, event, actor="test", reason="why", fence=fence)
        assert task_run.status == move.target
        assert TaskRun.objects.get(pk=task_run.pk).status == move.target
        assert transitions(task_run) == before + 1
        row = Transition.objects.filter(task_run=task_run).latest("id")
        assert (row.from_status, row.to_status, row.actor, row.reason, row.attempt) == (
            source,
            move.target,
            "test",
            "why",
            3,
        )


@pytest.mark.parametrize("event", list(TaskRunEvent))
def test_an_illegal_task_run_move_is_refused_and_writes_nothing(
    execution: Execution, event: TaskRunEvent
) -> None:
    move = TASK_RUN_MOVES[event]
    for source in sorted(set(TaskRunStatus) - move.sources):
        task_run = task_run_in(execution, TaskRunStatus(source))
        before = transitions(task_run)
        fence = 1 if move.fenced else None
        assert not task_run_move(task_run, event, actor="test", fence=fence, error="x")
        stored = TaskRun.objects.get(pk=task_run.pk)
        assert (stored.status, stored.error) == (source, "")
        assert task_run.status == source
        assert transitions(task_run) == before


@pytest.mark.parametrize("event", [e for e, m in TASK_RUN_MOVES.items() if m.fenced])
def test_a_stale_fence_is_refused_and_writes_nothing(
    execution: Execution, event: TaskRunEvent
) -> None:
    source = sorted(TASK_RUN_MOVES[event].sources)[0]
    task_run = task_run_in(execution, TaskRunStatus(source), attempt=2)
    before = transitions(task_run)
    assert not task_run_move(task_run, event, actor="late worker", fence=1, error="x")
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert (stored.status, stored.attempt, stored.error) == (source, 2, "")
    assert transitions(task_run) == before


def test_a_fenced_move_without_a_fence_is_a_programming_error(execution: Execution) -> None:
    task_run = task_run_in(execution, TaskRunStatus.RUNNING)
    with pytest.raises(ValueError, match="fence"):
        task_run_move(task_run, TaskRunEvent.SUCCEED, actor="test")
    assert TaskRun.objects.get(pk=task_run.pk).status == TaskRunStatus.RUNNING


def test_a_claim_takes_the_next_attempt_and_records_it(execution: Execution) -> None:
    task_run = task_run_in(execution, TaskRunStatus.QUEUED, attempt=4)
    assert task_run_move(task_run, TaskRunEvent.CLAIM, actor="w", fence=4, attempt=5)
    assert TaskRun.objects.get(pk=task_run.pk).attempt == 5
    assert Transition.objects.filter(task_run=task_run).latest("id").attempt == 5
    # A second claim read at the old attempt is refused.
    TaskRun.objects.filter(pk=task_run.pk).update(status=TaskRunStatus.QUEUED)
    assert not task_run_move(task_run, TaskRunEvent.CLAIM, actor="w2", fence=4, attempt=5)


def execution_in(execution: Execution, status: ExecutionStatus) -> Execution:
    Execution.objects.filter(pk=execution.pk).update(status=status)
    execution.refresh_from_db()
    return execution


def execution_transitions(execution: Execution) -> int:
    return Transition.objects.filter(execution=execution, task_run=None).count()


@pytest.mark.parametrize("event", list(ExecutionEvent))
def test_each_legal_execution_move_writes_its_row_and_one_transition(
    execution: Execution, event: ExecutionEvent
) -> None:
    move = EXECUTION_MOVES[event]
    for source in sorted(move.sources):
        execution = execution_in(execution, ExecutionStatus(source))
        before = execution_transitions(execution)
        assert execution_move(execution, event, actor="test", reason="why", error="e")
        stored = Execution.objects.get(pk=execution.pk)
        assert (stored.status, stored.error) == (move.target, "e")
        assert execution_transitions(execution) == before + 1
        row = Transition.objects.filter(execution=execution, task_run=None).latest("id")
        assert (row.from_status, row.to_status, row.actor, row.reason) == (
            source,
            move.target,
            "test",
            "why",
        )


@pytest.mark.parametrize("event", list(ExecutionEvent))
def test_an_illegal_execution_move_is_refused_and_writes_nothing(
    execution: Execution, event: ExecutionEvent
) -> None:
    move = EXECUTION_MOVES[event]
    for source in sorted(set(ExecutionStatus) - move.sources):
        execution = execution_in(execution, ExecutionStatus(source))
        before = execution_transitions(execution)
        assert not execution_move(execution, event, actor="test", error="x")
        stored = Execution.objects.get(pk=execution.pk)
        assert (stored.status, stored.error) == (source, "")
        assert execution.status == source
        assert execution_transitions(execution) == before
