"""History retention (pipelines.services.retention): what goes, what stays, in batches.

Run on the embedded SQLite default and, with DATABASE_URL set, on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import audit_record
from pipelines.models import (
    ConnectionBinding,
    Execution,
    IdempotencyKey,
    PipelineVersion,
    TaskLogLine,
    TaskRun,
    Transition,
)
from pipelines.services import execution_create
from pipelines.services.retention import IDLE_KEY, executions_prune, prune, retention_cutoff
from pipelines.signals import prune_limit
from pipelines.tasks import maintenance_pass
from tests.factories import make_execution
from tests.workers import FINISHED, wait_for

DAY = 86400
CHAIN = [
    {"name": "t1", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
    {"name": "t2", "type": "sql", "connection": "wh", "sql": "SELECT 2", "depends_on": ["t1"]},
    {"name": "t3", "type": "sql", "connection": "wh", "sql": "SELECT 3", "depends_on": ["t2"]},
]


def with_history(execution: Execution, lines: int = 3) -> Execution:
    """Transitions (the execution's and one per task run) and log lines, as the engine writes."""
    now = timezone.now()
    tasks = list(execution.tasks.all())
    Transition.objects.bulk_create(
        [Transition(execution=execution, from_status="queued", to_status="running", actor="t")]
        + [
            Transition(
                execution=execution,
                task_run=t,
                from_status="queued",
                to_status="running",
                actor="t",
            )
            for t in tasks
        ]
    )
    TaskLogLine.objects.bulk_create(
        TaskLogLine(task_run=t, attempt=1, seq=i, at=now, level="INFO", message=f"line {i}")
        for t in tasks
        for i in range(lines)
    )
    return execution


def old(pipeline: Any, status: str = "success", *, days: float, lines: int = 3) -> Execution:
    """An execution created ``days`` ago (finished 5 s later unless active), with history."""
    return with_history(make_execution(pipeline, status, ago=days * DAY), lines)


def rows_of(execution: Execution) -> tuple[int, int, int, int]:
    """(execution, task runs, transitions, log lines) still in the database."""
    return (
        Execution.objects.filter(pk=execution.pk).count(),
        TaskRun.objects.filter(execution_id=execution.pk).count(),
        Transition.objects.filter(execution_id=execution.pk).count(),
        TaskLogLine.objects.filter(task_run__execution_id=execution.pk).count(),
    )


@pytest.mark.usefixtures("isolated_cache")
def test_it_deletes_old_finished_executions_with_their_rows_and_keeps_the_rest(
    owned: Any, developer: Any
) -> None:
    gone = [old(owned, status, days=120 + i) for i, status in enumerate(FINISHED)]
    IdempotencyKey.objects.create(key="k1", user=developer, pipeline=owned, execution=gone[0])
    # A recent rerun of an old execution stays, and forgets what it reran.
    rerun = old(owned, days=1)
    Execution.objects.filter(pk=rerun.pk).update(rerun_of=gone[0])
    recent = old(owned, "failed", days=89)
    # Active for 100 days (queued behind max_active_runs, say): never deleted.
    stuck = old(owned, "queued", days=100)
    versions, bindings = PipelineVersion.objects.count(), ConnectionBinding.objects.count()
    assert bindings > 0

    result = executions_prune(before=retention_cutoff(90))

    assert [rows_of(e) for e in gone] == [(0, 0, 0, 0)] * 3
    assert rows_of(rerun) == rows_of(recent) == rows_of(stuck) == (1, 2, 3, 6)
    assert (result.executions, result.task_runs, result.transitions, result.log_lines) == (
        3,
        6,
        9,
        18,
    )
    assert result.complete
    assert not IdempotencyKey.objects.exists()
    assert Execution.objects.get(pk=rerun.pk).rerun_of_id is None
    assert PipelineVersion.objects.count() == versions
    assert ConnectionBinding.objects.count() == bindings


@pytest.mark.usefixtures("isolated_cache")
def test_it_keeps_finished_runs_created_after_an_old_active_one(owned: Any) -> None:
    """The /metrics base stops before the oldest active execution: what was created
    after it is not counted there yet, so it waits until that execution finishes."""
    before_stuck = old(owned, days=130)
    stuck = old(owned, "running", days=120)
    after_stuck = old(owned, days=110)

    dry = executions_prune(before=retention_cutoff(90), dry_run=True)
    assert (dry.executions, dry.held_back, dry.task_runs, dry.log_lines) == (1, 1, 2, 6)
    assert rows_of(before_stuck) == (1, 2, 3, 6)  # a dry run deletes nothing

    executions_prune(before=retention_cutoff(90))
    assert rows_of(before_stuck) == (0, 0, 0, 0)
    assert rows_of(stuck)[0] == rows_of(after_stuck)[0] == 1

    # It finishes: the base moves past the held run, which goes on the next prune.
    Execution.objects.filter(pk=stuck.pk).update(
        status="failed", ended_at=timezone.now() - timedelta(days=100)
    )
    result = executions_prune(before=retention_cutoff(90))
    assert result.executions == 2
    assert not Execution.objects.exists()


@pytest.mark.usefixtures("isolated_cache")
def test_a_receiver_that_refuses_holds_every_execution(owned: Any) -> None:
    kept = old(owned, days=200)

    def refuse(sender: Any, **_: Any) -> None:
        return None

    prune_limit.connect(refuse, dispatch_uid="test-refuse")
    try:
        result = executions_prune(before=retention_cutoff(90))
    finally:
        prune_limit.disconnect(dispatch_uid="test-refuse")
    assert result.executions == 0
    assert rows_of(kept) == (1, 2, 3, 6)
    assert executions_prune(before=retention_cutoff(90)).executions == 1


@pytest.mark.usefixtures("isolated_cache")
def test_it_works_in_batches_and_stops_between_them_at_the_deadline(owned: Any) -> None:
    runs = [old(owned, days=100 + i, lines=1) for i in range(7)]

    first = executions_prune(
        before=retention_cutoff(90), batch_size=3, deadline=time.monotonic() - 1
    )
    assert (first.executions, first.complete) == (3, False)
    # Oldest first.
    assert set(Execution.objects.values_list("pk", flat=True)) == {e.pk for e in runs[:4]}

    rest = executions_prune(before=retention_cutoff(90), batch_size=3)
    assert (rest.executions, rest.task_runs, rest.complete) == (4, 8, True)
    assert not TaskRun.objects.exists()


@pytest.mark.usefixtures("isolated_cache")
def test_it_deletes_audit_events_past_their_own_retention(owned: Any) -> None:
    for days in (400, 366, 364, 10):
        event = audit_record(action="pipeline_update", obj=owned, details={"days": days})
        AuditEvent.objects.filter(pk=event.pk).update(at=timezone.now() - timedelta(days=days))
    run = old(owned, days=200)

    result = prune(days=365, audit_days=365, batch_size=1)

    assert result.audit_events == 2
    kept = sorted(e.details["days"] for e in AuditEvent.objects.filter(action="pipeline_update"))
    assert kept == [10, 364]
    # 365 days for executions too here: a 200-day-old run stays.
    assert rows_of(run)[0] == 1


@pytest.mark.usefixtures("isolated_cache")
def test_zero_days_keeps_that_history(owned: Any, settings: Any) -> None:
    settings.RETENTION_DAYS = 0
    settings.AUDIT_RETENTION_DAYS = 0
    run = old(owned, days=5000)
    event = audit_record(action="pipeline_update", obj=owned)
    AuditEvent.objects.filter(pk=event.pk).update(at=timezone.now() - timedelta(days=5000))

    assert prune().rows == 0
    assert rows_of(run)[0] == 1
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.usefixtures("isolated_cache", "no_broker")
def test_the_maintenance_pass_prunes_then_rests(owned: Any, settings: Any) -> None:
    settings.RETENTION_DAYS = 30
    gone = old(owned, days=31)
    cache.delete(IDLE_KEY)

    maintenance_pass()
    assert rows_of(gone) == (0, 0, 0, 0)
    assert cache.get(IDLE_KEY)

    # Nothing left at the last look: the next passes do not look for a while.
    later = old(owned, days=40)
    maintenance_pass()
    assert rows_of(later)[0] == 1
    cache.delete(IDLE_KEY)
    maintenance_pass()
    assert rows_of(later)[0] == 0


# --- With runs in flight ----------------------------------------------------


def queued_behind_a_full_slot(make_pipeline: Callable[..., Any], *, days: float) -> Execution:
    """An execution queued ``days`` ago that stays queued while workers run.

    Its pipeline's one slot is held by a running execution whose task waits
    for a retry due tomorrow, so neither the reaper nor a worker moves it.
    """
    blocked = make_pipeline("blocked", tasks=CHAIN[:1], max_active_runs=1)
    holder = make_execution(blocked, "running", tasks={"t1": "up_for_retry"})
    holder.tasks.update(next_retry_at=timezone.now() + timedelta(days=1))
    return old(blocked, "queued", days=days)


def _finished(execution: Execution, timeout: float = 90) -> Execution:
    def done() -> bool:
        execution.refresh_from_db()
        return execution.status in FINISHED

    wait_for(done, timeout=timeout, what=f"execution {execution.pk} to finish")
    return execution


@pytest.mark.worker
@pytest.mark.timeout(240)
@pytest.mark.usefixtures("isolated_cache")
def test_a_prune_while_workers_run_pipelines_leaves_them_alone(
    workers: Any, make_pipeline: Callable[..., Any]
) -> None:
    pipeline = make_pipeline("chain", tasks=CHAIN)
    history = [old(pipeline, ("success", "failed")[i % 2], days=100 + i / 10) for i in range(60)]
    stuck = queued_behind_a_full_slot(make_pipeline, days=95)
    # These workers do not prune themselves: this process does, while they run.
    workers(env={"RETENTION_DAYS": "0", "AUDIT_RETENTION_DAYS": "0"})
    live = [execution_create(pipeline=pipeline) for _ in range(6)]
    wait_for(
        lambda: TaskRun.objects.filter(execution__in=live, status="success").exists(),
        timeout=60,
        what="the first task of a live run to succeed",
    )

    result = executions_prune(before=retention_cutoff(90), batch_size=5)
    more = [execution_create(pipeline=pipeline) for _ in range(3)]

    assert result.executions == 60
    assert result.log_lines == 60 * 3 * 3
    assert not Execution.objects.filter(pk__in=[e.pk for e in history]).exists()
    for run in live + more:
        assert _finished(run).status == "success", run.error
        assert rows_of(run)[1] == 3
    assert Execution.objects.get(pk=stuck.pk).status == "queued"
    assert rows_of(stuck) == (1, 1, 2, 3)


@pytest.mark.worker
@pytest.mark.timeout(240)
def test_the_workers_prune_on_their_own(workers: Any, make_pipeline: Callable[..., Any]) -> None:
    pipeline = make_pipeline("chain", tasks=CHAIN)
    history = [old(pipeline, days=100 + i) for i in range(10)]
    stuck = queued_behind_a_full_slot(make_pipeline, days=95)
    recent = old(pipeline, days=80)
    cache.delete(IDLE_KEY)  # shared with the workers (Redis, or the var dir's file cache)

    workers()
    run = execution_create(pipeline=pipeline)

    wait_for(
        lambda: not Execution.objects.filter(pk__in=[e.pk for e in history]).exists(),
        timeout=90,
        what="the workers' maintenance to prune the old runs",
    )
    assert not TaskLogLine.objects.filter(task_run__execution__in=history).exists()
    assert rows_of(stuck) == (1, 1, 2, 3)
    assert Execution.objects.get(pk=stuck.pk).status == "queued"
    assert rows_of(recent)[0] == 1
    assert _finished(run).status == "success", run.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("isolated_cache")
def test_two_prunes_at_once_share_the_work(owned: Any) -> None:
    """Two prunes at once (the command while the worker prunes): no error, no row twice."""
    for i in range(40):
        old(owned, days=100 + i, lines=1)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(executions_prune(before=retention_cutoff(90), batch_size=4))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.executions for r in results) == 40
    assert sum(r.task_runs for r in results) == 80
    assert not Execution.objects.exists()
