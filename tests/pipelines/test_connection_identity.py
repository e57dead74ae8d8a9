"""Connections by identity (SPEC §9): versions bind connection ids, runs re-check the owner.

Every run here goes through the real engine in this process (``run_task``:
claim, the task type, the SQLite connector on a real file under a per-test
DATA_ROOT); only the broker hop is replaced by a list of the sent ids.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.permissions import Level
from accounts.services import sharing_set
from connectors.models import Connection
from connectors.services import connection_create, connection_delete, connection_update
from core.errors import Conflict, InvalidInput
from pipelines import alerts
from pipelines.engine.attempts import task_run_claim, task_run_fail
from pipelines.models import (
    ConnectionBinding,
    Execution,
    ExecutionStatus,
    Pipeline,
    TaskRunStatus,
    Trigger,
)
from pipelines.runner import run_task
from pipelines.services import (
    execution_create,
    execution_rerun,
    pipeline_backfill,
    pipeline_create,
    pipeline_update,
    schedule_tick,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> list[Any]:
    """Task run ids sent to the broker; ``drain`` runs them here with the real runner."""
    settings.DATA_ROOT = tmp_path
    ids: list[Any] = []
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", ids.extend)
    monkeypatch.setattr("pipelines.engine.reaper.enqueue_task_runs", ids.extend)
    return ids


def drain(sent: list[Any]) -> None:
    while sent:
        run_task(str(sent.pop(0)))


def sqlite_conn(name: str, path: str, user: Any) -> Any:
    return connection_create(name=name, kind="sqlite", config={"path": path}, actor=Actor.of(user))


def writer(name: str, table: str, connection: str) -> dict[str, Any]:
    """A pipeline whose one task creates ``table`` through ``connection``."""
    sql = f"CREATE TABLE {table} AS SELECT 1 AS x"
    return {
        "name": name,
        "tasks": [{"name": "t1", "type": "sql", "connection": connection, "sql": sql}],
    }


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def make_file(path: Path) -> bytes:
    """A real SQLite file with one table; returns its bytes to compare later."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sentinel (x INTEGER)")
    return path.read_bytes()


def finished(execution: Execution) -> Execution:
    execution.refresh_from_db()
    return execution


def test_it_renames_a_used_connection_and_runs_made_before_and_after_still_work(
    developer: Any, sent: list[Any]
) -> None:
    wh = sqlite_conn("wh", "wh.sqlite", developer)
    pipeline = pipeline_create(data=writer("p1", "before", "wh"), actor=Actor.of(developer))
    queued = execution_create(pipeline=pipeline, actor=Actor.of(developer))  # made on version 1

    connection_update(connection=wh, name="warehouse", actor=Actor.of(developer))

    pipeline.refresh_from_db()
    # The current definition follows the new name in a new version; version 1
    # keeps the name it was made with, and both bind the same connection.
    assert pipeline.version == 2
    assert pipeline.definition["tasks"][0]["connection"] == "warehouse"
    assert pipeline.versions.get(version=1).definition["tasks"][0]["connection"] == "wh"
    assert set(ConnectionBinding.objects.values_list("version__version", "name", "connection")) == {
        (1, "wh", wh.pk),
        (2, "warehouse", wh.pk),
    }
    drain(sent)
    assert finished(queued).status == ExecutionStatus.SUCCESS, queued.error
    pipeline_update(
        pipeline=pipeline, data=writer("p1", "after", "warehouse"), actor=Actor.of(developer)
    )
    later = execution_create(pipeline=pipeline, actor=Actor.of(developer))
    drain(sent)
    assert finished(later).status == ExecutionStatus.SUCCESS, later.error
    assert {"before", "after"} <= tables(Path(settings.DATA_ROOT) / "wh.sqlite")


