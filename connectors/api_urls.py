"""``/api/v1/connections``; a trailing slash is optional."""

from django.urls import re_path

from accounts.api import SharingView
from connectors import api
from connectors.models import Connection

C = r"(?P<id>[^/]+)"

urlpatterns = [
    re_path(r"^connections/?$", api.ConnectionListView.as_view(), name="api-connections"),
    re_path(rf"^connections/{C}/?$", api.ConnectionDetailView.as_view(), name="api-connection"),
    re_path(
        rf"^connections/{C}/permissions/?$",
        SharingView.as_view(queryset=Connection.objects.all(), lookup_url_kwarg="id"),
        name="api-connection-permissions",
    ),
    re_path(
        rf"^connections/{C}/test/?$", api.ConnectionTestView.as_view(), name="api-connection-test"
    ),
]
