"""Reads of connections, limited to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.permissions import Action, get_for, visible
from connectors.models import Connection


def connection_list_visible(
    user: Any, *, kind: str | None = None, search: str | None = None
) -> QuerySet[Connection]:
    connections = visible(user, Connection.objects.select_related("created_by"))
    if kind:
        connections = connections.filter(kind=kind)
    if search:
        connections = connections.filter(name__icontains=search)
    return connections.order_by("name")


def connection_for(user: Any, connection_id: Any, action: Action = Action.VIEW) -> Connection:
    """The connection for ``user`` to do ``action`` (``accounts.permissions.get_for``: 404, 403)."""
    connection: Connection = get_for(
        user, Connection.objects.select_related("created_by"), action, pk=connection_id
    )
    return connection
