"""``/pipelines``: create, list, read, change, delete, versions, execute, backfill."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from accounts.permissions import Level
from accounts.services import sharing_set
from core.api import Pagination
from pipelines.models import Execution, Pipeline, Trigger
from tests.factories import sql_pipeline
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

PIPELINE_KEYS = {
    "pipeline_id",
    "name",
    "description",
    "version",
    "enabled",
    "schedule",
    "timezone",
    "catchup",
    "max_active_runs",
    "tags",
    "parameters",
    "on_failure",
    "tasks",
    "created_by",
    "created_at",
    "updated_at",
    "last_status",
    "last_run_at",
}


@pytest.fixture
def dev(api_client_for: Any, developer: Any, wh: Any) -> Any:
    return api_client_for(developer)


def create(client: Any, name: str = "p1", **extra: Any) -> Any:
    return client.post(url("pipelines"), sql_pipeline(name, **extra), format="json")


# ----------------------------------------------------------------- create


def test_it_creates_a_pipeline(dev: Any, developer: Any) -> None:
    response = create(dev, tags=["sales"], parameters={"n": 1})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == PIPELINE_KEYS
    assert body["name"] == "p1" and body["version"] == 1 and body["created_by"] == "dev1"
    assert body["tasks"][0]["name"] == "t1" and body["tags"] == ["sales"]
    pipeline = Pipeline.objects.get(pk=body["pipeline_id"])
    assert pipeline.created_by == developer
    assert AuditEvent.objects.filter(action="create", object_id=str(pipeline.pk)).exists()


def test_it_answers_every_definition_problem_with_its_path(dev: Any) -> None:
    data = sql_pipeline(
        "p1",
        tasks=[
            {"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
            {"name": "a", "type": "sql", "connection": "nope", "sql": "SELECT 1"},
            {
                "name": "b",
                "type": "sql",
                "connection": "wh",
                "sql": "SELECT 1",
                "depends_on": ["copy_order"],
            },
        ],
        schedule="not cron",
        bogus=1,
    )
    body = assert_error(dev.post(url("pipelines"), data, format="json"), 400)
    paths = {e["path"] for e in body["errors"]}
    assert {"bogus", "schedule", "tasks[2].depends_on[0]"} <= paths, body
    assert not Pipeline.objects.exists()


def test_it_answers_unknown_connections_with_their_path(dev: Any) -> None:
    data = sql_pipeline(tasks=[{"name": "t", "type": "sql", "connection": "nope", "sql": "x"}])
    assert_error(dev.post(url("pipelines"), data, format="json"), 400, "tasks[0].connection")


def test_it_treats_a_connection_the_user_may_not_use_as_unknown(
    api_client_for: Any, other_developer: Any, wh: Any
) -> None:
    response = create(api_client_for(other_developer))
    assert_error(response, 400, "tasks[0].connection")


@pytest.mark.parametrize("body", [[], "x", 1, None, {"name": "p"}])
def test_it_answers_400_for_bodies_that_are_no_definition(dev: Any, body: Any) -> None:
    assert_error(dev.post(url("pipelines"), body, format="json"), 400)


def test_it_answers_400_for_malformed_json(dev: Any) -> None:
    response = dev.post(url("pipelines"), "{not json", content_type="application/json")
    assert_error(response, 400)


def test_it_answers_415_for_form_data(dev: Any) -> None:
    assert_error(dev.post(url("pipelines"), {"name": "p1"}), 415)


def test_it_answers_409_for_a_duplicate_name(dev: Any) -> None:
    assert create(dev).status_code == 201
    assert_error(create(dev), 409, "name")


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_it_forbids_creating_for_viewers_and_operators(
    api_client_for: Any, wh: Any, role: str, request: Any
) -> None:
    assert_error(create(api_client_for(request.getfixturevalue(role))), 403)


def test_it_serves_paths_with_and_without_a_trailing_slash(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    for path in [
        "pipelines",
        "pipelines/",
        f"pipelines/{pipeline_id}",
        f"pipelines/{pipeline_id}/",
    ]:
        response = dev.get(url(path))
        assert response.status_code == 200, path  # served, not redirected


# ------------------------------------------------------------------- list


def test_it_lists_only_visible_pipelines(
    api_client_for: Any, developer: Any, other_developer: Any, make_pipeline: Any, wh: Any
) -> None:
    mine = make_pipeline("mine", user=developer)
    sharing_set(obj=wh, users={other_developer: Level.OPERATE}, groups={})
    make_pipeline("theirs", user=other_developer)
    body = api_client_for(developer).get(url("pipelines")).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [p["pipeline_id"] for p in body["results"]] == [str(mine.pk)]


@pytest.mark.parametrize("role", ["viewer", "operator", "other_developer"])
def test_it_lists_nothing_not_403_for_users_with_nothing_shared(
    api_client_for: Any, make_pipeline: Any, developer: Any, role: str, request: Any
) -> None:
    make_pipeline("p1", user=developer)
    response = api_client_for(request.getfixturevalue(role)).get(url("pipelines"))
    assert response.status_code == 200
    assert response.json()["results"] == [] and response.json()["count"] == 0


def test_it_filters_by_tag_enabled_and_search(
    api_client_for: Any, admin_user: Any, make_pipeline: Any
) -> None:
    make_pipeline("orders_daily", tags=["sales"], description="Orders")
    make_pipeline("users_sync", tags=["crm"], enabled=False)
    client = api_client_for(admin_user)

    def names(query: str) -> list[str]:
        return [p["name"] for p in client.get(url(f"pipelines?{query}")).json()["results"]]

    assert names("tag=sales") == ["orders_daily"]
    assert names("enabled=false") == ["users_sync"]
    assert names("enabled=true") == ["orders_daily"]
    assert names("search=ORDERS") == ["orders_daily"]
    assert names("") == ["orders_daily", "users_sync"]
    assert_error(client.get(url("pipelines?enabled=maybe")), 400, "enabled")
    assert_error(client.get(url("pipelines?status=bogus")), 400, "status")


def test_it_paginates_and_caps_the_page_size(
    api_client_for: Any, admin_user: Any, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Pagination.max_page_size == 200
    for i in range(3):
        make_pipeline(f"p{i}")
    client = api_client_for(admin_user)
    body = client.get(url("pipelines?page_size=2")).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert len(client.get(url("pipelines?page=2&page_size=2")).json()["results"]) == 1
    assert client.get(url("pipelines?page_size=100000")).status_code == 200
    monkeypatch.setattr(Pagination, "max_page_size", 2)
    assert len(client.get(url("pipelines?page_size=100")).json()["results"]) == 2
    assert_error(client.get(url("pipelines?page=99")), 404)


# ---------------------------------------------------- read, change, delete


def test_it_reads_a_pipeline(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    body = dev.get(url(f"pipelines/{pipeline_id}")).json()
    assert set(body) == PIPELINE_KEYS and body["pipeline_id"] == pipeline_id


@pytest.mark.parametrize("bad_id", ["nope", "00000000-0000-0000-0000-000000000000", "1"])
def test_it_answers_404_for_unknown_or_malformed_ids(dev: Any, bad_id: str) -> None:
    assert_error(dev.get(url(f"pipelines/{bad_id}")), 404)
    assert_error(dev.post(url(f"pipelines/{bad_id}/execute"), {}, format="json"), 404)


def test_it_changes_a_pipeline_with_a_new_version(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    response = dev.put(
        url(f"pipelines/{pipeline_id}"),
        sql_pipeline("p1", description="changed"),
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2 and response.json()["description"] == "changed"
    versions = dev.get(url(f"pipelines/{pipeline_id}/versions")).json()
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert set(versions["results"][0]) == {"version", "definition", "created_by", "created_at"}


def test_it_accepts_a_pipeline_sent_back_as_read(dev: Any) -> None:
    created = create(dev).json()
    response = dev.put(url(f"pipelines/{created['pipeline_id']}"), created, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 1  # nothing changed, no new version


def test_it_patches_enabled(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    response = dev.patch(url(f"pipelines/{pipeline_id}"), {"enabled": False}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["version"] == 2


def test_it_answers_400_with_paths_for_a_bad_change(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    response = dev.patch(url(f"pipelines/{pipeline_id}"), {"max_active_runs": 0}, format="json")
    assert_error(response, 400, "max_active_runs")


def test_it_deletes_a_pipeline(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    assert dev.delete(url(f"pipelines/{pipeline_id}")).status_code == 204
    assert_error(dev.get(url(f"pipelines/{pipeline_id}")), 404)
    assert AuditEvent.objects.filter(action="delete", object_id=pipeline_id).exists()


# ---------------------------------------------------------------- execute


def test_it_executes(dev: Any, developer: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    response = dev.post(url(f"pipelines/{pipeline_id}/execute"), {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"execution_id", "status"}
    assert body["status"] in {"queued", "running"}
    execution = Execution.objects.get(pk=body["execution_id"])
    assert execution.trigger == Trigger.API and execution.created_by == developer
    assert AuditEvent.objects.filter(action="execute", object_id=pipeline_id).exists()


def test_it_executes_with_no_body_at_all(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    assert dev.post(url(f"pipelines/{pipeline_id}/execute")).status_code == 200


def test_it_executes_with_parameters(dev: Any) -> None:
    pipeline_id = create(dev, parameters={"n": 1}).json()["pipeline_id"]
    response = dev.post(
        url(f"pipelines/{pipeline_id}/execute"), {"parameters": {"n": 5}}, format="json"
    )
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    assert execution.parameters["n"] == 5
    bad = dev.post(
        url(f"pipelines/{pipeline_id}/execute"), {"parameters": {"zz": 1}}, format="json"
    )
    assert_error(bad, 400, "parameters.zz")
    assert_error(
        dev.post(url(f"pipelines/{pipeline_id}/execute"), {"parameters": [1]}, format="json"),
        400,
        "parameters",
    )


def test_it_honours_the_idempotency_key(dev: Any, api_client_for: Any, admin_user: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    path = url(f"pipelines/{pipeline_id}/execute")
    first = dev.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="k1").json()
    again = dev.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="k1").json()
    other_key = dev.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="k2").json()
    other_user = api_client_for(admin_user).post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first["execution_id"] == again["execution_id"]
    assert other_key["execution_id"] != first["execution_id"]
    assert other_user.json()["execution_id"] != first["execution_id"]
    assert Execution.objects.count() == 3
    for bad in ["k" * 201, "a\x00b", "a b", "clé"]:
        response = dev.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY=bad)
        assert_error(response, 400, "Idempotency-Key")


def test_it_throttles_execute_per_user(
    dev: Any, api_client_for: Any, admin_user: Any, settings: Any
) -> None:
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], execute="2/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    pipeline_id = create(dev).json()["pipeline_id"]
    path = url(f"pipelines/{pipeline_id}/execute")
    assert dev.post(path).status_code == 200
    assert dev.post(path).status_code == 200
    response = dev.post(path)
    assert_error(response, 429)
    assert int(response["Retry-After"]) > 0
    assert api_client_for(admin_user).post(path).status_code == 200  # another user's own budget


# --------------------------------------------------------------- backfill


def test_it_backfills_one_execution_per_interval_both_ends_inclusive(dev: Any) -> None:
    pipeline_id = create(dev, schedule="0 2 * * *").json()["pipeline_id"]
    response = dev.post(
        url(f"pipelines/{pipeline_id}/backfill"),
        {"start": "2024-01-01", "end": "2024-01-03"},
        format="json",
    )
    assert response.status_code == 200, response.content
    executions = response.json()["executions"]
    assert [e["data_interval_start"][:10] for e in executions] == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]
    assert set(executions[0]) == {
        "execution_id",
        "status",
        "data_interval_start",
        "data_interval_end",
    }
    assert Execution.objects.filter(trigger=Trigger.BACKFILL).count() == 3


def test_it_backfills_with_datetimes(dev: Any) -> None:
    pipeline_id = create(dev, schedule="0 * * * *").json()["pipeline_id"]
    response = dev.post(
        url(f"pipelines/{pipeline_id}/backfill"),
        {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T02:00:00+00:00"},
        format="json",
    )
    assert len(response.json()["executions"]) == 3


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"start": "yesterday", "end": "2024-01-02"}, "start"),
        ({"start": "2024-01-01", "end": "2024-02-30"}, "end"),
        ({"start": "2024-01-05", "end": "2024-01-01"}, "end"),
        ({"start": "2024-01-01"}, "end"),
        ({"start": 5, "end": None}, "start"),
    ],
)
def test_it_answers_400_for_bad_backfill_ranges(dev: Any, body: dict[str, Any], path: str) -> None:
    pipeline_id = create(dev, schedule="0 2 * * *").json()["pipeline_id"]
    response = dev.post(url(f"pipelines/{pipeline_id}/backfill"), body, format="json")
    assert_error(response, 400, path)


def test_it_refuses_to_backfill_a_pipeline_without_schedule(dev: Any) -> None:
    pipeline_id = create(dev).json()["pipeline_id"]
    response = dev.post(
        url(f"pipelines/{pipeline_id}/backfill"),
        {"start": "2024-01-01", "end": "2024-01-02"},
        format="json",
    )
    assert_error(response, 400, "schedule")


def test_it_lets_a_shared_operator_execute_but_not_change(
    api_client_for: Any, developer: Any, operator: Any, make_pipeline: Any
) -> None:
    pipeline = make_pipeline("p1", user=developer)
    sharing_set(obj=pipeline, users={operator: Level.OPERATE}, groups={})
    client = api_client_for(operator)
    assert client.post(url(f"pipelines/{pipeline.pk}/execute")).status_code == 200
    assert_error(
        client.patch(url(f"pipelines/{pipeline.pk}"), {"enabled": False}, format="json"), 403
    )
    assert_error(client.delete(url(f"pipelines/{pipeline.pk}")), 403)
