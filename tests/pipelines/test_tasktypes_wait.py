"""pipelines.tasktypes.wait and the ``waiting`` state (SPEC §8 "wait"), on the test database.

The definition's checks; then each check run in this process
(``pipelines.runner.run_task``) and the reaper's pass (``reap``), with the
messages they send recorded instead of sent: a false check moves the run
``running → waiting`` and frees the worker, the reaper queues it when its
next check is due, a true one succeeds; the timeout fails without retry;
a cancel ends a waiting run at once. Runs on SQLite, or PostgreSQL when
DATABASE_URL names one (as in CI).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.actor import Actor
from connectors.services import connection_create
from core.errors import InvalidInput
from pipelines.definition import Problem, validate
from pipelines.engine.attempts import task_run_claim, task_run_wait
from pipelines.engine.reaper import reap
from pipelines.models import (
    Execution,
    ExecutionStatus,
    TaskLogLine,
    TaskRun,
    TaskRunStatus,
    Transition,
)
from pipelines.runner import run_task
from pipelines.services import execution_cancel, execution_create, pipeline_create
from tests.factories import sql_task
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_broker")]

ROW_ARRIVED = "SELECT count(*) > 0 FROM orders WHERE day = %(day)s"


def wait_task(name: str = "arrived", **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "wait", "connection": "wh", "sql": ROW_ARRIVED, **keys}


def problems_of(**keys: Any) -> list[Problem]:
    task = {"name": "w", "type": "wait", "connection": "c", **keys}
    return validate({"name": "p", "parameters": {"day": "d"}, "tasks": [task]})[1]


# ------------------------------------------------------------- definition


def test_it_normalizes_a_sql_wait_and_a_file_wait() -> None:
    normalized, problems = validate(
        {
            "name": "p",
            "parameters": {"day": "2026-01-01"},
            "tasks": [
                {"name": "a", "type": "wait", "connection": "c", "sql": ROW_ARRIVED},
                {"name": "b", "type": "wait", "connection": "f", "file": "in/orders_*.csv"},
            ],
        }
    )
    assert problems == []
    assert normalized is not None
    a, b = normalized["tasks"]
    assert (a["sql"], a["interval"], a["timeout"], a["retries"]) == (ROW_ARRIVED, 60, 3600, 0)
    assert "file" not in a and "sql" not in b
    assert (b["file"], b["interval"]) == ("in/orders_*.csv", 60)


@pytest.mark.parametrize(
    ("keys", "path", "message"),
    [
        ({}, "tasks[0].sql", "give 'sql' (a query) or 'file' (a glob) to wait for"),
        ({"sql": "SELECT 1", "file": "x.csv"}, "tasks[0].file", "not both"),
        ({"sql": "SELECT %(nope)s"}, "tasks[0].sql", "unknown parameter 'nope'"),
        ({"file": "../other/*.csv"}, "tasks[0].file", "'..' is refused"),
        ({"file": "in/../../x.csv"}, "tasks[0].file", "'..' is refused"),
        ({"file": "/etc/*"}, "tasks[0].file", "absolute paths are refused"),
        ({"file": "~root/*"}, "tasks[0].file", "absolute paths are refused"),
        ({"file": "a\\b.csv"}, "tasks[0].file", "must not contain"),
        ({"file": ""}, "tasks[0].file", "must not be empty"),
        ({"file": 3}, "tasks[0].file", "expected a string, got integer"),
        ({"sql": "SELECT 1", "interval": 0}, "tasks[0].interval", "between 1 and 86400"),
        ({"sql": "SELECT 1", "interval": 1.5}, "tasks[0].interval", "expected an integer"),
    ],
)
def test_it_refuses_a_wrong_wait_naming_the_key(
    keys: dict[str, Any], path: str, message: str
) -> None:
    problems = problems_of(**keys)
    assert [p.path for p in problems] == [path], problems
    assert message in problems[0].message


@pytest.mark.usefixtures("isolated_cache")
def test_the_api_refuses_an_escaping_glob_with_a_400_naming_the_field(
    api_client_for: Any, developer: Any, sqlite_connection: Callable[..., Any]
) -> None:
    connection_create(name="inbox", kind="csv", config={"path": "inbox"}, actor=Actor.of(developer))
    client = api_client_for(developer)
    for glob in ["../*", "/var/*"]:
        task = {"name": "w", "type": "wait", "connection": "inbox", "file": glob}
        body = client.post(url("pipelines"), {"name": "p", "tasks": [task]}, format="json")
        assert_error(body, 400, "tasks[0].file")


# ------------------------------------------------------------- SQL checks


@pytest.fixture
def orders(make_pipeline: Callable[..., Any]) -> Callable[..., Any]:
    """A pipeline ``p1`` on ``wh`` whose table ``orders`` is empty; returns a row inserter."""
    make_pipeline("setup")  # makes the connection wh and its file
    path = Path(settings.DATA_ROOT) / "wh.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, day TEXT)")

    def insert(day: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO orders VALUES (1, ?)", (day,))

    return insert


def sensor_pipeline(make_pipeline: Callable[..., Any], **keys: Any) -> Any:
    return make_pipeline(
        "sensed",
        tasks=[wait_task(**keys), sql_task("after", depends_on=["arrived"])],
        parameters={"day": "2026-01-01"},
    )


def transitions_of(task_run: TaskRun) -> list[tuple[str, str, str]]:
    return list(
        Transition.objects.filter(task_run=task_run)
        .order_by("at", "id")
        .values_list("from_status", "to_status", "actor")
    )


def make_due(task_run: TaskRun) -> None:
    """Bring the next check forward (as time passing would)."""
    TaskRun.objects.filter(pk=task_run.pk).update(next_check_at=timezone.now())


def test_a_false_check_waits_without_a_worker_and_the_reaper_queues_it_when_due(
    make_pipeline: Callable[..., Any], orders: Callable[[str], None], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=sensor_pipeline(make_pipeline, interval=30))
    sensor = execution.tasks.get(task_name="arrived")
    before = timezone.now()
    assert run_task(str(sensor.pk)) == "waiting"  # the worker is free again
    sensor.refresh_from_db()
    assert sensor.status == TaskRunStatus.WAITING
    assert sensor.next_check_at is not None
    assert before + timedelta(seconds=30) <= sensor.next_check_at
    assert sensor.next_check_at <= timezone.now() + timedelta(seconds=30)
    assert transitions_of(sensor)[-1][:2] == ("running", "waiting")
    log = list(TaskLogLine.objects.filter(task_run=sensor).values_list("message", flat=True))
    assert "check 1: the query returned 0" in log
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.RUNNING  # the sensor is in flight

    # Not due yet: the reaper leaves it (and does not finish the execution).
    sent = len(no_broker)
    result = reap()
    assert result.checks == [] and len(no_broker) == sent
    assert TaskRun.objects.get(pk=sensor.pk).status == TaskRunStatus.WAITING
    assert Execution.objects.get(pk=execution.pk).status == ExecutionStatus.RUNNING

    make_due(sensor)
    assert reap().checks == [str(sensor.pk)]
    assert no_broker[-1] == sensor.pk
    sensor.refresh_from_db()
    assert sensor.status == TaskRunStatus.QUEUED
    assert transitions_of(sensor)[-1] == ("waiting", "queued", "reaper")

    # Still false: back to waiting, second check.
    assert run_task(str(sensor.pk)) == "waiting"
    orders("2026-01-01")
    make_due(sensor)
    reap()
    assert run_task(str(sensor.pk)) == "success"
    sensor.refresh_from_db()
    assert (sensor.status, sensor.attempt, sensor.retry_count) == ("success", 3, 0)
    assert sensor.output == {"value": 1}  # what made it true, for downstream tasks
    moves = [(a, b) for a, b, _ in transitions_of(sensor)]
    assert moves == [
        ("pending", "queued"),
        *[("queued", "running"), ("running", "waiting"), ("waiting", "queued")] * 2,
        ("queued", "running"),
        ("running", "success"),
    ]
    # The downstream task ran next (the worker follows it).
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.SUCCESS


def test_the_query_is_bound_with_the_run_parameters(
    make_pipeline: Callable[..., Any], orders: Callable[[str], None]
) -> None:
    orders("2025-12-31")  # another day: still false for 2026-01-01
    execution = execution_create(pipeline=sensor_pipeline(make_pipeline))
    sensor = execution.tasks.get(task_name="arrived")
    assert run_task(str(sensor.pk)) == "waiting"
    other = execution_create(pipeline=execution.pipeline, parameters={"day": "2025-12-31"})
    assert run_task(str(other.tasks.get(task_name="arrived").pk)) == "success"
    # The task's own params are bound beside the pipeline's, like a sql task's.
    own = make_pipeline(
        "own_params",
        tasks=[
            wait_task(
                sql="SELECT count(*) FROM orders WHERE day = %(wanted)s AND id = %(id)s",
                params={"wanted": {"param": "day"}, "id": 1},
            )
        ],
        parameters={"day": "2025-12-31"},
    )
    assert run_task(str(execution_create(pipeline=own).tasks.get().pk)) == "success"


def test_a_timed_out_sensor_fails_and_is_not_retried(
    make_pipeline: Callable[..., Any], orders: Callable[[str], None]
) -> None:
    execution = execution_create(
        pipeline=sensor_pipeline(make_pipeline, interval=60, timeout=1, retries=3)
    )
    sensor = execution.tasks.get(task_name="arrived")
    assert run_task(str(sensor.pk)) == "waiting"
    sensor.refresh_from_db()
    first = Transition.objects.get(task_run=sensor, to_status="running").at
    # The next check is at the deadline, not a whole interval later.
    assert sensor.next_check_at == first + timedelta(seconds=1)
    # The deadline passes (the first check is made one second older).
    Transition.objects.filter(task_run=sensor).update(at=first - timedelta(seconds=1))
    make_due(sensor)
    reap()
    assert run_task(str(sensor.pk)) == "failed"
    sensor.refresh_from_db()
    assert (sensor.status, sensor.retry_count) == ("failed", 0)
    assert sensor.error == "timed out after 1s: the query returned 0"
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED
    assert execution.tasks.get(task_name="after").status == TaskRunStatus.UPSTREAM_FAILED


def test_cancel_ends_a_waiting_sensor_at_once(
    make_pipeline: Callable[..., Any], orders: Callable[[str], None], no_broker: list[Any]
) -> None:
    execution = execution_create(pipeline=sensor_pipeline(make_pipeline))
    sensor = execution.tasks.get(task_name="arrived")
    assert run_task(str(sensor.pk)) == "waiting"
    execution = execution_cancel(execution=execution, reason="not today")
    # No worker involved: the cancel itself moved it.
    assert execution.status == ExecutionStatus.CANCELLED
    sensor.refresh_from_db()
    assert sensor.status == TaskRunStatus.CANCELLED and sensor.ended_at is not None
    assert transitions_of(sensor)[-1][:2] == ("waiting", "cancelled")
    make_due(sensor)
    sent = len(no_broker)
    assert reap().checks == [] and len(no_broker) == sent


@pytest.fixture
def claimed(make_pipeline: Callable[..., Any], orders: Callable[[str], None]) -> TaskRun:
    """A sensor claimed by worker ``w`` (its check under way)."""
    execution = execution_create(pipeline=sensor_pipeline(make_pipeline))
    sensor = task_run_claim(task_id=execution.tasks.get(task_name="arrived").pk, worker="w")
    assert sensor is not None
    return sensor


def report_false(sensor: TaskRun, attempt: int) -> TaskRunStatus | None:
    """What worker ``w`` reports for a false check of ``attempt``."""
    return task_run_wait(
        task_run=sensor,
        attempt=attempt,
        check_in=60,
        actor="w",
        reason="the query returned 0",
        log_lines=[],
        metrics={},
    )


def test_a_check_that_ends_while_its_execution_is_cancelling_stops_the_run(
    claimed: TaskRun,
) -> None:
    execution = execution_cancel(execution=claimed.execution)
    assert execution.status == ExecutionStatus.CANCELLING  # the sensor is running
    assert report_false(claimed, claimed.attempt) == TaskRunStatus.CANCELLED
    assert TaskRun.objects.get(pk=claimed.pk).status == TaskRunStatus.CANCELLED
    assert Execution.objects.get(pk=execution.pk).status == ExecutionStatus.CANCELLED


def test_a_stale_attempt_cannot_put_the_run_to_wait(claimed: TaskRun) -> None:
    assert report_false(claimed, claimed.attempt + 1) is None
    assert TaskRun.objects.get(pk=claimed.pk).status == TaskRunStatus.RUNNING
    assert not Transition.objects.filter(task_run=claimed, to_status="waiting").exists()


def test_a_waiting_execution_keeps_its_slot_of_max_active_runs(
    make_pipeline: Callable[..., Any], orders: Callable[[str], None]
) -> None:
    pipeline = make_pipeline(
        "one_at_a_time",
        tasks=[wait_task()],
        parameters={"day": "2026-01-01"},
        max_active_runs=1,
    )
    first = execution_create(pipeline=pipeline)
    assert run_task(str(first.tasks.get().pk)) == "waiting"
    second = execution_create(pipeline=pipeline)
    reap()
    assert Execution.objects.get(pk=first.pk).status == ExecutionStatus.RUNNING
    assert Execution.objects.get(pk=second.pk).status == ExecutionStatus.QUEUED
    execution_cancel(execution=first)
    assert Execution.objects.get(pk=second.pk).status == ExecutionStatus.RUNNING


def test_a_sql_wait_on_a_file_connection_fails_saying_why(
    make_pipeline: Callable[..., Any], sqlite_connection: Callable[..., Any]
) -> None:
    connection_create(name="inbox", kind="csv", config={"path": "inbox"})
    pipeline = make_pipeline("wrong_kind", tasks=[wait_task(connection="inbox", sql="SELECT 1")])
    execution = execution_create(pipeline=pipeline)
    assert run_task(str(execution.tasks.get().pk)) == "failed"
    assert "does not run SQL" in execution.tasks.get().error


@pytest.mark.usefixtures("isolated_cache")
def test_the_api_and_the_run_page_show_waiting_and_the_next_check(
    make_pipeline: Callable[..., Any],
    orders: Callable[[str], None],
    admin_user: Any,
    api_client_for: Callable[[Any], Any],
    client_for: Callable[[Any], Any],
) -> None:
    execution = execution_create(pipeline=sensor_pipeline(make_pipeline))
    sensor = execution.tasks.get(task_name="arrived")
    assert run_task(str(sensor.pk)) == "waiting"
    sensor.refresh_from_db()
    assert sensor.next_check_at is not None
    body = api_client_for(admin_user).get(url(f"executions/{execution.pk}")).json()
    tasks = {task["task_name"]: task for task in body["tasks"]}
    assert tasks["arrived"]["status"] == "waiting"
    assert parse_datetime(tasks["arrived"]["next_check_at"]) == sensor.next_check_at
    assert tasks["after"]["next_check_at"] is None  # pending
    page = client_for(admin_user).get(reverse("execution_detail", args=[execution.pk]))
    html = page.content.decode()
    row = html[html.index('<tr data-task="arrived">') :]
    row = row[: row.index("</tr>")]
    assert '<span class="badge s-waiting">waiting</span>' in row
    assert f'next check <time datetime="{sensor.next_check_at.isoformat()}">' in row
    # Once it is no longer waiting, no next check is shown.
    make_due(sensor)
    reap()
    body = api_client_for(admin_user).get(url(f"executions/{execution.pk}")).json()
    assert [t["next_check_at"] for t in body["tasks"] if t["task_name"] == "arrived"] == [None]


# ------------------------------------------------------------ file checks


@pytest.fixture
def inbox(sqlite_connection: Callable[..., Any]) -> Path:
    """A csv connection ``inbox`` on DATA_ROOT/inbox (made empty)."""
    folder = Path(settings.DATA_ROOT) / "inbox"
    folder.mkdir()
    connection_create(name="inbox", kind="csv", config={"path": "inbox"})
    return folder


def wait_task_file(glob: str) -> dict[str, Any]:
    return {"name": "arrived", "type": "wait", "connection": "inbox", "file": glob}


def test_a_file_wait_succeeds_once_a_matching_file_appears(
    make_pipeline: Callable[..., Any], inbox: Path
) -> None:
    pipeline = make_pipeline("files", tasks=[wait_task_file("incoming/orders_*.csv")])
    sensor = execution_create(pipeline=pipeline).tasks.get()
    (inbox / "incoming").mkdir()
    (inbox / "incoming" / "orders_.tmp").write_text("id\n1\n")  # does not match
    (inbox / "incoming" / "orders_dir.csv").mkdir()  # a folder is no file
    assert run_task(str(sensor.pk)) == "waiting"
    (inbox / "incoming" / "orders_1.csv").write_text("id\n1\n")
    make_due(sensor)
    reap()
    assert run_task(str(sensor.pk)) == "success"
    log = list(TaskLogLine.objects.filter(task_run=sensor).values_list("message", flat=True))
    assert "check 2: 1 file(s) match 'incoming/orders_*.csv': incoming/orders_1.csv" in log
    assert TaskRun.objects.get(pk=sensor.pk).output == {"files": ["incoming/orders_1.csv"]}


def test_a_link_out_of_the_folder_does_not_count(
    make_pipeline: Callable[..., Any], inbox: Path, tmp_path: Path
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "orders.csv").write_text("id\n1\n")
    (inbox / "link.csv").symlink_to(outside / "orders.csv")
    (inbox / "elsewhere").symlink_to(outside, target_is_directory=True)
    pipeline = make_pipeline("links", tasks=[wait_task_file("*.csv")])
    sensor = execution_create(pipeline=pipeline).tasks.get()
    assert run_task(str(sensor.pk)) == "waiting"
    # A glob whose folder part leads out through a link is refused outright.
    escape = make_pipeline("escape", tasks=[wait_task_file("elsewhere/*.csv")])
    run = execution_create(pipeline=escape).tasks.get()
    assert run_task(str(run.pk)) == "failed"
    assert "resolves outside" in TaskRun.objects.get(pk=run.pk).error


def test_a_glob_reaching_out_is_refused_when_saved(
    make_pipeline: Callable[..., Any], inbox: Path
) -> None:
    for glob in ["../*", "/etc/passwd", "sub/../../*"]:
        with pytest.raises(InvalidInput) as refused:
            pipeline_create(data={"name": "out", "tasks": [wait_task_file(glob)]})
        assert [e["path"] for e in refused.value.errors] == ["tasks[0].file"]


def test_a_file_wait_on_a_sql_connection_fails_saying_why(
    make_pipeline: Callable[..., Any],
) -> None:
    pipeline = make_pipeline("wrong", tasks=[{**wait_task_file("*.csv"), "connection": "wh"}])
    sensor = execution_create(pipeline=pipeline).tasks.get()
    assert run_task(str(sensor.pk)) == "failed"
    assert "needs a csv or jsonl connection" in TaskRun.objects.get(pk=sensor.pk).error
