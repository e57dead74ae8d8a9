"""``/api/v1/pipelines`` and ``/api/v1/executions``; a trailing slash is optional.

Ids match any segment: ``get_for`` answers 404 for a malformed one, as for
one the user may not see.
"""

from django.urls import re_path

from accounts.api import SharingView
from pipelines import api, api_assets, api_watermarks
from pipelines.models import Pipeline

P = r"pipelines/(?P<pipeline_id>[^/]+)"
E = r"executions/(?P<execution_id>[^/]+)"

urlpatterns = [
    re_path(r"^pipelines/?$", api.PipelineListView.as_view(), name="api-pipelines"),
    re_path(rf"^{P}/?$", api.PipelineDetailView.as_view(), name="api-pipeline"),
    re_path(rf"^{P}/versions/?$", api.PipelineVersionsView.as_view(), name="api-pipeline-versions"),
    re_path(rf"^{P}/execute/?$", api.PipelineExecuteView.as_view(), name="api-pipeline-execute"),
    re_path(rf"^{P}/backfill/?$", api.PipelineBackfillView.as_view(), name="api-pipeline-backfill"),
    re_path(
        rf"^{P}/permissions/?$",
        SharingView.as_view(queryset=Pipeline.objects.all(), lookup_url_kwarg="pipeline_id"),
        name="api-pipeline-permissions",
    ),
    re_path(
        rf"^{P}/watermarks/?$",
        api_watermarks.WatermarkListView.as_view(),
        name="api-pipeline-watermarks",
    ),
    re_path(
        rf"^{P}/watermarks/(?P<task_name>[^/]+)/?$",
        api_watermarks.WatermarkDetailView.as_view(),
        name="api-pipeline-watermark",
    ),
    re_path(r"^executions/?$", api.ExecutionListView.as_view(), name="api-executions"),
    re_path(rf"^{E}/?$", api.ExecutionDetailView.as_view(), name="api-execution"),
    re_path(rf"^{E}/status/?$", api.ExecutionStatusView.as_view(), name="api-execution-status"),
    re_path(rf"^{E}/cancel/?$", api.ExecutionCancelView.as_view(), name="api-execution-cancel"),
    re_path(rf"^{E}/rerun/?$", api.ExecutionRerunView.as_view(), name="api-execution-rerun"),
    re_path(
        rf"^{E}/tasks/(?P<task_name>[^/]+)/logs/?$", api.TaskLogView.as_view(), name="api-task-logs"
    ),
    re_path(r"^assets/?$", api_assets.AssetListView.as_view(), name="api-assets"),
    # A file asset's name holds its folder's slashes: the name is all up to /events.
    re_path(
        r"^assets/(?P<name>[\s\S]+?)/events/?$",
        api_assets.AssetEventsView.as_view(),
        name="api-asset-events",
    ),
]
