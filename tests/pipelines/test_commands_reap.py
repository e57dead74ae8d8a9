"""The ``reap`` management command: one reaper pass by hand, through ``call_command``.

What the pass does case by case is in test_engine_reaper; here the command
itself: it runs the pass on the real database, reports the counts it changed
on stdout, and leaves the rows it moved with their transition rows. (Its audit
event is tested in tests/accounts/test_audit_gaps.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from pipelines.engine.attempts import task_run_claim
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Transition
from pipelines.services import execution_create

# Task runs sent to the broker are recorded in ``no_broker`` (no worker runs here).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]


def reap() -> str:
    out = StringIO()
    call_command("reap", stdout=out)
    return out.getvalue().strip()


def task(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": "wh", "sql": "SELECT 1", **extra}


def test_it_reports_nothing_changed_when_every_run_is_healthy(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=make_pipeline(tasks=[task("t")]))
    running = task_run_claim(task_id=execution.tasks.get().pk, worker="w1")
    assert running is not None
    no_broker.clear()
    before = Transition.objects.count()
    assert reap() == (
        "expired leases 0, re-sent 0, retries enqueued 0, checks enqueued 0, "
        "executions advanced 0, started 0"
    )
    assert Transition.objects.count() == before and no_broker == []
    assert TaskRun.objects.get(pk=running.pk).status == TaskRunStatus.RUNNING


def test_it_repairs_a_lost_worker_and_a_lost_message_and_reports_the_counts(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    execution = execution_create(
        pipeline=make_pipeline(tasks=[task("dead", retries=1), task("unsent")])
    )
    dead = task_run_claim(task_id=execution.tasks.get(task_name="dead").pk, worker="w-dead")
    assert dead is not None
    unsent = execution.tasks.get(task_name="unsent")
    long_ago = timezone.now() - timedelta(hours=1)
    TaskRun.objects.filter(pk=dead.pk).update(heartbeat_at=long_ago)
    TaskRun.objects.filter(pk=unsent.pk).update(queued_at=long_ago)
    no_broker.clear()
    assert reap() == (
        "expired leases 1, re-sent 1, retries enqueued 0, checks enqueued 0, "
        "executions advanced 0, started 0"
    )
    assert TaskRun.objects.get(pk=dead.pk).status == TaskRunStatus.UP_FOR_RETRY
    assert Transition.objects.filter(
        task_run_id=dead.pk, to_status="up_for_retry", actor="reaper"
    ).exists()
    assert no_broker == [unsent.pk]
    # A second pass by hand finds the re-sent message within its grace: nothing to do.
    assert reap().startswith("expired leases 0, re-sent 0")


def test_it_starts_a_queued_execution_behind_a_finished_one(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    pipeline = make_pipeline(tasks=[task("t")], max_active_runs=1)
    first = execution_create(pipeline=pipeline)
    waiting = execution_create(pipeline=pipeline)
    Execution.objects.filter(pk=first.pk).update(status=ExecutionStatus.CANCELLED)
    TaskRun.objects.filter(execution=first).update(status=TaskRunStatus.CANCELLED)
    assert reap().endswith("executions advanced 0, started 1")
    waiting.refresh_from_db()
    assert waiting.status == ExecutionStatus.RUNNING