def test_it_renames_only_the_renamed_side_of_a_copy_and_the_copy_still_runs(
    developer: Any, sent: list[Any], tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "src.sqlite") as db:
        db.execute("CREATE TABLE a (id INTEGER, connection TEXT)")
        db.execute("INSERT INTO a VALUES (1, 'x'), (2, 'y')")
    src = sqlite_conn("src", "src.sqlite", developer)
    sqlite_conn("dst", "dst.sqlite", developer)
    # A column called "connection" in a rename mapping is data, not a connection.
    rename = {"function": "rename", "params": {"mapping": {"connection": "src"}}}
    copy = {
        "name": "c",
        "type": "copy",
        "source": {"connection": "src", "table": "a"},
        "destination": {"connection": "dst", "table": "b", "mode": "append"},
        "transformations": [rename],
    }
    pipeline = pipeline_create(data={"name": "p1", "tasks": [copy]}, actor=Actor.of(developer))

    connection_update(connection=src, name="origin", actor=Actor.of(developer))

    pipeline.refresh_from_db()
    task = pipeline.definition["tasks"][0]
    assert task["source"]["connection"] == "origin"
    assert task["destination"]["connection"] == "dst"
    assert task["transformations"][0]["params"]["mapping"] == {"connection": "src"}
    execution = execution_create(pipeline=pipeline, actor=Actor.of(developer))
    drain(sent)
    assert finished(execution).status == ExecutionStatus.SUCCESS, execution.error
    with sqlite3.connect(tmp_path / "dst.sqlite") as db:
        assert db.execute("SELECT id, src FROM b ORDER BY id").fetchall() == [(1, "x"), (2, "y")]


def test_it_never_lets_old_versions_queued_runs_or_reruns_use_a_recreated_name(
    developer: Any, sent: list[Any], tmp_path: Path
) -> None:
    old = sqlite_conn("wh", "old.sqlite", developer)
    sqlite_conn("other", "other.sqlite", developer)
    pipeline = pipeline_create(data=writer("p1", "marker", "wh"), actor=Actor.of(developer))
    done = execution_create(pipeline=pipeline, actor=Actor.of(developer))
    drain(sent)
    assert finished(done).status == ExecutionStatus.SUCCESS
    queued = execution_create(
        pipeline=pipeline, actor=Actor.of(developer)
    )  # version 1, not run yet
    # The pipeline moves off wh, so wh may be deleted; another wh takes the name.
    pipeline_update(
        pipeline=pipeline, data=writer("p1", "marker", "other"), actor=Actor.of(developer)
    )
    connection_delete(connection=old, actor=Actor.of(developer))
    new_file = tmp_path / "new.sqlite"
    before = make_file(new_file)
    sqlite_conn("wh", "new.sqlite", developer)

    rerun = execution_rerun(execution=done, from_task="t1", actor=Actor.of(developer))  # version 1
    assert rerun.status == ExecutionStatus.FAILED  # refused when created, nothing ran
    assert "connection 'wh' no longer exists" in rerun.error
    drain(sent)  # the queued run's task resolves wh through version 1's binding
    queued = finished(queued)
    assert queued.status == ExecutionStatus.FAILED
    assert "connection 'wh' no longer exists" in queued.tasks.get().error
    assert new_file.read_bytes() == before and tables(new_file) == {"sentinel"}


def test_it_refuses_to_delete_a_connection_a_current_version_binds(developer: Any) -> None:
    wh = sqlite_conn("wh", "wh.sqlite", developer)
    pipeline_create(data=writer("p1", "marker", "wh"), actor=Actor.of(developer))
    with pytest.raises(Conflict) as refused:
        connection_delete(connection=wh, actor=Actor.of(developer))
    assert refused.value.errors == [{"path": "", "message": "used by p1"}]


@pytest.fixture
def shared(developer: Any, other_developer: Any) -> Any:
    """dev2's connection (a real SQLite file), shared with dev1 for use (``operate``)."""
    make_file(Path(settings.DATA_ROOT) / "shared.sqlite")
    conn = sqlite_conn("shared", "shared.sqlite", other_developer)
    sharing_set(
        obj=conn, users={developer: Level.OPERATE}, groups={}, actor=Actor.of(other_developer)
    )
    return conn


