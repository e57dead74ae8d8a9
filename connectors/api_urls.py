"""``/api/v1/connections``; a trailing slash is optional."""

from django.urls import re_path

from connectors import api

C = r"(?P<id>[^/]+)"

urlpatterns = [
    re_path(r"^connections/?$", api.ConnectionListView.as_view(), name="api-connections"),
    re_path(rf"^connections/{C}/?$", api.ConnectionDetailView.as_view(), name="api-connection"),
    re_path(
        rf"^connections/{C}/permissions/?$",
        api.ConnectionPermissionsView.as_view(),
        name="api-connection-permissions",
    ),
    re_path(
        rf"^connections/{C}/test/?$", api.ConnectionTestView.as_view(), name="api-connection-test"
    ),
]
