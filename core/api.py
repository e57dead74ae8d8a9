"""API plumbing shared by every app: pagination, throttles, the one error format.

Every 4xx answer is ``{"detail": ..., "errors": [{"path", "message"}]}``;
``datadog_web.api_schema.AutoSchema`` documents it on every operation.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, NamedTuple

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import InvalidInput, ServiceError


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200  # caps what one request can make the server do


class Cursor(NamedTuple):
    """A position in a list ordered by ``(created_at, key)``, newest first.

    ``older``: the page after it lists older rows (a ``next`` link); else
    newer ones (a ``previous`` link).
    """

    older: bool
    at: datetime
    key: str


def cursor_encode(cursor: Cursor) -> str:
    raw = json.dumps(["o" if cursor.older else "n", cursor.at.isoformat(), cursor.key])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(value: str) -> Cursor:
    """The cursor of a ``next``/``previous`` link; 400 naming ``cursor`` when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        direction, at, key = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if direction not in ("o", "n") or not isinstance(key, str) or moment.tzinfo is None:
            raise ValueError(direction)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInput(
            "invalid input", [("cursor", "not a cursor from a next or previous link")]
        ) from None
    return Cursor(direction == "o", moment, key)


class CursorQuery(serializers.Serializer):
    """``cursor`` and ``page_size`` of a keyset-paginated list."""

    cursor = serializers.CharField(required=False, max_length=500)
    page_size = serializers.IntegerField(
        required=False,
        default=Pagination.page_size,
        min_value=1,
        max_value=Pagination.max_page_size,
    )


class KeysetPagination(BasePagination):
    """The answer of a keyset list, for the schema (the view builds it).

    ``{count, count_exact, next, previous, results}``: ``next``/``previous``
    carry a ``cursor``; ``count`` is exact when ``count_exact`` is true,
    an estimate otherwise.
    """

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "count_exact", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "description": "matches (estimated past 1,000)"},
                "count_exact": {"type": "boolean", "description": "false: count is an estimate"},
                "next": {**link, "description": "older rows"},
                "previous": {**link, "description": "newer rows"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[Any]:
        return []  # cursor and page_size are among the view's query parameters


def page_link(request: Request, cursor: Cursor | None) -> str | None:
    """The list's URL with the filters kept and ``cursor`` set (None: no link)."""
    if cursor is None:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor_encode(cursor)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


# ----------------------------------------------------------------- errors


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested validation errors as ``[{path, message}]`` (``tasks[1].name``)."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "non_field_errors":
                sub = path
            out.extend(_flatten(value, sub))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"path": path, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(_flatten(item, f"{path}[{index}]"))
        return out
    return [{"path": path, "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, answering in the one error format."""
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.detail, "errors": exc.errors}, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "invalid input", "errors": _flatten(exc.detail)}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"detail": str(detail) or response.status_text or "error", "errors": []}
    return response


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under ``/api/v1/`` answer JSON, like every other API error."""
    return JsonResponse({"detail": "not found", "errors": []}, status=404)


class ErrorItemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Where the problem is, e.g. `tasks[1].depends_on[0]`")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx answer."""

    detail = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


# -------------------------------------------------------------- throttles


class ScopedThrottle(SimpleRateThrottle):
    """A throttle per user (or per client address when anonymous) and scope.

    The rate is read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at
    request time rather than at import (DRF's default), so a changed setting
    applies at once.
    """

    scope = ""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # type: ignore[no-any-return]

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ExecuteThrottle(ScopedThrottle):
    """Runs started per user (execute, backfill, rerun)."""

    scope = "execute"


class ConnectionTestThrottle(ScopedThrottle):
    """Connection tests per user, from the API and the UI alike (one counter)."""

    scope = "connection_test"


class LoginThrottle(ScopedThrottle):
    """Token requests per client address; repeated failures also lock out (accounts.lockout)."""

    scope = "login"


__all__ = [
    "ConnectionTestThrottle",
    "Cursor",
    "CursorQuery",
    "ErrorSerializer",
    "ExecuteThrottle",
    "KeysetPagination",
    "LoginThrottle",
    "Pagination",
    "cursor_decode",
    "cursor_encode",
    "exception_handler",
    "not_found",
    "page_link",
]
