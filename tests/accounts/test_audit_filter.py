"""One audit filter (``accounts.selectors.audit_events``): the audit page and
``GET /audit-events`` find the same events for the same filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.selectors import audit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(developer: Any, admin_user: Any) -> dict[str, AuditEvent]:
    now = timezone.now()
    rows = {
        "dev_create": dict(action="create", actor=developer, actor_name="dev1", at=now),
        "dev_old": dict(
            action="delete", actor=developer, actor_name="dev1", at=now - timedelta(days=3)
        ),
        # A name that contains another user's name: an exact filter tells them apart.
        "dev_10": dict(action="create", actor=None, actor_name="dev10", at=now),
        "admin": dict(action="create", actor=admin_user, actor_name="admin1", at=now),
        "cli": dict(action="execute", actor_kind="cli", actor_name="cli:ops", at=now),
    }
    made = {}
    for repr_, fields in rows.items():
        at = fields.pop("at")
        event = AuditEvent.objects.create(
            object_type="pipeline", object_id=repr_, object_repr=f"obj_{repr_}", **fields
        )
        AuditEvent.objects.filter(pk=event.pk).update(at=at)
        made[repr_] = event
    return made


def _page(client: Client, query: dict[str, str]) -> set[str]:
    content = client.get("/audit", query).content.decode()
    ids = AuditEvent.objects.values_list("object_id", flat=True)
    return {i for i in ids if f" obj_{i}</td>" in content}


def _api(client: APIClient, query: dict[str, str]) -> set[str]:
    response = client.get("/api/v1/audit-events", query)
    assert response.status_code == 200, response.content
    return {row["object_id"] for row in response.json()["results"]}


CASES: list[tuple[dict[str, str], set[str]]] = [
    ({}, {"dev_create", "dev_old", "dev_10", "admin", "cli"}),
    ({"actor": "dev1"}, {"dev_create", "dev_old"}),  # the whole name: not dev10
    ({"actor": "dev"}, set()),
    ({"actor": "cli:ops"}, {"cli"}),
    ({"action": "create"}, {"dev_create", "dev_10", "admin"}),
    ({"actor_kind": "cli"}, {"cli"}),
    ({"action": "create", "actor": "admin1"}, {"admin"}),
]


@pytest.mark.parametrize(("query", "want"), CASES)
def test_the_page_and_the_api_find_the_same_events(
    events: dict[str, AuditEvent], admin_user: Any, query: dict[str, str], want: set[str]
) -> None:
    page = Client()
    page.force_login(admin_user)
    api = APIClient()
    api.force_authenticate(admin_user)
    assert _api(api, query) == want
    assert _page(page, query) == want
    assert {e.object_id for e in audit_events(**query)} == want


def test_days_on_the_page_are_whole_days_and_the_api_bounds_are_included(
    events: dict[str, AuditEvent], admin_user: Any
) -> None:
    page = Client()
    page.force_login(admin_user)
    api = APIClient()
    api.force_authenticate(admin_user)
    old = AuditEvent.objects.get(pk=events["dev_old"].pk)
    day = timezone.localdate(old.at).isoformat()
    assert _page(page, {"since": day, "until": day}) == {"dev_old"}
    at = old.at.isoformat()
    assert _api(api, {"since": at, "until": at}) == {"dev_old"}
