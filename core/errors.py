"""Errors services raise; the API and the UI turn them into 4xx answers.

Services never return HTTP; they raise one of these with every problem and
its path, and each front end renders them its way.
"""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, errors: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = [{"path": path, "message": message} for path, message in errors]

    def __str__(self) -> str:
        if not self.errors:
            return self.detail
        lines = [f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in self.errors]
        return f"{self.detail}\n" + "\n".join(lines)


class InvalidInput(ServiceError):
    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Forbidden(ServiceError):
    status_code = 403


class Conflict(ServiceError):
    status_code = 409
