"""The legal moves of task runs and executions, and the two functions that make one.

A move is a conditional ``UPDATE ... WHERE status IN <from-states>`` (and,
for a fenced move, ``AND attempt = <fence>``) whose row count says whether
it happened, plus one ``Transition`` row. A move not in the table, or from
a state the row is no longer in, writes nothing.

Inside ``transitions_batched()`` the rows of every move are written at its
end in one multi-row INSERT, in the order of the moves (same transaction).
A claim is one ``UPDATE … RETURNING`` (``task_run_claim_queued``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils import timezone

from pipelines import signals
from pipelines.models import (
    TASK_FINISHED,
    Execution,
    ExecutionStatus,
    Pipeline,
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
    row = Transition(
        execution_id=execution_id,
        task_run=task_run,
        from_status=from_status,
        to_status=to_status,
        actor=actor[:200],
        reason=reason,
        attempt=attempt,
    )
    batch = getattr(_batch, "rows", None)
    if batch is None:
        row.save(force_insert=True)
    else:
        row.at = timezone.now()  # when the move was made, not when its row is written
        batch.append(row)


def record_task_run(task_run: TaskRun, from_status: str, *, actor: str, reason: str = "") -> None:
    """The transition row of ``task_run``'s move from ``from_status`` to its status now."""
    record(
        execution_id=task_run.execution_id,
        task_run=task_run,
        from_status=from_status,
        to_status=task_run.status,
        actor=actor,
        reason=reason,
        attempt=task_run.attempt,
    )


_batch = threading.local()


@contextmanager
def transitions_batched() -> Iterator[None]:
    """Collect the transition rows recorded inside; write them in one INSERT at the end.

    Use it inside the transaction of the moves (nothing is written when the
    block raises, and the transaction rolls back anyway). Nested blocks join
    the outermost one. Nothing in the engine reads transition rows back
    within the transaction that records them.
    """
    if getattr(_batch, "rows", None) is not None:
        yield
        return
    rows: list[Transition] = []
    _batch.rows = rows
    try:
        yield
    finally:
        _batch.rows = None
    _transitions_insert(rows)


def transitions_flush() -> None:
    """Write the rows batched so far now (a move recorded by other means follows them)."""
    rows = getattr(_batch, "rows", None)
    if rows:
        _transitions_insert(rows)
        rows.clear()


_TRANSITION_COLUMNS = [
    "execution_id",
    "task_run_id",
    "from_status",
    "to_status",
    "actor",
    "reason",
    "attempt",
    "at",
]


def _transitions_insert(rows: list[Transition]) -> None:
    insert_rows(
        Transition,
        _TRANSITION_COLUMNS,
        [
            (r.execution_id, r.task_run_id, r.from_status, r.to_status, r.actor, r.reason)
            + (r.attempt, r.at)
            for r in rows
        ],
    )


_ROWS_PER_INSERT = 1000


