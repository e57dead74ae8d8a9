"""Disaster recovery: pg_dump/pg_restore of the metadata database; workers killed.

The restore test follows docs/operations.md to the letter: a metadata
database with pipelines, versions, runs and an encrypted connection is
dumped with ``pg_dump -Fc``, restored with ``pg_restore`` into a fresh
database, and a new process (the same FERNET_KEYS and SECRET_KEY) finds
everything, decrypts the secret, and runs the pipeline with a real worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from pipelines.models import Execution, TaskRunStatus, Transition
from pipelines.services import execution_create, pipeline_create
from tests.factories import pg_config, postgresql_connection
from tests.ops.conftest import named, same_prefix, scrape
from tests.services import missing, need_postgres, scratch_postgres_db
from tests.workers import BASE_DIR, FINISHED, WorkerCluster, wait_for

PASSWORD = "restore-me-s3cret"

SEED = """
import json
from connectors.models import Connection
from connectors.services import connection_create
from pipelines.models import Execution, TaskRun
from pipelines.services import execution_create, pipeline_create, pipeline_update
connection_create(name="meta_pg", kind="postgresql", config=CONFIG)
definition = {"name": "nightly", "max_active_runs": 8, "tasks": [
    {"name": "a", "type": "sql", "connection": "meta_pg", "sql": "SELECT 1"}]}
pipeline = pipeline_create(data=definition)
definition["tasks"].append({"name": "b", "type": "sql", "connection": "meta_pg",
                            "sql": "SELECT 2", "depends_on": ["a"]})
pipeline = pipeline_update(pipeline=pipeline, data=definition)
runs = [execution_create(pipeline=pipeline) for _ in range(3)]
Execution.objects.filter(pk=runs[0].pk).update(status="success", metrics={"rows_read": 7})
TaskRun.objects.filter(execution=runs[0]).update(status="success")
Execution.objects.filter(pk=runs[1].pk).update(status="failed", error="b: boom")
print(json.dumps({"pipeline": str(pipeline.pk), "runs": [str(r.pk) for r in runs]}))
"""

VERIFY = """
import json
from connectors.models import Connection
from pipelines.models import Execution, Pipeline, PipelineVersion, TaskRun, Transition
from pipelines.services import execution_create
pipeline = Pipeline.objects.get(name="nightly")
connection = Connection.objects.get(name="meta_pg")
out = {
    "pipeline": str(pipeline.pk),
    "version": pipeline.version,
    "versions": sorted(PipelineVersion.objects.filter(pipeline=pipeline)
                       .values_list("version", flat=True)),
    "runs": {str(e.pk): [e.status, e.metrics, e.error, e.version.version]
             for e in Execution.objects.all()},
    "task_runs": TaskRun.objects.count(),
    "transitions": Transition.objects.count(),
    "password": connection.full_config().get("password"),
    "encrypted": connection.secrets,
}
if RUN:
    out["new_run"] = str(execution_create(pipeline=pipeline).pk)
