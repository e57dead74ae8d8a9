"""/metrics counters survive a prune: the stored base already counts what it deletes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pipelines.models import Execution, TaskRun
from pipelines.services.retention import executions_prune, retention_cutoff
from tests.factories import make_execution
from tests.ops.conftest import Samples, scrape, value

COUNTERS = (
    "datadog_pipeline_executions_total",
    "datadog_pipeline_execution_duration_seconds_",
    "datadog_task_runs_total",
    "datadog_rows_total",
)
DAY = 86400


def counters(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if key[0].startswith(COUNTERS)}


def finished_run(pipeline: Any, status: str, *, days: float, seconds: float = 5) -> Execution:
    """A finished execution ``days`` old with rows moved, a retry and finished tasks."""
    tasks = {"t1": "success", "t2": "success" if status == "success" else "failed"}
    run = make_execution(pipeline, status, ago=days * DAY, tasks=tasks)
    Execution.objects.filter(pk=run.pk).update(
        ended_at=run.started_at + timedelta(seconds=seconds),
        metrics={"rows_read": 7, "rows_written": 3},
    )
    TaskRun.objects.filter(execution=run, task_name="t1").update(retry_count=1)
    return run


@pytest.mark.usefixtures("no_broker")
def test_counters_are_the_same_before_and_after_a_prune(
    make_pipeline: Callable[..., Any],
) -> None:
    orders, users = make_pipeline("orders"), make_pipeline("users")
    for i, status in enumerate(["success", "failed", "cancelled", "success"]):
        finished_run(orders, status, days=130 + i, seconds=0.2 + 40 * i)
    finished_run(users, "failed", days=125)
    # Queued for 120 days (behind max_active_runs): the base stops before it.
    stuck = make_execution(users, "queued", ago=120 * DAY)
    after_stuck = finished_run(users, "success", days=110)
    finished_run(orders, "success", days=1)
    make_execution(orders, "running")
    # Finished a moment ago: after the horizon, counted live, not in the base.
    just_now = finished_run(orders, "success", days=0)

    before = counters(scrape())
    assert (
        value(before, "datadog_pipeline_executions_total", pipeline="orders", status="success") == 4
    )

    result = executions_prune(before=retention_cutoff(90))

    assert result.executions == 5
    assert Execution.objects.filter(pk__in=[stuck.pk, after_stuck.pk]).count() == 2
    assert counters(scrape()) == before

    # The stuck run fails at last: counted once; then the runs it held go too.
    Execution.objects.filter(pk=stuck.pk).update(
        status="failed", ended_at=timezone.now() - timedelta(days=100)
    )
    counted = counters(scrape())
    assert counted != before
    assert executions_prune(before=retention_cutoff(90)).executions == 2
    assert counters(scrape()) == counted

    # What the prune limit prevents: deleting a run the base does not count
    # yet lowers a counter.
    Execution.objects.filter(pk=just_now.pk).delete()
    assert counters(scrape()) != counted
