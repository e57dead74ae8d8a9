"""The OpenAPI schema generator: drf-spectacular plus the error answers.

Kept apart from ``core.api`` because drf-spectacular imports DRF's
generic views, which import the pagination class from there (a cycle).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from core.api import ErrorSerializer

_ERROR_DESCRIPTIONS = {
    "400": "Invalid input; `errors` lists every problem with its path",
    "401": "Missing, invalid or expired credentials",
    "403": "Visible to you, but your role or sharing does not allow this",
    "404": "Does not exist, or you may not see it",
    "409": "Conflicts with the current state",
    "415": "Unsupported media type (send JSON)",
    "429": "Throttled; retry after the `Retry-After` header's seconds",
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus the error answers every operation can give."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in _ERROR_DESCRIPTIONS.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses


def strip_trailing_slashes(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Publish paths as SPEC §4 writes them, without the optional trailing slash."""
    result["paths"] = {
        (path.rstrip("/") or "/"): item for path, item in result.get("paths", {}).items()
    }
    return result


class CachedJWTScheme(SimpleJWTScheme):
    """The bearer scheme of ``accounts.tokens.CachedJWTAuthentication`` (simplejwt's, cached).

    drf-spectacular matches authentication classes exactly; without this it
    warns on every operation, and ``check --deploy`` fails on the warnings.
    """

    target_class = "accounts.tokens.CachedJWTAuthentication"
