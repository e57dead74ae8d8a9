"""The engine's guarantees (SPEC §3) with real qcluster worker processes.

Workers are started on the test database; processes are killed and stopped
for real. Lease 4 s, heartbeat 1 s, reaper every 1 s, lost-message grace 3 s
(set in the root conftest for every process).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from connectors.services import connection_create
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Transition
from pipelines.services import execution_cancel, execution_create, pipeline_create
from tests.services import scratch_postgres_db
from tests.workers import finished, running, wait_for, worker_pid

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]


@pytest.fixture
def pg_target(transactional_db: Any) -> Iterator[str]:
    """A scratch PostgreSQL database behind a connection named ``pg``."""
    with scratch_postgres_db() as url:
        parsed = urlparse(url)
        connection_create(
            name="pg",
            kind="postgresql",
            config={
                "host": parsed.hostname,
                "port": parsed.port or 5432,
                "database": parsed.path.lstrip("/"),
                "username": parsed.username or "postgres",
            },
        )
        yield url


def sql_task(name: str, sql: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": "pg", "sql": sql, **extra}


def make(name: str, tasks: list[dict[str, Any]], **extra: Any) -> Any:
    return pipeline_create(data={"name": name, "tasks": tasks, **extra})


def task(execution: Execution, name: str) -> TaskRun:
    return execution.tasks.get(task_name=name)


def test_it_runs_a_diamond_in_dependency_order(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make(
        "diamond",
        [
            sql_task("a", "SELECT pg_sleep(0.2)"),
            sql_task("b", "SELECT pg_sleep(0.2)", depends_on=["a"]),
            sql_task("c", "SELECT pg_sleep(0.2)", depends_on=["a"]),
            sql_task("d", "SELECT 1", depends_on=["b", "c"]),
        ],
    )
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    runs = {tr.task_name: tr for tr in execution.tasks.all()}
    assert runs["b"].started_at >= runs["a"].ended_at
    assert runs["c"].started_at >= runs["a"].ended_at
    assert runs["d"].started_at >= max(runs["b"].ended_at, runs["c"].ended_at)
    assert execution.metrics["tasks_completed"] == 4


def test_it_fails_downstream_and_finishes_independent_branch(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make(
        "branches",
        [
            sql_task("bad", "SELEC broken", retries=3),
            sql_task("after_bad", "SELECT 1", depends_on=["bad"]),
            sql_task("good", "SELECT 1"),
            sql_task("after_good", "SELECT 1", depends_on=["good"]),
        ],
    )
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.FAILED
    statuses = dict(execution.tasks.values_list("task_name", "status"))
    assert statuses == {
        "bad": "failed",
        "after_bad": "upstream_failed",
        "good": "success",
        "after_good": "success",
    }
    bad = task(execution, "bad")
    assert bad.retry_count == 0 and bad.attempt == 1  # a syntax error is never retried
    assert "syntax" in bad.error.lower()


def test_it_retries_a_lost_connection_with_backoff(workers: Any, pg_target: str) -> None:
    workers()
    # The task kills its own database session: a real "connection lost".
    pipeline = make(
        "flaky",
        [sql_task("t", "SELECT pg_terminate_backend(pg_backend_pid())", retries=2, retry_delay=1)],
    )
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.FAILED
    run = task(execution, "t")
    assert (run.attempt, run.retry_count) == (3, 2)
    retries = list(
        Transition.objects.filter(task_run=run, to_status=TaskRunStatus.UP_FOR_RETRY).order_by("at")
    )
    requeues = list(
        Transition.objects.filter(task_run=run, to_status=TaskRunStatus.QUEUED).order_by("at")
    )[1:]
    assert len(retries) == len(requeues) == 2
    # retry_delay 1 s then 2 s (±20 % jitter): each wait at least the delay.
    waits = [(q.at - r.at).total_seconds() for r, q in zip(retries, requeues, strict=True)]
    assert waits[0] >= 0.8 and waits[1] >= 1.6, waits


def _backend_running(url: str, needle: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f"%{needle}%",),
        ).fetchone()
    return bool(row and row[0])


def test_it_times_out_and_stops_the_query(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make("slow", [sql_task("t", "SELECT pg_sleep(30) /* timeout-probe */", timeout=2)])
    execution = finished(execution_create(pipeline=pipeline), timeout=30)
    assert execution.status == ExecutionStatus.FAILED
    run = task(execution, "t")
    assert "timed out" in run.error
    assert (run.ended_at - run.started_at).total_seconds() < 10
    assert not _backend_running(pg_target, "timeout-probe")


def test_it_cancels_within_10s_and_starts_nothing_downstream(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make(
        "long",
        [
            sql_task("sleepy", "SELECT pg_sleep(60) /* cancel-probe */"),
            sql_task("after", "SELECT 1", depends_on=["sleepy"]),
        ],
    )
    execution = execution_create(pipeline=pipeline)
    running(execution, "sleepy")
    asked = time.monotonic()
    execution_cancel(execution=execution)
    finished(execution, timeout=15)
    assert time.monotonic() - asked < 10
    assert execution.status == ExecutionStatus.CANCELLED
    assert task(execution, "sleepy").status == TaskRunStatus.CANCELLED
    after = task(execution, "after")
    assert after.status == TaskRunStatus.CANCELLED and after.started_at is None
    assert not _backend_running(pg_target, "cancel-probe")


def test_it_recovers_a_task_whose_worker_was_sigkilled(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make("killed", [sql_task("t", "SELECT pg_sleep(3)", retries=1, retry_delay=0)])
    execution = execution_create(pipeline=pipeline)
    run = running(execution, "t")
    killed_at = timezone.now()
    os.kill(worker_pid(run), signal.SIGKILL)
    finished(execution, timeout=40)
    assert execution.status == ExecutionStatus.SUCCESS
    run.refresh_from_db()
    assert run.attempt == 2 and run.retry_count == 1
    lost = Transition.objects.get(task_run=run, to_status=TaskRunStatus.UP_FOR_RETRY)
    assert lost.actor == "reaper" and "no heartbeat" in lost.reason
    # Detected within the lease plus one reaper period (plus scheduling slack).
    detected = (lost.at - killed_at).total_seconds()
    assert detected <= settings.TASK_LEASE_SECONDS + settings.REAPER_SECONDS + 2, detected


def test_it_fails_a_sigkilled_task_without_retries_never_leaving_it_running(
    workers: Any, pg_target: str
) -> None:
    workers()
    pipeline = make("killed2", [sql_task("t", "SELECT pg_sleep(20)")])
    execution = execution_create(pipeline=pipeline)
    run = running(execution, "t")
    killed = time.monotonic()
    os.kill(worker_pid(run), signal.SIGKILL)
    finished(execution, timeout=30)
    took = time.monotonic() - killed
    assert execution.status == ExecutionStatus.FAILED
    assert "no heartbeat" in task(execution, "t").error
    lease = settings.TASK_LEASE_SECONDS
    assert took < lease + settings.REAPER_SECONDS + 5, took


def test_it_refuses_writes_from_a_worker_stopped_past_its_lease(
    workers: Any, pg_target: str
) -> None:
    workers()
    pipeline = make("stopped", [sql_task("t", "SELECT pg_sleep(6)", retries=1, retry_delay=0)])
    execution = execution_create(pipeline=pipeline)
    first = running(execution, "t")
    stale_pid = worker_pid(first)
    os.kill(stale_pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: task(execution, "t").attempt == 2 and task(execution, "t").status == "running",
            timeout=30,
            what="a second attempt to take over",
        )
    finally:
        os.kill(stale_pid, signal.SIGCONT)
    finished(execution, timeout=40)
    assert execution.status == ExecutionStatus.SUCCESS
    run = task(execution, "t")
    assert run.attempt == 2 and worker_pid(run) != stale_pid
    stale_worker = first.worker
    late = Transition.objects.filter(task_run=run, attempt=1, actor=stale_worker).exclude(
        to_status=TaskRunStatus.RUNNING
    )
    assert not late.exists(), "the stale worker wrote a transition"
    assert not run.log_lines.filter(attempt=1, message__contains="succeeded").exists()


def test_it_resends_a_task_message_lost_in_redis(workers: Any, pg_target: str) -> None:
    if not settings.REDIS_URL:
        pytest.skip("the lost-message case is about the Redis broker (REDIS_URL unset)")
    import redis

    pipeline = make("lost", [sql_task("t", "SELECT 1")])
    execution = execution_create(pipeline=pipeline)  # no worker yet: message waits in Redis
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"django_q:{settings.Q_CLUSTER['name']}:q"
    wait_for(lambda: client.llen(key) > 0, timeout=5, what="the message in Redis")
    client.delete(key)  # the broker loses it
    workers()
    finished(execution, timeout=40)
    assert execution.status == ExecutionStatus.SUCCESS
    run = task(execution, "t")
    assert Transition.objects.filter(task_run=run, to_status="running").count() == 1


def test_it_finishes_runs_queued_while_no_worker_was_up(workers: Any, pg_target: str) -> None:
    pipeline = make(
        "queued", [sql_task("a", "SELECT 1"), sql_task("b", "SELECT 1", depends_on=["a"])]
    )
    first = execution_create(pipeline=pipeline)
    second = execution_create(pipeline=pipeline)
    cluster = workers()
    finished(first)
    cluster.stop()  # a restart: stop every worker, then start again
    third = execution_create(pipeline=pipeline)
    workers()
    for execution in (first, second, third):
        assert finished(execution).status == ExecutionStatus.SUCCESS


def test_it_keeps_each_task_runs_log(workers: Any, pg_target: str) -> None:
    workers()
    pipeline = make("logged", [sql_task("t", ["SELECT 1", "SELECT 2"])])
    execution = finished(execution_create(pipeline=pipeline))
    lines = list(task(execution, "t").log_lines.values_list("message", flat=True))
    assert lines[0].startswith("attempt 1 started on worker:")
    assert any("statement 2/2" in line for line in lines)
    assert lines[-1] == "succeeded"


def test_it_runs_from_the_command_line_with_exit_codes(workers: Any, pg_target: str) -> None:
    import subprocess
    import sys

    from tests.workers import BASE_DIR, database_url_of_tests

    workers()
    make("cli_ok", [sql_task("t", "SELECT %(n)s::int", retries=0)], parameters={"n": 1})
    make("cli_bad", [sql_task("t", "SELECT * FROM no_such_table")])
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
        "SECRET_KEY": settings.SECRET_KEY,
        "FERNET_KEYS": ",".join(settings.FERNET_KEYS),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "run_pipeline", *args, "--wait", "--timeout", "60"],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )

    ok = cli("cli_ok", "--param", "n=7")
    assert ok.returncode == 0, ok.stderr
    assert "[##############################] 1/1 success" in ok.stdout
    bad = cli("cli_bad")
    assert bad.returncode == 1
    assert "no_such_table" in bad.stderr and "ended failed" in bad.stderr
