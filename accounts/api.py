"""API: tokens (login, refresh, logout), sharing of one object, the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db.models import Model
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.lockout import login_check, login_failed, login_succeeded
from accounts.models import AuditEvent
from accounts.permissions import Action, get_for, require, require_admin
from accounts.selectors import audit_events
from accounts.serializers import (
    AuditEventSerializer,
    AuditFilterSerializer,
    RefreshTokenSerializer,
    SharingSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from accounts.services import audit_record, sharing_get, sharing_set
from accounts.tokens import token_pair, token_refresh, token_revoke
from core.api import LoginThrottle
from core.parsers import JSONParser


def _no_store(response: Response) -> Response:
    # Tokens must not be kept by any cache on the way (RFC 6749 §5.1).
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


class _TokenView(APIView):
    """Base of the token endpoints: no authentication needed, a 401 says Bearer."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Without an authentication class DRF would turn 401s into 403s.
        return 'Bearer realm="api"'


class TokenView(_TokenView):
    """Log in with a username and password (form data or JSON)."""

    throttle_classes = [LoginThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        tags=["auth"],
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        wait = login_check(request, username)
        if wait is not None:
            raise exceptions.Throttled(wait=wait, detail="too many failed logins")
        user = authenticate(
            request._request, username=username, password=serializer.validated_data["password"]
        )
        if user is None:
            login_failed(request, username)
            raise exceptions.AuthenticationFailed("invalid username or password")
        login_succeeded(request, user)
        update_last_login(None, user)  # type: ignore[arg-type]
        return _no_store(Response(token_pair(user)))


class RefreshView(_TokenView):
    """Trade a refresh token for a new pair; the old refresh token stops working."""

    @extend_schema(
        tags=["auth"],
        request=RefreshTokenSerializer,
        responses={200: TokenResponseSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tokens, _ = token_refresh(serializer.validated_data["refresh_token"])
        return _no_store(Response(tokens))


class LogoutView(_TokenView):
    """Revoke a refresh token."""

    @extend_schema(tags=["auth"], request=RefreshTokenSerializer, responses={204: None}, auth=[])
    def post(self, request: Request) -> Response:
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = token_revoke(serializer.validated_data["refresh_token"])
        audit_record(action="logout", by=Actor.of(user, request=request))
        return Response(status=204)


class ObjectAccess(BasePermission):
    """DRF's object check through the one rule: ``view.access[method]`` on the object.

    It raises Forbidden itself so the 403 says what was refused, as the UI's does.
    """

    def has_object_permission(self, request: Request, view: Any, obj: Model) -> bool:
        action = view.access.get(request.method, Action.VIEW)
        require(request.user, action, getattr(obj, view.via) if view.via else obj)
        return True


class ObjectView(GenericAPIView):
    """A view of one object: ``get_object()`` fetches it through ``get_for``.

    404 when the user may not see it; then ``ObjectAccess`` answers 403 when
    they may not do the method's action (``access``) to it. ``via`` names the
    field whose sharing decides (``"pipeline"`` for an execution).
    """

    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, ObjectAccess]
    access: dict[str, Action] = {
        "GET": Action.VIEW,
        "HEAD": Action.VIEW,
        "OPTIONS": Action.VIEW,
        "POST": Action.OPERATE,
        "PUT": Action.CHANGE,
        "PATCH": Action.CHANGE,
        "DELETE": Action.CHANGE,
    }
    via: str | None = None

    def get_object(self) -> Any:
        key = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        obj = get_for(self.request.user, self.get_queryset(), via=self.via, pk=key)
        self.check_object_permissions(self.request, obj)
        return obj


class SharingView(ObjectView):
    """``GET/PUT .../permissions`` of one object, a pipeline's or a connection's.

    Anyone who may see the object may read its sharing; only its owner (a
    developer) or an admin may change it. The URL passes ``queryset`` and
    ``lookup_url_kwarg`` (``as_view(queryset=..., lookup_url_kwarg=...)``).
    """

    serializer_class = SharingSerializer
    pagination_class = None
    parser_classes = [JSONParser]
    access = {**ObjectView.access, "PUT": Action.SHARE}

    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(sharing_get(self.get_object()))

    def put(self, request: Request, **kwargs: Any) -> Response:
        obj = self.get_object()
        context = {"actor": request.user, "keep": sharing_get(obj)["users"]}
        serializer = SharingSerializer(data=request.data, context=context)
        serializer.is_valid(raise_exception=True)
        result = sharing_set(
            obj=obj,
            users=serializer.validated_data["users"],
            groups=serializer.validated_data["groups"],
            actor=Actor.from_request(request),
        )
        return Response(result)


class AuditEventListView(GenericAPIView):
    """The audit trail, newest first (admins only)."""

    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()  # for the schema; list() builds the real one

    @extend_schema(
        tags=["audit"],
        parameters=[AuditFilterSerializer],
        responses=AuditEventSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        require_admin(request.user)
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit_events(**filters.validated_data)
        page = self.paginate_queryset(events)
        return self.get_paginated_response(AuditEventSerializer(page, many=True).data)
