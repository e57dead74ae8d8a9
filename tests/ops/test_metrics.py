"""/metrics: request metrics plus the datadog_* families derived from the database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from connectors.services import connection_create
from ops import metrics
from pipelines.models import Execution, TaskRun
from pipelines.services import execution_create
from tests.factories import pg_config
from tests.ops.conftest import named, same_prefix, scrape, sqlite_rows, value
from tests.services import scratch_mysql_db, scratch_postgres_db
from tests.workers import finished, wait_for


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Executions are given their outcome by hand here: no task message is sent."""
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)


def _outcome(
    execution: Execution,
    status: str,
    *,
    seconds: float | None,
    read: int = 0,
    written: int = 0,
    task_status: str | None = None,
    retries: int = 0,
    created_ago: timedelta | None = None,
) -> None:
    """Give ``execution`` a final status, duration, row counts and task outcome."""
    now = timezone.now()
    started = None if seconds is None else now - timedelta(seconds=seconds)
    fields: dict[str, Any] = {
        "status": status,
        "started_at": started,
        "ended_at": now,
        "metrics": {"rows_read": read, "rows_written": written},
    }
    if created_ago is not None:
        fields["created_at"] = now - created_ago
        if started is not None:
            fields["started_at"] = fields["created_at"]
            fields["ended_at"] = fields["created_at"] + timedelta(seconds=seconds or 0)
    Execution.objects.filter(pk=execution.pk).update(**fields)
    TaskRun.objects.filter(execution=execution).update(
        status=task_status or status, retry_count=retries, ended_at=now
    )


@pytest.mark.usefixtures("no_broker")
def test_it_counts_runs_tasks_rows_and_durations(make_pipeline: Callable[..., Any]) -> None:
    orders = make_pipeline("orders")
    users = make_pipeline("users")
    _outcome(execution_create(pipeline=orders), "success", seconds=0.3, read=10, written=5)
    _outcome(execution_create(pipeline=orders), "success", seconds=4, read=20, written=7)
    _outcome(execution_create(pipeline=orders), "failed", seconds=50, retries=2)
    # Cancelled before it started: its duration counts from creation.
    _outcome(execution_create(pipeline=users), "cancelled", seconds=None, task_status="cancelled")
    running = execution_create(pipeline=users)  # still running: no counter yet

    samples = scrape()

    assert named(samples, "datadog_pipeline_executions_total") == {
        frozenset({("pipeline", "orders"), ("status", "success")}): 2,
        frozenset({("pipeline", "orders"), ("status", "failed")}): 1,
        frozenset({("pipeline", "users"), ("status", "cancelled")}): 1,
    }
    hist = "datadog_pipeline_execution_duration_seconds"
    assert value(samples, f"{hist}_count", pipeline="orders") == 3
    assert value(samples, f"{hist}_bucket", pipeline="orders", le="0.5") == 1
    assert value(samples, f"{hist}_bucket", pipeline="orders", le="5.0") == 2
    assert value(samples, f"{hist}_bucket", pipeline="orders", le="30.0") == 2
    assert value(samples, f"{hist}_bucket", pipeline="orders", le="60.0") == 3
    assert value(samples, f"{hist}_bucket", pipeline="orders", le="+Inf") == 3
    assert 54 < (value(samples, f"{hist}_sum", pipeline="orders") or 0) < 55
    assert value(samples, f"{hist}_count", pipeline="users") == 1
    assert named(samples, "datadog_task_runs_total") == {
        frozenset({("task_type", "sql"), ("status", "success")}): 2,
        frozenset({("task_type", "sql"), ("status", "failed")}): 1,
        frozenset({("task_type", "sql"), ("status", "cancelled")}): 1,
        frozenset({("task_type", "sql"), ("status", "up_for_retry")}): 2,
    }
    assert value(samples, "datadog_rows_total", direction="read") == 30
    assert value(samples, "datadog_rows_total", direction="written") == 12
    assert value(samples, "datadog_executions_running") == 1
    assert value(samples, "datadog_executions_queued") == 0
    assert value(samples, "datadog_queue_stalled") == 0
    assert value(samples, "datadog_queue_depth") is not None
    assert running.status == "running"


