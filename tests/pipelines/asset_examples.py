"""An installation with assets, for the assets API and page tests.

dev1 owns the connection ``wh``, a pipeline ``writer`` whose run wrote
``wh.main.a`` twice, and ``reader`` waiting for it (its asset-triggered
run consumed the older event); dev2 owns ``theirs`` and ``theirs.main.x``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.actor import Actor
from connectors.models import Connection
from pipelines.models import Asset, AssetEvent, AssetTrigger, Execution, Trigger
from pipelines.services import execution_create, pipeline_create
from tests.factories import sql_pipeline, sql_task


def event(asset: str, execution: Execution, minutes_ago: float) -> AssetEvent:
    row = Asset.objects.get_or_create(name=asset)[0]
    return AssetEvent.objects.create(
        asset=row,
        pipeline=execution.pipeline,
        execution=execution,
        task_run=execution.tasks.first(),
        at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def asset_world(
    make_pipeline: Any, developer: Any, other_developer: Any, sqlite_connection: Any
) -> dict[str, Any]:
    """Build it; the objects the tests look at, by name."""
    make_pipeline("seed", user=developer)
    producer = pipeline_create(
        data=sql_pipeline("writer", [sql_task("w", "SELECT 1", outlets=["wh.a"])]),
        actor=Actor.of(developer),
    )
    consumer = pipeline_create(
        data=sql_pipeline("reader", schedule={"assets": ["wh.a"]}), actor=Actor.of(developer)
    )
    run = execution_create(pipeline=producer, trigger=Trigger.MANUAL)
    old, new = event("wh.main.a", run, 10), event("wh.main.a", run, 5)
    consumed_by = execution_create(pipeline=consumer, trigger=Trigger.ASSET)
    AssetTrigger.objects.create(execution=consumed_by, event=old, pipeline=consumer)
    theirs = sqlite_connection("theirs", "t.sqlite", user=other_developer)
    private = pipeline_create(
        data=sql_pipeline("private", [sql_task("w", "SELECT 1", connection="theirs")]),
        actor=Actor.of(other_developer),
    )
    Asset.objects.create(name="theirs.main.x", connection=theirs)
    event("theirs.main.x", execution_create(pipeline=private), 1)
    return {
        "producer": producer,
        "consumer": consumer,
        "run": run,
        "old": old,
        "new": new,
        "consumed_by": consumed_by,
        "theirs": theirs,
        "wh": Connection.objects.get(name="wh"),
    }
