"""HTML pages of connections (SPEC §6)."""

from django.urls import path

from accounts.views import share_view
from connectors import views, views_browse
from connectors.selectors import connection_for

urlpatterns = [
    path("connections", views.connection_list, name="connection_list"),
    path("connections/new", views.connection_new, name="connection_new"),
    path("connections/<uuid:connection_id>", views.connection_detail, name="connection_detail"),
    path(
        "connections/<uuid:connection_id>/test", views.connection_test_view, name="connection_test"
    ),
    path(
        "connections/<uuid:connection_id>/browse",
        views_browse.connection_browse_view,
        name="connection_browse",
    ),
    path(
        "connections/<uuid:object_id>/share",
        share_view,
        {"fetch": connection_for, "detail": "connection_detail", "refused": views.share_refused},
        name="connection_share",
    ),
    path(
        "connections/<uuid:connection_id>/delete",
        views.connection_delete_view,
        name="connection_delete",
    ),
]
