"""Creating, changing and deleting pipelines; every change makes a version."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.permissions import Action, can
from accounts.services import audit_record
from connectors.models import Connection
from datadog_web.errors import Conflict, InvalidInput
from pipelines import definition
from pipelines.models import Pipeline, PipelineVersion


def pipeline_validate(data: Any, *, user: Any) -> dict[str, Any]:
    """The normalized definition, or InvalidInput with every problem and its path."""
    normalized, problems = definition.validate(data)
    errors = [(p.path, p.message) for p in problems]
    if normalized is not None:
        errors += _connection_problems(normalized, user=user)
    if errors:
        raise InvalidInput("invalid pipeline definition", errors)
    assert normalized is not None
    return normalized


def _connection_problems(normalized: dict[str, Any], *, user: Any) -> list[tuple[str, str]]:
    refs = definition.connection_refs(normalized)
    found = {c.name: c for c in Connection.objects.filter(name__in={name for _, name in refs})}
    problems = []
    for path, name in refs:
        conn = found.get(name)
        # A connection the user may not use reads as unknown: its existence is
        # not theirs to learn.
        if conn is None or (user is not None and not can(user, Action.USE, conn)):
            problems.append((path, f"unknown connection '{name}'"))
    return problems


def _apply(pipeline: Pipeline, normalized: dict[str, Any]) -> None:
    pipeline.name = normalized["name"]
    pipeline.description = normalized["description"]
    pipeline.definition = normalized
    pipeline.enabled = normalized["enabled"]
    pipeline.schedule = normalized["schedule"] or ""
    pipeline.timezone = normalized["timezone"]
    pipeline.catchup = normalized["catchup"]
    pipeline.max_active_runs = normalized["max_active_runs"]
    pipeline.tags = normalized["tags"]
    pipeline.parameters = normalized["parameters"]


@transaction.atomic
def pipeline_create(*, data: Any, user: Any = None, request: HttpRequest | None = None) -> Pipeline:
    """Validate ``data`` (SPEC §2) and create the pipeline with its version 1."""
    normalized = pipeline_validate(data, user=user)
    if Pipeline.objects.filter(name=normalized["name"]).exists():
        raise Conflict("a pipeline with this name exists", [("name", "already exists")])
    pipeline = Pipeline(created_by=user if user is not None and user.is_authenticated else None)
    _apply(pipeline, normalized)
    pipeline.version = 1
    try:
        with transaction.atomic():
            pipeline.save()
    except IntegrityError:
        raise Conflict("a pipeline with this name exists", [("name", "already exists")]) from None
    PipelineVersion.objects.create(
        pipeline=pipeline, version=1, definition=normalized, created_by=pipeline.created_by
    )
    audit_record(action="create", actor=user, obj=pipeline, request=request)
    return pipeline


@transaction.atomic
def pipeline_update(
    *,
    pipeline: Pipeline,
    data: Any,
    user: Any = None,
    request: HttpRequest | None = None,
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
    normalized = pipeline_validate(data, user=user)
    if normalized == pipeline.definition:
        return pipeline
    if (
        normalized["name"] != pipeline.name
        and Pipeline.objects.filter(name=normalized["name"]).exists()
    ):
        raise Conflict("a pipeline with this name exists", [("name", "already exists")])
    schedule_changed = (normalized["schedule"] or "") != pipeline.schedule or normalized[
        "timezone"
    ] != pipeline.timezone
    _apply(pipeline, normalized)
    pipeline.version += 1
    if schedule_changed:
        pipeline.next_interval_start = None  # the scheduler starts from now
    pipeline.save()
    PipelineVersion.objects.create(
        pipeline=pipeline,
        version=pipeline.version,
        definition=normalized,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    audit_record(
        action="change",
        actor=user,
        obj=pipeline,
        request=request,
        details={"version": pipeline.version},
    )
    return pipeline


@transaction.atomic
def pipeline_set_enabled(
    *, pipeline: Pipeline, enabled: bool, user: Any = None, request: HttpRequest | None = None
) -> Pipeline:
    """Enable or pause a pipeline (a definition change, so a new version)."""
    return pipeline_update(
        pipeline=pipeline, data={"enabled": enabled}, user=user, request=request, partial=True
    )


@transaction.atomic
def pipeline_delete(
    *, pipeline: Pipeline, user: Any = None, request: HttpRequest | None = None
) -> None:
    """Delete a pipeline with its versions, runs and sharing."""
    audit_record(
        action="delete",
        actor=user,
        obj=pipeline,
        request=request,
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
