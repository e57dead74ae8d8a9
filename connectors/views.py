"""HTML pages for connections: list, a form per kind, test, share, delete."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from accounts.actor import Actor
from accounts.forms import ShareForm
from accounts.permissions import Action, can, can_create, require_create
from accounts.services import sharing_get
from connectors.forms import ConnectionForm, KindForm
from connectors.models import Connection
from connectors.registry import KINDS, connector_class
from connectors.selectors import connection_for, connection_list_visible
from connectors.services import (
    connection_create,
    connection_delete,
    connection_test,
    connection_update,
)
from core.api import ConnectionTestThrottle
from core.errors import ServiceError
from core.ui import form_errors_from, paginate, query_without_page, render_ui, ui_view


@ui_view
def connection_list(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind") if request.GET.get("kind") in KINDS else None
    search = (request.GET.get("q") or "").strip()[:100] or None
    connections = connection_list_visible(request.user, kind=kind, search=search)
    context = {
        "nav": "connections",
        "page": paginate(request, connections),
        "query": query_without_page(request),
        "kinds": KINDS,
        "kind": kind or "",
        "q": search or "",
        "can_create": can_create(request.user),
    }
    return render_ui(request, "connectors/list.html", context, fragment="results")


@ui_view
@require_http_methods(["GET", "POST"])
def connection_new(request: HttpRequest) -> HttpResponse:
    """Pick a kind, fill in its fields; secrets are stored encrypted."""
    require_create(request.user)
    source = request.POST if request.method == "POST" else request.GET
    kind = str(source.get("kind")) if source.get("kind") in KINDS else KINDS[0]
    form = ConnectionForm(request.POST or None, kind=kind)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                conn = connection_create(
                    name=form.cleaned_data["name"],
                    kind=kind,
                    config=form.config(),
                    description=form.cleaned_data["description"],
                    actor=Actor.from_request(request),
                )
            except ServiceError as exc:
                form_errors_from(form, exc, ConnectionForm.field_of)
            else:
                messages.success(request, f"Connection {conn.name} created. Test it below.")
                return redirect("connection_detail", connection_id=conn.pk)
        status = 400
    context = {
        "nav": "connections",
        "form": form,
        "kind_form": KindForm(initial={"kind": kind}),
        "kind": kind,
    }
    return render_ui(request, "connectors/new.html", context, fragment="fields", status=status)


def _detail_context(request: HttpRequest, conn: Connection, **extra: Any) -> dict[str, Any]:
    can_share = can(request.user, Action.SHARE, conn)
    context = {
        "nav": "connections",
        "connection": conn,
        "form": ConnectionForm(kind=conn.kind, instance=conn),
        "can_change": can(request.user, Action.CHANGE, conn),
        "can_test": can(request.user, Action.OPERATE, conn),
        "can_browse": connector_class(conn.kind).browsable()
        and can(request.user, Action.USE, conn),
        "can_share": can_share,
        "sharing": sharing_get(conn) if can_share else None,
        "share_form": ShareForm(),
        "share_help": "view: sees it; operate: also tests it and uses it in pipelines; "
        "edit: also changes and deletes it.",
        "secrets": sorted(conn.secret_fields),
        "secrets_set": set(conn.secret_keys_set()),
    }
    context.update(extra)
    return context


@ui_view
@require_http_methods(["GET", "POST"])
def connection_detail(request: HttpRequest, connection_id: Any) -> HttpResponse:
    """The connection; its owner (or an editor) changes it here."""
    action = Action.VIEW if request.method == "GET" else Action.CHANGE
    conn = connection_for(request.user, connection_id, action)
    if request.method == "GET":
        return render_ui(request, "connectors/detail.html", _detail_context(request, conn))
    form = ConnectionForm(request.POST, kind=conn.kind, instance=conn)
    if form.is_valid():
        try:
            connection_update(
                connection=conn,
                name=form.cleaned_data["name"],
                config=form.config(),
                description=form.cleaned_data["description"],
                actor=Actor.from_request(request),
            )
        except ServiceError as exc:
            form_errors_from(form, exc, ConnectionForm.field_of)
        else:
            messages.success(request, "Connection saved.")
            return redirect("connection_detail", connection_id=conn.pk)
    return render_ui(
        request, "connectors/detail.html", _detail_context(request, conn, form=form), status=400
    )


@ui_view
@require_POST
def connection_test_view(request: HttpRequest, connection_id: Any) -> HttpResponse:
    """Connect and answer latency or the error (never a secret)."""
    conn = connection_for(request.user, connection_id, Action.OPERATE)
    # The API's throttle and counter: a user gets THROTTLE_CONNECTION_TEST
    # tests in all, whichever door they come through.
    throttle = ConnectionTestThrottle()
    if not throttle.allow_request(request, None):  # type: ignore[arg-type]
        wait = max(1, math.ceil(throttle.wait() or 1))
        result = {"ok": False, "error": f"too many connection tests; try again in {wait} s"}
        context = _detail_context(request, conn, test=result)
        response = render_ui(
            request, "connectors/detail.html", context, fragment="test-result", status=429
        )
        response["Retry-After"] = str(wait)
        return response
    result = connection_test(connection=conn, actor=Actor.from_request(request))
    context = _detail_context(request, conn, test=result)
    return render_ui(request, "connectors/detail.html", context, fragment="test-result")


def share_refused(request: HttpRequest, conn: Connection, form: ShareForm) -> HttpResponse:
    """The connection page with the sharing form's errors (``accounts.views.share_view``)."""
    context = _detail_context(request, conn, share_form=form)
    return render_ui(request, "connectors/detail.html", context, status=400)


@ui_view
@require_http_methods(["GET", "POST"])
def connection_delete_view(request: HttpRequest, connection_id: Any) -> HttpResponse:
    """GET asks for confirmation; POST deletes (refused while pipelines use it)."""
    conn = connection_for(request.user, connection_id, Action.CHANGE)
    error = None
    if request.method == "POST":
        try:
            connection_delete(connection=conn, actor=Actor.from_request(request))
        except ServiceError as exc:
            error = exc
        else:
            messages.success(request, f"Connection {conn.name} deleted.")
            return redirect("connection_list")
    context = {"nav": "connections", "connection": conn, "error": error}
    return render_ui(request, "connectors/delete.html", context, status=409 if error else 200)
