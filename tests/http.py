"""Requests in tests: API URLs, the one error format, the HTMX header."""

from __future__ import annotations

from typing import Any

API = "/api/v1"
HTMX = {"HTTP_HX_REQUEST": "true"}


def url(path: str) -> str:
    return f"{API}/{path.lstrip('/')}"


def assert_error(response: Any, status: int, path: str | None = None) -> dict[str, Any]:
    """The answer has ``status`` and the one error format (with ``path`` among its errors)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert all(set(e) == {"path", "message"} for e in body["errors"]), body
    if path is not None:
        assert path in [e["path"] for e in body["errors"]], body
    return body  # type: ignore[no-any-return]
