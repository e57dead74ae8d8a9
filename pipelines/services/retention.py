"""History retention: old finished executions and old audit events are deleted.

Finished executions whose run ended ``RETENTION_DAYS`` ago go with their
task runs, transitions and log lines; audit events after
``AUDIT_RETENTION_DAYS`` (0 keeps either forever). Both are deleted in
bounded batches, oldest first, each batch in its own short transaction:
an execution batch deletes its log lines, then its transitions, then the
executions (Django's collector takes the task runs and anything else that
points at an execution), so no statement touches more than one batch's
rows and no table is locked. An active execution is never selected,
however old.

Only executions the ``pipelines.signals.prune_limit`` receivers allow
are deleted: ``ops.metrics`` allows those its stored counter base already
counts, so ``/metrics`` counters do not go down. An execution active for
longer than the retention (queued behind ``max_active_runs`` for months)
holds that base back, and with it the pruning of executions created after
it, until it finishes.

``manage.py prune`` runs it by hand; the worker's maintenance passes run
it in slices of a few seconds (``maintenance_prune``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.services import audit_prune
from core.batches import run_batches
from pipelines.models import Execution, ExecutionQuerySet, TaskLogLine, TaskRun, Transition
from pipelines.signals import prune_limit

logger = logging.getLogger(__name__)

# Executions per transaction, with all their rows.
BATCH_SIZE = 500
# After a maintenance prune found nothing left, the next one looks again
# this much later (each look advances the metrics base and runs two queries).
IDLE_SECONDS = 600
IDLE_KEY = "datadog:prune:idle"


@dataclass
class PruneResult:
    """What a prune deleted (or, dry, would delete) and whether anything is left."""

    executions: int = 0
    task_runs: int = 0
    transitions: int = 0
    log_lines: int = 0
    audit_events: int = 0
    # False when the deadline stopped it with rows left to delete.
    complete: bool = True
    # Executions past the retention kept because a prune_limit receiver
    # refused them (the metrics base does not count them yet); set by a
    # dry run and by the command.
    held_back: int = 0

    @property
    def rows(self) -> int:
        return (
            self.executions + self.task_runs + self.transitions + self.log_lines + self.audit_events
        )

    def __str__(self) -> str:
        return (
            f"{self.executions} executions, {self.task_runs} task runs, "
            f"{self.transitions} transitions, {self.log_lines} log lines, "
            f"{self.audit_events} audit events"
        )


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The instant ``days`` days before ``now``: what ended before it is past retention."""
    return (now or timezone.now()) - timedelta(days=days)


def _created_limit(before: datetime) -> datetime | None:
    """The earliest creation time the prune_limit receivers allow, capped at ``before``.

    None when a receiver refused or failed: nothing may be deleted now.
    """
    limit = before
    for receiver, answer in prune_limit.send_robust(sender=Execution):
        if answer is None or isinstance(answer, Exception):
            logger.warning(
                "prune held back by %s: %r", getattr(receiver, "__name__", receiver), answer
            )
            return None
        limit = min(limit, answer)
    return limit


def executions_past(before: datetime) -> ExecutionQuerySet:
    """Finished executions that ended before ``before``, whatever the prune limit.

    A finished execution ended after it was created, so the ``created_at``
    bound changes no result; it lets the database walk the
    (status, created_at) index instead of scanning the table.
    """
    return Execution.objects.finished().filter(created_at__lt=before, ended_at__lt=before)


def executions_prune(
    *,
    before: datetime,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Delete finished executions that ended before ``before``, with their rows.

    ``batch_size`` executions per transaction, oldest first; ``deadline``
    (a ``time.monotonic()`` value) stops it between batches. ``dry_run``
    counts instead of deleting.
    """
    result = PruneResult()
    limit = _created_limit(before)
    past = executions_past(before)
    allowed = past.none() if limit is None else past.filter(created_at__lt=limit)
    if dry_run:
        result.executions = allowed.count()
        result.held_back = past.count() - result.executions
        result.task_runs = TaskRun.objects.filter(execution__in=allowed).count()
        result.transitions = Transition.objects.filter(execution__in=allowed).count()
        result.log_lines = TaskLogLine.objects.filter(task_run__execution__in=allowed).count()
        return result

    def step() -> int:
        with transaction.atomic():
            # SKIP LOCKED (PostgreSQL): a concurrent prune takes other rows
            # instead of waiting for these; SQLite has no row locks, and
            # serializes the two transactions instead.
            ids = list(
                allowed.order_by("created_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return 0
            # Children first, each one statement through its index; the
            # collector below then finds none of these left to load.
            # task_run IN (a subquery), not task_run__execution: Django would
            # write that join as "id IN (SELECT id ... JOIN)", one more index
            # probe per log line.
            task_runs = TaskRun.objects.filter(execution_id__in=ids).values("pk")
            result.log_lines += TaskLogLine.objects.filter(task_run__in=task_runs).delete()[0]
            result.transitions += Transition.objects.filter(execution_id__in=ids).delete()[0]
            _, counts = Execution.objects.filter(pk__in=ids).delete()
        result.executions += counts.get(Execution._meta.label, 0)
        result.task_runs += counts.get(TaskRun._meta.label, 0)
        result.transitions += counts.get(Transition._meta.label, 0)
        result.log_lines += counts.get(TaskLogLine._meta.label, 0)
        return len(ids)

    result.complete = run_batches(step, batch_size=batch_size, deadline=deadline)
    return result


def prune(
    *,
    days: int | None = None,
    audit_days: int | None = None,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Apply both retentions (``RETENTION_DAYS``, ``AUDIT_RETENTION_DAYS`` unless given).

    A retention of 0 days keeps that history. Executions go first; the
    audit events get what is left of the time until ``deadline``.
    """
    days = settings.RETENTION_DAYS if days is None else days
    audit_days = settings.AUDIT_RETENTION_DAYS if audit_days is None else audit_days
    now = now or timezone.now()
    result = PruneResult()
    if days:
        result = executions_prune(
            before=retention_cutoff(days, now),
            batch_size=batch_size,
            deadline=deadline,
            dry_run=dry_run,
        )
    if audit_days and result.complete:
        result.audit_events, result.complete = audit_prune(
            before=retention_cutoff(audit_days, now),
            batch_size=batch_size,
            deadline=deadline,
            dry_run=dry_run,
        )
    if result.rows and not dry_run:
        logger.info("pruned %s", result)
    return result


def maintenance_prune() -> PruneResult | None:
    """One slice of pruning for a maintenance pass; None when there was nothing to look at.

    A slice lasts at most a fifth of REAPER_SECONDS, so reaping and
    scheduling keep their pace while a backlog is worked off pass by pass.
    Once a slice finds nothing left, the passes skip pruning for
    IDLE_SECONDS.
    """
    if not (settings.RETENTION_DAYS or settings.AUDIT_RETENTION_DAYS) or cache.get(IDLE_KEY):
        return None
    result = prune(deadline=time.monotonic() + max(0.5, settings.REAPER_SECONDS / 5))
    if result.complete:
        cache.set(IDLE_KEY, "1", IDLE_SECONDS)
    return result
