"""HTML pages of pipelines and runs (SPEC §6). No trailing slashes, like the API."""

from django.urls import path

from accounts.views import share_view
from pipelines import views, views_operations
from pipelines.assets import views as asset_views
from pipelines.selectors import pipeline_for

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("pipelines", views.pipeline_list, name="pipeline_list"),
    path("pipelines/new", views.pipeline_new, name="pipeline_new"),
    path("pipelines/validate", views.pipeline_validate_view, name="pipeline_validate"),
    path("pipelines/copy-task", views.pipeline_copy_task, name="pipeline_copy_task"),
    path("pipelines/<uuid:pipeline_id>", views.pipeline_detail, name="pipeline_detail"),
    path("pipelines/<uuid:pipeline_id>/edit", views.pipeline_edit, name="pipeline_edit"),
    path("pipelines/<uuid:pipeline_id>/run", views.pipeline_run, name="pipeline_run"),
    path("pipelines/<uuid:pipeline_id>/enabled", views.pipeline_enable, name="pipeline_enable"),
    path(
        "pipelines/<uuid:object_id>/share",
        share_view,
        {"fetch": pipeline_for, "detail": "pipeline_detail", "refused": views.share_refused},
        name="pipeline_share",
    ),
    path("pipelines/<uuid:pipeline_id>/delete", views.pipeline_delete_view, name="pipeline_delete"),
    path("pipelines/<uuid:pipeline_id>/diff", views.pipeline_diff, name="pipeline_diff"),
    path(
        "pipelines/<uuid:pipeline_id>/backfill",
        views_operations.pipeline_backfill_view,
        name="pipeline_backfill",
    ),
    path(
        "pipelines/<uuid:pipeline_id>/watermarks/<str:task_name>/reset",
        views.pipeline_watermark_reset,
        name="pipeline_watermark_reset",
    ),
    path("runs", views.execution_list, name="execution_list"),
    path("runs/bulk", views_operations.execution_bulk, name="execution_bulk"),
    path("runs/<uuid:execution_id>", views.execution_detail, name="execution_detail"),
    path("runs/<uuid:execution_id>/cancel", views.execution_cancel_view, name="execution_cancel"),
    path("runs/<uuid:execution_id>/rerun", views.execution_rerun_view, name="execution_rerun"),
    path(
        "runs/<uuid:execution_id>/history",
        views_operations.execution_history,
        name="execution_history",
    ),
    path(
        "runs/<uuid:execution_id>/tasks/<str:task_name>/log", views.task_log_view, name="task_log"
    ),
    path("assets", asset_views.asset_list, name="asset_list"),
    # A file asset's name holds its folder's slashes.
    path("assets/<path:name>", asset_views.asset_detail, name="asset_detail"),
]
