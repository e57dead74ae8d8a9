"""``/api/v1/assets``: assets with their last event, and one asset's event history (SPEC §8).

A user sees an asset when they may see its connection (404 otherwise, as for
an asset that does not exist). The pipelines named in an answer (producers,
consumers, the run behind an event) are only those the user may see; the
others are left out, or their ids null.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.parsers import JSONParser
from pipelines.assets import selectors
from pipelines.models import Asset, AssetEvent


class PipelineRefSerializer(serializers.Serializer):
    pipeline_id = serializers.UUIDField()
    name = serializers.CharField()


class AssetEventSerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    asset = serializers.CharField()
    at = serializers.DateTimeField()
    pipeline_id = serializers.UUIDField(allow_null=True, help_text="null: a pipeline not shown")
    pipeline_name = serializers.CharField(allow_null=True)
    execution_id = serializers.UUIDField(allow_null=True)
    task_name = serializers.CharField(allow_null=True)
    consumed_by = serializers.ListField(
        child=serializers.UUIDField(), help_text="asset-triggered executions that consumed it"
    )


class TriggeredBySerializer(serializers.Serializer):
    """One event an asset-triggered execution consumed (``triggered_by``)."""

    event_id = serializers.IntegerField()
    asset = serializers.CharField()
    at = serializers.DateTimeField()


def triggered_by_data(execution_ids: list[Any]) -> dict[Any, list[Any]]:
    """``{execution id: its triggered_by as the API shows it}`` (one query)."""
    rows = selectors.triggered_by_rows(execution_ids)
    return {pk: TriggeredBySerializer(events, many=True).data for pk, events in rows.items()}


class AssetConnectionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()


class AssetSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="<connection>.<schema>.<table>")
    connection = AssetConnectionSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    last_event = AssetEventSerializer(allow_null=True)
    producers = PipelineRefSerializer(many=True)
    consumers = PipelineRefSerializer(many=True)


class AssetFilterSerializer(serializers.Serializer):
    search = serializers.CharField(required=False, max_length=400)


@extend_schema(tags=["assets"])
class AssetListView(GenericAPIView):
    parser_classes = [JSONParser]
    queryset = Asset.objects.none()
    serializer_class = AssetSerializer

    @extend_schema(parameters=[AssetFilterSerializer], responses=AssetSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = AssetFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        assets = selectors.asset_list_visible(
            request.user, search=filters.validated_data.get("search")
        )
        page = list(self.paginate_queryset(assets) or [])
        data = AssetSerializer(selectors.assets_data(request.user, page), many=True).data
        return self.get_paginated_response(data)


@extend_schema(tags=["assets"])
class AssetEventsView(GenericAPIView):
    """An asset's events, newest first."""

    parser_classes = [JSONParser]
    queryset = AssetEvent.objects.none()
    serializer_class = AssetEventSerializer

    @extend_schema(responses=AssetEventSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        asset = selectors.asset_for(request.user, name)
        page = list(self.paginate_queryset(selectors.asset_events(asset)) or [])
        shown = selectors.visible_pipeline_ids(request.user)
        consumed = selectors.consumed_by(page)
        data = [
            selectors.event_data(e, asset=asset.name, shown=shown, consumed=consumed) for e in page
        ]
        return self.get_paginated_response(AssetEventSerializer(data, many=True).data)
