"""Writes of assets: names resolved against connections, rows made, events recorded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from accounts.permissions import Action, can
from connectors.models import Connection
from pipelines.assets.names import asset_name, split_asset
from pipelines.models import (
    TASK_DONE_OK,
    Asset,
    AssetEvent,
    ConnectionBinding,
    TaskRun,
)

logger = logging.getLogger(__name__)


def asset_names_resolve(names: list[str], *, user: Any) -> tuple[list[str], list[tuple[int, str]]]:
    """``names`` written in full (schema filled in), and ``(index, problem)`` for the bad ones.

    Each name's connection must exist and, with ``user`` (None: the
    system), be one the user may see: waiting for an asset tells when it
    changes, which is not for users who may not see its connection.
    """
    wanted = {split_asset(name)[0] for name in names}
    connections = {c.name: c for c in Connection.objects.filter(name__in=wanted)}
    resolved: list[str] = []
    problems: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        connection_name, rest = split_asset(name)
        conn = connections.get(connection_name)
        if conn is None or (user is not None and not can(user, Action.VIEW, conn)):
            problems.append((i, f"unknown connection '{connection_name}'"))
            resolved.append(name)
            continue
        resolved.append(asset_name(conn.name, conn.kind, conn.config, rest))
    return resolved, problems


def assets_ensure(names: Iterable[str]) -> None:
    """An Asset row for each name (its connection from the name), so a page can list it."""
    names = set(names)
    existing = set(Asset.objects.filter(name__in=names).values_list("name", flat=True))
    missing = names - existing
    if not missing:
        return
    connections = {
        c.name: c for c in Connection.objects.filter(name__in={split_asset(n)[0] for n in missing})
    }
    Asset.objects.bulk_create(
        [Asset(name=n, connection=connections.get(split_asset(n)[0])) for n in sorted(missing)],
        ignore_conflicts=True,
    )


def produced(task_run: TaskRun) -> list[tuple[str, str]]:
    """``(connection name as the definition binds it, table)`` a successful run wrote.

    A copy writes its destination; a ``sql`` or ``python`` task its declared
    ``outlets`` (``connection.rest``). One chunk of a partitioned copy wrote
    only part of the table: it produces the asset only as the last chunk to
    succeed (``events_record`` checks its siblings under the asset's lock).
    """
    spec = task_run.spec or {}
    if task_run.task_type == "copy":
        destination = spec.get("destination") or {}
        return [(destination["connection"], destination["table"])] if destination else []
    return [split_asset(name) for name in spec.get("outlets") or []]


def _chunks_done(task_run: TaskRun) -> bool:
    """Whether every other chunk of ``task_run``'s partitioned copy has succeeded."""
    if task_run.chunk_count is None:
        return True
    return not (
        TaskRun.objects.filter(
            execution_id=task_run.execution_id, definition_task=task_run.definition_task
        )
        .exclude(pk=task_run.pk)
        .exclude(status__in=TASK_DONE_OK)
        .exists()
    )


def events_record(task_run: TaskRun) -> list[AssetEvent]:
    """Record an event for each asset ``task_run`` wrote, in the transaction of its success.

    For a chunk of a partitioned copy the asset row is locked first: two
    chunks finishing at once are serialized, so the second sees the first's
    success and exactly one of them records the event.
    """
    writes = produced(task_run)
    if not writes:
        return []
    execution = task_run.execution
    bound = {
        b.name: b.connection
        for b in ConnectionBinding.objects.filter(
            version_id=execution.version_id, name__in={conn for conn, _ in writes}
        ).select_related("connection")
    }
    events = []
    for binding_name, table in writes:
        conn = bound.get(binding_name)
        if conn is None:
            logger.warning("asset of %s not recorded: %s is unbound", task_run.pk, binding_name)
            continue
        name = asset_name(conn.name, conn.kind, conn.config, table)
        asset, _ = Asset.objects.get_or_create(name=name, defaults={"connection": conn})
        if task_run.chunk_count is not None:  # see _chunks_done: one chunk at a time
            asset = Asset.objects.select_for_update().get(pk=asset.pk)
        if asset.connection_id != conn.pk:  # deleted and made again under its name
            asset.connection = conn
            asset.save(update_fields=["connection"])
        if not _chunks_done(task_run):
            continue
        events.append(
            AssetEvent.objects.create(
                asset=asset,
                pipeline_id=execution.pipeline_id,
                execution=execution,
                task_run=task_run,
                at=timezone.now(),
            )
        )
    return events
