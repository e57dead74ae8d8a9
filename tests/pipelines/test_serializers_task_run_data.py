"""The fast task-run rendering equals TaskRunSerializer's."""

from typing import Any

import pytest

from pipelines.engine.attempts import task_run_claim, task_run_fail
from pipelines.serializers import TaskRunSerializer, task_run_data
from pipelines.services import execution_create

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.mark.django_db
def test_it_renders_task_runs_like_the_serializer(make_pipeline: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    execution = execution_create(pipeline=make_pipeline())
    run = task_run_claim(task_id=execution.tasks.get().pk, worker="w")
    assert run is not None
    task_run_fail(
        task_run=run, attempt=run.attempt, error="boom", transient=False, actor="w", base_delay=0
    )
    for task_run in execution.tasks.all():
        assert task_run_data(task_run) == TaskRunSerializer(task_run).data
