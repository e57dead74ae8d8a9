"""HTML pages of connections (SPEC §6)."""

from django.urls import path

from connectors import views

urlpatterns = [
    path("connections", views.connection_list, name="connection_list"),
    path("connections/new", views.connection_new, name="connection_new"),
    path("connections/<uuid:connection_id>", views.connection_detail, name="connection_detail"),
    path(
        "connections/<uuid:connection_id>/test", views.connection_test_view, name="connection_test"
    ),
    path("connections/<uuid:connection_id>/share", views.connection_share, name="connection_share"),
    path(
        "connections/<uuid:connection_id>/delete",
        views.connection_delete_view,
        name="connection_delete",
    ),
]
