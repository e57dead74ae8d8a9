"""``GET /api/v1/schema/definition.json``: the definition format as a JSON Schema.

Built from the same code that validates definitions
(``pipelines.definition.schema``); the editor completes from it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines.definition.schema import definition_schema


@extend_schema(
    tags=["pipelines"],
    summary="The pipeline definition format as a JSON Schema (draft 2020-12)",
    responses={200: OpenApiTypes.OBJECT},
)
class DefinitionSchemaView(APIView):
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(definition_schema())
