"""Reads of assets, limited to what the user may see: an asset through its connection.

Producers (pipelines that recorded events) and consumers (pipelines whose
schedule waits for the asset) are pipelines: each is listed only to users
who may see that pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery

from accounts.permissions import is_admin, visible
from connectors.models import Connection
from core.errors import NotFound
from pipelines.models import Asset, AssetEvent, AssetTrigger, Execution, Pipeline, Trigger

# How long before an execution an event not yet committed when it was
# created may still be dated (see asset_events_pending): far more than the
# transaction that records an event lasts.
LATE_EVENT_WINDOW = timedelta(minutes=10)


def _last_event(field: str) -> Subquery:
    latest = AssetEvent.objects.filter(asset=OuterRef("pk")).order_by("-at", "-pk")
    return Subquery(latest.values(field)[:1])


def asset_list_visible(user: Any, *, search: str | None = None) -> QuerySet[Asset]:
    """Assets whose connection ``user`` may see (a deleted connection's: admins only).

    Each carries ``last_event_id`` and ``last_event_at``.
    """
    assets = Asset.objects.select_related("connection")
    if not is_admin(user):
        assets = assets.filter(connection__in=visible(user, Connection.objects.all()))
    if search:
        assets = assets.filter(name__icontains=search)
    return assets.annotate(
        last_event_id=_last_event("pk"), last_event_at=_last_event("at")
    ).order_by("name")


def asset_for(user: Any, name: str) -> Asset:
    """The asset called ``name`` if ``user`` may see it; NotFound (404) otherwise."""
    asset = asset_list_visible(user).filter(name=name).first()
    if asset is None:
        raise NotFound(f"asset '{name}' not found")
    return asset


def asset_events(asset: Asset) -> QuerySet[AssetEvent]:
    """The asset's events, newest first."""
    return asset.events.select_related("pipeline", "task_run").order_by("-at", "-pk")


def events_by_id(ids: list[Any]) -> dict[Any, AssetEvent]:
    return {e.pk: e for e in AssetEvent.objects.filter(pk__in=ids).select_related("pipeline")}


def visible_pipeline_ids(user: Any) -> set[Any]:
    return set(visible(user, Pipeline.objects.all()).values_list("pk", flat=True))


def producers(assets: list[Asset]) -> dict[int, list[Pipeline]]:
    """``{asset id: pipelines that recorded events for it}`` (each pipeline once, by name)."""
    pairs = list(
        AssetEvent.objects.filter(asset__in=assets, pipeline__isnull=False)
        .order_by()  # no event ordering: it would take part in DISTINCT
        .values_list("asset_id", "pipeline_id")
        .distinct()
    )
    pipelines = Pipeline.objects.in_bulk({pid for _, pid in pairs})
    out: dict[int, list[Pipeline]] = {}
    for asset_id, pipeline_id in pairs:
        out.setdefault(asset_id, []).append(pipelines[pipeline_id])
    return {k: sorted(v, key=lambda p: p.name) for k, v in out.items()}


def consumers(names: list[str]) -> dict[str, list[Pipeline]]:
    """``{asset name: pipelines whose schedule waits for it}``."""
    wanted = set(names)
    out: dict[str, list[Pipeline]] = {}
    for pipeline in Pipeline.objects.exclude(schedule_assets=[]).order_by("name"):
        for name in pipeline.schedule_assets:
            if name in wanted:
                out.setdefault(name, []).append(pipeline)
    return out


def consumed_by(events: list[AssetEvent]) -> dict[int, list[Execution]]:
    """``{event id: executions that consumed it}`` (those retention has not deleted)."""
    out: dict[int, list[Execution]] = {}
    rows = AssetTrigger.objects.filter(event__in=events, execution__isnull=False)
    for row in rows.select_related("execution"):
        if row.execution is not None:
            out.setdefault(row.event_id, []).append(row.execution)
    return out


def asset_events_pending(pipeline: Pipeline) -> list[AssetEvent]:
    """The events of ``pipeline``'s assets since its previous asset-triggered execution.

    Not yet consumed by it, and not from before the pipeline existed; oldest first.

    An event's ``at`` is taken before its transaction commits: one can become
    visible just after an execution was created, with an ``at`` older than
    it. So "since" reaches back LATE_EVENT_WINDOW before the previous
    execution, and what that one consumed is left out by its AssetTrigger
    rows; no event is lost, none is consumed twice. The newest event it
    consumed bounds "since" the same way once retention has deleted the
    execution itself (its AssetTrigger rows stay).
    """
    consumed = AssetTrigger.objects.filter(pipeline=pipeline)
    previous = (
        Execution.objects.filter(pipeline=pipeline, trigger=Trigger.ASSET)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    newest = consumed.aggregate(at=Max("event__at"))["at"]
    since = pipeline.created_at
    for moment in (previous, newest):
        if moment is not None:
            since = max(since, moment - LATE_EVENT_WINDOW)
    return list(
        AssetEvent.objects.filter(asset__name__in=pipeline.schedule_assets, at__gt=since)
        .filter(~Q(pk__in=consumed.values("event_id")))
        .select_related("asset")
        .order_by("at", "pk")
    )


def _pipelines(pipelines: list[Pipeline], shown: set[Any]) -> list[dict[str, Any]]:
    return [{"pipeline_id": p.pk, "name": p.name} for p in pipelines if p.pk in shown]


def event_data(
    event: AssetEvent, *, asset: str, shown: set[Any], consumed: dict[int, list[Any]]
) -> dict[str, Any]:
    """One event as the API shows it to a user who may see the pipelines ``shown``."""
    visible = event.pipeline_id in shown
    return {
        "event_id": event.pk,
        "asset": asset,
        "at": event.at,
        "pipeline_id": event.pipeline_id if visible else None,
        "pipeline_name": event.pipeline.name if visible and event.pipeline else None,
        "execution_id": event.execution_id if visible else None,
        "task_name": event.task_run.task_name if visible and event.task_run else None,
        "consumed_by": [e.pk for e in consumed.get(event.pk, []) if e.pipeline_id in shown],
    }


def assets_data(user: Any, assets: list[Asset]) -> list[dict[str, Any]]:
    """Assets as the API and the assets page show them (a few queries for the whole page)."""
    shown = visible_pipeline_ids(user)
    # ``last_event_id``: annotated by asset_list_visible.
    last_ids = {a.pk: getattr(a, "last_event_id", None) for a in assets}
    lasts = events_by_id([pk for pk in last_ids.values() if pk])
    consumed = consumed_by(list(lasts.values()))
    made_by = producers(assets)
    waiting = consumers([a.name for a in assets])
    out = []
    for asset in assets:
        last = lasts.get(last_ids[asset.pk])
        conn = asset.connection
        out.append(
            {
                "name": asset.name,
                "connection": {"id": conn.pk, "name": conn.name, "kind": conn.kind}
                if conn
                else None,
                "created_at": asset.created_at,
                "last_event": event_data(last, asset=asset.name, shown=shown, consumed=consumed)
                if last
                else None,
                "producers": _pipelines(made_by.get(asset.pk, []), shown),
                "consumers": _pipelines(waiting.get(asset.name, []), shown),
            }
        )
    return out


@dataclass(frozen=True)
class Wait:
    """One asset a pipeline's schedule waits for, and where it stands."""

    name: str
    asset: Asset | None  # None: not visible to the user
    last_event_at: Any  # the asset's last event, whoever consumed it
    pending: bool  # an event since the pipeline's previous asset-triggered run


def pipeline_waits_for(user: Any, pipeline: Pipeline) -> list[Wait]:
    """The assets ``pipeline``'s schedule waits for: each one's last event, and whether it is in."""
    names = list(pipeline.schedule_assets)
    if not names:
        return []
    shown = {a.name: a for a in asset_list_visible(user).filter(name__in=names)}
    fresh = {event.asset.name for event in asset_events_pending(pipeline)}
    lasts = dict(
        AssetEvent.objects.filter(asset__name__in=list(shown))
        .values_list("asset__name")
        .annotate(last=Max("at"))
    )
    return [
        Wait(
            name=name,
            asset=shown.get(name),
            last_event_at=lasts.get(name),
            pending=name in fresh,
        )
        for name in names
    ]


def triggered_by_rows(execution_ids: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """``{execution id: [{event_id, asset, at}]}``: the events each consumed (one query)."""
    out: dict[Any, list[dict[str, Any]]] = {pk: [] for pk in execution_ids}
    rows = (
        AssetTrigger.objects.filter(execution_id__in=execution_ids)
        .order_by("event__at", "event_id")
        .values_list("execution_id", "event_id", "event__asset__name", "event__at")
    )
    for execution_id, event_id, asset, at in rows:
        out[execution_id].append({"event_id": event_id, "asset": asset, "at": at})
    return out
