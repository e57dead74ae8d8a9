"""pipelines.runner: one claimed task run, run in this process exactly as a worker runs it.

``run_task`` claims the run, starts the watchdog thread, runs the real task
type on a real SQLite file under a per-test DATA_ROOT and reports through the
task-run services. Only the broker hop is replaced by a list of sent ids.
The watchdog's stops are provoked for real: a statement that outlives the
task's timeout, a cancel committed from another thread, another attempt
taking the run over; each must stop the statement in SQLite (interrupt) and
report the right outcome.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from connectors.models import Connection
from connectors.services import connection_update
from pipelines.engine.attempts import task_run_claim
from pipelines.models import (
    ConnectionBinding,
    Execution,
    ExecutionStatus,
    TaskLogLine,
    TaskRun,
    TaskRunStatus,
    Transition,
)
from pipelines.runner import RunContext, run_task, worker_name
from pipelines.services import execution_cancel, execution_create
from pipelines.tasktypes.base import LeaseLost, TaskCancelled, TaskFailed, TaskTimedOut

# Task runs sent to the broker are recorded in ``no_broker`` (no worker runs here).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]

# A statement SQLite needs minutes for: only an interrupt ends it within the test.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000)"
    " SELECT count(*) FROM n"
)


@pytest.fixture
def data(make_pipeline: Callable[..., Any], settings: Any) -> Path:
    """The DATA_ROOT of this test (where the ``wh`` connection's file lives)."""
    make_pipeline("seed")  # creates ``wh`` under the per-test DATA_ROOT
    return Path(settings.DATA_ROOT)


def sql(name: str, statement: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": "wh", "sql": statement, **extra}


def messages(task_run_id: Any) -> list[str]:
    return list(
        TaskLogLine.objects.filter(task_run_id=task_run_id)
        .order_by("seq")
        .values_list("message", flat=True)
    )


@contextmanager
def later(seconds: float, action: Callable[[], Any]) -> Iterator[threading.Thread]:
    """Run ``action`` in another thread (with its own database connection) after ``seconds``."""

    def body() -> None:
        time.sleep(seconds)
        try:
            action()
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    yield thread
    thread.join(timeout=30)


def test_it_runs_a_task_and_the_ready_downstream_one_in_the_same_worker(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any]
) -> None:
    pipeline = make_pipeline(
        "chain",
        tasks=[
            sql("make", "CREATE TABLE t AS SELECT 1 AS x UNION ALL SELECT 2"),
            sql("grow", "INSERT INTO t SELECT x + 10 FROM t", depends_on=["make"]),
        ],
    )
    execution = execution_create(pipeline=pipeline)
    first = execution.tasks.get(task_name="make")
    no_broker.clear()
    assert run_task(str(first.pk)) == "success"
    with sqlite3.connect(data / "wh.sqlite") as db:
        assert sorted(r[0] for r in db.execute("SELECT x FROM t")) == [1, 2, 11, 12]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCESS
    assert no_broker == []  # "grow" ran here without a broker hop
    grow = execution.tasks.get(task_name="grow")
    assert grow.worker == worker_name() and grow.metrics["rows_affected"] == 2
    assert messages(grow.pk) == [
        f"attempt 1 started on {worker_name()}",
        "statement 1/1: 2 row(s) affected",
        "succeeded",
    ]
    assert run_task(str(first.pk)) == "not claimed"  # a duplicate message does nothing


def test_it_sends_the_downstream_task_to_the_broker_after_the_follow_window(
    make_pipeline: Callable[..., Any], data: Path, no_broker: list[Any], settings: Any
) -> None:
    settings.FOLLOW_DOWNSTREAM_SECONDS = 0
    pipeline = make_pipeline(
        "chain0", tasks=[sql("a", "SELECT 1"), sql("b", "SELECT 2", depends_on=["a"])]
    )
    execution = execution_create(pipeline=pipeline)
    no_broker.clear()
    assert run_task(str(execution.tasks.get(task_name="a").pk)) == "success"
    b = execution.tasks.get(task_name="b")
    assert b.status == TaskRunStatus.QUEUED and no_broker == [b.pk]


def test_it_records_a_database_error_as_a_failure_with_its_log(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    execution = execution_create(
        pipeline=make_pipeline("broken", tasks=[sql("bad", "SELECT * FROM no_such_table")])
    )
    task_run = execution.tasks.get()
    assert run_task(str(task_run.pk)) == "failed"
    task_run.refresh_from_db()
    assert task_run.status == TaskRunStatus.FAILED
    assert "no_such_table" in task_run.error
    assert messages(task_run.pk)[-1] == f"failed: {task_run.error}"
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED


def test_it_stops_a_statement_that_outlives_the_timeout_and_retries_it(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    execution = execution_create(
        pipeline=make_pipeline(
            "slow", tasks=[sql("slow", ENDLESS, timeout=1, retries=1, retry_delay=0)]
        )
    )
    task_run = execution.tasks.get()
    started = time.monotonic()
    assert run_task(str(task_run.pk)) == "up_for_retry"  # a timeout is transient
    assert time.monotonic() - started < 15  # interrupted, not run to its end
    task_run.refresh_from_db()
    assert task_run.error == "timed out after 1s" and task_run.retry_count == 1
    assert Transition.objects.filter(task_run=task_run, to_status="up_for_retry").exists()


def test_it_stops_a_running_statement_when_the_execution_is_cancelled(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    execution = execution_create(pipeline=make_pipeline("cancel", tasks=[sql("slow", ENDLESS)]))
    task_run = execution.tasks.get()

    def cancel() -> None:
        execution_cancel(execution=Execution.objects.get(pk=execution.pk), reason="by test")

    started = time.monotonic()
    with later(1.5, cancel):
        assert run_task(str(task_run.pk)) == "cancelled"
    assert time.monotonic() - started < 20
    task_run.refresh_from_db()
    assert task_run.status == TaskRunStatus.CANCELLED
    assert "cancelled" in messages(task_run.pk)[-1]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED


def test_it_writes_nothing_when_another_attempt_took_the_run_over(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    execution = execution_create(pipeline=make_pipeline("taken", tasks=[sql("slow", ENDLESS)]))
    task_run = execution.tasks.get()

    def take_over() -> None:
        # What the reaper and a new worker do to a run whose lease expired.
        TaskRun.objects.filter(pk=task_run.pk).update(attempt=2, worker="worker:other:1")

    with later(1.5, take_over):
        assert run_task(str(task_run.pk)) == "lease lost"
    task_run.refresh_from_db()
    assert (task_run.status, task_run.attempt, task_run.worker) == (
        TaskRunStatus.RUNNING,
        2,
        "worker:other:1",
    )
    assert not Transition.objects.filter(task_run=task_run, from_status="running").exists()


def test_it_fails_a_task_whose_connection_binding_is_gone(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    execution = execution_create(pipeline=make_pipeline("orphan", tasks=[sql("t", "SELECT 1")]))
    task_run = execution.tasks.get()
    execution.version.bindings.all().delete()  # the connection was deleted since
    assert run_task(str(task_run.pk)) == "failed"
    task_run.refresh_from_db()
    assert task_run.error == ConnectionBinding.gone("wh")


def test_it_uses_the_connection_as_edited_since_this_process_last_used_it(
    make_pipeline: Callable[..., Any], data: Path
) -> None:
    pipeline = make_pipeline("edited", tasks=[sql("t", "CREATE TABLE runs AS SELECT 1 AS x")])
    first = execution_create(pipeline=pipeline)
    assert run_task(str(first.tasks.get().pk)) == "success"
    connection_update(connection=Connection.objects.get(name="wh"), config={"path": "moved.sqlite"})
    second = execution_create(pipeline=pipeline)
    # Same process, same version: the edit is seen (else "table runs already exists").
    assert run_task(str(second.tasks.get().pk)) == "success"
    for path in (data / "wh.sqlite", data / "moved.sqlite"):
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT x FROM runs").fetchall() == [(1,)]


# ------------------------------------------------------------ the context itself


@pytest.fixture
def ctx(make_pipeline: Callable[..., Any], data: Path) -> RunContext:
    """A RunContext on a claimed run (what the runner builds before the task type runs)."""
    execution = execution_create(
        pipeline=make_pipeline(
            "ctx", tasks=[sql("t", "SELECT 1", timeout=30)], parameters={"day": "2026-01-01"}
        )
    )
    task_run = task_run_claim(task_id=execution.tasks.get().pk, worker="w1")
    assert task_run is not None
    return RunContext(task_run)


def test_it_caps_the_task_log_and_says_so(ctx: RunContext, settings: Any) -> None:
    settings.TASK_LOG_MAX_LINES = 3
    for i in range(10):
        ctx.log(f"line {i}", level="DEBUGGING-LONG-LEVEL")
    lines = ctx.take_log()
    assert [line["message"] for line in lines] == [
        "line 0",
        "line 1",
        "line 2",
        "… log truncated (TASK_LOG_MAX_LINES reached)",
    ]
    assert lines[0]["level"] == "DEBUGGING-"  # capped to the column
    assert lines[-1]["level"] == "WARNING"
    assert [line["seq"] for line in lines] == [1_000_000 + i for i in range(4)]
    assert ctx.take_log() == []


def test_it_fires_cancel_hooks_once_and_at_once_when_already_stopped(ctx: RunContext) -> None:
    fired: list[str] = []
    ctx.on_cancel(lambda: fired.append("first"))
    removed = lambda: fired.append("removed")  # noqa: E731 - identity matters here
    ctx.on_cancel(removed)
    ctx.remove_cancel(removed)

    def broken() -> None:
        raise RuntimeError("hook failed")

    ctx.on_cancel(broken)  # a failing hook does not keep the others from firing
    ctx.stop(TaskCancelled("execution cancelled"))
    ctx.stop(LeaseLost("second reason"))  # the first reason wins, hooks fire once
    assert fired == ["first"]
    with pytest.raises(TaskCancelled):
        ctx.check()
    ctx.on_cancel(lambda: fired.append("late"))
    assert fired == ["first", "late"]


def test_it_times_out_at_its_own_check(ctx: RunContext) -> None:
    ctx.check()  # 30 s left
    assert 0 < ctx.seconds_left() <= 30
    ctx._timeout = 0
    with pytest.raises(TaskTimedOut, match="timed out after 0s"):
        ctx.check()


def test_it_keeps_the_watermark_and_checkpoint_of_its_run(ctx: RunContext) -> None:
    assert ctx.params["day"] == "2026-01-01"
    assert ctx.params["execution_id"] == ctx.execution_id
    assert ctx.watermark_load() is None
    ctx.checkpoint_save({"position": 42})
    assert ctx.checkpoint_load() == {"position": 42}
    ctx.watermark_stage("2026-01-02")
    assert ctx._watermark == {"column": "", "value": "2026-01-02"}


def test_it_refuses_a_connection_its_version_did_not_bind(ctx: RunContext) -> None:
    with pytest.raises(TaskFailed, match="no longer exists"):
        ctx.connection("not_bound")
    connector = ctx.connection("wh")
    assert connector.kind == "sqlite" and ctx._connectors == [connector]
    ctx.close()