@pytest.fixture
def on_shared(developer: Any, shared: Any) -> Pipeline:
    """dev1's scheduled pipeline writing through ``shared``."""
    data = {**writer("p1", "marker", "shared"), "schedule": "*/5 * * * *"}
    return pipeline_create(data=data, actor=Actor.of(developer))


def create_by(
    trigger: Trigger, pipeline: Pipeline, user: Any, sent: list[Any]
) -> Callable[[], Any]:
    """A way to create a run of ``pipeline`` with ``trigger``; call it to get the execution."""
    if trigger == Trigger.SCHEDULE:
        now = timezone.now()
        pipeline.next_interval_start = now - timedelta(minutes=11)
        pipeline.save(update_fields=["next_interval_start"])

        def tick() -> Execution:
            assert schedule_tick(now=now) == 1
            return Execution.objects.get(trigger=trigger)

        return tick
    if trigger == Trigger.BACKFILL:
        # On a tick of */5, so [start, start + 4 min] holds exactly one interval.
        start = (timezone.now() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        return lambda: pipeline_backfill(
            pipeline=pipeline, start=start, end=start + timedelta(minutes=4), actor=Actor.of(user)
        )[0]
    if trigger == Trigger.RERUN:
        earlier = execution_create(pipeline=pipeline, actor=Actor.of(user))
        drain(sent)
        assert finished(earlier).status == ExecutionStatus.SUCCESS, earlier.error
        return lambda: execution_rerun(execution=earlier, from_task="t1", actor=Actor.of(user))
    return lambda: execution_create(pipeline=pipeline, actor=Actor.of(user), trigger=trigger)


@pytest.mark.parametrize(
    "trigger", [Trigger.MANUAL, Trigger.API, Trigger.SCHEDULE, Trigger.BACKFILL, Trigger.RERUN]
)
def test_it_fails_a_run_at_once_when_the_owner_lost_the_use_share(
    trigger: Trigger,
    developer: Any,
    other_developer: Any,
    shared: Any,
    on_shared: Pipeline,
    sent: list[Any],
    tmp_path: Path,
) -> None:
    create = create_by(trigger, on_shared, developer, sent)
    before = (tmp_path / "shared.sqlite").read_bytes()

    sharing_set(obj=shared, users={}, groups={}, actor=Actor.of(other_developer))  # revoked
    execution = create()

    assert execution.trigger == trigger and execution.status == ExecutionStatus.FAILED
    assert execution.started_at is None and sent == []  # no task reached the broker
    message = "the pipeline owner 'dev1' may no longer use connection 'shared'"
    task = execution.tasks.get()
    assert task.status == TaskRunStatus.FAILED and task.error == message
    assert message in execution.error
    assert (tmp_path / "shared.sqlite").read_bytes() == before


def test_it_runs_while_the_owner_keeps_the_use_share(
    developer: Any, on_shared: Pipeline, sent: list[Any], tmp_path: Path
) -> None:
    execution = execution_create(pipeline=on_shared, actor=Actor.of(developer))
    drain(sent)
    assert finished(execution).status == ExecutionStatus.SUCCESS, execution.error
    assert "marker" in tables(tmp_path / "shared.sqlite")


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``work`` on its own database connection; the dict gets its result or error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as exc:  # surfaced by the test
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def need_row_locks() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("row locks and concurrent writers need PostgreSQL (DATABASE_URL)")


def test_it_makes_a_delete_wait_for_a_change_binding_the_connection(developer: Any) -> None:
    need_row_locks()
    wh = sqlite_conn("wh", "wh.sqlite", developer)
    sqlite_conn("other", "other.sqlite", developer)
    pipeline = pipeline_create(data=writer("p1", "m", "other"), actor=Actor.of(developer))
    with transaction.atomic():
        pipeline_update(pipeline=pipeline, data=writer("p1", "m", "wh"), actor=Actor.of(developer))
        thread, outcome = in_thread(
            lambda: connection_delete(connection=wh, actor=Actor.of(developer))
        )
        thread.join(timeout=1)
        assert thread.is_alive()  # waits for the change to commit
    thread.join(timeout=30)
    assert isinstance(outcome.get("error"), Conflict), outcome
    assert outcome["error"].errors == [{"path": "", "message": "used by p1"}]
    assert Connection.objects.filter(pk=wh.pk).exists()


def test_it_makes_a_change_binding_a_connection_being_deleted_fail_clearly(
    developer: Any,
) -> None:
    need_row_locks()
    wh = sqlite_conn("wh", "wh.sqlite", developer)
    sqlite_conn("other", "other.sqlite", developer)
    pipeline = pipeline_create(data=writer("p1", "m", "other"), actor=Actor.of(developer))
    with transaction.atomic():
        connection_delete(connection=wh, actor=Actor.of(developer))
        thread, outcome = in_thread(
            lambda: pipeline_update(
                pipeline=pipeline, data=writer("p1", "m", "wh"), actor=Actor.of(developer)
            )
        )
        thread.join(timeout=1)
        assert thread.is_alive()  # waits for the delete to commit
    thread.join(timeout=30)
    assert isinstance(outcome.get("error"), InvalidInput), outcome
    assert outcome["error"].errors == [
        {"path": "tasks[0].connection", "message": "unknown connection 'wh'"}
    ]
    pipeline.refresh_from_db()
    assert pipeline.version == 1


def test_it_binds_existing_versions_to_the_connections_they_name_when_migrating(
    developer: Any,
) -> None:
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("pipelines", "0001_initial")], [("pipelines", "0002_connection_bindings")]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    others = [node for node in leaves if node[0] != "pipelines"]
    apps = executor.loader.project_state([*others, *before]).apps
    wh = apps.get_model("connectors", "Connection").objects.create(name="wh", kind="sqlite")
    pipeline = apps.get_model("pipelines", "Pipeline").objects.create(
        name="p1", definition={}, version=2
    )
    copy = {
        "name": "c",
        "type": "copy",
        "source": {"connection": "wh", "table": "a"},
        "destination": {"connection": "gone", "table": "b"},
    }
    versions = apps.get_model("pipelines", "PipelineVersion")
    old = versions.objects.create(pipeline=pipeline, version=1, definition={"tasks": [copy]})
    new = versions.objects.create(pipeline=pipeline, version=2, definition={"tasks": []})

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    try:
        rows = ConnectionBinding.objects.values_list("version_id", "name", "connection_id")
        # A name no connection has any more binds nothing: its runs fail naming it.
        assert set(rows) == {(old.pk, "wh", wh.pk), (old.pk, "gone", None)}
        assert not ConnectionBinding.objects.filter(version_id=new.pk).exists()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)


