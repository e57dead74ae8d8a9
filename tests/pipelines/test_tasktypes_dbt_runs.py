"""pipelines.tasktypes.dbt runs: the real dbt on a real PostgreSQL, in this process and a worker.

The project is tests/dbt_projects/shop (a seed, two models, tests that pass
and one that fails on purpose; ``select: "+stg_orders"`` leaves it out).
Each run starts dbt in a child process against a scratch database; the
inline ones run the task exactly as a worker does (``run_task``) with the
broker hop replaced by a list (``no_broker``).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.models import Connection
from pipelines.models import Execution, ExecutionStatus, TaskLogLine, TaskRun, TaskRunStatus
from pipelines.runner import run_task
from pipelines.services import execution_cancel, execution_create, pipeline_create
from tests.factories import postgresql_connection
from tests.pipelines.definition_examples import pipeline
from tests.pipelines.test_runner import later
from tests.pipelines.test_tasktypes_dbt import FAILING_TEST, PROJECTS, SHOP, STG_NODES, dbt_task
from tests.services import scratch_postgres_db
from tests.workers import finished, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


@pytest.fixture
def root(settings: Any) -> Path:
    settings.DBT_PROJECTS_ROOT = PROJECTS
    return PROJECTS


@pytest.fixture
def dwh(transactional_db: Any, root: Path) -> Iterator[str]:
    """A scratch PostgreSQL database behind the connection ``dwh``."""
    with scratch_postgres_db() as url:
        postgresql_connection("dwh", url)
        yield url


def lines(task_run: TaskRun) -> list[str]:
    return list(
        TaskLogLine.objects.filter(task_run=task_run)
        .order_by("seq")
        .values_list("message", flat=True)
    )


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def tree(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def run_once(name: str, *tasks: dict[str, Any], **fields: Any) -> Execution:
    execution = execution_create(
        pipeline=pipeline_create(data=pipeline(*tasks, name=name, **fields))
    )
    while (queued := execution.tasks.filter(status=TaskRunStatus.QUEUED).first()) is not None:
        run_task(str(queued.pk))  # and the downstream tasks it makes ready
    execution.refresh_from_db()
    return execution


def test_it_builds_the_selected_nodes_with_vars_and_outputs_them(dwh: str, no_broker: Any) -> None:
    before = tree(SHOP)
    execution = run_once(
        "dbt_ok",
        dbt_task(select="+stg_orders", vars={"min_amount": {"param": "min_amount"}}),
        parameters={"min_amount": 25},
    )
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    run = execution.tasks.get()
    assert run.output == {"nodes": STG_NODES, "passed": 4, "failed": 0, "skipped": 0}
    assert rows(dwh, "SELECT id FROM public.stg_orders ORDER BY id") == [(1,), (2,), (4,)]
    log = lines(run)
    assert "dbt build in project 'shop'" in log
    assert any("Completed successfully" in line for line in log)
    assert tree(SHOP) == before  # target/ and logs/ went to the temporary folder


def test_it_fails_naming_the_failing_test(dwh: str, no_broker: Any) -> None:
    execution = run_once("dbt_fail", dbt_task())
    assert execution.status == ExecutionStatus.FAILED
    run = execution.tasks.get()
    assert run.status == TaskRunStatus.FAILED
    assert run.error == (
        f"dbt build: 1 failed: {FAILING_TEST} (fail: Got 1 result, configured to fail if != 0)"
    )
    assert run.metrics["passed"] == 6 and run.metrics["failed"] == 1
    assert rows(dwh, "SELECT customer, total FROM public.customer_totals ORDER BY 1") == [
        ("alice", 80),
        ("bob", 220),
        ("carol", 5),
    ]
    assert any("Failure in test total_under_100_fails_on_purpose" in line for line in lines(run))


def _sleeping(url: str) -> bool:
    found = rows(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'"
        " AND pid <> pg_backend_pid() AND datname = current_database()",
    )
    return bool(found[0][0])


def _dbt_processes() -> list[int]:
    """Children of this process running dbt."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("PPid:"))
        if ppid == os.getpid() and b"dbt.cli.main" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_cancel_stops_dbt_and_its_query(dwh: str, no_broker: Any) -> None:
    task = dbt_task(select="+customer_totals", vars={"sleep_seconds": 120})
    execution = execution_create(pipeline=pipeline_create(data=pipeline(task, name="dbt_cancel")))
    run = execution.tasks.get()

    def cancel_once_sleeping() -> None:
        wait_for(lambda: _sleeping(dwh), timeout=60, what="dbt's query to run")
        execution_cancel(execution=Execution.objects.get(pk=execution.pk), reason="by test")

    started = time.monotonic()
    with later(0, cancel_once_sleeping):
        assert run_task(str(run.pk)) == "cancelled"
    assert time.monotonic() - started < 60  # not the 120 s of the model
    run.refresh_from_db()
    assert run.status == TaskRunStatus.CANCELLED
    assert _dbt_processes() == []
    wait_for(lambda: not _sleeping(dwh), timeout=10, what="the query to stop")


