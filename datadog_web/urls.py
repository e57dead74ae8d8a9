from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("datadog_web.api_urls")),
    path("", include("ops.urls")),
    path("", include("pipelines.urls")),
    path("", include("connectors.urls")),
    path("", include("accounts.urls")),
]