@pytest.mark.usefixtures("no_broker")
def test_it_keeps_counters_from_the_stored_base(make_pipeline: Callable[..., Any]) -> None:
    """Old runs are counted once into the shared base; deleting them later
    does not make a counter go down (Prometheus would read a reset)."""
    old = make_pipeline("old")
    for _ in range(3):
        _outcome(
            execution_create(pipeline=old), "success", seconds=2, created_ago=timedelta(hours=2)
        )
    first = scrape()
    stored = cache.get(metrics.BASE_KEY)
    assert stored is not None
    assert value(first, "datadog_pipeline_executions_total", pipeline="old", status="success") == 3

    Execution.objects.filter(pipeline=old).delete()
    new = make_pipeline("new")
    _outcome(execution_create(pipeline=new), "failed", seconds=1)
    second = scrape()
    assert value(second, "datadog_pipeline_executions_total", pipeline="old", status="success") == 3
    assert value(second, "datadog_pipeline_executions_total", pipeline="new", status="failed") == 1
    assert value(second, "datadog_task_runs_total", task_type="sql", status="success") == 3


@pytest.mark.usefixtures("no_broker")
def test_it_advances_the_base_over_runs_that_became_final(
    make_pipeline: Callable[..., Any],
) -> None:
    pipeline = make_pipeline("p1")
    _outcome(
        execution_create(pipeline=pipeline), "success", seconds=1, created_ago=timedelta(hours=3)
    )
    # Still running, created an hour ago: it holds the horizon back.
    late = execution_create(pipeline=pipeline)
    Execution.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(hours=1))
    scrape()
    until = cache.get(metrics.BASE_KEY)["until"]
    assert until < (timezone.now() - timedelta(hours=1)).isoformat()
    # It finishes: nothing older is active, the base moves past it.
    _outcome(late, "failed", seconds=5)
    samples = scrape()
    assert cache.get(metrics.BASE_KEY)["until"] > until
    assert value(samples, "datadog_pipeline_executions_total", pipeline="p1", status="success") == 1
    assert value(samples, "datadog_pipeline_executions_total", pipeline="p1", status="failed") == 1


