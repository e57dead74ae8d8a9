"""Moves of executions: open, start, advance, finish, cancel, refuse.

Finishing an execution frees a slot, which starts the next queued one,
which advances its task runs, which may finish it: that loop lives in this
one module, above the task-run moves it uses.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.errors import Conflict
from pipelines import signals
from pipelines.definition import connection_refs
from pipelines.engine.task_runs import (
    NOT_OK,
    block_downstream_of_failures,
    downstream_release,
    execution_lock,
    send_after_commit,
    task_runs_enqueue,
)
from pipelines.engine.transitions import (
    EXECUTION_MOVES,
    TASK_RUN_MOVES,
    ExecutionEvent,
    TaskRunEvent,
    execution_move,
    record,
    record_task_run,
    sql_column,
    sql_field,
    task_run_claim_queued,
    task_run_move,
    transitions_batched,
)
from pipelines.models import (
    EXECUTION_FINISHED,
    EXECUTION_HOLDING_SLOT,
    TASK_DONE_OK,
    Execution,
    ExecutionStatus,
    Pipeline,
    TaskRun,
    TaskRunStatus,
)


def task_runs_for(
    definition: dict[str, Any], execution: Execution, skip: set[str]
) -> list[TaskRun]:
    """One task run per task; a partitioned copy gets one per chunk.

    ``skip`` names runs carried over as skipped (rerun): they count as done
    for the tasks waiting on them.
    """
    chunks_of: dict[str, list[str]] = {}
    for task in definition["tasks"]:
        partition = task.get("partition")
        chunks_of[task["name"]] = (
            [f"{task['name']}[{i}]" for i in range(partition["chunks"])]
            if partition
            else [task["name"]]
        )
    depends: dict[str, list[str]] = {}
    specs: dict[str, tuple[dict[str, Any], int | None, int | None]] = {}
    for task in definition["tasks"]:
        upstream = [run for up in task.get("depends_on", []) for run in chunks_of[up]]
        names = chunks_of[task["name"]]
        for index, name in enumerate(names):
            depends[name] = upstream
            partitioned = task.get("partition") is not None
            specs[name] = (
                task,
                index if partitioned else None,
                len(names) if partitioned else None,
            )
    downstream: dict[str, list[str]] = {name: [] for name in depends}
    for name, ups in depends.items():
        for up in ups:
            downstream[up].append(name)
    return [
        TaskRun(
            execution=execution,
            task_name=name,
            definition_task=task["name"],
            task_type=task["type"],
            depends_on=depends[name],
            downstream=downstream[name],
            waiting_for=sum(1 for up in depends[name] if up not in skip),
            spec=task,
            max_retries=task.get("retries", 0),
            chunk_index=index,
            chunk_count=count,
        )
        for name, (task, index, count) in specs.items()
    ]


def execution_open(
    execution: Execution,
    task_runs: list[TaskRun],
    *,
    skip: set[str],
    actor: str,
    reason: str,
    skip_reason: str = "",
    start: bool = False,
) -> None:
    """Save a new execution, its task runs (``task_runs_for``) and its first transition (→ queued).

    The runs named in ``skip`` are carried over as skipped. With ``start``
    (the caller, holding the pipeline's lock, found a free slot and no
    older queued execution) it is also started at once: saved running, its
    runs waiting for nothing saved queued, the same transition rows as a
    later start (queued → running; pending → queued), all rows in one
    INSERT per table, and their messages sent after commit.
    """
    start = start and not skip
    now = timezone.now()
    roots = [tr for tr in task_runs if tr.waiting_for == 0] if start else []
    if roots:
        execution.status = EXECUTION_MOVES[ExecutionEvent.START].target
        execution.started_at = now
        for tr in roots:
            tr.status, tr.queued_at = TASK_RUN_MOVES[TaskRunEvent.ENQUEUE].target, now
    execution.save(force_insert=True)
    TaskRun.objects.bulk_create(task_runs)
    if not roots:
        # Queued (or to be refused): a run finishing meanwhile does not wait
        # for this commit to free its slot (``_after_finish``), so look again
        # once it is committed.
        pipeline_id = execution.pipeline_id
        transaction.on_commit(lambda: start_queued_after_commit(pipeline_id))
    with transitions_batched():
        record(
            execution_id=execution.pk,
            task_run=None,
            from_status="",
            to_status=ExecutionStatus.QUEUED,
            actor=actor,
            reason=reason,
        )
        if roots:
            record(
                execution_id=execution.pk,
                task_run=None,
                from_status=ExecutionStatus.QUEUED,
                to_status=execution.status,
                actor="scheduler",
            )
            for tr in roots:
                record_task_run(
                    tr,
                    TaskRunStatus.PENDING,
                    actor="scheduler",
                    reason="no upstream left to wait for",
                )
            send_after_commit([tr.pk for tr in roots])
        if skip:
            for task_run in TaskRun.objects.filter(execution=execution, task_name__in=skip):
                task_run_move(
                    task_run, TaskRunEvent.SKIP, actor=actor, reason=skip_reason, ended_at=now
                )


def execution_refuse(execution: Execution, refused: dict[str, str], *, actor: str) -> None:
    """Fail a new execution at once: tasks on a refused connection fail, the others never start.

    The run is kept (not refused with an error response) so that manual,
    API, scheduled, backfill and rerun triggers all leave the same record.
    """
    now = timezone.now()
    why = "; ".join(refused.values())
    for task_run in TaskRun.objects.filter(execution=execution, status=TaskRunStatus.PENDING):
        names = {name for _, name in connection_refs({"tasks": [task_run.spec]})}
        errors = [refused[name] for name in sorted(names & set(refused))]
        if errors:
            task_run_move(
                task_run,
                TaskRunEvent.REFUSE,
                actor=actor,
                reason=errors[0],
                error="; ".join(errors),
                ended_at=now,
            )
        else:
            task_run_move(
                task_run,
                TaskRunEvent.CANCEL,
                actor=actor,
                reason=f"run refused: {why}"[:1000],
                ended_at=now,
            )
    execution_finish(execution=execution, actor=actor)


def executions_start_queued(*, pipeline: Pipeline) -> list[Execution]:
    """Start queued executions, oldest first, while the pipeline has free slots.

    The caller holds the pipeline's row lock.
    """
    waiting = list(
        Execution.objects.for_pipeline(pipeline)
        .queued()
        .order_by("created_at")[: pipeline.max_active_runs]
    )
    if not waiting:
        return []
    running = Execution.objects.for_pipeline(pipeline).holding_slot().count()
    free = pipeline.max_active_runs - running
    started = []
    for execution in waiting[: max(free, 0)]:
        if _execution_start(execution):
            started.append(execution)
    return started


def execution_slot_free(pipeline: Pipeline) -> bool:
    """A new execution of ``pipeline`` may start at once: a slot is free and none is queued.

    One statement. The caller holds the pipeline's row lock.
    """
    counts = (
        Execution.objects.for_pipeline(pipeline)
        .filter(status__in=[ExecutionStatus.QUEUED, *EXECUTION_HOLDING_SLOT])
        .aggregate(
            queued=Count("pk", filter=Q(status=ExecutionStatus.QUEUED)),
            holding=Count("pk", filter=Q(status__in=EXECUTION_HOLDING_SLOT)),
        )
    )
    return counts["queued"] == 0 and counts["holding"] < pipeline.max_active_runs


def _execution_start(execution: Execution) -> bool:
    """queued → running; enqueue the tasks that wait for nothing."""
    with transitions_batched():
        if not execution_move(
            execution, ExecutionEvent.START, actor="scheduler", started_at=timezone.now()
        ):
            return False
        _advance(execution.pk, actor="scheduler", execution=execution_lock(execution.pk))
    return True


def execution_finish(*, execution: Execution, actor: str, current: bool = False) -> None:
    """running|cancelling → success|failed|cancelled once every task finished.

    The caller holds the execution's row lock; ``current`` says
    ``execution`` was read under it (else it is read again).
    """
    if not current:
        execution.refresh_from_db()
    if execution.status in EXECUTION_FINISHED:
        return
    runs = list(
        TaskRun.objects.filter(execution_id=execution.pk).only(
            "task_name", "status", "metrics", "error"
        )
    )
    statuses = {tr.status for tr in runs}
    if execution.status == ExecutionStatus.CANCELLING:
        event = ExecutionEvent.STOP
    elif statuses & NOT_OK:
        event = ExecutionEvent.FAIL
    else:
        event = ExecutionEvent.SUCCEED
    now = timezone.now()
    started = execution.started_at or execution.created_at
    failed = [tr for tr in runs if tr.status == TaskRunStatus.FAILED]
    metrics = {
        "tasks_completed": sum(1 for tr in runs if tr.status == TaskRunStatus.SUCCESS),
        "tasks_failed": len(failed),
        "rows_read": sum(int(tr.metrics.get("rows_read", 0) or 0) for tr in runs),
        "rows_written": sum(int(tr.metrics.get("rows_written", 0) or 0) for tr in runs),
        "duration_seconds": round((now - started).total_seconds(), 3),
    }
    error = ""
    if failed:
        error = "; ".join(
            f"{tr.task_name}: {tr.error.splitlines()[0] if tr.error else 'failed'}" for tr in failed
        )[:2000]
    if not execution_move(
        execution, event, actor=actor, ended_at=now, metrics=metrics, error=error
    ):
        return
    pipeline_id, execution_id, status = execution.pipeline_id, execution.pk, execution.status
    transaction.on_commit(lambda: _after_finish(pipeline_id, execution_id, status))


def _after_finish(pipeline_id: Any, execution_id: Any, status: str) -> None:
    """Free the slot for queued runs; notify (metrics, alerts) after commit.

    The pipeline's lock is taken only when a run is queued. A run queued
    by a creation that commits after this look is started by that
    creation's own look after its commit (``execution_open``), which then
    sees this finish.
    """
    if executions_queued(pipeline_id):
        start_queued_after_commit(pipeline_id)
    signals.execution_finished.send(sender=Execution, execution_id=execution_id, status=status)


def executions_queued(pipeline_id: Any) -> bool:
    """``pipeline_id`` has a queued execution (committed), in one statement, no lock."""
    quote = connection.ops.quote_name
    sql = (
        f"SELECT 1 FROM {quote(Execution._meta.db_table)}"  # nosec B608 - names from model metadata, values bound
        f" WHERE {sql_column(Execution, 'pipeline_id')} = %s"
        f" AND {sql_column(Execution, 'status')} = %s LIMIT 1"
    )
    pipeline = sql_field(Execution, "pipeline_id").get_db_prep_value(pipeline_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [pipeline, ExecutionStatus.QUEUED])
        return cursor.fetchone() is not None


def start_queued_after_commit(pipeline_id: Any) -> None:
    """Under the pipeline's lock, start its queued executions while slots are free."""
    with transaction.atomic():
        pipeline = (
            Pipeline.objects.select_for_update()
            .only("pk", "max_active_runs")
            .filter(pk=pipeline_id)
            .first()
        )
        if pipeline is not None:
            executions_start_queued(pipeline=pipeline)


