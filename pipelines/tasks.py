"""django-q2 entry points: load by id, call the service, let it raise."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django_q.models import Schedule
from django_q.tasks import async_task

from pipelines import runner
from pipelines.answers import maintenance_answers
from pipelines.engine.reaper import reap
from pipelines.engine.task_runs import write_log_lines
from pipelines.models import TaskLogLine, TaskRun
from pipelines.services import schedule_tick
from pipelines.services.retention import maintenance_prune
from pipelines.tasktypes.registry import task_type

logger = logging.getLogger(__name__)

MAINTAIN_LOCK = "datadog:maintain:lock"


def maintain_seconds() -> float:
    """How long one maintenance task runs passes before handing over.

    Short enough that a worker shutting down waits little for it, long
    enough that the hand-over through the broker is rare.
    """
    return float(max(4 * settings.REAPER_SECONDS, 5))


def run_task(task_id: str) -> str:
    return runner.run_task(task_id)


def maintenance_pass() -> None:
    """One reaper pass, one scheduler tick, a slice of history pruning and one
    of storing finished executions' answers."""
    abandoned_sweep(reap().abandoned)
    schedule_tick()
    # Last: a slow or failing prune never delays the reaper or the scheduler.
    maintenance_prune()
    maintenance_answers(max(0.5, settings.REAPER_SECONDS / 5))


def abandoned_sweep(task_ids: list[str]) -> None:
    """Clean what the killed last attempts of these failed task runs left (``TaskType.abandon``).

    The reaper failed them for good when their lease expired: the worker
    died without running its own cleanup (a copy's stage table, say). A
    cleanup that fails is logged on the run and not tried again.
    """
    for task_id in task_ids:
        try:
            _abandon(task_id)
        except Exception:
            # Never in the way of the scheduler tick and pruning after it.
            logger.exception("cleanup of task run %s failed", task_id)


def _abandon(task_id: str) -> None:
    task_run = TaskRun.objects.select_related("execution__pipeline").get(pk=task_id)
    ctx = runner.RunContext(task_run)
    try:
        task_type(task_run.task_type).abandon(ctx)
    except Exception as exc:
        logger.warning("cleanup of task run %s failed", task_id, exc_info=True)
        ctx.log(f"cleanup after the killed attempt failed: {exc}", "WARNING")
    finally:
        ctx.close()
    lines = ctx.take_log()
    if lines:
        # After the killed attempt's own lines, in its attempt.
        last = TaskLogLine.objects.filter(
            task_run_id=task_run.pk, attempt=task_run.attempt
        ).aggregate(seq=Max("seq"))["seq"]
        first = task_run.attempt * TaskLogLine.SEQ_PER_ATTEMPT if last is None else last + 1
        for i, line in enumerate(lines):
            line["seq"] = first + i
        write_log_lines(task_run.pk, task_run.attempt, lines)


def maintain() -> int:
    """Run maintenance passes every REAPER_SECONDS for about a minute."""
    period = settings.REAPER_SECONDS
    # The lock keeps one maintainer cluster-wide; it expires soon after its
    # holder dies, and the django-q2 schedule then starts a new chain.
    if not cache.add(MAINTAIN_LOCK, "1", timeout=int(maintain_seconds() + period + 5)):
        return 0
    passes = 0
    try:
        deadline = time.monotonic() + maintain_seconds()
        while True:
            try:
                maintenance_pass()
            except Exception:
                logger.exception("maintenance pass failed")
            passes += 1
            if time.monotonic() + period > deadline:
                break
            time.sleep(period)
    finally:
        cache.delete(MAINTAIN_LOCK)
    # Hand over to a fresh maintenance task at once; the django-q2 schedule
    # only restarts the chain if a worker died holding it.
    maintain_enqueue()
    return passes


def maintain_enqueue() -> None:
    async_task("pipelines.tasks.maintain", q_options={"save": False, "task_name": "maintain"})


def maintain_schedule_ensure() -> None:
    """The django-q2 schedule that (re)starts maintenance every minute.

    Worker processes starting together may race to create it; extras are
    removed on the next call (Schedule has no unique name constraint).
    """
    schedules = list(Schedule.objects.filter(name="datadog-maintain").order_by("pk"))
    if not schedules:
        Schedule.objects.create(
            name="datadog-maintain",
            func="pipelines.tasks.maintain",
            schedule_type=Schedule.MINUTES,
            minutes=1,
            repeats=-1,
        )
    for extra in schedules[1:]:
        extra.delete()


def on_worker_spawn(**_: object) -> None:
    """Start maintenance as soon as a worker process starts (not a minute later).

    Every new worker process asks; the lock lets one maintainer run and the
    extra tasks end at once.
    """
    try:
        maintain_schedule_ensure()
        maintain_enqueue()
    except Exception:
        logger.exception("could not start maintenance")
