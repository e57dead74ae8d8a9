"""Creating, changing and deleting pipelines; every change makes a version."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.actor import SYSTEM, Actor
from accounts.permissions import Action, can, share_levels_prefetch
from accounts.services import audit_record
from connectors.models import Connection
from core import outbound
from core.errors import Conflict, InvalidInput
from pipelines import definition
from pipelines.assets.services import asset_names_resolve, assets_ensure
from pipelines.models import ConnectionBinding, Pipeline, PipelineVersion


def pipeline_validate(
    data: Any, *, actor: Actor, pipeline: Pipeline | None = None
) -> dict[str, Any]:
    """The normalized definition, or InvalidInput with every problem and its path.

    With ``pipeline`` (a change), the connections its current version binds
    need no use right: only the ones the change adds do (SPEC §9).
    """
    return _validate_and_bind(data, user=actor.user, pipeline=pipeline)[0]


def _validate_and_bind(
    data: Any, *, user: Any, pipeline: Pipeline | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The normalized definition and ``{name: connection id}`` of the connections it uses."""
    with definition.no_cycle_collection():  # a large definition is a large tree
        return _validate_and_bind_tree(data, user=user, pipeline=pipeline)


def _validate_and_bind_tree(
    data: Any, *, user: Any, pipeline: Pipeline | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    normalized, problems = definition.validate(data)
    bindings: dict[str, Any] = {}
    if normalized is not None:
        current = _current_bindings(pipeline) if pipeline is not None else {}
        bindings, connection_errors = _bind_connections(normalized, user=user, current=current)
        errors = (
            connection_errors + _webhook_problems(normalized) + _asset_problems(normalized, user)
        )
        # Capped like the definition's own problems: a valid definition naming
        # 10,000 unknown connections gets the same short answer.
        problems = definition.capped(
            [definition.Problem(path, message) for path, message in errors]
        )
    if problems:
        raise InvalidInput("invalid pipeline definition", [(p.path, p.message) for p in problems])
    assert normalized is not None  # nosec B101 - type narrowing
    return normalized, bindings


def _webhook_problems(normalized: dict[str, Any]) -> list[tuple[str, str]]:
    """The outbound host policy on ``on_failure.webhook`` (SPEC §10), at its own path."""
    webhook = (normalized.get("on_failure") or {}).get("webhook")
    problem = outbound.url_validation_problem(webhook) if webhook else None
    return [("on_failure.webhook", problem)] if problem else []


def _schedule_assets(normalized: dict[str, Any]) -> list[str]:
    schedule = normalized.get("schedule")
    return list(schedule.get("assets") or []) if isinstance(schedule, dict) else []


def _asset_problems(normalized: dict[str, Any], user: Any) -> list[tuple[str, str]]:
    """The assets of ``schedule`` written in full in ``normalized``; problems at their paths."""
    names = _schedule_assets(normalized)
    if not names:
        return []
    resolved, problems = asset_names_resolve(names, user=user)
    normalized["schedule"] = {**normalized["schedule"], "assets": list(dict.fromkeys(resolved))}
    return [(f"schedule.assets[{i}]", message) for i, message in problems]


def _current_bindings(pipeline: Pipeline) -> dict[str, Any]:
    """``{name: connection id or None}`` of the pipeline's current version."""
    return dict(
        ConnectionBinding.objects.filter(
            version__pipeline=pipeline, version__version=pipeline.version
        ).values_list("name", "connection_id")
    )


def _bind_connections(
    normalized: dict[str, Any], *, user: Any, current: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Resolve each connection name of ``normalized``; problems at the paths naming them.

    A name the current version binds keeps its connection (by id, whatever it
    is called now); any other name is looked up as it is called today. A
    connection the current version does not bind is an addition: the user
    needs the use right on it (``user`` None: a system change, no check).
    """
    refs = definition.connection_refs(normalized)
    names = {name for _, name in refs}
    kept = Connection.objects.in_bulk(
        {current[name] for name in names if current.get(name) is not None}
    )
    resolved = {name: kept[current[name]] for name in names if current.get(name) in kept}
    resolved.update((c.name, c) for c in Connection.objects.filter(name__in=names - set(resolved)))
    bound_ids = {conn_id for conn_id in current.values() if conn_id is not None}
    # One permission check per connection, not per ref: a definition may name
    # the same connection in thousands of tasks; their sharing read at once.
    if user is not None:
        share_levels_prefetch(user, [c for c in resolved.values() if c.pk not in bound_ids])
    refused: dict[str, str] = {}
    for name in names:
        conn = resolved.get(name)
        if conn is None:
            refused[name] = f"unknown connection '{name}'"
        elif user is not None and conn.pk not in bound_ids and not can(user, Action.USE, conn):
            # A connection the user may not even see reads as unknown: its
            # existence is not theirs to learn.
            refused[name] = (
                f"not allowed to use connection '{name}'"
                if can(user, Action.VIEW, conn)
                else f"unknown connection '{name}'"
            )
    problems = [(path, refused[name]) for path, name in refs if name in refused]
    return {name: conn.pk for name, conn in resolved.items()}, problems


def _lock_added(
    normalized: dict[str, Any], bindings: dict[str, Any], *, pipeline: Pipeline | None
) -> None:
    """Hold the connections a change adds until it commits; fail if one is gone.

    ``connection_delete`` locks the connection before it looks for pipelines
    using it, so whichever comes second sees the other: the delete finds the
    new binding (409), or the change finds the connection deleted (400).
    """
    kept = set(_current_bindings(pipeline).values()) if pipeline is not None else set()
    added = {conn_id for conn_id in bindings.values() if conn_id not in kept}
    if not added:
        return
    locked = Connection.objects.select_for_update(no_key=True).filter(pk__in=added)
    gone = added - set(locked.values_list("pk", flat=True))
    if gone:
        names = {name for name, conn_id in bindings.items() if conn_id in gone}
        raise InvalidInput(
            "invalid pipeline definition",
            [
                (path, f"unknown connection '{name}'")
                for path, name in definition.connection_refs(normalized)
                if name in names
            ],
        )


def _apply(pipeline: Pipeline, normalized: dict[str, Any]) -> None:
    pipeline.name = normalized["name"]
    pipeline.description = normalized["description"]
    pipeline.definition = normalized
    pipeline.enabled = normalized["enabled"]
    cron = normalized["schedule"]
    pipeline.schedule = cron if isinstance(cron, str) else ""
    pipeline.schedule_assets = _schedule_assets(normalized)
    pipeline.timezone = normalized["timezone"]
    pipeline.catchup = normalized["catchup"]
    pipeline.max_active_runs = normalized["max_active_runs"]
    pipeline.tags = normalized["tags"]
    pipeline.parameters = normalized["parameters"]


def _version_create(
    pipeline: Pipeline,
    normalized: dict[str, Any],
    bindings: dict[str, Any],
    *,
    created_by: Any,
) -> PipelineVersion:
    """The pipeline's version ``pipeline.version``, bound by ``{name: connection id}``."""
    version = PipelineVersion.objects.create(
        pipeline=pipeline, version=pipeline.version, definition=normalized, created_by=created_by
    )
    ConnectionBinding.objects.bulk_create(
        ConnectionBinding(version=version, name=name, connection_id=conn_id)
        for name, conn_id in sorted(bindings.items())
    )
    assets_ensure(pipeline.schedule_assets)  # listed on the assets page before any event
    return version


@transaction.atomic
def pipeline_create(*, data: Any, actor: Actor = SYSTEM) -> Pipeline:
    """Validate ``data`` (SPEC §2) and create the pipeline with its version 1."""
    normalized, bindings = _validate_and_bind(data, user=actor.user, pipeline=None)
    _lock_added(normalized, bindings, pipeline=None)
    if Pipeline.objects.filter(name=normalized["name"]).exists():
        raise Conflict("a pipeline with this name exists", [("name", "already exists")])
    pipeline = Pipeline(created_by=actor.user)
    _apply(pipeline, normalized)
    pipeline.version = 1
    try:
        with transaction.atomic():
            pipeline.save()
    except IntegrityError:
        raise Conflict("a pipeline with this name exists", [("name", "already exists")]) from None
    _version_create(pipeline, normalized, bindings, created_by=pipeline.created_by)
    audit_record(action="create", obj=pipeline, by=actor)
    return pipeline


@transaction.atomic
def pipeline_update(
    *,
    pipeline: Pipeline,
    data: Any,
    actor: Actor = SYSTEM,
    partial: bool = False,
) -> Pipeline:
    """Replace (or with ``partial``, merge into) the definition.

    A new version is made only when the normalized definition changes.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if partial:
        if not isinstance(data, dict):
            raise InvalidInput("invalid pipeline definition", [("", "must be an object")])
        data = {**pipeline.definition, **data}
    normalized, bindings = _validate_and_bind(data, user=actor.user, pipeline=pipeline)
    _lock_added(normalized, bindings, pipeline=pipeline)
    if normalized == pipeline.definition:
        return pipeline
    if (
        normalized["name"] != pipeline.name
        and Pipeline.objects.filter(name=normalized["name"]).exists()
    ):
        raise Conflict("a pipeline with this name exists", [("name", "already exists")])
    schedule_changed = (
        normalized["schedule"] != pipeline.definition.get("schedule")
        or normalized["timezone"] != pipeline.timezone
    )
    if schedule_changed:
        pipeline.next_interval_start = None  # the scheduler starts from now
    _version_next(pipeline, normalized, bindings, actor=actor)
    return pipeline


def _version_next(
    pipeline: Pipeline,
    normalized: dict[str, Any],
    bindings: dict[str, Any],
    *,
    actor: Actor,
    details: dict[str, Any] | None = None,
) -> None:
    """Make ``normalized`` the pipeline's next version: saved, bound and audited."""
    _apply(pipeline, normalized)
    pipeline.version += 1
    pipeline.save()
    _version_create(
        pipeline,
        normalized,
        bindings,
        created_by=actor.user,
    )
    audit_record(
        action="change",
        obj=pipeline,
        by=actor,
        details={"version": pipeline.version, **(details or {})},
    )


@transaction.atomic
def pipeline_set_enabled(*, pipeline: Pipeline, enabled: bool, actor: Actor = SYSTEM) -> Pipeline:
    """Enable or pause a pipeline (a definition change, so a new version)."""
    return pipeline_update(pipeline=pipeline, data={"enabled": enabled}, actor=actor, partial=True)


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline, actor: Actor = SYSTEM) -> None:
    """Delete a pipeline with its versions, runs and sharing."""
    audit_record(
        action="delete",
        obj=pipeline,
        by=actor,
        details={"name": pipeline.name},
    )
    object_pk = str(pipeline.pk)
    UserObjectPermission.objects.filter(
        content_type__app_label="pipelines", content_type__model="pipeline", object_pk=object_pk
    ).delete()
    GroupObjectPermission.objects.filter(
        content_type__app_label="pipelines", content_type__model="pipeline", object_pk=object_pk
    ).delete()
    pipeline.delete()


def pipelines_follow_connection_rename(
    *, connection: Connection, actor: Actor = SYSTEM, **_: Any
) -> list[Pipeline]:
    """Rename ``connection`` in the current definitions that use it, each in a new version.

    Runs bind connections by id, so they work without this; it keeps what
    users read and edit (names) true to the connection's name. Versions made
    before keep the name they were made with and their binding. Called
    inside the rename's transaction (``connectors.signals.connection_renamed``,
    which names the ``actor`` of the rename).
    """
    pipeline_ids = set(
        ConnectionBinding.objects.filter(
            connection=connection, version__version=F("version__pipeline__version")
        ).values_list("version__pipeline_id", flat=True)
    )
    renamed = []
    # Locked in one order, so two renames cannot deadlock on the same pipelines.
    for pipeline in Pipeline.objects.select_for_update().filter(pk__in=pipeline_ids).order_by("pk"):
        current = _current_bindings(pipeline)  # re-read under the lock
        names = {
            name: connection.name
            for name, conn_id in current.items()
            if conn_id == connection.pk and name != connection.name
        }
        if not names or connection.name in current:
            continue  # nothing to rename, or the new name is bound to another connection
        normalized = definition.with_connections_renamed(pipeline.definition, names)
        bindings = {names.get(name, name): conn_id for name, conn_id in current.items()}
        _version_next(
            pipeline,
            normalized,
            bindings,
            actor=actor,
            details={"connection_renamed": names},
        )
        renamed.append(pipeline)
    return renamed
