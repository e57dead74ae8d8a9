"""State changes of executions: create, start, cancel, finish, rerun."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.permissions import Action, can
from accounts.services import audit_cli_actor, audit_record
from core.errors import Conflict, InvalidInput
from pipelines import dag, signals
from pipelines.definition import BUILTIN_PARAMETERS, connection_refs
from pipelines.models import (
    EXECUTION_FINISHED,
    ConnectionBinding,
    Execution,
    ExecutionStatus,
    IdempotencyKey,
    Pipeline,
    PipelineVersion,
    TaskRun,
    TaskRunStatus,
    Transition,
    Trigger,
)
from pipelines.services.task_run import _advance, _move, record

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def actor_of(user: Any, default: str = "system") -> str:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.get_username()}"
    return default


def _resolve_parameters(
    definition: dict[str, Any], overrides: dict[str, Any] | None
) -> dict[str, Any]:
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise InvalidInput("invalid parameters", [("parameters", "must be an object")])
    defaults = definition.get("parameters") or {}
    problems = [
        (f"parameters.{key}", "unknown parameter") for key in overrides if key not in defaults
    ]
    problems += [
        (f"parameters.{key}", "built-in parameter; cannot be set")
        for key in overrides
        if key in BUILTIN_PARAMETERS
    ]
    if problems:
        raise InvalidInput("invalid parameters", problems)
    return {**defaults, **overrides}


def _task_runs_for(
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


@transaction.atomic
def execution_create(
    *,
    pipeline: Pipeline,
    trigger: Trigger = Trigger.MANUAL,
    parameters: dict[str, Any] | None = None,
    user: Any = None,
    request: HttpRequest | None = None,
    interval: tuple[datetime, datetime] | None = None,
    idempotency_key: str | None = None,
    version: PipelineVersion | None = None,
    rerun_of: Execution | None = None,
    skip_tasks: set[str] | None = None,
) -> Execution:
    """Record a new execution with its task runs; it starts when a slot is free.

    With ``idempotency_key`` the same user, pipeline and key within 24 h get
    the execution made the first time.
    """
    # The pipeline row lock serializes creations per pipeline, which makes the
    # idempotency check and the max_active_runs count race-free.
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if idempotency_key and user is not None and user.is_authenticated:
        existing = (
            IdempotencyKey.objects.filter(user=user, pipeline=pipeline, key=idempotency_key)
            .select_related("execution")
            .first()
        )
        if existing and existing.created_at >= timezone.now() - IDEMPOTENCY_WINDOW:
            return existing.execution
        if existing:
            existing.delete()
    version = version or pipeline.versions.order_by("-version").first()
    assert version is not None  # nosec B101 - type narrowing
    definition = version.definition
    params = _resolve_parameters(definition, parameters)
    now = timezone.now()
    start, end = interval if interval else (now, now)
    execution = Execution(
        pipeline=pipeline,
        version=version,
        trigger=trigger,
        created_by=user if user is not None and user.is_authenticated else None,
        logical_date=start,
        data_interval_start=start,
        data_interval_end=end,
        rerun_of=rerun_of,
    )
    execution.parameters = {
        **params,
        "execution_id": str(execution.execution_id),
        "logical_date": start.isoformat(),
        "data_interval_start": start.isoformat(),
        "data_interval_end": end.isoformat(),
    }
    execution.save()
    task_runs = _task_runs_for(definition, execution, skip_tasks or set())
    TaskRun.objects.bulk_create(task_runs)
    record(
        execution_id=execution.pk,
        task_run=None,
        from_status="",
        to_status=ExecutionStatus.QUEUED,
        actor=actor_of(user, default=trigger),
        reason=f"trigger {trigger}",
    )
    if skip_tasks:
        for task_run in TaskRun.objects.filter(execution=execution, task_name__in=skip_tasks):
            _move(
                task_run,
                to=TaskRunStatus.SKIPPED,
                expected={TaskRunStatus.PENDING},
                actor=actor_of(user, default=trigger),
                reason=f"succeeded in execution {rerun_of.pk if rerun_of else '-'}",
                ended_at=now,
            )
    if idempotency_key and user is not None and user.is_authenticated:
        IdempotencyKey.objects.create(
            user=user, pipeline=pipeline, key=idempotency_key, execution=execution
        )
    # A schedule's run is the platform's and not audited; a user's or a
    # command's (run_pipeline, backfill) is.
    if user is not None or audit_cli_actor():
        audit_record(
            action="execute",
            actor=user,
            obj=pipeline,
            request=request,
            details={"execution_id": str(execution.pk), "trigger": str(trigger)},
        )
    refused = _connections_refused(
        pipeline, version, [tr for tr in task_runs if tr.task_name not in (skip_tasks or set())]
    )
    if refused:
        _execution_refuse(execution, refused, actor=actor_of(user, default=trigger))
    executions_start_queued(pipeline=pipeline)
    execution.refresh_from_db()
    return execution


def _connections_refused(
    pipeline: Pipeline, version: PipelineVersion, task_runs: list[TaskRun]
) -> dict[str, str]:
    """``{connection name: why this run may not use it}`` for the tasks about to run.

    Checked whenever a run is created (SPEC §9), whoever creates it: the
    version's binding must still point at a connection, and the pipeline
    owner must still have the right to use it (a share can be revoked after
    the pipeline was made). A pipeline without an owner was made by the
    system (a management command) and has no right to re-check.
    """
    names = {name for _, name in connection_refs({"tasks": [tr.spec for tr in task_runs]})}
    if not names:
        return {}
    bound = {
        b.name: b.connection
        for b in version.bindings.filter(name__in=names).select_related("connection")
    }
    owner = pipeline.created_by
    refused = {}
    for name in sorted(names):
        conn = bound.get(name)
        if conn is None:
            refused[name] = ConnectionBinding.gone(name)
        elif owner is not None and not can(owner, Action.USE, conn):
            refused[name] = (
                f"the pipeline owner '{owner.get_username()}' may no longer use connection '{name}'"
            )
    return refused


def _execution_refuse(execution: Execution, refused: dict[str, str], *, actor: str) -> None:
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
            _move(
                task_run,
                to=TaskRunStatus.FAILED,
                expected={TaskRunStatus.PENDING},
                actor=actor,
                reason=errors[0],
                error="; ".join(errors),
                ended_at=now,
            )
        else:
            _move(
                task_run,
                to=TaskRunStatus.CANCELLED,
                expected={TaskRunStatus.PENDING},
                actor=actor,
                reason=f"run refused: {why}"[:1000],
                ended_at=now,
            )
    execution_finish(execution=execution, actor=actor)


def executions_start_queued(*, pipeline: Pipeline) -> list[Execution]:
    """Start queued executions, oldest first, while the pipeline has free slots.

    The caller holds the pipeline's row lock.
    """
    running = Execution.objects.filter(
        pipeline=pipeline, status__in=[ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING]
    ).count()
    free = pipeline.max_active_runs - running
    if free <= 0:
        return []
    started = []
    for execution in Execution.objects.filter(
        pipeline=pipeline, status=ExecutionStatus.QUEUED
    ).order_by("created_at")[:free]:
        if _execution_start(execution):
            started.append(execution)
    return started


def _execution_start(execution: Execution) -> bool:
    """queued → running; enqueue the tasks that wait for nothing."""
    now = timezone.now()
    moved = Execution.objects.filter(pk=execution.pk, status=ExecutionStatus.QUEUED).update(
        status=ExecutionStatus.RUNNING, started_at=now
    )
    if moved != 1:
        return False
    record(
        execution_id=execution.pk,
        task_run=None,
        from_status=ExecutionStatus.QUEUED,
        to_status=ExecutionStatus.RUNNING,
        actor="scheduler",
    )
    Execution.objects.select_for_update().get(pk=execution.pk)
    _advance(execution.pk, actor="scheduler")
    return True


def execution_finish(*, execution: Execution, actor: str) -> None:
    """running|cancelling → success|failed|cancelled once every task finished.

    The caller holds the execution's row lock.
    """
    execution.refresh_from_db()
    if execution.status in EXECUTION_FINISHED:
        return
    runs = list(execution.tasks.all())
    statuses = {tr.status for tr in runs}
    if execution.status == ExecutionStatus.CANCELLING:
        final = ExecutionStatus.CANCELLED
    elif statuses & {TaskRunStatus.FAILED, TaskRunStatus.UPSTREAM_FAILED, TaskRunStatus.CANCELLED}:
        final = ExecutionStatus.FAILED
    else:
        final = ExecutionStatus.SUCCESS
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
    moved = Execution.objects.filter(pk=execution.pk, status=execution.status).update(
        status=final, ended_at=now, metrics=metrics, error=error
    )
    if moved != 1:
        return
    record(
        execution_id=execution.pk,
        task_run=None,
        from_status=execution.status,
        to_status=final,
        actor=actor,
    )
    pipeline_id = execution.pipeline_id
    execution_id = execution.pk
    transaction.on_commit(lambda: _after_finish(pipeline_id, execution_id))


def _after_finish(pipeline_id: Any, execution_id: Any) -> None:
    """Free the slot for queued runs; notify (metrics, alerts) after commit."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().filter(pk=pipeline_id).first()
        if pipeline is not None:
            executions_start_queued(pipeline=pipeline)
    signals.execution_finished.send(sender=Execution, execution_id=execution_id)


