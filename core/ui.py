"""Plumbing shared by the HTML views of every app (SPEC §6).

Views stay thin: ``@ui_view`` asks for a login and turns the services'
errors into pages (404 for what the user may not see, 403 for what they may
see but not do, 4xx with the messages for the rest), and ``render_ui``
answers an HTMX request with the fragment it asked for.

What the layout needs to know about the user (their role) comes from the
``accounts.context_processors.role`` context processor, so this module needs
no app and every app can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect

from core.errors import Forbidden, NotFound, ServiceError

View = Callable[..., HttpResponse]

PAGE_SIZE = 25


def render_ui(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The page, or only ``template#fragment`` when HTMX asked for it."""
    if fragment and getattr(request, "htmx", False):
        template = f"{template}#{fragment}"
    return render(request, template, context, status=status)


def error_page(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    """A service error as a page (or a fragment for HTMX) with its status code."""
    if isinstance(exc, NotFound):
        title = "Not found"
    elif isinstance(exc, Forbidden):
        title = "Not allowed"
    else:
        title = "That did not work"
    context = {
        "title": title,
        "detail": exc.detail,
        "errors": exc.errors,
        "status": exc.status_code,
    }
    return render_ui(request, "error.html", context, fragment="message", status=exc.status_code)


def ui_view(view: View) -> View:
    """Login required; ServiceError → an error page with its status code.

    An HTMX request whose session ended gets ``HX-Redirect`` to the login
    page, so the login form does not land inside a fragment.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if getattr(request, "htmx", False):
                query = urlencode({"next": request.headers.get("HX-Current-URL") or "/"})
                return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?{query}")
            return redirect_to_login(request.get_full_path())
        try:
            return view(request, *args, **kwargs)
        except ServiceError as exc:
            return error_page(request, exc)

    return wrapper


def paginate(request: HttpRequest, items: QuerySet[Any], per_page: int = PAGE_SIZE) -> Page:
    """The requested page of ``items``; a bad or too-high page number gives the nearest page."""
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def query_without_page(request: HttpRequest) -> str:
    """The current query string minus ``page``, for pagination links that keep filters."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def form_errors_from(form: Any, exc: ServiceError, field_of: Callable[[str], str | None]) -> None:
    """Put a service error's messages on the form fields they are about.

    ``field_of`` maps an error path to a form field name (None: the whole
    form). The detail goes on the form when no message has a field.
    """
    placed = False
    for error in exc.errors:
        field = field_of(error["path"])
        if field is not None and field not in form.fields:
            field = None
        message = error["message"]
        if field is None and error["path"]:
            message = f"{error['path']}: {message}"
        form.add_error(field, message)
        placed = True
    if not placed:
        form.add_error(None, exc.detail)
