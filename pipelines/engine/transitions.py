"""The legal moves of task runs and executions, and the two functions that make one.

A move is a conditional ``UPDATE ... WHERE status IN <from-states>`` (and,
for a fenced move, ``AND attempt = <fence>``) whose row count says whether
it happened, plus one ``Transition`` row. A move not in the table, or from
a state the row is no longer in, writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import transaction

from pipelines import signals
from pipelines.models import (
    TASK_FINISHED,
    Execution,
    ExecutionStatus,
    TaskRun,
    TaskRunStatus,
    Transition,
)


@dataclass(frozen=True)
class Move:
    """``sources`` -> ``target``; a ``fenced`` move also matches the attempt it was read at."""

    sources: frozenset[str]
    target: str
    fenced: bool = False


class TaskRunEvent(StrEnum):
    SKIP = "skip"  # a rerun carries a success over
    REFUSE = "refuse"  # the run may not use the task's connection
    BLOCK = "block"  # an upstream task did not succeed
    ENQUEUE = "enqueue"  # its upstreams are done, or its retry is due
    CANCEL = "cancel"  # the execution is cancelled (or refused) before it ran
    CLAIM = "claim"  # a worker takes it for a new attempt
    SUCCEED = "succeed"
    FAIL = "fail"
    RETRY = "retry"  # failed with a transient error and retries left
    STOP = "stop"  # the worker stopped it on a cancel
    WAIT = "wait"  # a sensor's condition was false: checked again at next_check_at


class ExecutionEvent(StrEnum):
    START = "start"  # a slot of max_active_runs is free
    CANCEL = "cancel"
    SUCCEED = "succeed"  # every task run succeeded or was skipped
    FAIL = "fail"  # some task run did not succeed
    STOP = "stop"  # the last task run of a cancelled execution finished


_T = TaskRunStatus
_E = ExecutionStatus

TASK_RUN_MOVES: dict[TaskRunEvent, Move] = {
    TaskRunEvent.SKIP: Move(frozenset({_T.PENDING}), _T.SKIPPED),
    TaskRunEvent.REFUSE: Move(frozenset({_T.PENDING}), _T.FAILED),
    TaskRunEvent.BLOCK: Move(frozenset({_T.PENDING}), _T.UPSTREAM_FAILED),
    # From waiting: the reaper queues a sensor whose next check is due.
    TaskRunEvent.ENQUEUE: Move(frozenset({_T.PENDING, _T.UP_FOR_RETRY, _T.WAITING}), _T.QUEUED),
    TaskRunEvent.CANCEL: Move(
        frozenset({_T.PENDING, _T.QUEUED, _T.UP_FOR_RETRY, _T.WAITING}), _T.CANCELLED
    ),
    TaskRunEvent.CLAIM: Move(frozenset({_T.QUEUED}), _T.RUNNING, fenced=True),
    TaskRunEvent.SUCCEED: Move(frozenset({_T.RUNNING}), _T.SUCCESS, fenced=True),
    TaskRunEvent.FAIL: Move(frozenset({_T.RUNNING}), _T.FAILED, fenced=True),
    TaskRunEvent.RETRY: Move(frozenset({_T.RUNNING}), _T.UP_FOR_RETRY, fenced=True),
    TaskRunEvent.STOP: Move(frozenset({_T.RUNNING}), _T.CANCELLED, fenced=True),
    TaskRunEvent.WAIT: Move(frozenset({_T.RUNNING}), _T.WAITING, fenced=True),
}

EXECUTION_MOVES: dict[ExecutionEvent, Move] = {
    ExecutionEvent.START: Move(frozenset({_E.QUEUED}), _E.RUNNING),
    ExecutionEvent.CANCEL: Move(frozenset({_E.QUEUED, _E.RUNNING}), _E.CANCELLING),
    ExecutionEvent.SUCCEED: Move(frozenset({_E.RUNNING}), _E.SUCCESS),
    # A queued execution fails at once when its run is refused (SPEC §9).
    ExecutionEvent.FAIL: Move(frozenset({_E.QUEUED, _E.RUNNING}), _E.FAILED),
    ExecutionEvent.STOP: Move(frozenset({_E.CANCELLING}), _E.CANCELLED),
}


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
    """The ``Transition`` row of a move (or of an execution's creation)."""
    Transition.objects.create(
        execution_id=execution_id,
        task_run=task_run,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:200],
        reason=reason,
        attempt=attempt,
    )


def _make(
    query: Any, row: TaskRun | Execution, target: str, fields: dict[str, Any], **why: Any
) -> bool:
    """The conditional UPDATE, its row-count check and the transition row."""
    old = row.status
    if query.update(status=target, **fields) != 1:
        return False
    row.status = target
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(row, name, value)
    task_run = row if isinstance(row, TaskRun) else None
    record(
        execution_id=row.execution_id if task_run is not None else row.pk,
        task_run=task_run,
        from_status=old,
        to_status=target,
        attempt=task_run.attempt if task_run is not None else 0,
        **why,
    )
    return True


def task_run_move(
    task_run: TaskRun,
    event: TaskRunEvent,
    *,
    actor: str,
    reason: str = "",
    fence: int | None = None,
    **fields: Any,
) -> bool:
    """Make ``event``'s move on ``task_run``; False (nothing written) when refused.

    A fenced move needs ``fence``, the attempt the caller holds (for a claim,
    the attempt it read before taking the next one).
    """
    move = TASK_RUN_MOVES[event]
    query = TaskRun.objects.filter(pk=task_run.pk, status__in=move.sources)
    if move.fenced:
        if fence is None:
            raise ValueError(f"task run move '{event}' needs the attempt fence")
        query = query.filter(attempt=fence)
        # Setting the attempt the row is at keeps the in-memory run (and its
        # transition row) exact; a claim sets the next one.
        fields = {"attempt": fence, **fields}
    if not _make(query, task_run, move.target, fields, actor=actor, reason=reason):
        return False
    if move.target in TASK_FINISHED or move.target == TaskRunStatus.UP_FOR_RETRY:
        task_id, task_type, status = task_run.pk, task_run.task_type, str(move.target)
        transaction.on_commit(
            lambda: signals.task_run_finished.send(
                sender=TaskRun, task_id=task_id, task_type=task_type, status=status
            )
        )
    return True


def execution_move(
    execution: Execution,
    event: ExecutionEvent,
    *,
    actor: str,
    reason: str = "",
    **fields: Any,
) -> bool:
    """Make ``event``'s move on ``execution``; False (nothing written) when refused."""
    move = EXECUTION_MOVES[event]
    query = Execution.objects.filter(pk=execution.pk, status__in=move.sources)
    return _make(query, execution, move.target, fields, actor=actor, reason=reason)
