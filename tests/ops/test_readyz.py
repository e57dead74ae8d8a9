"""/healthz and /readyz: database, Redis, a live worker; the stall flag."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from ops import metrics
from pipelines.models import TaskRun
from pipelines.services import execution_create
from tests.ops.conftest import same_prefix, scrape, value
from tests.servers import PrivateRedis
from tests.workers import wait_for


def readyz() -> tuple[int, dict[str, Any]]:
    response = Client().get("/readyz")
    return response.status_code, json.loads(response.content)


def test_it_is_alive(db: Any) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


def test_it_names_a_missing_worker(db: Any) -> None:
    status, body = readyz()
    assert status == 503
    assert body["problems"] == ["worker: no live worker cluster"]


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_it_goes_503_when_redis_stops_and_200_when_it_returns(
    workers: Any, settings: Any, private_redis: PrivateRedis
) -> None:
    settings.REDIS_URL = private_redis.url()
    workers(env=same_prefix())
    wait_for(lambda: readyz()[0] == 200, timeout=30, what="readyz 200 with a worker")

    private_redis.kill()
    status, body = readyz()
    assert status == 503
    assert [p.split(":")[0] for p in body["problems"]] == ["redis"]

    private_redis.start()
    status, body = readyz()
    assert (status, body["status"]) == (200, "ok"), body


@pytest.mark.worker
@pytest.mark.timeout(120)
def test_it_notices_a_killed_worker_within_60s(workers: Any) -> None:
    cluster = workers(env=same_prefix())
    wait_for(lambda: readyz()[0] == 200, timeout=30, what="readyz 200 with a worker")
    cluster.stop()  # SIGKILL to the whole process group
    killed = time.monotonic()
    wait_for(
        lambda: readyz()[1].get("problems") == ["worker: no live worker cluster"],
        timeout=60,
        what="readyz to name the dead worker",
    )
    assert time.monotonic() - killed < 60


def test_it_flags_a_queue_that_stopped_moving(
    make_pipeline: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    execution = execution_create(pipeline=make_pipeline("p1"))
    TaskRun.objects.filter(execution=execution).update(
        queued_at=timezone.now() - timedelta(minutes=10)
    )
    from django.core.cache import cache

    cache.set(metrics.LAST_FINISHED_KEY, time.time() - 600, None)
    _, body = readyz()
    assert body["stall"]["stalled"] is True
    assert body["stall"]["oldest_queued_seconds"] >= 590
    assert value(scrape(), "datadog_queue_stalled") == 1

    metrics.note_task_finished()  # something finished: the queue moves
    _, body = readyz()
    assert body["stall"]["stalled"] is False
    assert value(scrape(), "datadog_queue_stalled") == 0


def test_it_is_not_stalled_while_the_queue_is_young(
    make_pipeline: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    execution_create(pipeline=make_pipeline("p1"))  # queued just now, nothing ever finished
    _, body = readyz()
    assert body["stall"]["stalled"] is False
