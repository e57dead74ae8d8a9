"""core.ui: the plumbing of every HTML view (login, errors as pages, fragments, pages)."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from core.errors import Forbidden, InvalidInput, NotFound, ServiceError
from core.ui import form_errors_from, paginate, query_without_page, render_ui, ui_view

User = get_user_model()


def get(path: str = "/x", *, user: Any = None, htmx: bool = False, **headers: str) -> HttpRequest:
    if htmx:
        headers["HTTP_HX_REQUEST"] = "true"
    request = RequestFactory().get(path, **headers)
    request.user = user or AnonymousUser()
    request.htmx = HtmxDetails(request)  # type: ignore[attr-defined]
    return request


def test_it_renders_the_page_or_only_the_fragment_htmx_asked_for() -> None:
    context = {"title": "Hello", "detail": "some detail", "errors": [], "status": 200}
    page = render_ui(get(), "error.html", context, fragment="message")
    fragment = render_ui(get(htmx=True), "error.html", context, fragment="message", status=202)
    assert b"<html" in page.content and b"Some detail." in page.content
    assert b"<html" not in fragment.content and b"Some detail." in fragment.content
    assert fragment.status_code == 202
    # Without a fragment name an HTMX request gets the page.
    assert b"<html" in render_ui(get(htmx=True), "error.html", context).content


def failing(exc: ServiceError) -> Any:
    @ui_view
    def view(request: HttpRequest) -> HttpResponse:
        raise exc

    return view


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("exc", "status", "title"),
    [
        (NotFound("pipeline not found"), 404, b"Not found"),
        (Forbidden("not allowed to run it"), 403, b"Not allowed"),
        (InvalidInput("invalid definition", [("tasks[0].sql", "empty")]), 400, b"did not work"),
    ],
)
def test_it_turns_a_service_error_into_a_page_with_its_status(
    exc: ServiceError, status: int, title: bytes
) -> None:
    user = User.objects.create_user("u1")
    response = failing(exc)(get(user=user))
    assert response.status_code == status
    assert title in response.content
    assert exc.detail[0].upper().encode() + exc.detail[1:].encode() in response.content
    for error in exc.errors:
        assert error["path"].encode() in response.content


def test_it_sends_an_anonymous_visitor_to_the_login_page() -> None:
    calls: list[HttpRequest] = []
    view = ui_view(lambda request: calls.append(request) or HttpResponse("secret"))
    response = view(get("/pipelines/7?tab=runs"))
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/pipelines/7%3Ftab%3Druns"
    assert calls == []


def test_it_redirects_the_whole_page_when_an_htmx_request_lost_its_session() -> None:
    view = ui_view(lambda request: HttpResponse("secret"))
    response = view(get("/fragment", htmx=True, HTTP_HX_CURRENT_URL="http://h/runs?page=2"))
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login?next=http%3A%2F%2Fh%2Fruns%3Fpage%3D2"
    assert b"secret" not in response.content


def test_it_gives_the_nearest_page_for_a_bad_page_number(db: Any) -> None:
    for name in ("a", "b", "c", "d", "e"):
        User.objects.create_user(name)
    users = User.objects.order_by("username")
    assert [u.username for u in paginate(get("/?page=2"), users, per_page=2)] == ["c", "d"]
    assert paginate(get("/?page=99"), users, per_page=2).number == 3
    assert paginate(get("/?page=x"), users, per_page=2).number == 1


def test_it_keeps_the_filters_of_the_query_but_not_the_page() -> None:
    assert query_without_page(get("/?status=failed&page=3&tag=a&tag=b")) == (
        "status=failed&tag=a&tag=b"
    )
    assert query_without_page(get("/")) == ""


class NameForm(forms.Form):
    name = forms.CharField(required=False)


def test_it_puts_each_message_on_the_field_it_is_about() -> None:
    form = NameForm(data={"name": "x"})
    form.is_valid()
    exc = InvalidInput(
        "invalid",
        [("name", "taken"), ("tasks[0]", "unknown"), ("schedule", "bad cron"), ("", "whole")],
    )
    form_errors_from(form, exc, lambda path: path if path in {"name", "schedule"} else None)
    assert form.errors["name"] == ["taken"]
    # No such field on the form, or no field for the path: the form's own errors, with the path.
    assert form.non_field_errors() == ["tasks[0]: unknown", "schedule: bad cron", "whole"]


def test_it_puts_the_detail_on_the_form_when_no_message_has_a_place() -> None:
    form = NameForm(data={})
    form.is_valid()
    form_errors_from(form, Forbidden("not allowed to use connection 'wh'"), lambda path: None)
    assert form.non_field_errors() == ["not allowed to use connection 'wh'"]
