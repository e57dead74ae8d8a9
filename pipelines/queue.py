"""Sending task-run messages to the django-q2 broker (Redis, or the ORM embedded).

Messages carry ids only. The broker may lose a message (Redis is at most
once); the database row stays ``queued`` and the reaper sends it again.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable
from typing import Any

from django_q.brokers import Broker, get_broker
from django_q.brokers.redis_broker import Redis
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

RUN_TASK = "pipelines.tasks.run_task"

# One broker per process: django-q2's async_task otherwise makes a new one,
# with a new Redis connection pool and connection, for every message.
_BROKERS: dict[int, Broker] = {}


def broker() -> Broker:
    """This process's broker (a forked worker makes its own)."""
    pid = os.getpid()
    if pid not in _BROKERS:
        _BROKERS.clear()
        _BROKERS[pid] = get_broker()
    return _BROKERS[pid]


def enqueue_task_runs(task_ids: Iterable[Any]) -> None:
    """Send one message per task run; many go to Redis in one round trip."""
    ids = list(task_ids)
    target = broker()
    pipe = None
    if len(ids) > 1 and isinstance(target, Redis):
        # The same messages, buffered by a Redis pipeline and sent at once.
        pipe = target.connection.pipeline(transaction=False)
        target = copy.copy(target)
        target.connection = pipe
    for task_id in ids:
        try:
            # save=False: our own rows record the outcome; django-q2's result
            # rows would only double the writes per task.
            async_task(
                RUN_TASK,
                str(task_id),
                q_options={"save": False, "task_name": f"task-{task_id}", "broker": target},
            )
        except Exception:  # the broker is down: the reaper re-sends queued rows
            logger.exception("could not enqueue task run %s; the reaper will retry", task_id)
    if pipe is not None:
        try:
            pipe.execute()
        except Exception:
            logger.exception("could not enqueue %d task runs; the reaper will retry", len(ids))


def queue_depth() -> int:
    """Messages waiting in the broker."""
    try:
        return int(broker().queue_size() or 0)
    except Exception:
        logger.warning("could not read the broker's queue size", exc_info=True)
        return -1
