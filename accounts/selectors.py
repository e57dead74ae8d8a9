"""Reads of the accounts app: the audit trail, filtered one way for the page and the API."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import AuditEvent


def audit_events(
    *,
    action: str | None = None,
    actor: str | None = None,
    actor_kind: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The audit trail, newest first, as ``GET /audit-events`` documents its filters.

    Each filter is an exact match (``actor`` is the whole name the trail
    records: a user name, ``cli:<os user>``, the name typed at a failed
    login); ``since`` and ``until`` bound ``at``, both included. Empty
    values filter nothing. The audit page uses the same filters.
    """
    events = AuditEvent.objects.select_related("actor")
    exact = {
        "action": action,
        "actor_name": actor,
        "actor_kind": actor_kind,
        "object_type": object_type,
        "object_id": object_id,
    }
    events = events.filter(**{field: value for field, value in exact.items() if value})
    if since:
        events = events.filter(at__gte=since)
    if until:
        events = events.filter(at__lte=until)
    return events.order_by("-at", "-id")
