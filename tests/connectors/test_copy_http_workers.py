"""A REST API copy end to end: real worker processes, a real local API, real PostgreSQL.

The workers get OUTBOUND_ALLOW_NETWORKS for loopback (the API listens
there); without it the same pipeline fails naming the rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

from accounts.actor import Actor
from connectors.services import connection_create
from pipelines.models import ExecutionStatus, TaskRun
from pipelines.services import execution_create, pipeline_create
from tests.rest_api import RestApi, sample
from tests.services import scratch_postgres_db
from tests.workers import finished

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

ALLOW_LOOPBACK = {"OUTBOUND_ALLOW_NETWORKS": "127.0.0.1/32"}
TOKEN = "tok-worker-Plain-5Kx"


@pytest.fixture
def setup(
    transactional_db: Any, developer: Any, settings: Any
) -> Iterator[tuple[RestApi, str, Any]]:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    actor = Actor.of(developer)
    with RestApi(sample(10)) as api, scratch_postgres_db() as dest:
        api.token = TOKEN
        parsed = urlparse(dest)
        connection_create(
            name="dst",
            kind="postgresql",
            config={
                "host": parsed.hostname,
                "port": parsed.port or 5432,
                "database": parsed.path.lstrip("/"),
                "username": parsed.username or "postgres",
            },
            actor=actor,
        )
        connection_create(
            name="shop_api",
            kind="http",
            config={"base_url": api.base_url, "auth": {"type": "bearer", "token": TOKEN}},
            actor=actor,
        )
        pipeline = pipeline_create(
            data={
                "name": "rest",
                "tasks": [
                    {
                        "name": "copy_items",
                        "type": "copy",
                        "source": {
                            "connection": "shop_api",
                            "path": "/cursor",
                            "params": {"since": {"param": "data_interval_start"}},
                            "records": "data",
                            "paginate": {
                                "type": "cursor",
                                "param": "cursor",
                                "path": "meta.next_cursor",
                            },
                        },
                        "destination": {
                            "connection": "dst",
                            "table": "public.items",
                            "mode": "upsert",
                            "keys": ["id"],
                        },
                        "incremental": {"column": "id"},
                    }
                ],
            },
            actor=actor,
        )
        yield api, dest, pipeline


def test_a_worker_copies_pages_through_throttling_and_keeps_the_watermark(
    workers: Any, setup: tuple[RestApi, str, Any]
) -> None:
    api, dest, pipeline = setup
    workers(env=ALLOW_LOOPBACK)
    api.failures["/api/cursor"] = [429, 502]
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    with psycopg.connect(dest, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*), MAX(id) FROM items").fetchone() == (10, 10)
    run = TaskRun.objects.get(execution=execution)
    assert run.output == {"rows_read": 10, "rows_written": 10}
    # The run's interval went out as a query parameter, with the token.
    since = execution.parameters["data_interval_start"]
    assert {r["query"]["since"] for r in api.requests} == {since}
    assert {r["headers"]["Authorization"] for r in api.requests} == {f"Bearer {TOKEN}"}
    # A second run reads every page again, writes from the watermark (10) on.
    api.records.append(sample(1, start=11)[0])
    second = finished(execution_create(pipeline=pipeline))
    assert second.status == ExecutionStatus.SUCCESS, second.error
    assert TaskRun.objects.get(execution=second).output == {"rows_read": 11, "rows_written": 2}
    with psycopg.connect(dest, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone() == (11,)


def test_without_the_allow_list_the_task_fails_naming_the_rule(
    workers: Any, setup: tuple[RestApi, str, Any]
) -> None:
    api, _, pipeline = setup
    workers()
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.FAILED
    run = TaskRun.objects.get(execution=execution)
    assert "loopback: http targets must be public or in OUTBOUND_ALLOW_NETWORKS" in (
        run.error or ""
    )
    assert TOKEN not in (run.error or "")
    assert api.requests == []