def execution_cancel_moves(*, execution: Execution, actor: str, reason: str = "") -> bool:
    """→ cancelling; waiting tasks are cancelled, running ones stop at their next check.

    The caller is in a transaction. Raises Conflict when the execution
    already finished; False when it is already cancelling (nothing written).
    """
    locked = Execution.objects.select_for_update().get(pk=execution.pk)
    if locked.status in EXECUTION_FINISHED:
        raise Conflict(f"execution already {locked.status}")
    if not execution_move(
        locked, ExecutionEvent.CANCEL, actor=actor, reason=reason or "cancel requested"
    ):
        return False
    now = timezone.now()
    for task_run in locked.tasks.filter(status__in=TASK_RUN_MOVES[TaskRunEvent.CANCEL].sources):
        task_run_move(
            task_run,
            TaskRunEvent.CANCEL,
            actor=actor,
            reason="execution cancelled",
            ended_at=now,
        )
    _advance(locked.pk, actor=actor, execution=locked)
    return True


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
            # Not checking the execution's state here is deliberate (no read, no
            # lock): a task enqueued for a cancelled execution is cancelled by
            # its claim, and a cancel cancels queued tasks too.
            enqueued = downstream_release(changed, actor=actor)
            # The claim takes a run only while the execution is running.
            keep = (
                task_run_claim_queued(enqueued[0].pk, worker=actor) if follow and enqueued else None
            )
            send_after_commit([tr.pk for tr in enqueued if keep is None or tr.pk != keep.pk])
            if keep is not None:
                return keep
    else:
        if execution is None:
            execution = Execution.objects.get(pk=execution_id)
        block_downstream_of_failures(execution_id, actor=actor)
        if execution.status == ExecutionStatus.RUNNING:
            ready = list(runs.filter(status=TaskRunStatus.PENDING, waiting_for=0))
            enqueued = task_runs_enqueue(ready, actor=actor, reason="no upstream left to wait for")
    # Something was just enqueued: the execution cannot be finished yet.
    if not enqueued and not runs.active().exists():
        if execution is None:
            execution = Execution.objects.get(pk=execution_id)
        execution_finish(execution=execution, actor=actor, current=True)
    return None


def advance_after(
    task_run: TaskRun,
    *,
    actor: str,
    execution: Execution | None = None,
    follow: bool = False,
) -> TaskRun | None:
    """After ``task_run`` moved (the caller holds the execution's lock): see ``_advance``."""
    return _advance(
        task_run.execution_id, actor=actor, changed=task_run, execution=execution, follow=follow
    )


def advance(*, execution_id: Any, actor: str) -> None:
    """Re-evaluate an execution under its lock (used by the reaper and on start)."""
    with transaction.atomic(), transitions_batched():
        _advance(execution_id, actor=actor, execution=execution_lock(execution_id))
