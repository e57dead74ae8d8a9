"""Executions as users and the scheduler ask for them: create, cancel, rerun.

The moves themselves (start, advance, finish, the task runs') are the
engine's (``pipelines.engine``); these add parameters, idempotency, the
connection check and the audit trail.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.actor import SYSTEM, Actor
from accounts.permissions import Action, can
from accounts.services import audit_cli_actor, audit_record
from core.errors import Conflict, InvalidInput
from pipelines import dag
from pipelines.definition import BUILTIN_PARAMETERS, connection_refs
from pipelines.engine.executions import (
    execution_cancel_moves,
    execution_open,
    execution_refuse,
    execution_slot_free,
    executions_start_queued,
    task_runs_for,
)
from pipelines.models import (
    EXECUTION_FINISHED,
    ConnectionBinding,
    Execution,
    IdempotencyKey,
    Pipeline,
    PipelineVersion,
    TaskRun,
    TaskRunStatus,
    Trigger,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def actor_of(actor: Actor, default: str = "system") -> str:
    """What a transition row names as its actor."""
    if actor.user is not None:
        return f"user:{actor.user.get_username()}"
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


@transaction.atomic
def execution_create(
    *,
    pipeline: Pipeline,
    trigger: Trigger = Trigger.MANUAL,
    parameters: dict[str, Any] | None = None,
    actor: Actor = SYSTEM,
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
    # The version holds the definition: the pipeline's copy is not read.
    pipeline = (
        Pipeline.objects.select_for_update()
        .defer("definition", "parameters", "description", "tags")
        .get(pk=pipeline.pk)
    )
    user = actor.user
    if idempotency_key and user is not None:
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
        created_by=user,
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
    skip = skip_tasks or set()
    task_runs = task_runs_for(definition, execution, skip)
    to_run = [tr for tr in task_runs if tr.task_name not in skip]
    refused = _connections_refused(pipeline, version, to_run)
    # Started at once (one write per table) when nothing is refused, a slot
    # is free and no older run waits; otherwise queued, and started below
    # (or later) in order.
    start_now = not skip and not refused and execution_slot_free(pipeline)
    execution_open(
        execution,
        task_runs,
        skip=skip,
        actor=actor_of(actor, default=trigger),
        reason=f"trigger {trigger}",
        skip_reason=f"succeeded in execution {rerun_of.pk if rerun_of else '-'}",
        start=start_now,
    )
    if idempotency_key and user is not None:
        IdempotencyKey.objects.create(
            user=user, pipeline=pipeline, key=idempotency_key, execution=execution
        )
    # A schedule's run is the platform's and not audited; a user's or a
    # command's (run_pipeline, backfill) is.
    if actor != SYSTEM or audit_cli_actor():
        audit_record(
            action="execute",
            obj=pipeline,
            by=actor,
            details={"execution_id": str(execution.pk), "trigger": str(trigger)},
        )
    if start_now:
        return execution
    if refused:
        execution_refuse(execution, refused, actor=actor_of(actor, default=trigger))
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


@transaction.atomic
def execution_cancel(*, execution: Execution, actor: Actor = SYSTEM, reason: str = "") -> Execution:
    """Cancel: waiting tasks never start, running tasks stop at their next check.

    Raises Conflict when the execution already finished.
    """
    if not execution_cancel_moves(execution=execution, actor=actor_of(actor), reason=reason):
        execution.refresh_from_db()
        return execution  # already cancelling
    if actor != SYSTEM:
        audit_record(
            action="cancel",
            obj=execution.pipeline,
            by=actor,
            details={"execution_id": str(execution.pk)},
        )
    execution.refresh_from_db()
    return execution


@transaction.atomic
def execution_rerun(
    *,
    execution: Execution,
    from_task: str | None = None,
    actor: Actor = SYSTEM,
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
        actor=actor,
        interval=interval,
        version=execution.version,
        rerun_of=execution,
        skip_tasks=set(graph) - to_run,
    )
    return new
