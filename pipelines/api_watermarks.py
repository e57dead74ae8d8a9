"""``/api/v1/pipelines/{id}/watermarks``: the incremental copies' watermarks (SPEC §9).

``GET`` (view right) answers ``{task: {column, value, updated_at}}``;
``DELETE .../watermarks/{task}`` (edit right, audited) forgets one, so the
task's next run copies every row. 404 for a pipeline the caller may not see,
403 for one they may see but not change (``accounts.api.ObjectView``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.actor import Actor
from accounts.api import ObjectView
from core.parsers import JSONParser
from pipelines import selectors, services
from pipelines.models import Pipeline


class WatermarkSerializer(serializers.Serializer):
    column = serializers.CharField(help_text="the incremental column")
    value = serializers.JSONField(
        allow_null=True, help_text="the greatest value copied (dates and decimals as text)"
    )
    updated_at = serializers.DateTimeField()


# ``{task: watermark}``: a map, which a serializer cannot describe.
WATERMARKS_SCHEMA = {
    "type": "object",
    "description": "task name → its watermark",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "column": {"type": "string", "description": "the incremental column"},
            "value": {"description": "the greatest value copied (dates and decimals as text)"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
        "required": ["column", "value", "updated_at"],
    },
}


class _WatermarkView(ObjectView):
    """A pipeline's watermarks: fetched and checked through the pipeline's sharing."""

    parser_classes = [JSONParser]
    pagination_class = None
    queryset = Pipeline.objects.all()
    lookup_url_kwarg = "pipeline_id"
    serializer_class = WatermarkSerializer


@extend_schema(tags=["pipelines"])
class WatermarkListView(_WatermarkView):
    """The watermark of each incremental copy task: ``{task: {column, value, updated_at}}``."""

    @extend_schema(responses={200: WATERMARKS_SCHEMA})
    def get(self, request: Request, pipeline_id: str) -> Response:
        marks = selectors.watermark_list(self.get_object())
        return Response({task: WatermarkSerializer(m).data for task, m in marks.items()})


@extend_schema(tags=["pipelines"])
class WatermarkDetailView(_WatermarkView):
    """Forget one task's watermark (edit right; audited): its next run copies every row."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pipeline_id: str, task_name: str) -> Response:
        services.watermark_reset(
            pipeline=self.get_object(), task_name=task_name, actor=Actor.from_request(request)
        )
        return Response(status=204)
