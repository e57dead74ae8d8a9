"""``/connections``: create, list, read, change, delete, test; secrets write-only."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from accounts.permissions import Level
from accounts.services import sharing_set
from connectors.models import Connection
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

SECRET = "pw-Zq8-never-shown"
PG = {
    "host": "127.0.0.1",
    "port": 5432,
    "database": "postgres",
    "username": "postgres",
    "password": SECRET,
}
CONNECTION_KEYS = {
    "id",
    "name",
    "kind",
    "description",
    "config",
    "secrets_set",
    "created_by",
    "created_at",
    "updated_at",
}


@pytest.fixture
def dev(api_client_for: Any, developer: Any, settings: Any, tmp_path: Any) -> Any:
    settings.DATA_ROOT = tmp_path
    return api_client_for(developer)


def create_pg(client: Any, name: str = "shop", description: str = "", **config: Any) -> Any:
    body = {
        "name": name,
        "kind": "postgresql",
        "config": {**PG, **config},
        "description": description,
    }
    return client.post(url("connections"), body, format="json")


def test_it_creates_a_connection_without_returning_its_secret(dev: Any, developer: Any) -> None:
    response = create_pg(dev, description="the shop")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == CONNECTION_KEYS
    assert "password" not in body["config"] and body["secrets_set"] == ["password"]
    assert body["config"]["host"] == "127.0.0.1" and body["created_by"] == "dev1"
    assert body["description"] == "the shop"
    assert SECRET not in response.content.decode()
    stored = Connection.objects.get(pk=body["id"])
    assert SECRET not in stored.secrets and "password" not in stored.config  # encrypted at rest
    assert stored.full_config()["password"] == SECRET
    assert AuditEvent.objects.filter(action="create", object_id=body["id"]).exists()


def test_it_creates_a_file_connection(dev: Any) -> None:
    response = dev.post(
        url("connections"),
        {"name": "files", "kind": "csv", "config": {"path": "in"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["secrets_set"] == [] and response.json()["config"] == {"path": "in"}


def test_it_keeps_the_secret_when_a_change_leaves_it_out(dev: Any) -> None:
    connection_id = create_pg(dev).json()["id"]
    response = dev.patch(
        url(f"connections/{connection_id}"), {"config": {"connect_timeout": 7}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["config"]["connect_timeout"] == 7
    assert response.json()["config"]["host"] == "127.0.0.1"  # PATCH merges config
    assert Connection.objects.get(pk=connection_id).full_config()["password"] == SECRET
    config = {k: v for k, v in PG.items() if k != "password"}
    put = dev.put(
        url(f"connections/{connection_id}"),
        {"name": "shop", "kind": "postgresql", "config": {**config, "password": ""}},
        format="json",
    )
    assert put.status_code == 200 and put.json()["secrets_set"] == ["password"]
    assert Connection.objects.get(pk=connection_id).full_config()["password"] == SECRET


def test_it_replaces_the_secret_when_a_new_one_is_sent(dev: Any) -> None:
    connection_id = create_pg(dev).json()["id"]
    dev.patch(url(f"connections/{connection_id}"), {"config": {"password": "new"}}, format="json")
    assert Connection.objects.get(pk=connection_id).full_config()["password"] == "new"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "x", "kind": "oracle", "config": {}}, "kind"),
        ({"name": "bad name!", "kind": "sqlite", "config": {"path": "a"}}, "name"),
        ({"name": "x", "kind": "postgresql", "config": {**PG, "port": "abc"}}, "config.port"),
        ({"name": "x", "kind": "postgresql", "config": {"host": "h"}}, "config.database"),
        ({"name": "x", "kind": "sqlite", "config": {"path": "a", "zz": 1}}, "config.zz"),
        ({"name": "x", "kind": "sqlite", "config": "path=a"}, "config"),
        ({"kind": "sqlite", "config": {"path": "a"}}, "name"),
    ],
)
def test_it_answers_400_with_paths(dev: Any, body: dict[str, Any], path: str) -> None:
    assert_error(dev.post(url("connections"), body, format="json"), 400, path)


def test_it_answers_409_for_a_duplicate_name(dev: Any) -> None:
    assert create_pg(dev).status_code == 201
    assert_error(create_pg(dev), 409, "name")


def test_it_lists_and_filters_visible_connections(
    dev: Any, api_client_for: Any, other_developer: Any
) -> None:
    create_pg(dev, "shop")
    dev.post(
        url("connections"),
        {"name": "files", "kind": "csv", "config": {"path": "in"}},
        format="json",
    )
    api_client_for(other_developer).post(
        url("connections"),
        {"name": "theirs", "kind": "csv", "config": {"path": "x"}},
        format="json",
    )
    body = dev.get(url("connections")).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [c["name"] for c in body["results"]] == ["files", "shop"]
    assert [c["name"] for c in dev.get(url("connections?kind=csv")).json()["results"]] == ["files"]
    assert [c["name"] for c in dev.get(url("connections?search=SHO")).json()["results"]] == ["shop"]
    assert_error(dev.get(url("connections?kind=oracle")), 400, "kind")


def test_it_deletes_unused_connections_and_refuses_used_ones(
    dev: Any, developer: Any, make_pipeline: Any
) -> None:
    connection_id = create_pg(dev).json()["id"]
    assert dev.delete(url(f"connections/{connection_id}")).status_code == 204
    assert_error(dev.get(url(f"connections/{connection_id}")), 404)
    make_pipeline("p1", user=developer)  # creates and uses "wh"
    wh = Connection.objects.get(name="wh")
    assert_error(dev.delete(url(f"connections/{wh.pk}")), 409)


def test_it_tests_a_connection(dev: Any) -> None:
    ok = dev.post(
        url("connections"),
        {"name": "lite", "kind": "sqlite", "config": {"path": "a.db"}},
        format="json",
    ).json()
    response = dev.post(url(f"connections/{ok['id']}/test"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ok", "latency_ms", "error"}
    assert body["ok"] is True and body["latency_ms"] >= 0 and body["error"] is None


def test_it_reports_a_failed_test_without_the_secret(dev: Any) -> None:
    connection_id = create_pg(dev, port=1).json()["id"]
    response = dev.post(url(f"connections/{connection_id}/test"))
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["error"] and body["latency_ms"] is None
    assert SECRET not in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_it_forbids_creating_for_viewers_and_operators(
    api_client_for: Any, role: str, request: Any
) -> None:
    assert_error(create_pg(api_client_for(request.getfixturevalue(role))), 403)


def test_it_hides_connections_from_outsiders_and_forbids_read_only_users(
    dev: Any, api_client_for: Any, viewer: Any, other_developer: Any
) -> None:
    connection_id = create_pg(dev).json()["id"]
    for path in [f"connections/{connection_id}", f"connections/{connection_id}/permissions"]:
        assert_error(api_client_for(other_developer).get(url(path)), 404)
    assert_error(
        api_client_for(other_developer).post(url(f"connections/{connection_id}/test")), 404
    )
    sharing_set(obj=Connection.objects.get(pk=connection_id), users={viewer: Level.VIEW}, groups={})
    client = api_client_for(viewer)
    assert client.get(url(f"connections/{connection_id}")).status_code == 200
    assert_error(client.post(url(f"connections/{connection_id}/test")), 403)
    assert_error(client.patch(url(f"connections/{connection_id}"), {}, format="json"), 403)
    assert_error(client.delete(url(f"connections/{connection_id}")), 403)
