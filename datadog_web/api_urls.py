"""``/api/v1/``: every path answers with and without a trailing slash."""

from django.urls import include, re_path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api import not_found
from pipelines.api_schema import DefinitionSchemaView

urlpatterns = [
    # JSON first (plain application/json), YAML on ?format=yaml or by Accept.
    re_path(
        r"^schema/?$",
        SpectacularAPIView.as_view(
            renderer_classes=[
                OpenApiJsonRenderer2,
                OpenApiJsonRenderer,
                OpenApiYamlRenderer,
                OpenApiYamlRenderer2,
            ]
        ),
        name="api-schema",
    ),
    re_path(
        r"^schema/definition\.json$",
        DefinitionSchemaView.as_view(),
        name="api-definition-schema",
    ),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"", include("accounts.api_urls")),
    re_path(r"", include("pipelines.api_urls")),
    re_path(r"", include("connectors.api_urls")),
    # Last: any other path under /api/v1/ is a JSON 404, not Django's HTML page.
    re_path(r"^.*$", not_found),
]