@transaction.atomic
def execution_cancel(
    *, execution: Execution, user: Any = None, request: HttpRequest | None = None, reason: str = ""
) -> Execution:
    """Cancel: waiting tasks never start, running tasks stop at their next check.

    Raises Conflict when the execution already finished.
    """
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    actor = actor_of(user)
    if execution.status in EXECUTION_FINISHED:
        raise Conflict(f"execution already {execution.status}")
    if execution.status == ExecutionStatus.CANCELLING:
        return execution
    old = execution.status
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.CANCELLING)
    record(
        execution_id=execution.pk,
        task_run=None,
        from_status=old,
        to_status=ExecutionStatus.CANCELLING,
        actor=actor,
        reason=reason or "cancel requested",
    )
    now = timezone.now()
    for task_run in execution.tasks.filter(
        status__in=[TaskRunStatus.PENDING, TaskRunStatus.QUEUED, TaskRunStatus.UP_FOR_RETRY]
    ):
        _move(
            task_run,
            to=TaskRunStatus.CANCELLED,
            expected={TaskRunStatus.PENDING, TaskRunStatus.QUEUED, TaskRunStatus.UP_FOR_RETRY},
            actor=actor,
            reason="execution cancelled",
            ended_at=now,
        )
    _advance(execution.pk, actor=actor)
    if user is not None:
        audit_record(
            action="cancel",
            actor=user,
            obj=execution.pipeline,
            request=request,
            details={"execution_id": str(execution.pk)},
        )
    execution.refresh_from_db()
    return execution


