"""Assets: names, the definition keys, events recorded by real task runs, asset-triggered runs.

Tasks run in this process exactly as a worker runs them (``pipelines.runner.run_task``
on a real SQLite file under a per-test DATA_ROOT); only the broker hop is a list
of sent ids (``no_broker``). The races run on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.permissions import Level
from connectors.models import Connection
from connectors.services import connection_create, connection_update
from core.errors import InvalidInput
from pipelines import definition
from pipelines.assets.names import asset_name
from pipelines.assets.selectors import asset_events_pending
from pipelines.models import (
    Asset,
    AssetEvent,
    AssetTrigger,
    Execution,
    ExecutionStatus,
    Pipeline,
    TaskRun,
    Trigger,
)
from pipelines.runner import run_task
from pipelines.services import execution_create, pipeline_create, pipeline_update, schedule_tick
from pipelines.services.schedule import asset_check
from tests.factories import share, sql_pipeline, sql_task

pytestmark = pytest.mark.django_db(transaction=True)


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("kind", "config", "table", "expected"),
    [
        ("postgresql", {"database": "dwh"}, "orders", "c.public.orders"),
        ("postgresql", {"database": "dwh"}, "staging.orders", "c.staging.orders"),
        ("mysql", {"database": "shop"}, "orders", "c.shop.orders"),
        ("mysql", {"database": "shop"}, "other.orders", "c.other.orders"),
        ("sqlite", {"path": "wh.sqlite"}, "orders", "c.main.orders"),
        ("csv", {"path": "exports/daily/"}, "orders.csv", "c.exports/daily/orders.csv"),
        ("jsonl", {"path": "."}, "orders.jsonl", "c.orders.jsonl"),
        ("csv", {"path": "exports"}, "exports/orders.csv", "c.exports/orders.csv"),
    ],
)
def test_an_asset_name_always_carries_the_schema(
    kind: str, config: dict[str, Any], table: str, expected: str
) -> None:
    assert asset_name("c", kind, config, table) == expected


# ------------------------------------------------------------- definition


def problems(data: dict[str, Any]) -> dict[str, str]:
    normalized, found = definition.validate(data)
    assert (normalized is None) == bool(found)
    return {p.path: p.message for p in found}


def test_a_schedule_may_be_a_list_of_assets() -> None:
    data = sql_pipeline("c", schedule={"assets": ["wh.main.a", "wh.b"]})
    normalized = definition.load(data)
    assert normalized["schedule"] == {"assets": ["wh.main.a", "wh.b"]}
    assert definition.load(sql_pipeline("c", schedule="@daily"))["schedule"] == "0 0 * * *"


@pytest.mark.parametrize(
    ("schedule", "path", "fragment"),
    [
        ({"assets": []}, "schedule.assets", "empty"),
        ({"assets": "wh.a"}, "schedule.assets", "list"),
        ({"assets": ["wh"]}, "schedule.assets[0]", "expected <connection>.<schema>.<table>"),
        ({"assets": ["bad name.a"]}, "schedule.assets[0]", "connection part"),
        ({"assets": ["wh.a b"]}, "schedule.assets[0]", "spaces"),
        ({"assets": ["wh.a", "wh.a"]}, "schedule.assets[1]", "listed twice"),
        ({"assets": ["wh.a"], "cron": "x"}, "schedule.cron", "unknown key"),
        ({}, "schedule.assets", "missing"),
    ],
)
def test_a_bad_asset_schedule_is_refused_at_its_path(
    schedule: Any, path: str, fragment: str
) -> None:
    found = problems(sql_pipeline("c", schedule=schedule))
    assert path in found, found
    assert fragment in found[path]


def test_outlets_are_for_sql_tasks_on_the_pipelines_connections() -> None:
    ok = definition.load(sql_pipeline("p", [sql_task("t", outlets=["wh.marts.daily"])]))
    assert ok["tasks"][0]["outlets"] == ["wh.marts.daily"]
    assert "outlets" not in definition.load(sql_pipeline("p"))["tasks"][0]
    found = problems(sql_pipeline("p", [sql_task("t", outlets=["other.marts.daily"])]))
    assert "not used by any task" in found["tasks[0].outlets[0]"]
    copy = {
        "name": "c",
        "type": "copy",
        "source": {"connection": "wh", "table": "a"},
        "destination": {"connection": "wh", "table": "b"},
        "outlets": ["wh.main.b"],
    }
    found = problems(sql_pipeline("p", [copy]))
    assert list(found) == ["tasks[0].outlets"]  # a copy records its destination itself
    assert found["tasks[0].outlets"].startswith("unknown key 'outlets'")
    schema = definition.task_schema("sql")
    assert "outlets" in schema["properties"]
    assert "outlets" not in definition.task_schema("copy")["properties"]


def test_scheduled_assets_are_written_in_full_and_need_a_visible_connection(
    make_pipeline: Callable[..., Any], developer: Any, other_developer: Any, sqlite_connection: Any
) -> None:
    make_pipeline("seed", user=developer)  # connection wh, owned by developer
    pipeline = pipeline_create(
        data=sql_pipeline("c", schedule={"assets": ["wh.a", "wh.main.b", "wh.main.a"]}),
        actor=Actor.of(developer),
    )
    assert pipeline.schedule == ""
    assert pipeline.schedule_assets == ["wh.main.a", "wh.main.b"]
    assert pipeline.definition["schedule"] == {"assets": ["wh.main.a", "wh.main.b"]}
    # Listed before any event, for the assets page.
    assert set(Asset.objects.values_list("name", flat=True)) == {"wh.main.a", "wh.main.b"}
    sqlite_connection("theirs", "t.sqlite", user=other_developer)
    mine = sql_pipeline("d", schedule={"assets": ["theirs.a", "nowhere.a"]})
    with pytest.raises(InvalidInput) as refused:
        pipeline_create(data=mine, actor=Actor.of(developer))
    assert refused.value.errors == [
        {"path": "schedule.assets[0]", "message": "unknown connection 'theirs'"},
        {"path": "schedule.assets[1]", "message": "unknown connection 'nowhere'"},
    ]
    share(Connection.objects.get(name="theirs"), developer, Level.VIEW)
    mine["schedule"] = {"assets": ["theirs.a"]}
    developer = type(developer).objects.get(pk=developer.pk)  # no permissions cached
    assert pipeline_create(data=mine, actor=Actor.of(developer)).schedule_assets == [
        "theirs.main.a"
    ]


def test_changing_a_schedule_between_cron_and_assets(make_pipeline: Callable[..., Any]) -> None:
    pipeline = make_pipeline("c", schedule="0 * * * *")
    assert (pipeline.schedule, pipeline.schedule_assets) == ("0 * * * *", [])
    data = {**pipeline.definition, "schedule": {"assets": ["wh.x"]}}
    pipeline = pipeline_update(pipeline=pipeline, data=data)
    assert (pipeline.schedule, pipeline.schedule_assets) == ("", ["wh.main.x"])
    assert pipeline.next_interval_start is None
    data = {**pipeline.definition, "schedule": None}
    pipeline = pipeline_update(pipeline=pipeline, data=data)
    assert (pipeline.schedule, pipeline.schedule_assets) == ("", [])
    assert pipeline.version == 3


def test_renaming_a_connection_renames_the_assets_its_pipelines_name(
    make_pipeline: Callable[..., Any],
) -> None:
    make_pipeline("seed")
    pipeline = pipeline_create(
        data=sql_pipeline(
            "p",
            [sql_task("w", "SELECT 1", outlets=["wh.marts.daily"])],
            schedule={"assets": ["wh.x"]},
        )
    )
    connection_update(connection=Connection.objects.get(name="wh"), name="warehouse")
    pipeline.refresh_from_db()
    assert pipeline.definition["tasks"][0]["outlets"] == ["warehouse.marts.daily"]
    assert pipeline.schedule_assets == ["warehouse.main.x"]
    assert definition.load(pipeline.definition) == pipeline.definition  # still valid


# ------------------------------------------------------------ run helpers


def run(pipeline: Pipeline, sent: list[Any]) -> Execution:
    """One manual execution of ``pipeline``, its task runs run here in order."""
    execution = execution_create(pipeline=pipeline, trigger=Trigger.MANUAL)
    return drain(execution, sent)


def drain(execution: Execution, sent: list[Any]) -> Execution:
    while sent:
        run_task(str(sent.pop(0)))
    execution.refresh_from_db()
    return execution


def writer(name: str, table: str, **extra: Any) -> dict[str, Any]:
    return sql_pipeline(
        name,
        [sql_task("w", f"CREATE TABLE IF NOT EXISTS {table} (x int)", outlets=[f"wh.{table}"])],
        **extra,
    )


def events_of(name: str) -> list[AssetEvent]:
    return list(AssetEvent.objects.filter(asset__name=name).order_by("at"))


# ---------------------------------------------------------------- events


def test_a_sql_task_records_its_outlets_when_it_succeeds(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    pipeline = pipeline_create(data=writer("w", "daily"))
    execution = run(pipeline, no_broker)
    assert execution.status == ExecutionStatus.SUCCESS
    (event,) = events_of("wh.main.daily")
    assert event.execution_id == execution.pk
    assert event.pipeline_id == pipeline.pk
    assert event.task_run == TaskRun.objects.get(execution=execution)
    assert event.asset.connection.name == "wh"
    failing = pipeline_create(
        data=sql_pipeline("f", [sql_task("w", "SELECT * FROM missing", outlets=["wh.daily"])])
    )
    assert run(failing, no_broker).status == ExecutionStatus.FAILED
    assert len(events_of("wh.main.daily")) == 1  # a failed task writes no event


def test_a_copy_records_its_destination_once_even_in_chunks(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    seed = pipeline_create(
        data=sql_pipeline(
            "s",
            [
                sql_task(
                    "s",
                    [
                        "CREATE TABLE src (id int, v text)",
                        "INSERT INTO src VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
                    ],
                )
            ],
        )
    )
    run(seed, no_broker)
    copy = {
        "name": "c",
        "type": "copy",
        "source": {"connection": "wh", "table": "src"},
        "destination": {"connection": "wh", "table": "dst"},
    }
    plain = pipeline_create(data={"name": "plain", "tasks": [copy]})
    assert run(plain, no_broker).status == ExecutionStatus.SUCCESS
    assert len(events_of("wh.main.dst")) == 1
    chunked = {**copy, "destination": {"connection": "wh", "table": "dst2"}}
    chunked["partition"] = {"column": "id", "chunks": 3}
    execution = run(pipeline_create(data={"name": "chunked", "tasks": [chunked]}), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS
    assert execution.tasks.count() == 3
    (event,) = events_of("wh.main.dst2")  # one event: when the last chunk succeeded
    last = execution.tasks.order_by("-ended_at").first()
    assert event.task_run_id == last.pk


def test_a_python_task_records_its_outlets(
    make_pipeline: Callable[..., Any], no_broker: list[Any], settings: Any
) -> None:
    settings.PYTHON_TASK_MODULES = ["tests.pyjobs"]
    make_pipeline("seed")
    task = {
        "name": "py",
        "type": "python",
        "callable": "tests.pyjobs.jobs:answer",
        "connections": ["wh"],
        "kwargs": {"connection": "wh"},
        "outlets": ["wh.py_answers"],
    }
    execution = run(pipeline_create(data={"name": "py", "tasks": [task]}), no_broker)
    assert execution.status == ExecutionStatus.SUCCESS, execution.error
    (event,) = events_of("wh.main.py_answers")
    assert event.execution_id == execution.pk


def test_a_copy_into_a_file_records_the_file_in_its_folder(
    make_pipeline: Callable[..., Any], no_broker: list[Any], settings: Any
) -> None:
    make_pipeline("seed")
    (settings.DATA_ROOT / "exports").mkdir()
    connection_create(name="files", kind="csv", config={"path": "exports"})
    seed = pipeline_create(
        data=sql_pipeline(
            "s", [sql_task("s", ["CREATE TABLE src (id int)", "INSERT INTO src VALUES (1)"])]
        )
    )
    run(seed, no_broker)
    copy = {
        "name": "c",
        "type": "copy",
        "source": {"connection": "wh", "table": "src"},
        "destination": {"connection": "files", "table": "out.csv", "mode": "replace"},
    }
    assert run(pipeline_create(data={"name": "tofile", "tasks": [copy]}), no_broker).status == (
        ExecutionStatus.SUCCESS
    )
    (event,) = events_of("files.exports/out.csv")
    assert event.asset.connection.name == "files"


# ------------------------------------------------------ asset-triggered runs


def consumer(name: str, *assets: str) -> Pipeline:
    return pipeline_create(data=sql_pipeline(name, schedule={"assets": list(assets)}))


def asset_runs(pipeline: Pipeline) -> list[Execution]:
    return list(
        Execution.objects.filter(pipeline=pipeline, trigger=Trigger.ASSET).order_by("created_at")
    )


def test_a_pipeline_runs_once_every_asset_it_waits_for_has_an_event(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    a, b = pipeline_create(data=writer("wa", "a")), pipeline_create(data=writer("wb", "b"))
    run(a, no_broker)  # before the consumer existed: does not count
    c = consumer("c", "wh.a", "wh.b")
    run(a, no_broker)
    assert asset_runs(c) == []
    run(a, no_broker)
    assert schedule_tick() == 0
    run(b, no_broker)  # the worker checks the consumers right after the event
    (first,) = asset_runs(c)
    consumed = set(first.triggered_by.values_list("pk", flat=True))
    assert consumed == {e.pk for e in events_of("wh.main.a")[1:]} | {
        e.pk for e in events_of("wh.main.b")
    }
    drain(first, no_broker)
    assert schedule_tick() == 0  # nothing new since
    run(b, no_broker)
    run(b, no_broker)
    assert len(asset_runs(c)) == 1  # b twice, a not since
    run(a, no_broker)
    second = asset_runs(c)[1]
    assert set(second.triggered_by.values_list("asset__name", flat=True)) == {
        "wh.main.a",
        "wh.main.b",
    }
    assert second.triggered_by.count() == 3  # b's two events and a's one
    assert schedule_tick() == 0


def test_the_tick_starts_what_the_worker_did_not(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    c = consumer("c", "wh.a")
    Pipeline.objects.filter(pk=c.pk).update(enabled=False)  # paused: no run
    run(pipeline_create(data=writer("wa", "a")), no_broker)
    assert asset_runs(c) == []
    assert schedule_tick() == 0
    Pipeline.objects.filter(pk=c.pk).update(enabled=True)
    assert schedule_tick() == 1
    (execution,) = asset_runs(c)
    assert execution.trigger == "asset"
    assert schedule_tick() == 0


def test_a_deleted_asset_run_does_not_give_its_events_back(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    c = consumer("c", "wh.a")
    writes = pipeline_create(data=writer("wa", "a"))
    run(writes, no_broker)
    (first,) = asset_runs(c)
    drain(first, no_broker)
    Execution.objects.filter(pk=first.pk).delete()  # as retention deletes old runs
    assert AssetTrigger.objects.filter(pipeline=c, execution=None).count() == 1
    assert schedule_tick() == 0  # the event stays consumed
    run(writes, no_broker)
    (second,) = asset_runs(c)
    assert [e.pk for e in second.triggered_by.all()] == [events_of("wh.main.a")[-1].pk]


def test_an_event_is_consumed_once_per_pipeline_by_constraint(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    make_pipeline("seed")
    c = consumer("c", "wh.a")
    run(pipeline_create(data=writer("wa", "a")), no_broker)
    first = asset_runs(c)[0]
    (event,) = events_of("wh.main.a")
    second = execution_create(pipeline=c, trigger=Trigger.ASSET)
    with pytest.raises(IntegrityError), transaction.atomic():
        AssetTrigger.objects.create(execution=second, event=event, pipeline=c)
    other = consumer("other", "wh.a")
    AssetTrigger.objects.create(
        execution=second, event=event, pipeline=other
    )  # another pipeline may
    assert list(first.triggered_by.all()) == [event]


def test_racing_schedulers_make_exactly_one_run_per_set_of_events(
    make_pipeline: Callable[..., Any], no_broker: list[Any]
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("row locks and concurrent writers need PostgreSQL (DATABASE_URL)")
    make_pipeline("seed")
    c = consumer("c", "wh.a", "wh.b")
    producer = Pipeline.objects.get(name="seed")
    execution = execution_create(pipeline=producer, trigger=Trigger.MANUAL)
    asset_a = Asset.objects.get(name="wh.main.a")
    asset_b = Asset.objects.get(name="wh.main.b")
    rounds = 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)
    done = threading.Event()

    def producing() -> None:
        # Events for a and b, one set per round, while the schedulers tick.
        try:
            barrier.wait()
            for _ in range(rounds):
                for asset in (asset_a, asset_b):
                    AssetEvent.objects.create(
                        asset=asset, pipeline=producer, execution=execution, at=timezone.now()
                    )
                    asset_check(c.pk)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            done.set()
            connections.close_all()

    def scheduling() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                schedule_tick()
            schedule_tick()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=producing)]
    threads += [threading.Thread(target=scheduling) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    runs = asset_runs(c)
    assert 1 <= len(runs) <= rounds
    consumed = list(AssetTrigger.objects.filter(pipeline=c).values_list("event_id", flat=True))
    assert len(consumed) == len(set(consumed))  # each event once
    for execution in runs:
        names = set(execution.triggered_by.values_list("asset__name", flat=True))
        assert names == {"wh.main.a", "wh.main.b"}
    # None lost: every event was consumed or still waits for its other asset.
    pending = asset_events_pending(c)
    assert {e.asset.name for e in pending} != {"wh.main.a", "wh.main.b"}
    assert set(consumed) | {e.pk for e in pending} == set(
        AssetEvent.objects.values_list("pk", flat=True)
    )
    assert asset_check(c.pk) is None
