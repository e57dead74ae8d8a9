"""``/executions``: list, detail, status, cancel, rerun, task logs."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from accounts.permissions import Level
from accounts.services import sharing_set
from pipelines.engine.attempts import task_run_claim, task_run_fail, task_run_succeed
from pipelines.models import Execution, ExecutionStatus, Trigger
from pipelines.services import execution_create
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

TWO_TASKS = [
    {"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
    {"name": "b", "type": "sql", "connection": "wh", "sql": "SELECT 1", "depends_on": ["a"]},
]


@pytest.fixture
def pipeline(make_pipeline: Any, developer: Any, wh: Any) -> Any:
    return make_pipeline("p1", tasks=TWO_TASKS, user=developer)


@pytest.fixture
def dev(api_client_for: Any, developer: Any) -> Any:
    return api_client_for(developer)


def succeed(execution: Execution, name: str, rows: int = 3) -> None:
    task_run = execution.tasks.get(task_name=name)
    claimed = task_run_claim(task_id=task_run.pk, worker="w1")
    assert claimed is not None
    now = timezone.now()
    task_run_succeed(
        task_run=claimed,
        attempt=claimed.attempt,
        metrics={"rows_read": rows, "rows_written": rows},
        log_lines=[{"at": now, "level": "INFO", "message": f"{name} line {i}"} for i in range(3)],
        worker="w1",
    )


def fail(execution: Execution, name: str) -> None:
    task_run = execution.tasks.get(task_name=name)
    claimed = task_run_claim(task_id=task_run.pk, worker="w1")
    assert claimed is not None
    task_run_fail(
        task_run=claimed,
        attempt=claimed.attempt,
        error="boom",
        transient=False,
        actor="w1",
        base_delay=0,
    )


EXECUTION_KEYS = {
    "execution_id",
    "pipeline_id",
    "pipeline_name",
    "pipeline_version",
    "status",
    "trigger",
    "parameters",
    "metrics",
    "error",
    "created_by",
    "created_at",
    "started_at",
    "ended_at",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "rerun_of",
    "triggered_by",
    "tasks",
}
TASK_KEYS = {
    "task_id",
    "task_name",
    "task_type",
    "status",
    "retry_count",
    "attempt",
    "depends_on",
    "started_at",
    "ended_at",
    "next_check_at",
    "error",
    "metrics",
    "output",
}
METRIC_KEYS = {"tasks_completed", "rows_read", "rows_written", "duration_seconds"}


def test_it_shows_an_execution_with_tasks_and_metrics(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline, trigger=Trigger.API)
    succeed(execution, "a")
    succeed(execution, "b")
    body = dev.get(url(f"executions/{execution.pk}")).json()
    assert set(body) == EXECUTION_KEYS
    assert body["status"] == "success" and body["pipeline_version"] == 1
    assert body["pipeline_id"] == str(pipeline.pk) and body["trigger"] == "api"
    assert set(body["metrics"]) >= METRIC_KEYS
    assert body["metrics"]["tasks_completed"] == 2 and body["metrics"]["rows_written"] == 6
    assert [t["task_name"] for t in body["tasks"]] == ["a", "b"]
    assert set(body["tasks"][0]) == TASK_KEYS


def test_it_shows_live_metrics_while_running(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    succeed(execution, "a", rows=4)
    body = dev.get(url(f"executions/{execution.pk}")).json()
    assert body["status"] == "running"
    assert body["metrics"]["tasks_completed"] == 1 and body["metrics"]["rows_read"] == 4
    assert body["metrics"]["duration_seconds"] >= 0


def test_it_answers_the_status(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    for path in [f"executions/{execution.pk}/status", f"executions/{execution.pk}/status/"]:
        body = dev.get(url(path)).json()
        assert body == {
            "execution_id": str(execution.pk),
            "status": "running",
            "tasks": {"a": "queued", "b": "pending"},
        }


def test_it_lists_and_filters_executions(
    dev: Any, pipeline: Any, make_pipeline: Any, developer: Any
) -> None:
    other = make_pipeline("p2", user=developer)
    first = execution_create(pipeline=pipeline)
    second = execution_create(pipeline=other, trigger=Trigger.API)
    succeed(second, "t1")

    def ids(query: str = "") -> list[str]:
        response = dev.get(url(f"executions?{query}"))
        assert response.status_code == 200, response.content
        return [e["execution_id"] for e in response.json()["results"]]

    assert set(ids()) == {str(first.pk), str(second.pk)}
    assert ids(f"pipeline={pipeline.pk}") == [str(first.pk)]
    assert ids("pipeline=p2") == [str(second.pk)]
    assert ids("status=success") == [str(second.pk)]
    assert ids("trigger=api") == [str(second.pk)]
    assert set(ids("since=2000-01-01T00:00:00Z")) == {str(first.pk), str(second.pk)}
    assert ids("until=2000-01-01") == []
    assert_error(dev.get(url("executions?since=yesterday")), 400, "since")
    assert_error(dev.get(url("executions?status=done")), 400, "status")


def test_it_lists_nothing_for_a_user_with_nothing_shared(
    api_client_for: Any, viewer: Any, pipeline: Any
) -> None:
    execution_create(pipeline=pipeline)
    response = api_client_for(viewer).get(url("executions"))
    assert response.status_code == 200 and response.json()["count"] == 0


def test_it_cancels_and_answers_409_once_finished(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    response = dev.post(url(f"executions/{execution.pk}/cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] in {"cancelling", "cancelled"}
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED
    assert_error(dev.post(url(f"executions/{execution.pk}/cancel")), 409)


def test_it_reruns_failed_tasks(dev: Any, pipeline: Any, developer: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    succeed(execution, "a")
    fail(execution, "b")
    response = dev.post(url(f"executions/{execution.pk}/rerun"), {}, format="json")
    assert response.status_code == 200, response.content
    new = Execution.objects.get(pk=response.json()["execution_id"])
    assert new.rerun_of == execution and new.trigger == Trigger.RERUN
    statuses = dict(new.tasks.values_list("task_name", "status"))
    assert statuses["a"] == "skipped"
    from_a = dev.post(url(f"executions/{execution.pk}/rerun"), {"from_task": "a"}, format="json")
    assert from_a.status_code == 200
    assert_error(
        dev.post(url(f"executions/{execution.pk}/rerun"), {"from_task": "zz"}, format="json"),
        400,
        "from_task",
    )


def test_it_answers_409_for_rerunning_a_running_execution(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    assert_error(dev.post(url(f"executions/{execution.pk}/rerun"), {}, format="json"), 409)


def test_it_serves_task_logs_and_tails_them(dev: Any, pipeline: Any) -> None:
    execution = execution_create(pipeline=pipeline)
    succeed(execution, "a")
    body = dev.get(url(f"executions/{execution.pk}/tasks/a/logs")).json()
    assert body["task_name"] == "a" and body["status"] == "success"
    assert [line["message"] for line in body["lines"]] == ["a line 0", "a line 1", "a line 2"]
    assert set(body["lines"][0]) == {"seq", "attempt", "at", "level", "message"}
    tail = dev.get(url(f"executions/{execution.pk}/tasks/a/logs?after={body['lines'][0]['seq']}"))
    assert [line["message"] for line in tail.json()["lines"]] == ["a line 1", "a line 2"]
    limited = dev.get(url(f"executions/{execution.pk}/tasks/a/logs?limit=1")).json()
    assert len(limited["lines"]) == 1 and limited["next_after"] == limited["lines"][0]["seq"]
    assert dev.get(url(f"executions/{execution.pk}/tasks/b/logs")).json()["lines"] == []
    assert_error(dev.get(url(f"executions/{execution.pk}/tasks/zz/logs")), 404)
    assert_error(dev.get(url(f"executions/{execution.pk}/tasks/a/logs?limit=0")), 400, "limit")


@pytest.mark.parametrize(
    "path",
    ["executions/{id}", "executions/{id}/status", "executions/{id}/tasks/a/logs"],
)
def test_it_hides_executions_of_invisible_pipelines(
    api_client_for: Any, other_developer: Any, viewer: Any, pipeline: Any, path: str
) -> None:
    execution = execution_create(pipeline=pipeline)
    for user in (other_developer, viewer):
        assert_error(api_client_for(user).get(url(path.format(id=execution.pk))), 404)


def test_it_lets_a_shared_viewer_read_but_not_cancel_or_rerun(
    api_client_for: Any, viewer: Any, pipeline: Any
) -> None:
    execution = execution_create(pipeline=pipeline)
    sharing_set(obj=pipeline, users={viewer: Level.VIEW}, groups={})
    client = api_client_for(viewer)
    assert client.get(url(f"executions/{execution.pk}")).status_code == 200
    assert client.get(url(f"executions/{execution.pk}/tasks/a/logs")).status_code == 200
    assert_error(client.post(url(f"executions/{execution.pk}/cancel")), 403)
    assert_error(client.post(url(f"executions/{execution.pk}/rerun")), 403)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.RUNNING