@transaction.atomic
def execution_rerun(
    *,
    execution: Execution,
    from_task: str | None = None,
    user: Any = None,
    request: HttpRequest | None = None,
) -> Execution:
    """A new execution (same version and parameters) of what did not succeed.

    Without ``from_task``: the tasks that did not succeed and everything
    downstream of them run; the others are carried over as ``skipped``.
    With ``from_task``: that task and its downstream run.
    """
    if execution.status not in EXECUTION_FINISHED:
        raise Conflict(f"execution is {execution.status}; rerun needs a finished execution")
    runs = list(execution.tasks.all())
    graph = {tr.task_name: list(tr.depends_on) for tr in runs}
    definition_names = {tr.definition_task for tr in runs}
    if from_task is not None:
        if from_task not in definition_names:
            raise InvalidInput("invalid rerun", [("from_task", f"unknown task '{from_task}'")])
        roots = {tr.task_name for tr in runs if tr.definition_task == from_task}
    else:
        roots = {tr.task_name for tr in runs if tr.status != TaskRunStatus.SUCCESS}
        if not roots:
            raise Conflict("every task succeeded; nothing to rerun (use from_task)")
    to_run = set(roots)
    for root in roots:
        to_run |= dag.downstream(graph, root)
    params = {k: v for k, v in execution.parameters.items() if k not in BUILTIN_PARAMETERS}
    interval = (
        (execution.data_interval_start, execution.data_interval_end)
        if execution.data_interval_start and execution.data_interval_end
        else None
    )
    new = execution_create(
        pipeline=execution.pipeline,
        trigger=Trigger.RERUN,
        parameters=params,
        user=user,
        request=request,
        interval=interval,
        version=execution.version,
        rerun_of=execution,
        skip_tasks=set(graph) - to_run,
    )
    return new


def execution_transitions(execution: Execution) -> list[Transition]:
    return list(execution.transitions.select_related("task_run"))