print(json.dumps(out))
"""


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _json_line(output: str) -> dict[str, Any]:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def _env(database_url: str, fernet_key: str, prefix: str, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "FERNET_KEYS": fernet_key,
        "SECRET_KEY": "restore-test-" + "s" * 40,
        "REDIS_PREFIX": prefix,
        "DATADOG_VAR_DIR": str(var_dir),
        "DATA_ROOT": str(var_dir / "data"),
        "LOG_LEVEL": "WARNING",
    }


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.timeout(300)
def test_it_restores_a_dump_into_a_fresh_database(tmp_path: Path, transactional_db: Any) -> None:
    admin = need_postgres()
    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            missing(tool)
    config = {**pg_config(admin), "password": PASSWORD}
    key = Fernet.generate_key().decode()
    prefix = f"restore_{uuid.uuid4().hex[:8]}"
    dump = tmp_path / "datadog.dump"
    with scratch_postgres_db() as source, scratch_postgres_db() as target:
        env = _env(source, key, prefix, tmp_path / "source")
        _manage(env, "migrate", "--noinput", "-v", "0")
        seeded = _json_line(_manage(env, "shell", "-c", f"CONFIG = {config!r}\n" + SEED))
        before = _json_line(_manage(env, "shell", "-c", "RUN = False\n" + VERIFY))

        # docs/operations.md, "Backup" and "Restore".
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--dbname={source}", f"--file={dump}"],
            check=True,
            timeout=120,
        )
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)],
            check=True,
            timeout=120,
        )

        restored_env = _env(target, key, prefix, tmp_path / "target")
        # The schema is complete: nothing left to migrate.
        _manage(restored_env, "migrate", "--check", "-v", "0")
        after = _json_line(_manage(restored_env, "shell", "-c", "RUN = False\n" + VERIFY))
        assert after == before
        assert after["pipeline"] == seeded["pipeline"]
        assert (after["version"], after["versions"]) == (2, [1, 2])
        assert set(after["runs"]) == set(seeded["runs"])
        assert after["runs"][seeded["runs"][0]][:2] == ["success", {"rows_read": 7}]
        assert after["runs"][seeded["runs"][1]][0] == "failed"
        assert after["task_runs"] == 6 and after["transitions"] > 0
        assert after["password"] == PASSWORD
        assert PASSWORD not in after["encrypted"]  # encrypted at rest

        # Another key cannot read the secret: keep FERNET_KEYS with the backup.
        wrong = _env(target, Fernet.generate_key().decode(), prefix, tmp_path / "wrong")
        probe = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", "RUN = False\n" + VERIFY],
            cwd=BASE_DIR,
            env=wrong,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode != 0 or PASSWORD not in probe.stdout

        # Usable: a worker on the restored database runs the pipeline.
        cluster = WorkerCluster(
            workers=1,
            env={
                "DATABASE_URL": target,
                "FERNET_KEYS": key,
                "SECRET_KEY": restored_env["SECRET_KEY"],
                "REDIS_PREFIX": prefix,
                "DATADOG_VAR_DIR": restored_env["DATADOG_VAR_DIR"],
                "DATA_ROOT": restored_env["DATA_ROOT"],
            },
        )
        try:
            new_run = _json_line(_manage(restored_env, "shell", "-c", "RUN = True\n" + VERIFY))[
                "new_run"
            ]
            status_of = (
                "from pipelines.models import Execution\n"
                f"print(Execution.objects.get(pk='{new_run}').status)"
            )

            def done() -> str | None:
                # The last line: Django's shell may print a banner first.
                status = _manage(restored_env, "shell", "-c", status_of).strip().splitlines()[-1]
                return status if status in FINISHED else None

            try:
                status = wait_for(done, timeout=90, interval=1, what="the restored run")
            except AssertionError:
                state = _manage(
                    restored_env,
                    "shell",
                    "-c",
                    "from pipelines.models import TaskRun, Execution\n"
                    "print(list(Execution.objects.values_list('status', 'created_at')))\n"
                    "print(list(TaskRun.objects.values_list('task_name', 'status', 'queued_at')))",
                )
                raise AssertionError(state + cluster.output()[:3000]) from None
            assert status == "success", cluster.output()[-5000:]
        finally:
            cluster.stop()


@pytest.fixture
def pg_target(transactional_db: Any) -> None:
    """A PostgreSQL connection ``pg`` for tasks that sleep in the database."""
    postgresql_connection("pg", need_postgres())


@pytest.mark.worker
@pytest.mark.timeout(240)
def test_it_finishes_every_queued_run_after_workers_are_killed_and_restarted(
    workers: Callable[..., WorkerCluster], pg_target: None
) -> None:
    def sleepy(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": "sql",
            "connection": "pg",
            "sql": "SELECT pg_sleep(0.4)",
            "retries": 3,
            "retry_delay": 1,
            **extra,
        }

    pipeline = pipeline_create(
        data={
            "name": "chain",
            "max_active_runs": 4,
            "tasks": [sleepy("a"), sleepy("b", depends_on=["a"]), sleepy("c", depends_on=["b"])],
        }
    )
    runs = [execution_create(pipeline=pipeline) for _ in range(8)]
    first = workers(workers=2, env=same_prefix())
    # Kill (SIGKILL, the whole cluster) while tasks are running.
    wait_for(
        lambda: Transition.objects.filter(to_status=TaskRunStatus.SUCCESS).count() >= 2,
        timeout=60,
        what="some tasks to succeed",
    )
    wait_for(
        lambda: Execution.objects.filter(tasks__status=TaskRunStatus.RUNNING).exists(),
        timeout=30,
        what="a task to be running",
    )
    first.stop()
    left = Execution.objects.exclude(status__in=FINISHED).count()
    assert left > 0, "everything finished before the kill; the test proves nothing"

    workers(workers=2, env=same_prefix())
    wait_for(
        lambda: not Execution.objects.exclude(status__in=FINISHED).exists(),
        timeout=180,
        interval=0.5,
        what="every run to finish after the restart",
    )
    statuses = {str(e.pk): e.status for e in Execution.objects.filter(pk__in=[r.pk for r in runs])}
    assert set(statuses.values()) == {"success"}, statuses
    samples = scrape()
    assert named(samples, "datadog_pipeline_executions_total") == {
        frozenset({("pipeline", "chain"), ("status", "success")}): 8
    }
