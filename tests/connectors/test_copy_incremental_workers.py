"""An incremental copy end to end: workers commit the watermark, the API shows and resets it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

from accounts.actor import Actor
from connectors.services import connection_create
from pipelines.models import ExecutionStatus
from pipelines.services import execution_create, pipeline_create
from tests.http import url
from tests.services import scratch_postgres_db
from tests.workers import finished

pytestmark = [pytest.mark.worker, pytest.mark.timeout(180)]


def _connection(name: str, db_url: str, actor: Actor) -> None:
    parsed = urlparse(db_url)
    connection_create(
        name=name,
        kind="postgresql",
        config={
            "host": parsed.hostname,
            "port": parsed.port or 5432,
            "database": parsed.path.lstrip("/"),
            "username": parsed.username or "postgres",
        },
        actor=actor,
    )


@pytest.fixture
def dbs(transactional_db: Any, developer: Any) -> Iterator[tuple[str, str]]:
    with scratch_postgres_db() as source, scratch_postgres_db() as dest:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("CREATE TABLE ev (id integer PRIMARY KEY, v text, updated_at timestamp)")
            conn.execute(
                "INSERT INTO ev VALUES (1, 'a', '2026-03-01 10:01'), (2, 'b', '2026-03-01 10:02'),"
                " (3, 'c', '2026-03-01 10:03')"
            )
        _connection("src", source, Actor.of(developer))
        _connection("dst", dest, Actor.of(developer))
        yield source, dest


def _sql(db_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def test_it_copies_the_late_row_and_everything_after_a_reset(
    workers: Any, dbs: tuple[str, str], developer: Any, api_client_for: Any
) -> None:
    source, dest = dbs
    workers()
    pipeline = pipeline_create(
        data={
            "name": "inc",
            "tasks": [
                {
                    "name": "copy_ev",
                    "type": "copy",
                    "source": {"connection": "src", "table": "public.ev"},
                    "destination": {
                        "connection": "dst",
                        "table": "public.ev",
                        "mode": "upsert",
                        "keys": ["id"],
                    },
                    "incremental": {"column": "updated_at"},
                }
            ],
        },
        actor=Actor.of(developer),
    )
    api = api_client_for(developer)
    marks = url(f"pipelines/{pipeline.pk}/watermarks")

    def run() -> Any:
        execution = finished(execution_create(pipeline=pipeline))
        assert execution.status == ExecutionStatus.SUCCESS, execution.error
        return execution

    run()
    body = api.get(marks).json()
    assert body["copy_ev"]["column"] == "updated_at"
    assert body["copy_ev"]["value"].startswith("2026-03-01 10:03:00")
    # Committed after that run, with the watermark's own value.
    _sql(source, "INSERT INTO ev VALUES (4, 'late', '2026-03-01 10:03')")
    second = run()
    assert second.metrics["rows_read"] == 2  # id 3 again, and the late row
    assert _sql(dest, "SELECT count(*), count(DISTINCT id) FROM ev") == [(4, 4)]
    # A change behind the watermark is not read ... until the watermark is reset.
    _sql(source, "UPDATE ev SET v = 'fixed' WHERE id = 1")
    assert run().metrics["rows_read"] == 2
    assert _sql(dest, "SELECT v FROM ev WHERE id = 1") == [("a",)]
    assert api.delete(f"{marks}/copy_ev").status_code == 204
    assert api.get(marks).json() == {}
    after = run()
    assert after.metrics["rows_read"] == 4  # every row
    assert _sql(dest, "SELECT v FROM ev WHERE id = 1") == [("fixed",)]
    assert _sql(dest, "SELECT count(*), count(DISTINCT id) FROM ev") == [(4, 4)]
    assert "copy_ev" in api.get(marks).json()