def test_it_asks_for_the_token_when_one_is_set(db: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-token-123"
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200
    assert b"datadog_queue_depth" in ok.content


def test_it_shows_request_metrics(db: Any) -> None:
    Client().get("/healthz")
    samples = scrape()
    assert any(
        name.startswith("django_http_requests") or name.startswith("django_http_responses")
        for name, _ in samples
    )


def test_it_forgets_pools_of_processes_that_stopped_publishing(db: Any) -> None:
    # A process killed without a goodbye: its last entry, older than
    # POOL_STALE_SECONDS, is left out and pruned from the index.
    cache.set("ops:pools:hostB:7", {"at": 0, "pools": [{"name": "gone", "size": 1}]}, 60)
    cache.set(metrics.POOLS_INDEX_KEY, {"hostB:7": 1.0}, None)
    samples = scrape()
    assert not any(
        dict(lbl).get("pool") == "gone" for lbl in named(samples, "datadog_connector_pool_size")
    )
    assert "hostB:7" not in cache.get(metrics.POOLS_INDEX_KEY)


def test_it_publishes_this_process_pools(db: Any) -> None:
    metrics.publish_pools()
    assert metrics.process_name() in cache.get(metrics.POOLS_INDEX_KEY)


# --- With real workers -------------------------------------------------------


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_it_shows_runs_made_by_a_real_worker(
    workers: Any, make_pipeline: Callable[..., Any]
) -> None:
    copy = make_pipeline(
        "copy_people",
        tasks=[
            {
                "name": "copy",
                "type": "copy",
                "source": {"connection": "wh", "table": "people"},
                "destination": {"connection": "wh", "table": "people_out", "mode": "append"},
            },
            {
                "name": "after",
                "type": "sql",
                "connection": "wh",
                "sql": "SELECT 1",
                "depends_on": ["copy"],
            },
        ],
    )
    sqlite_rows("wh.sqlite", "people", 25)
    broken = make_pipeline(
        "broken", tasks=[{"name": "bad", "type": "sql", "connection": "wh", "sql": "SELEC 1"}]
    )
    workers(env=same_prefix())
    ok = finished(execution_create(pipeline=copy))
    bad = finished(execution_create(pipeline=broken))
    assert ok.status == "success", ok.error
    assert bad.status == "failed"

    samples = scrape()

    executions = named(samples, "datadog_pipeline_executions_total")
    assert executions == {
        frozenset({("pipeline", "copy_people"), ("status", "success")}): 1,
        frozenset({("pipeline", "broken"), ("status", "failed")}): 1,
    }
    assert named(samples, "datadog_task_runs_total") == {
        frozenset({("task_type", "copy"), ("status", "success")}): 1,
        frozenset({("task_type", "sql"), ("status", "success")}): 1,
        frozenset({("task_type", "sql"), ("status", "failed")}): 1,
    }
    assert value(samples, "datadog_rows_total", direction="read") == 25
    assert value(samples, "datadog_rows_total", direction="written") == 25
    hist = "datadog_pipeline_execution_duration_seconds"
    assert value(samples, f"{hist}_count", pipeline="copy_people") == 1
    assert value(samples, "datadog_executions_running") == 0

    # django-q2's cluster status report expires 3 s after the sentinel writes
    # it (every 0.5 s); on a loaded machine a scrape can fall in a gap, so
    # the next scrapes must show the live cluster again.
    def with_live_cluster() -> Any:
        latest = scrape()
        return latest if (value(latest, "datadog_worker_clusters") or 0) >= 1 else None

    samples = wait_for(with_live_cluster, timeout=15, what="a live worker cluster on /metrics")
    ages = named(samples, "datadog_worker_heartbeat_age_seconds")
    assert ages and all(age < 60 for age in ages.values())
    # The worker recorded its last finish for the stall check.
    assert cache.get(metrics.LAST_FINISHED_KEY) is not None


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_it_shows_pools_of_real_worker_processes_by_connection_id(
    workers: Any, make_pipeline: Callable[..., Any]
) -> None:
    """Pools exist only in the worker processes: /metrics shows what they publish.

    Two tasks hold a pooled MySQL and a pooled PostgreSQL connection in a
    real qcluster worker while the scrape runs; the pools are labelled by
    connection id, never by user, host or database names.
    """
    with scratch_mysql_db() as my_db, scratch_postgres_db() as pg_url:
        my_config = {
            "host": my_db["host"],
            "port": my_db["port"],
            "database": my_db["database"],
            "username": my_db["user"],
        }
        shop_my = connection_create(name="shop_my", kind="mysql", config=my_config)
        shop_pg = connection_create(name="shop_pg", kind="postgresql", config=pg_config(pg_url))
        _pools_of_a_real_worker(
            workers, make_pipeline, {str(shop_my.pk), str(shop_pg.pk)}, my_config, pg_url
        )


def _pools_of_a_real_worker(
    workers: Any,
    make_pipeline: Callable[..., Any],
    wanted: set[str],
    my_config: dict[str, Any],
    pg_url: str,
) -> None:
    hold = make_pipeline(
        "hold_connections",
        tasks=[
            {"name": "my", "type": "sql", "connection": "shop_my", "sql": "SELECT SLEEP(14)"},
            {"name": "pg", "type": "sql", "connection": "shop_pg", "sql": "SELECT pg_sleep(14)"},
        ],
    )
    workers(env=same_prefix(), workers=2)
    execution = execution_create(pipeline=hold)
    me = metrics.process_name()

    def pools_in_use() -> dict[str, tuple[str, float]]:
        samples = scrape()
        return {
            dict(labels)["pool"]: (dict(labels)["process"], in_use)
            for labels, in_use in named(samples, "datadog_connector_pool_in_use").items()
            if in_use >= 1
        }

    in_use = wait_for(
        lambda: (found := pools_in_use()) and wanted <= set(found) and found,
        timeout=40,
        what="both pools in use in a worker",
    )
    for pool in wanted:
        process = in_use[pool][0]
        assert process != me and process.rsplit(":", 1)[1].isdigit()  # another process
    assert finished(execution).status == "success", execution.error

    # After the run: the connections stay open in the pools, none lent.
    def idle_again() -> bool:
        samples = scrape()
        return all(
            value(samples, "datadog_connector_pool_in_use", pool=pool, process=in_use[pool][0]) == 0
            # psycopg_pool may have opened a second one while the first was
            # still connecting: at least the one used.
            and (
                value(samples, "datadog_connector_pool_size", pool=pool, process=in_use[pool][0])
                or 0
            )
            >= 1
            for pool in wanted
        )

    wait_for(idle_again, timeout=30, what="the pools idle again")
    samples = scrape()
    for pool in wanted:
        labels = {"pool": pool, "process": in_use[pool][0]}
        assert value(samples, "datadog_connector_pool_waiting", **labels) == 0
        assert value(samples, "datadog_connector_pool_errors_total", **labels) == 0
    text = Client().get("/metrics").content.decode()
    for forbidden in (str(my_config["database"]), pg_config(pg_url)["database"], "shop_my"):
        assert forbidden not in text


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_it_shows_the_age_of_the_oldest_queued_task_run(
    workers: Any, make_pipeline: Callable[..., Any]
) -> None:
    pipeline = make_pipeline("lagging")
    assert value(scrape(), "datadog_queue_oldest_seconds") == 0
    execution = execution_create(pipeline=pipeline)
    time.sleep(2.5)  # no worker yet: the root task runs wait in the queue
    lag = value(scrape(), "datadog_queue_oldest_seconds")
    assert lag is not None and 2.5 <= lag < 60
    workers(env=same_prefix())
    assert finished(execution).status == "success", execution.error
    assert value(scrape(), "datadog_queue_oldest_seconds") == 0
