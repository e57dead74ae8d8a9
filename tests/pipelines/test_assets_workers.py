"""Asset-triggered runs with real qcluster worker processes on a real PostgreSQL target.

A sql task declaring an outlet and a copy write two tables; the pipeline
waiting for both is started by the worker that recorded the second event,
runs on the workers, and lists the two events it consumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pipelines.models import AssetEvent, Execution, ExecutionStatus, Trigger
from pipelines.services import execution_create, pipeline_create
from tests.factories import postgresql_connection
from tests.services import scratch_postgres_db
from tests.workers import finished, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]


@pytest.fixture
def pg_target(transactional_db: Any) -> Iterator[str]:
    """A scratch PostgreSQL database behind a connection named ``pg``."""
    with scratch_postgres_db() as url:
        postgresql_connection("pg", url)
        yield url


def test_a_pipeline_waiting_for_two_assets_runs_once_both_are_written(
    workers: Any, pg_target: str
) -> None:
    workers()
    orders = pipeline_create(
        data={
            "name": "orders",
            "tasks": [
                {
                    "name": "load",
                    "type": "sql",
                    "connection": "pg",
                    "sql": [
                        "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, amount int)",
                        "INSERT INTO orders VALUES (1, 10), (2, 20) ON CONFLICT DO NOTHING",
                    ],
                    "outlets": ["pg.orders"],
                }
            ],
        }
    )
    copies = pipeline_create(
        data={
            "name": "copies",
            "tasks": [
                {
                    "name": "copy",
                    "type": "copy",
                    "source": {"connection": "pg", "table": "orders"},
                    "destination": {"connection": "pg", "table": "orders_copy", "mode": "replace"},
                }
            ],
        }
    )
    totals = pipeline_create(
        data={
            "name": "totals",
            "schedule": {"assets": ["pg.orders", "pg.public.orders_copy"]},
            "tasks": [
                {
                    "name": "sum",
                    "type": "sql",
                    "connection": "pg",
                    "sql": [
                        "CREATE TABLE IF NOT EXISTS totals (n bigint)",
                        "INSERT INTO totals SELECT sum(amount) FROM orders_copy",
                    ],
                }
            ],
        }
    )
    assert totals.schedule_assets == ["pg.public.orders", "pg.public.orders_copy"]
    assert finished(execution_create(pipeline=orders)).status == ExecutionStatus.SUCCESS
    assert not Execution.objects.filter(pipeline=totals).exists()  # one asset of two
    assert finished(execution_create(pipeline=copies)).status == ExecutionStatus.SUCCESS
    run = wait_for(
        lambda: Execution.objects.filter(pipeline=totals, trigger=Trigger.ASSET).first(),
        timeout=30,
        what="the asset-triggered run of totals",
    )
    assert finished(run).status == ExecutionStatus.SUCCESS, run.error
    consumed = sorted(run.triggered_by.values_list("asset__name", "pk"))
    assert consumed == sorted(
        AssetEvent.objects.filter(pipeline__in=[orders, copies]).values_list("asset__name", "pk")
    )
    assert [name for name, _ in consumed] == ["pg.public.orders", "pg.public.orders_copy"]
    with psycopg.connect(pg_target) as conn:
        assert conn.execute("SELECT n FROM totals").fetchall() == [(30,)]
    assert Execution.objects.filter(pipeline=totals).count() == 1  # and no second one


def test_a_partitioned_copy_on_several_workers_records_one_event(
    workers: Any, pg_target: str
) -> None:
    workers(workers=4)
    with psycopg.connect(pg_target) as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 20000) i")
    copy = {
        "name": "copy",
        "type": "copy",
        "source": {"connection": "pg", "table": "big"},
        "destination": {"connection": "pg", "table": "big_copy"},
        "partition": {"column": "id", "chunks": 8},
    }
    pipeline = pipeline_create(data={"name": "chunks", "tasks": [copy]})
    for _ in range(2):
        execution = finished(execution_create(pipeline=pipeline))
        assert execution.status == ExecutionStatus.SUCCESS, execution.error
        assert len({tr.worker for tr in execution.tasks.all()}) > 1  # chunks ran side by side
        (event,) = AssetEvent.objects.filter(execution=execution)
        assert event.asset.name == "pg.public.big_copy"
