"""Copy tasks end to end through real workers, with a worker killed mid-copy."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

from connectors.services import connection_create
from pipelines.models import ExecutionStatus, TaskRunStatus
from pipelines.services import execution_create, pipeline_create
from tests.services import scratch_postgres_db
from tests.workers import finished, running, worker_pid

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]

ROWS = 60_000
# Every 5,000th row makes the source sleep 0.3 s, so a copy lasts a few
# seconds and a worker can be killed in the middle of it.
SLOW_SOURCE = (
    "SELECT id, account_id, name, amount, created_at FROM src "
    "WHERE mod(id, 5000) <> 0 OR pg_sleep(0.3)::text = ''"
)
CHECKSUM = "SELECT count(*), md5(string_agg({cols}, '|' ORDER BY {key})) FROM {table}"


def _connection(name: str, url: str) -> None:
    parsed = urlparse(url)
    connection_create(
        name=name,
        kind="postgresql",
        config={
            "host": parsed.hostname,
            "port": parsed.port or 5432,
            "database": parsed.path.lstrip("/"),
            "username": parsed.username or "postgres",
        },
    )


@pytest.fixture
def dbs(transactional_db: Any) -> Iterator[tuple[str, str]]:
    """Source (with table ``src``) and destination databases behind ``src`` and ``dst``."""
    with scratch_postgres_db() as source, scratch_postgres_db() as dest:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE src AS SELECT g AS id, g % 97 AS account_id, "
                "'name ' || g AS name, (g % 1000)::numeric(10,2) AS amount, "
                "timestamptz '2026-01-01' + g * interval '1 minute' AS created_at "
                f"FROM generate_series(1, {ROWS}) g"
            )
            conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
        _connection("src", source)
        _connection("dst", dest)
        yield source, dest


def checksum(url: str, table: str, cols: str, key: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(CHECKSUM.format(cols=cols, key=key, table=table)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def copy_pipeline(name: str, **task: Any) -> Any:
    spec = {
        "name": "copy",
        "type": "copy",
        "source": {"connection": "src", "query": SLOW_SOURCE},
        "destination": {"connection": "dst", "table": "public.dst", "mode": "append"},
        **task,
    }
    return pipeline_create(data={"name": name, "tasks": [spec]})


def test_it_copies_with_transformations_through_a_worker(
    workers: Any, dbs: tuple[str, str]
) -> None:
    source, dest = dbs
    workers()
    pipeline = copy_pipeline(
        "transform",
        source={"connection": "src", "table": "public.src"},
        transformations=[
            {"function": "filter", "params": {"where": [["amount", ">=", 100]]}},
            {"function": "select", "params": {"columns": ["id", "name", "amount"]}},
            {"function": "rename", "params": {"mapping": {"amount": "total"}}},
        ],
    )
    execution = finished(execution_create(pipeline=pipeline))
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    expected_sql = "(SELECT id, name, amount AS total FROM src WHERE amount >= 100) s"
    expected = checksum(source, expected_sql, "id || ',' || name || ',' || total", "id")
    assert checksum(dest, "dst", "id || ',' || name || ',' || total", "id") == expected
    assert execution.metrics["rows_written"] == expected[0]


def test_it_copies_exactly_once_after_its_worker_is_killed(
    workers: Any, dbs: tuple[str, str]
) -> None:
    source, dest = dbs
    workers()
    pipeline = copy_pipeline("crash", retries=1, retry_delay=0)
    execution = execution_create(pipeline=pipeline)
    run = running(execution, "copy")
    time.sleep(1.5)  # well into the copy: some rows are in flight to the destination
    os.kill(worker_pid(run), signal.SIGKILL)
    finished(execution, timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run.refresh_from_db()
    assert run.attempt == 2
    cols = "id || ',' || name || ',' || amount || ',' || created_at"
    assert checksum(dest, "dst", cols, "id") == checksum(source, "src", cols, "id")
    with psycopg.connect(dest) as conn:
        dupes = conn.execute("SELECT count(*) - count(DISTINCT id) FROM dst").fetchone()
    assert dupes == (0,)


def test_it_spreads_a_partitioned_copy_over_two_workers(workers: Any, dbs: tuple[str, str]) -> None:
    source, dest = dbs
    workers(workers=2)
    pipeline = copy_pipeline("chunks", partition={"column": "id", "chunks": 4})
    execution = finished(execution_create(pipeline=pipeline), timeout=120)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    chunks = list(execution.tasks.order_by("task_name"))
    assert [c.task_name for c in chunks] == [f"copy[{i}]" for i in range(4)]
    assert all(c.status == TaskRunStatus.SUCCESS for c in chunks)
    assert len({worker_pid(c) for c in chunks}) >= 2, "chunks spread over worker processes"
    cols = "id || ',' || name || ',' || amount || ',' || created_at"
    assert checksum(dest, "dst", cols, "id") == checksum(source, "src", cols, "id")


def test_it_leaves_no_rows_when_a_copy_is_cancelled(workers: Any, dbs: tuple[str, str]) -> None:
    from pipelines.services import execution_cancel

    _, dest = dbs
    workers()
    # Slower than the others (about 12 s), so the cancel lands mid-copy.
    slower = SLOW_SOURCE.replace("mod(id, 5000)", "mod(id, 2500)").replace("0.3", "0.5")
    pipeline = copy_pipeline("cancelled", source={"connection": "src", "query": slower})
    execution = execution_create(pipeline=pipeline)
    running(execution, "copy")
    time.sleep(1)
    asked = time.monotonic()
    execution_cancel(execution=execution)
    finished(execution, timeout=20)
    assert time.monotonic() - asked < 10
    assert execution.status == ExecutionStatus.CANCELLED
    with psycopg.connect(dest) as conn:
        exists = conn.execute("SELECT to_regclass('public.dst') IS NOT NULL").fetchone()
        rows = conn.execute("SELECT count(*) FROM dst").fetchone() if exists == (True,) else (0,)
    assert rows == (0,)


def test_it_keeps_its_lease_while_the_source_thinks(workers: Any, dbs: tuple[str, str]) -> None:
    """A source that takes longer than the lease before its first row is not a dead worker.

    Waiting for the first row must not block the worker's heartbeat thread.
    """
    _, dest = dbs
    workers()
    pondering = (
        "WITH pause AS MATERIALIZED (SELECT pg_sleep(7)) SELECT id, name FROM src CROSS JOIN pause"
    )
    pipeline = copy_pipeline("thinking", source={"connection": "src", "query": pondering})
    execution = finished(execution_create(pipeline=pipeline), timeout=60)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run = execution.tasks.get()
    assert run.attempt == 1  # never taken for lost
    with psycopg.connect(dest) as conn:
        assert conn.execute("SELECT count(*) FROM dst").fetchone() == (ROWS,)