def insert_rows(model: type[models.Model], names: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Multi-row INSERTs of ``rows`` (values of the fields ``names``), 1,000 rows per statement.

    What ``bulk_create`` does for rows nobody reads back, for a fraction of
    its CPU time: values are prepared by their fields, nothing is returned.
    """
    fields = [sql_field(model, name) for name in names]
    one = "(" + ", ".join(["%s"] * len(names)) + ")"
    head = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)}"  # nosec B608 - names from model metadata, values bound
        f" ({', '.join(sql_column(model, name) for name in names)}) VALUES "
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            params = [
                field.get_db_prep_save(value, connection)
                for row in chunk
                for field, value in zip(fields, row, strict=True)
            ]
            cursor.execute(head + ", ".join([one] * len(chunk)), params)


def _make(
    row: TaskRun | Execution,
    sources: Any,
    target: str,
    fields: dict[str, Any],
    *,
    fence: int | None = None,
    **why: Any,
) -> bool:
    """The conditional UPDATE (from ``sources``, at ``fence``), its row count, the transition."""
    old = row.status
    if _update_one(type(row), row.pk, sources, fence, {"status": target, **fields}) != 1:
        return False
    row.status = target
    for name, value in fields.items():
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


def _update_one(
    model: type[models.Model], pk: Any, sources: Any, fence: int | None, values: dict[str, Any]
) -> int:
    """``UPDATE … SET values WHERE pk AND status IN sources [AND attempt = fence]``: rows moved.

    What ``QuerySet.update`` sends for plain values (each prepared by its
    field), without building a query per move. Values only, no expressions.
    """
    pk_name = model._meta.pk.attname  # type: ignore[union-attr]
    sets = ", ".join(f"{sql_column(model, name)} = %s" for name in values)
    params = [sql_field(model, name).get_db_prep_save(v, connection) for name, v in values.items()]
    sources = list(sources)
    where = (
        f"{sql_column(model, pk_name)} = %s"
        f" AND {sql_column(model, 'status')} IN ({', '.join(['%s'] * len(sources))})"
    )
    params += [_prep(model, pk_name, pk), *sources]
    if fence is not None:
        where += f" AND {sql_column(model, 'attempt')} = %s"
        params.append(fence)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE {where}", params)  # nosec B608 - names from model metadata, values bound
        return int(cursor.rowcount)


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
    if move.fenced:
        if fence is None:
            raise ValueError(f"task run move '{event}' needs the attempt fence")
        # Setting the attempt the row is at keeps the in-memory run (and its
        # transition row) exact; a claim sets the next one.
        fields = {"attempt": fence, **fields}
    else:
        fence = None
    if not _make(
        task_run, move.sources, move.target, fields, fence=fence, actor=actor, reason=reason
    ):
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
    return _make(execution, move.sources, move.target, fields, actor=actor, reason=reason)


def sql_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """``model``'s concrete field ``name`` (or attname), for hand-written statements."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)  # nosec B101 - type narrowing
    return field


def sql_column(model: type[models.Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name``."""
    return _quoted_column(model, name, connection.vendor)


@functools.cache
def _quoted_column(model: type[models.Model], name: str, vendor: str) -> str:
    return str(connection.ops.quote_name(str(sql_field(model, name).column)))


def sql_columns(model: type[models.Model], alias: str) -> tuple[list[str], str]:
    """The attnames of ``model``'s concrete fields and their quoted columns as ``alias.col``."""
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], ", ".join(f"{alias}.{quote(f.column)}" for f in fields)


def model_loaded(model: type[models.Model], names: list[str], values: Any) -> Any:
    """A model instance from raw column values, converted as the ORM would."""
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection (its converters)
    converted = []
    for (col, converters), value in zip(_converters(model, tuple(names), db), values, strict=True):
        for convert in converters:
            value = convert(value, col, db)
        converted.append(value)
    # from_db takes a subset of the fields in the model's own field order.
    given = dict(zip(names, converted, strict=True))
    ordered = [f.attname for f in model._meta.concrete_fields if f.attname in given]
    return model.from_db(db.alias, ordered, [given[name] for name in ordered])


@functools.lru_cache(maxsize=64)
def _converters(model: type[models.Model], names: tuple[str, ...], db: Any) -> list[Any]:
    """(column, converters) per field, as the ORM applies them on ``db``'s rows."""
    out = []
    for name in names:
        field = sql_field(model, name)
        col = field.get_col(model._meta.db_table)
        field_converters = field.get_db_converters(db)  # type: ignore[attr-defined]
        out.append((col, db.ops.get_db_converters(col) + field_converters))
    return out


def _prep(model: type[models.Model], name: str, value: Any) -> Any:
    return sql_field(model, name).get_db_prep_value(value, connection)


def task_run_claim_queued(task_id: Any, *, worker: str) -> TaskRun | None:
    """queued → running with the next attempt, in one ``UPDATE … RETURNING``; None if not claimed.

    Claims only while the execution is running; returns the task run with
    its execution (status, parameters, pipeline, version) and the
    pipeline's name loaded, as the runner needs them. On PostgreSQL the
    transition row is inserted by the same statement (a data-modifying CTE);
    on SQLite by a second one in the same transaction. None when the row is
    no longer queued (a duplicate or stale message) or the execution is not
    running (the caller decides what that means).
    """
    transitions_flush()  # the moves before this claim keep their order
    quote = connection.ops.quote_name

    def r(name: str) -> str:
        return sql_column(TaskRun, name)

    def e(name: str) -> str:
        return "e." + sql_column(Execution, name)

    run_table, exec_table = quote(TaskRun._meta.db_table), quote(Execution._meta.db_table)
    names, columns = sql_columns(TaskRun, run_table)
    now = timezone.now()
    worker = worker[:200]
    in_execution = (
        f"FROM {exec_table} e WHERE {e('execution_id')} = {run_table}.{r('execution_id')}"
    )
    execution_fields = ["status", "parameters", "pipeline_id", "version_id"]
    extra = ", ".join(
        f"(SELECT {e(name)} {in_execution}) AS {quote('x_' + name)}" for name in execution_fields
    )
    pipeline_name = (
        f"(SELECT p.{sql_column(Pipeline, 'name')} FROM {quote(Pipeline._meta.db_table)} p"  # nosec B608 - names from model metadata, values bound
        f" JOIN {exec_table} e ON p.{sql_column(Pipeline, 'pipeline_id')} = {e('pipeline_id')}"
        f" WHERE {e('execution_id')} = {run_table}.{r('execution_id')})"
    )
    update = (
        f"UPDATE {run_table} SET {r('status')} = %s, {r('attempt')} = {r('attempt')} + 1,"  # nosec B608 - names from model metadata, values bound
        f" {r('worker')} = %s, {r('heartbeat_at')} = %s, {r('started_at')} = %s,"
        f" {r('ended_at')} = NULL, {r('error')} = ''"
        f" WHERE {r('task_id')} = %s AND {r('status')} = %s"
        f" AND EXISTS (SELECT 1 {in_execution} AND {e('status')} = %s)"
        f" RETURNING {columns}, {extra}, {pipeline_name} AS {quote('x_pipeline_name')}"
    )
    at = connection.ops.adapt_datetimefield_value(now)
    params: list[Any] = [
        TaskRunStatus.RUNNING,
        worker,
        at,
        at,
        _prep(TaskRun, "task_id", task_id),
        TaskRunStatus.QUEUED,
        ExecutionStatus.RUNNING,
    ]
    claim = TASK_RUN_MOVES[TaskRunEvent.CLAIM]
    if connection.vendor == "postgresql":
        recorded = ", ".join(sql_column(Transition, name) for name in _TRANSITION_COLUMNS)
        sql = (
            f"WITH claimed AS ({update}), recorded AS ("  # nosec B608 - names from model metadata, values bound
            f"INSERT INTO {quote(Transition._meta.db_table)} ({recorded})"
            f" SELECT {r('execution_id')}, {r('task_id')}, %s, %s, %s, '', {r('attempt')}, %s"
            f" FROM claimed) SELECT * FROM claimed"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, TaskRunStatus.QUEUED, claim.target, worker, at])
            row = cursor.fetchone()
        return _claimed(names, row)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(update, params)
            row = cursor.fetchone()
        task_run = _claimed(names, row)
        if task_run is not None:
            record_task_run(task_run, TaskRunStatus.QUEUED, actor=worker)
    return task_run


def _claimed(names: list[str], row: Any) -> TaskRun | None:
    if row is None:
        return None
    task_run: TaskRun = model_loaded(TaskRun, names, row[: len(names)])
    status, parameters, pipeline_id, version_id, pipeline_name = row[len(names) :]
    execution: Execution = model_loaded(
        Execution,
        ["execution_id", "status", "parameters", "pipeline_id", "version_id"],
        [row[names.index("execution_id")], status, parameters, pipeline_id, version_id],
    )
    pipeline: Pipeline = model_loaded(
        Pipeline, ["pipeline_id", "name"], [pipeline_id, pipeline_name]
    )
    execution.pipeline = pipeline
    task_run.execution = execution
    return task_run
