"""core.api: the one error format every 4xx answer takes, and the throttles' keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.api import ExecuteThrottle, LoginThrottle, exception_handler, not_found
from core.errors import Conflict


def answer(exc: Exception) -> tuple[int, Any]:
    response = exception_handler(exc, {})
    assert response is not None
    return response.status_code, response.data


def test_it_answers_a_service_error_with_its_status_and_problems() -> None:
    status, body = answer(Conflict("in use", [("pipelines", "p1 uses it")]))
    assert status == 409
    assert body == {"detail": "in use", "errors": [{"path": "pipelines", "message": "p1 uses it"}]}


def test_it_flattens_nested_validation_errors_into_paths() -> None:
    detail = {
        "name": ["This field is required."],
        "tasks": [{}, {"name": ["too long"], "depends_on": [["unknown task"]]}],
        "non_field_errors": ["names clash"],
        "schedule": "bad cron",
    }
    status, body = answer(exceptions.ValidationError(detail))
    assert status == 400
    assert body["detail"] == "invalid input"
    assert sorted((e["path"], e["message"]) for e in body["errors"]) == [
        ("", "names clash"),
        ("name", "This field is required."),
        ("schedule", "bad cron"),
        ("tasks[1].depends_on[0]", "unknown task"),
        ("tasks[1].name", "too long"),
    ]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (Http404("no such pipeline"), 404),
        (PermissionDenied(), 403),
        (exceptions.NotAuthenticated(), 401),
        (exceptions.Throttled(wait=3), 429),
    ],
)
def test_it_answers_drf_and_django_errors_in_the_same_format(exc: Exception, status: int) -> None:
    got, body = answer(exc)
    assert got == status
    assert set(body) == {"detail", "errors"} and body["errors"] == []
    assert isinstance(body["detail"], str) and body["detail"]


def test_it_leaves_other_exceptions_to_the_server_error() -> None:
    assert exception_handler(ValueError("bug"), {}) is None


def test_it_answers_unknown_api_paths_in_json() -> None:
    response = not_found(APIRequestFactory().get("/api/v1/nowhere"))
    assert response.status_code == 404
    assert json.loads(response.content) == {"detail": "not found", "errors": []}


def request_from(user: Any, address: str = "192.0.2.7") -> Request:
    request = Request(APIRequestFactory().post("/", REMOTE_ADDR=address))
    request.user = user
    return request


def test_it_counts_per_user_and_scope_else_per_address(django_user_model: Any) -> None:
    user = django_user_model(pk=42, username="u")
    assert ExecuteThrottle().get_cache_key(request_from(user), None) == "throttle_execute_user:42"
    assert LoginThrottle().get_cache_key(request_from(user), None) == "throttle_login_user:42"
    anonymous = request_from(AnonymousUser(), "192.0.2.9")
    assert LoginThrottle().get_cache_key(anonymous, None) == "throttle_login_ip:192.0.2.9"


def test_it_reads_the_rate_when_asked_not_at_import(settings: Any) -> None:
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "execute": "3/hour"},
    }
    throttle = ExecuteThrottle()
    assert throttle.get_rate() == "3/hour"
    assert (throttle.num_requests, throttle.duration) == (3, 3600)
