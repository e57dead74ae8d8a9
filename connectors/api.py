"""API views of connections (SPEC §4). Thin: selectors, permissions, services.

One connection is fetched by ``get_object()`` (``accounts.api.ObjectView``:
404 when the user may not see it, 403 when the method's action is refused).

Secrets go in (``config.password``) and never come out: answers carry the
settings without them and ``secrets_set``, the names of those that have a
value.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.actor import Actor
from accounts.api import ObjectView
from accounts.permissions import require_create
from connectors import selectors, services
from connectors.models import Connection
from connectors.serializers import (
    ConnectionFilterSerializer,
    ConnectionSerializer,
    ConnectionTestSerializer,
    ConnectionWriteSerializer,
)
from core.api import ConnectionTestThrottle
from core.parsers import JSONParser


class _JsonView(GenericAPIView):
    parser_classes = [JSONParser]
    queryset = Connection.objects.none()
    serializer_class = ConnectionSerializer


class _ConnectionView(ObjectView):
    parser_classes = [JSONParser]
    queryset = Connection.objects.select_related("created_by")
    serializer_class = ConnectionSerializer
    lookup_url_kwarg = "id"


@extend_schema(tags=["connections"])
class ConnectionListView(_JsonView):
    @extend_schema(
        parameters=[ConnectionFilterSerializer], responses=ConnectionSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = ConnectionFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        connections = selectors.connection_list_visible(
            request.user,
            kind=filters.validated_data.get("kind"),
            search=filters.validated_data.get("search"),
        )
        page = self.paginate_queryset(connections)
        return self.get_paginated_response(ConnectionSerializer(page, many=True).data)

    @extend_schema(request=ConnectionWriteSerializer, responses={201: ConnectionSerializer})
    def post(self, request: Request) -> Response:
        require_create(request.user)
        body = ConnectionWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        connection = services.connection_create(
            **body.validated_data, actor=Actor.from_request(request)
        )
        return Response(ConnectionSerializer(connection).data, status=201)


@extend_schema(tags=["connections"])
class ConnectionDetailView(_ConnectionView):
    def get(self, request: Request, id: str) -> Response:
        connection = self.get_object()
        return Response(ConnectionSerializer(connection).data)

    def _change(self, request: Request, id: str, *, partial: bool) -> Response:
        connection = self.get_object()
        body = ConnectionWriteSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(body.validated_data)
        if partial and "config" in data:
            # PATCH merges config keys; secrets left out keep their values
            # while the endpoint stays (connection_update drops them otherwise).
            data["config"] = {**connection.config, **data["config"]}
        connection = services.connection_update(
            connection=connection, actor=Actor.from_request(request), **data
        )
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(request=ConnectionWriteSerializer, responses=ConnectionSerializer)
    def put(self, request: Request, id: str) -> Response:
        return self._change(request, id, partial=False)

    @extend_schema(request=ConnectionWriteSerializer(partial=True), responses=ConnectionSerializer)
    def patch(self, request: Request, id: str) -> Response:
        return self._change(request, id, partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, id: str) -> Response:
        connection = self.get_object()
        services.connection_delete(connection=connection, actor=Actor.from_request(request))
        return Response(status=204)


@extend_schema(tags=["connections"])
class ConnectionTestView(_ConnectionView):
    """Connect and run a trivial operation: ``{ok, latency_ms, error}``.

    Throttled per user (``THROTTLE_CONNECTION_TEST``): each test opens a
    connection to a host the user chose.
    """

    throttle_classes = [ConnectionTestThrottle]

    @extend_schema(request=None, responses={200: ConnectionTestSerializer})
    def post(self, request: Request, id: str) -> Response:
        connection = self.get_object()
        result = services.connection_test(connection=connection, actor=Actor.from_request(request))
        return Response(result)
