"""Reads of connections, limited to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.permissions import visible
from connectors.models import Connection
from core.errors import NotFound


def connection_list_visible(
    user: Any, *, kind: str | None = None, search: str | None = None
) -> QuerySet[Connection]:
    connections = visible(user, Connection.objects.select_related("created_by"))
    if kind:
        connections = connections.filter(kind=kind)
    if search:
        connections = connections.filter(name__icontains=search)
    return connections.order_by("name")


def connection_get_visible(user: Any, connection_id: Any) -> Connection:
    try:
        return visible(user, Connection.objects.select_related("created_by")).get(pk=connection_id)
    except (Connection.DoesNotExist, ValueError, TypeError):
        raise NotFound("connection not found") from None
    except Exception as exc:
        if type(exc).__name__ == "ValidationError":
            raise NotFound("connection not found") from None
        raise
