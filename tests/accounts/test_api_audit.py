"""``/audit-events``: every create, change, delete, execute, cancel, share, login and
failed login, for admins only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD, sql_pipeline
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

EVENT_KEYS = {
    "id",
    "at",
    "actor",
    "actor_kind",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "ip",
    "details",
}


def test_it_records_every_kind_of_event_through_the_api(
    anon: Any, api_client_for: Any, developer: Any, admin_user: Any, wh: Any
) -> None:
    anon.post(url("auth/token"), {"username": "dev1", "password": "wrong"})
    access = anon.post(url("auth/token"), {"username": "dev1", "password": PASSWORD}).json()
    dev = api_client_for(developer)
    dev.credentials(HTTP_AUTHORIZATION=f"Bearer {access['access_token']}")
    pipeline_id = dev.post(url("pipelines"), sql_pipeline("p1"), format="json").json()[
        "pipeline_id"
    ]
    dev.patch(url(f"pipelines/{pipeline_id}"), {"description": "x"}, format="json")
    execution_id = dev.post(url(f"pipelines/{pipeline_id}/execute")).json()["execution_id"]
    dev.post(url(f"executions/{execution_id}/cancel"))
    dev.put(
        url(f"pipelines/{pipeline_id}/permissions"), {"users": {"admin1": "view"}}, format="json"
    )
    dev.delete(url(f"pipelines/{pipeline_id}"))

    response = api_client_for(admin_user).get(url("audit-events?page_size=100"))
    assert response.status_code == 200
    events = response.json()["results"]
    assert set(events[0]) == EVENT_KEYS
    actions = {e["action"] for e in events}
    assert {
        "login_failed",
        "login",
        "create",
        "change",
        "execute",
        "cancel",
        "share",
        "delete",
    } <= actions
    for event in events:
        if event["object_type"] == "pipeline" or event["action"] == "login":
            # who and from where (the fixture's connection was made without a request)
            assert event["actor"] == "dev1" and event["ip"] == "127.0.0.1", event
    failed = next(e for e in events if e["action"] == "login_failed")
    assert failed["actor"] == "dev1" and failed["details"] == {"reason": "bad credentials"}
    assert events == sorted(events, key=lambda e: e["at"], reverse=True)  # newest first


def test_it_filters_events(api_client_for: Any, admin_user: Any, developer: Any, wh: Any) -> None:
    client = api_client_for(admin_user)

    def actions(query: str) -> list[str]:
        return [e["action"] for e in client.get(url(f"audit-events?{query}")).json()["results"]]

    assert actions("action=create") == ["create"]  # the connection
    assert actions("actor=dev1") == ["create"]
    assert actions("object_type=connection") == ["create"]
    assert actions(f"object_id={wh.pk}") == ["create"]
    assert actions("since=2999-01-01T00:00:00Z") == []
    assert actions("until=2000-01-01T00:00:00Z") == []
    assert_error(client.get(url("audit-events?since=soon")), 400, "since")


@pytest.mark.parametrize("role", ["developer", "operator", "viewer"])
def test_it_is_for_admins_only(api_client_for: Any, role: str, request: Any) -> None:
    assert_error(api_client_for(request.getfixturevalue(role)).get(url("audit-events")), 403)
