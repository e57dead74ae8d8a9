"""Sending task-run messages to the django-q2 broker (Redis, or the ORM embedded).

Messages carry ids only. The broker may lose a message (Redis is at most
once); the database row stays ``queued`` and the reaper sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django_q.brokers import get_broker
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

RUN_TASK = "pipelines.tasks.run_task"


def enqueue_task_runs(task_ids: Iterable[Any]) -> None:
    for task_id in task_ids:
        try:
            # save=False: our own rows record the outcome; django-q2's result
            # rows would only double the writes per task.
            async_task(
                RUN_TASK, str(task_id), q_options={"save": False, "task_name": f"task-{task_id}"}
            )
        except Exception:  # the broker is down: the reaper re-sends queued rows
            logger.exception("could not enqueue task run %s; the reaper will retry", task_id)


def queue_depth() -> int:
    """Messages waiting in the broker."""
    try:
        return int(get_broker().queue_size() or 0)
    except Exception:
        logger.warning("could not read the broker's queue size", exc_info=True)
        return -1