def test_a_timeout_stops_dbt(dwh: str, no_broker: Any) -> None:
    task = dbt_task(select="+customer_totals", vars={"sleep_seconds": 120}, timeout=15)
    execution = run_once("dbt_timeout", task)
    run = execution.tasks.get()
    assert (run.status, run.error) == (TaskRunStatus.FAILED, "timed out after 15s")
    assert _dbt_processes() == []
    wait_for(lambda: not _sleeping(dwh), timeout=10, what="the query to stop")


def test_it_refuses_at_run_a_project_moved_out_of_the_root(
    dwh: str, no_broker: Any, settings: Any, tmp_path: Path
) -> None:
    settings.DBT_PROJECTS_ROOT = tmp_path / "root"
    shutil.copytree(SHOP, tmp_path / "root" / "shop")
    pipe = pipeline_create(data=pipeline(dbt_task(), name="dbt_moved"))  # valid when saved
    shutil.rmtree(tmp_path / "root" / "shop")
    (tmp_path / "root" / "shop").symlink_to(SHOP)  # then swapped for a link out
    execution = execution_create(pipeline=pipe)
    run = execution.tasks.get()
    assert run_task(str(run.pk)) == "failed"
    run.refresh_from_db()
    assert run.error == "project 'shop' resolves outside DBT_PROJECTS_ROOT; refused"


def test_it_checks_the_host_with_the_outbound_policy_before_starting_dbt(
    dwh: str, no_broker: Any
) -> None:
    execution = execution_create(pipeline=pipeline_create(data=pipeline(dbt_task(), name="dbt_h")))
    # A row whose host was never validated (written before the policy existed).
    connection = Connection.objects.get(name="dwh")
    Connection.objects.filter(pk=connection.pk).update(
        config={**connection.config, "host": "169.254.169.254"}
    )
    run = execution.tasks.get()
    assert run_task(str(run.pk)) == "failed"
    run.refresh_from_db()
    assert run.error == (
        "postgresql: host '169.254.169.254' is refused: 169.254.169.254 (link-local)"
    )
    assert not any("Running with dbt" in line for line in lines(run))


def test_dbt_connects_to_the_address_the_policy_checked(
    transactional_db: Any, root: Path, no_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name only this process resolves: dbt, a child process, reaches the database
    only through the address given to libpq (it cannot resolve the name itself)."""
    resolve = socket.getaddrinfo

    def only_here(host: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve(
            "127.0.0.1" if host == "warehouse.dbt-test.invalid" else host, *args, **kwargs
        )

    monkeypatch.setattr(socket, "getaddrinfo", only_here)
    with scratch_postgres_db() as url:
        postgresql_connection("dwh", url, host="warehouse.dbt-test.invalid")
        execution = run_once("dbt_pin", dbt_task(command="seed"))
        assert execution.status == ExecutionStatus.SUCCESS, execution.error
        assert rows(url, "SELECT count(*) FROM public.raw_orders") == [(5,)]


# ---------------------------------------------------------------------------
# Through a real worker
# ---------------------------------------------------------------------------


@pytest.mark.worker
def test_a_worker_runs_dbt_with_an_upstream_output_as_a_var(workers: Any, dwh: str) -> None:
    workers(env={"DBT_PROJECTS_ROOT": str(PROJECTS)})
    prep = {
        "name": "threshold",
        "type": "sql",
        "connection": "dwh",
        "sql": "CREATE TABLE threshold AS SELECT generate_series(1, 25) AS n",
    }
    task = dbt_task(
        select="+stg_orders",
        vars={"min_amount": {"output": ["threshold", "rows_affected"]}},
        depends_on=["threshold"],
    )
    pipe = pipeline_create(data=pipeline(prep, task, name="dbt_worker"))
    execution = finished(execution_create(pipeline=pipe), timeout=180)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    marts = execution.tasks.get(task_name="marts")
    assert marts.output == {"nodes": STG_NODES, "passed": 4, "failed": 0, "skipped": 0}
    assert rows(dwh, "SELECT id FROM public.stg_orders ORDER BY id") == [(1,), (2,), (4,)]
