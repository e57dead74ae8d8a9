"""``/api/v1/auth/*`` and ``/api/v1/audit-events``; a trailing slash is optional."""

from django.urls import re_path

from accounts import api

urlpatterns = [
    re_path(r"^auth/token/?$", api.TokenView.as_view(), name="api-token"),
    re_path(r"^auth/refresh/?$", api.RefreshView.as_view(), name="api-token-refresh"),
    re_path(r"^auth/logout/?$", api.LogoutView.as_view(), name="api-logout"),
    re_path(r"^audit-events/?$", api.AuditEventListView.as_view(), name="api-audit-events"),
]
