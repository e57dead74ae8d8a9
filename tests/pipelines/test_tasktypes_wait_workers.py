"""``wait`` tasks through real qcluster worker processes (SPEC §8 "wait").

Between checks a sensor is ``waiting`` and holds no worker process: with
more sensors waiting than the cluster has processes, other pipelines still
run. A sensor becomes true when a row is inserted or a file appears, times
out into ``failed`` without retry, and a cancel ends it at once. Reaper
every 1 s (the root conftest's settings for every process).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from connectors.services import connection_create
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Transition
from pipelines.services import execution_cancel, execution_create
from tests.factories import sql_task
from tests.workers import finished, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

SENSORS = 4
PROCESSES = 2


@pytest.fixture
def orders(make_pipeline: Callable[..., Any]) -> Callable[[], None]:
    """The SQLite connection ``wh`` with an empty ``orders`` table; returns a row inserter."""
    make_pipeline("setup")
    path = Path(settings.DATA_ROOT) / "wh.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")

    def insert() -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO orders VALUES (1)")

    return insert


def sensor(name: str, **keys: Any) -> dict[str, Any]:
    """A wait task checked every second: on ``orders`` in ``wh``, or on ``keys``' file."""
    what = {} if "file" in keys else {"sql": "SELECT count(*) FROM orders"}
    return {"name": name, "type": "wait", "connection": "wh", "interval": 1, **what, **keys}


def statuses(execution: Execution) -> dict[str, str]:
    return dict(execution.tasks.values_list("task_name", "status"))


def waiting(execution: Execution, name: str) -> TaskRun | None:
    task_run = execution.tasks.get(task_name=name)
    return task_run if task_run.status == TaskRunStatus.WAITING else None


def test_waiting_sensors_hold_no_worker_and_go_on_when_the_row_arrives(
    workers: Any, make_pipeline: Callable[..., Any], orders: Callable[[], None]
) -> None:
    names = [f"s{i}" for i in range(SENSORS)]
    sensed = make_pipeline(
        "sensed",
        tasks=[*(sensor(n) for n in names), sql_task("after", depends_on=names)],
    )
    busy = make_pipeline(
        "busy",
        tasks=[
            sql_task("a"),
            sql_task("b", depends_on=["a"]),
            sql_task("c", depends_on=["b"]),
        ],
    )
    workers(workers=PROCESSES)
    execution = execution_create(pipeline=sensed)

    def all_waiting() -> bool:
        return set(statuses(execution).values()) == {"waiting", "pending"}

    # More sensors in flight than there are worker processes, none holding one.
    wait_for(all_waiting, timeout=60, what=f"{SENSORS} sensors waiting at once")
    other = finished(execution_create(pipeline=busy))
    assert other.status == ExecutionStatus.SUCCESS, other.error
    # Meanwhile the sensors kept checking, each in its own short attempt.
    wait_for(
        lambda: all(tr.attempt >= 2 for tr in execution.tasks.filter(task_name__in=names)),
        timeout=30,
        what="every sensor checked twice",
    )
    current = statuses(execution)
    assert current["after"] == "pending"
    assert set(current.values()) <= {"pending", "waiting", "queued", "running"}

    orders()
    execution = finished(execution)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    assert set(statuses(execution).values()) == {"success"}
    for task_run in execution.tasks.filter(task_name__in=names):
        assert task_run.retry_count == 0
        moves = Transition.objects.filter(task_run=task_run)
        checks = moves.filter(from_status="running", to_status="waiting").count()
        assert checks == task_run.attempt - 1 >= 1
        assert moves.filter(from_status="waiting", to_status="queued", actor="reaper").count() == (
            checks
        )


def test_a_file_sensor_succeeds_when_the_file_appears(
    workers: Any, make_pipeline: Callable[..., Any], sqlite_connection: Callable[..., Any]
) -> None:
    inbox = Path(settings.DATA_ROOT) / "inbox"
    inbox.mkdir()
    connection_create(name="inbox", kind="csv", config={"path": "inbox"})
    pipeline = make_pipeline(
        "files", tasks=[sensor("arrived", connection="inbox", file="orders_*.csv")]
    )
    workers(workers=PROCESSES)
    execution = execution_create(pipeline=pipeline)
    wait_for(lambda: waiting(execution, "arrived"), timeout=60, what="the sensor waiting")
    (inbox / "orders_2026-01-01.csv").write_text("id\n1\n")
    execution = finished(execution)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error


def test_a_sensor_past_its_timeout_fails_without_retry(
    workers: Any, make_pipeline: Callable[..., Any], orders: Callable[[], None]
) -> None:
    pipeline = make_pipeline("late", tasks=[sensor("arrived", timeout=3, retries=2)])
    workers(workers=PROCESSES)
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.FAILED
    task_run = execution.tasks.get()
    assert (task_run.status, task_run.retry_count) == ("failed", 0)
    assert task_run.error == "timed out after 3s: the query returned 0"
    assert task_run.attempt >= 2  # it was checked again before the deadline
    assert not Transition.objects.filter(task_run=task_run, to_status="up_for_retry").exists()


def test_cancel_ends_a_waiting_sensor_at_once(
    workers: Any, make_pipeline: Callable[..., Any], orders: Callable[[], None]
) -> None:
    pipeline = make_pipeline("cancelled", tasks=[sensor("arrived", interval=3600)])
    workers(workers=PROCESSES)
    execution = execution_create(pipeline=pipeline)
    wait_for(lambda: waiting(execution, "arrived"), timeout=60, what="the sensor waiting")
    execution = execution_cancel(execution=execution, reason="not today")
    # Done by the cancel itself, not at some later check.
    assert execution.status == ExecutionStatus.CANCELLED
    task_run = execution.tasks.get()
    assert task_run.status == TaskRunStatus.CANCELLED
    last = Transition.objects.filter(task_run=task_run).latest("at", "id")
    assert (last.from_status, last.to_status) == ("waiting", "cancelled")
