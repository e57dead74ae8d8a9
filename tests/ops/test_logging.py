"""JSON log lines (LOG_JSON=true) carry the execution and task ids."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core import logging as log_context
from core.logging import JsonFormatter
from ops import metrics
from pipelines import tasks
from pipelines.alerts import send_failure_alert
from pipelines.services import execution_create
from tests.ops.conftest import same_prefix
from tests.workers import finished, wait_for


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ops.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    log_context.unbind()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_it_writes_one_json_object_per_line(json_log: io.StringIO) -> None:
    logger = logging.getLogger("ops.test")
    logger.info("plain %s", "line")
    logger.warning("with ids", extra={"execution_id": "e-1", "task_id": "t-1"})
    try:
        raise ValueError("nope")
    except ValueError:
        logger.exception("failed")
    first, second, third = lines(json_log)
    assert first["message"] == "plain line" and first["level"] == "INFO"
    assert "execution_id" not in first
    assert (second["execution_id"], second["task_id"]) == ("e-1", "t-1")
    assert "ValueError: nope" in third["exc"]


def test_it_adds_the_ids_of_the_task_a_worker_runs(
    json_log: io.StringIO,
    make_pipeline: Callable[..., Any],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    settings.LOGGING = {
        **settings.LOGGING,
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    }
    execution = execution_create(pipeline=make_pipeline("p1"))
    task_run = execution.tasks.get()
    # What django-q2 sends in the worker process before running the task.
    metrics._on_pre_execute(
        sender="django_q", func=tasks.run_task, task={"args": [str(task_run.pk)]}
    )
    logger = logging.getLogger("ops.test")
    logger.info("inside the task")
    # A thread the task starts (the engine's watchdog) carries them too.
    thread = threading.Thread(target=lambda: logger.info("from a task thread"))
    thread.start()
    thread.join()
    metrics._on_post_execute(sender="django_q", func=tasks.run_task, task={})
    logger.info("after the task")

    inside, threaded, after = lines(json_log)
    for line in (inside, threaded):
        assert line["execution_id"] == str(execution.pk)
        assert line["task_id"] == str(task_run.pk)
        assert line["task_name"] == "t1"
        assert line["pipeline"] == "p1"
    assert "execution_id" not in after and "task_id" not in after


def test_it_binds_the_execution_of_an_alert_task(json_log: io.StringIO) -> None:
    metrics._on_pre_execute(sender="django_q", func=send_failure_alert, task={"args": ["e-9"]})
    logging.getLogger("ops.test").warning("webhook down")
    assert lines(json_log)[0]["execution_id"] == "e-9"


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_it_logs_json_with_the_execution_id_from_a_real_worker(
    workers: Any, make_pipeline: Callable[..., Any], settings: Any
) -> None:
    # Webhooks may reach loopback only where the deployment allows it.
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    # The alert to a closed port makes the worker log warnings while it
    # runs the alert task of this execution.
    pipeline = make_pipeline(
        "broken",
        tasks=[{"name": "bad", "type": "sql", "connection": "wh", "sql": "SELEC 1"}],
        on_failure={"webhook": "http://127.0.0.1:9/hook"},
    )
    cluster = workers(
        env={**same_prefix(), "LOG_JSON": "true", "OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32"}
    )
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == "failed"

    def warned() -> list[dict[str, Any]]:
        found = []
        for raw in cluster.output().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("logger") == "pipelines.alerts":
                found.append(line)
        return found

    found = wait_for(warned, timeout=60, what="the alert task's JSON log lines")
    assert all(line["execution_id"] == str(execution.pk) for line in found)
    assert "127.0.0.1" in found[0]["message"] and "/hook" not in found[0]["message"]
