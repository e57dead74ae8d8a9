"""django-q2 entry points: load by id, call the service, let it raise."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

from pipelines import runner
from pipelines.services import reap, schedule_tick

logger = logging.getLogger(__name__)

MAINTAIN_LOCK = "datadog:maintain:lock"
# One maintenance task runs passes for about a minute; the 1-minute django-q2
# schedule starts the next one. The lock keeps a single maintainer cluster-wide
# and expires if its worker dies, so another takes over.
MAINTAIN_SECONDS = 55


def run_task(task_id: str) -> str:
    return runner.run_task(task_id)


def maintenance_pass() -> None:
    """One reaper pass and one scheduler tick."""
    reap()
    schedule_tick()


def maintain() -> int:
    """Run maintenance passes every REAPER_SECONDS for about a minute."""
    period = settings.REAPER_SECONDS
    if not cache.add(MAINTAIN_LOCK, "1", timeout=MAINTAIN_SECONDS + 2 * period + 30):
        return 0
    passes = 0
    try:
        deadline = time.monotonic() + MAINTAIN_SECONDS
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
    from django_q.tasks import async_task

    async_task("pipelines.tasks.maintain", q_options={"save": False, "task_name": "maintain"})


def maintain_schedule_ensure() -> None:
    """The django-q2 schedule that (re)starts maintenance every minute."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="datadog-maintain",
        defaults={
            "func": "pipelines.tasks.maintain",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def on_worker_spawn(**_: object) -> None:
    """Start maintenance as soon as a worker process starts (not a minute later)."""
    try:
        maintain_schedule_ensure()
        if cache.add("datadog:maintain:kick", "1", timeout=30):
            maintain_enqueue()
    except Exception:
        logger.exception("could not start maintenance")
