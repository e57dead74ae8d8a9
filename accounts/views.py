"""Login, logout, the audit log, and the sharing form used by every object page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import login, logout
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import lockout
from accounts.actor import Actor
from accounts.forms import AuditFilterForm, LoginForm, ShareForm
from accounts.permissions import Action, require_admin
from accounts.selectors import audit_events
from accounts.services import sharing_remove
from core.ui import paginate, query_without_page, render_ui, ui_view


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    """Log in with the same throttling as the API's token endpoint."""
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request))
    form = LoginForm(request, data=request.POST or None)
    status = 200
    if request.method == "POST":
        username = request.POST.get("username", "")
        retry_after = lockout.login_check(request, username)
        if retry_after:
            # Refused before checking the password, so a locked-out guesser
            # learns nothing; the form comes back unbound with the notice.
            minutes = max(1, round(retry_after / 60))
            context = {
                "form": LoginForm(request, initial={"username": username}),
                "next": _safe_next(request),
                "notice": f"Too many failed attempts. Try again in about {minutes} min.",
            }
            response = render(request, "accounts/login.html", context, status=429)
            response["Retry-After"] = str(int(retry_after))
            return response
        if form.is_valid():
            user = form.get_user()
            login(request, user)
            lockout.login_succeeded(request, user)
            return HttpResponseRedirect(_safe_next(request))
        lockout.login_failed(request, username)
        status = 400
    return render(
        request, "accounts/login.html", {"form": form, "next": _safe_next(request)}, status=status
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@ui_view
def audit_log(request: HttpRequest) -> HttpResponse:
    """Admins only: every audit event, newest first, filterable."""
    require_admin(request.user)
    form = AuditFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        filters = {**form.cleaned_data}
        # The page picks days: from the first day's start to the last day's end.
        if filters["since"]:
            filters["since"] = _day_start(filters["since"])
        if filters["until"]:
            next_day = _day_start(filters["until"] + timedelta(days=1))
            filters["until"] = next_day - timedelta.resolution
    events = audit_events(**filters)
    context = {
        "form": form,
        "page": paginate(request, events, per_page=50),
        "query": query_without_page(request),
        "nav": "audit",
    }
    return render_ui(request, "accounts/audit.html", context, fragment="results")


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def share_update(request: HttpRequest, obj: Model) -> ShareForm | None:
    """Handle the sharing form of an object page (POST).

    Returns the bound form when it is invalid (the page shows its errors),
    None when sharing changed (the caller redirects).
    """
    if request.POST.get("remove_user") or request.POST.get("remove_group"):
        sharing_remove(
            obj=obj,
            user=request.POST.get("remove_user", ""),
            group=request.POST.get("remove_group", ""),
            actor=Actor.from_request(request),
        )
        messages.success(request, "Sharing updated.")
        return None
    form = ShareForm(request.POST, actor=request.user)
    if not form.is_valid():
        return form
    form.save(obj=obj, actor=Actor.from_request(request))
    data = form.cleaned_data
    messages.success(
        request, f"Shared with {data['principal_type']} {data['name']} ({data['level']})."
    )
    return None


@ui_view
@require_POST
def share_view(
    request: HttpRequest,
    object_id: Any,
    *,
    fetch: Callable[[Any, Any, Action], Model],
    detail: str,
    refused: Callable[[HttpRequest, Any, ShareForm], HttpResponse],
) -> HttpResponse:
    """The sharing form of every object page (POST), one view for pipelines and connections.

    The URL passes ``fetch`` (the app's ``*_for`` selector: 404 when the user
    may not see the object, 403 unless they may share it), ``detail`` (the
    page's URL name, where a change redirects) and ``refused`` (the page
    again, with the form's errors, status 400).
    """
    obj = fetch(request.user, object_id, Action.SHARE)
    form = share_update(request, obj)
    if form is None:
        return redirect(reverse(detail, args=[obj.pk]) + "#sharing")
    return refused(request, obj, form)