def test_it_scrubs_from_alerts_the_secrets_of_the_connections_the_run_bound(
    developer: Any, sent: list[Any]
) -> None:
    secret = "hunter2-bound-secret"
    config = {
        "host": "127.0.0.1",
        "port": 5432,
        "database": "warehouse",
        "username": "loader",
        "password": secret,
    }
    connection_create(name="pg", kind="postgresql", config=config, actor=Actor.of(developer))
    sqlite_conn("other", "other.sqlite", developer)
    pipeline = pipeline_create(data=writer("p1", "m", "pg"), actor=Actor.of(developer))
    execution = execution_create(pipeline=pipeline, actor=Actor.of(developer))  # version 1, on pg
    # The pipeline moves to another connection before the run's error is reported.
    pipeline_update(pipeline=pipeline, data=writer("p1", "m", "other"), actor=Actor.of(developer))
    claimed = task_run_claim(task_id=sent.pop(), worker="w1")
    assert claimed is not None
    task_run_fail(
        task_run=claimed,
        attempt=claimed.attempt,
        error=f'invalid input syntax for type integer: "{secret}"',
        transient=False,
        actor="w1",
        base_delay=0,
    )

    payload = alerts.alert_payload(finished(execution))
    assert secret not in json.dumps(payload)
    assert "invalid input syntax" in payload["text"]
