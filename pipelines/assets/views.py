"""HTML pages of assets: the list (producers, consumers, last event) and one asset's events."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from core.ui import paginate, query_without_page, render_ui, ui_view
from pipelines.assets import selectors

EVENTS_SHOWN = 50


@ui_view
def asset_list(request: HttpRequest) -> HttpResponse:
    q = (request.GET.get("q") or "").strip()[:400]
    page = paginate(request, selectors.asset_list_visible(request.user, search=q or None))
    context = {
        "nav": "assets",
        "q": q,
        "page": page,
        "assets": selectors.assets_data(request.user, list(page.object_list)),
        "query": query_without_page(request),
    }
    return render_ui(request, "assets/list.html", context, fragment="results")


@ui_view
def asset_detail(request: HttpRequest, name: str) -> HttpResponse:
    asset = selectors.asset_for(request.user, name)
    (data,) = selectors.assets_data(request.user, [asset])
    events = list(selectors.asset_events(asset)[:EVENTS_SHOWN])
    shown = selectors.visible_pipeline_ids(request.user)
    consumed = selectors.consumed_by(events)
    context: dict[str, Any] = {
        "nav": "assets",
        "asset": data,
        "events": [
            selectors.event_data(e, asset=asset.name, shown=shown, consumed=consumed)
            for e in events
        ],
        "events_shown": EVENTS_SHOWN,
    }
    return render_ui(request, "assets/detail.html", context)
