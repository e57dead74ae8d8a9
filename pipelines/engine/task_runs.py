"""Moves of one task run that finish nothing: enqueue, claim, lease, logs, blocking.

Moves that can make downstream tasks ready or finish the execution lock the
execution row first (``execution_lock``), so two tasks finishing at once
cannot both miss that their common downstream task became ready.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from pipelines import dag
from pipelines.engine.transitions import (
    TASK_RUN_MOVES,
    TaskRunEvent,
    insert_rows,
    model_loaded,
    record_task_run,
    sql_column,
    sql_columns,
    sql_field,
    task_run_move,
)
from pipelines.models import Execution, TaskLogLine, TaskRun, TaskRunStatus
from pipelines.queue import enqueue_task_runs
from pipelines.tasktypes.base import LeaseLost

NOT_OK = frozenset({TaskRunStatus.FAILED, TaskRunStatus.UPSTREAM_FAILED, TaskRunStatus.CANCELLED})


# Ids per conditional UPDATE of many task runs (well under SQLite's limit
# of bound parameters).
_IDS_PER_STATEMENT = 500


def execution_lock(execution_id: Any) -> Execution:
    """The execution's row, locked until the transaction ends (the whole row: it is current).

    One hand-written ``SELECT … FOR UPDATE`` (SQLite: the writing transaction
    already holds the database's write lock); Execution.DoesNotExist if gone.
    """
    names, columns = sql_columns(Execution, "e")
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT {columns} FROM {connection.ops.quote_name(Execution._meta.db_table)} e"  # nosec B608 - names from model metadata, values bound
        f" WHERE e.{sql_column(Execution, 'execution_id')} = %s{lock}"
    )
    pk = sql_field(Execution, "execution_id").get_db_prep_value(execution_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        raise Execution.DoesNotExist(f"execution {execution_id} does not exist")
    execution: Execution = model_loaded(Execution, names, row)
    return execution


def send_after_commit(task_ids: list[Any]) -> None:
    """Send the messages of queued task runs once the transaction commits."""
    if task_ids:
        transaction.on_commit(lambda: enqueue_task_runs(task_ids))


def task_runs_enqueue(task_runs: list[TaskRun], *, actor: str, reason: str = "") -> list[TaskRun]:
    """pending/up_for_retry/waiting → queued, then send their messages after commit.

    One conditional ``UPDATE … RETURNING`` per 500 runs; the runs it did
    not move (no longer in a source state) are left out of the answer.
    """
    move = TASK_RUN_MOVES[TaskRunEvent.ENQUEUE]
    now = timezone.now()
    quote = connection.ops.quote_name
    table = quote(TaskRun._meta.db_table)

    def c(name: str) -> str:
        return sql_column(TaskRun, name)

    sources = sorted(move.sources)
    pk = TaskRun._meta.pk
    assert pk is not None  # nosec B101 - type narrowing
    moved: set[Any] = set()
    for start in range(0, len(task_runs), _IDS_PER_STATEMENT):
        chunk = task_runs[start : start + _IDS_PER_STATEMENT]
        sql = (
            f"UPDATE {table} SET {c('status')} = %s, {c('queued_at')} = %s,"  # nosec B608 - names from model metadata, values bound
            f" {c('next_retry_at')} = NULL"
            f" WHERE {c('task_id')} IN ({', '.join(['%s'] * len(chunk))})"
            f" AND {c('status')} IN ({', '.join(['%s'] * len(sources))})"
            f" RETURNING {c('task_id')}"
        )
        params = [
            move.target,
            connection.ops.adapt_datetimefield_value(now),
            *(pk.get_db_prep_value(tr.pk, connection) for tr in chunk),
            *sources,
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            moved.update(pk.to_python(row[0]) for row in cursor.fetchall())
    queued = [tr for tr in task_runs if tr.pk in moved]
    for tr in queued:
        source = tr.status
        tr.status, tr.queued_at, tr.next_retry_at = move.target, now, None
        record_task_run(tr, source, actor=actor, reason=reason)
    send_after_commit([tr.pk for tr in queued])
    return queued


def downstream_release(changed: TaskRun, *, actor: str) -> list[TaskRun]:
    """After ``changed`` succeeded: count it off its downstream runs, queue those now ready.

    One ``UPDATE … RETURNING`` decrements ``waiting_for`` and moves the
    pending runs whose count reaches zero to queued. Each decrement takes
    the downstream row's lock, so exactly one upstream sees a count reach
    zero. A run whose count was above zero is pending or already finished
    (skipped, blocked, cancelled): a run only leaves pending for queued at
    zero, so a queued row at zero after this statement was moved by it.
    Returns the moved runs (not yet sent: see ``send_after_commit``).
    """
    move = TASK_RUN_MOVES[TaskRunEvent.ENQUEUE]
    now = timezone.now()
    quote = connection.ops.quote_name
    table = quote(TaskRun._meta.db_table)

    def c(name: str) -> str:
        return sql_column(TaskRun, name)

    names = list(changed.downstream)
    in_names = ", ".join(["%s"] * len(names))
    ready = f"{c('waiting_for')} = 1 AND {c('status')} = %s"
    sql = (
        f"UPDATE {table} SET {c('waiting_for')} = {c('waiting_for')} - 1,"  # nosec B608 - names from model metadata, values bound
        f" {c('status')} = CASE WHEN {ready} THEN %s ELSE {c('status')} END,"
        f" {c('queued_at')} = CASE WHEN {ready} THEN %s ELSE {c('queued_at')} END"
        f" WHERE {c('execution_id')} = %s AND {c('task_name')} IN ({in_names})"
        f" RETURNING {c('task_id')}, {c('task_name')}, {c('status')}, {c('waiting_for')},"
        f" {c('attempt')}"
    )
    pending = TaskRunStatus.PENDING
    params = [
        pending,
        move.target,
        pending,
        connection.ops.adapt_datetimefield_value(now),
        sql_field(TaskRun, "execution_id").get_db_prep_value(changed.execution_id, connection),
        *names,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    pk = TaskRun._meta.pk
    assert pk is not None  # nosec B101 - type narrowing
    moved = sorted(
        (
            TaskRun(
                task_id=pk.to_python(task_id),
                execution_id=changed.execution_id,
                task_name=name,
                status=move.target,
                waiting_for=0,
                attempt=attempt,
                queued_at=now,
            )
            for task_id, name, status, waiting_for, attempt in rows
            if status == move.target and waiting_for == 0
        ),
        key=lambda tr: tr.task_name,
    )
    for tr in moved:
        tr._state.adding, tr._state.db = False, connection.alias
        record_task_run(tr, pending, actor=actor, reason="upstream tasks succeeded")
    return moved


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
        write_log_lines(task_id, attempt, log_lines)
        status = Execution.objects.filter(tasks__pk=task_id).values_list("status", flat=True)[0]
    return status


def task_run_status(*, task_id: Any) -> tuple[str, int, str]:
    """(task status, attempt, execution status), read without locking."""
    row = TaskRun.objects.filter(pk=task_id).values_list("status", "attempt", "execution__status")[
        0
    ]
    return row[0], row[1], row[2]


def write_log_lines(task_id: Any, attempt: int, lines: list[dict[str, Any]]) -> None:
    """Insert buffered lines; each carries its ``seq`` (numbered per attempt by the worker)."""
    if lines:
        base = attempt * TaskLogLine.SEQ_PER_ATTEMPT
        insert_rows(
            TaskLogLine,
            ["task_run_id", "attempt", "seq", "at", "level", "message"],
            [
                (task_id, attempt, line.get("seq", base + i), line["at"])
                + (line["level"], line["message"])
                for i, line in enumerate(lines)
            ],
        )


def retry_delay_seconds(*, base: float, retry_number: int) -> float:
    """``base`` doubled per earlier retry, capped, with ±20 % jitter.

    Jitter spreads retries of many tasks failing on the same outage.
    """
    delay = min(base * (2 ** max(retry_number - 1, 0)), settings.RETRY_DELAY_CAP_SECONDS)
    return max(0.0, delay * random.uniform(0.8, 1.2))  # nosec B311 - jitter, not a secret


def block_downstream_of_failures(execution_id: Any, *, actor: str) -> None:
    """pending tasks downstream of a task that did not succeed → upstream_failed."""
    rows = list(
        TaskRun.objects.filter(execution_id=execution_id).values_list(
            "task_name", "status", "depends_on"
        )
    )
    failed = sorted(name for name, status, _ in rows if status in NOT_OK)
    if not failed:
        return
    graph = {name: list(deps) for name, _, deps in rows}
    pending = {name for name, status, _ in rows if status == TaskRunStatus.PENDING}
    now = timezone.now()
    for name in failed:
        blocked = dag.downstream(graph, name) & pending
        for task_run in TaskRun.objects.filter(execution_id=execution_id, task_name__in=blocked):
            if task_run_move(
                task_run,
                TaskRunEvent.BLOCK,
                actor=actor,
                reason=f"upstream task '{name}' did not succeed",
                ended_at=now,
            ):
                pending.discard(task_run.task_name)
