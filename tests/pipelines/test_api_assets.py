"""``/assets`` and ``/assets/{name}/events``: shapes, history, visibility through the connection.

A user sees an asset when they may see its connection; the pipelines an
answer names (producers, consumers, the run behind an event) only when
they may see those pipelines. Each case is tried across users.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Level
from connectors.services import connection_create
from pipelines.models import Asset
from tests.factories import share
from tests.http import assert_error, url
from tests.pipelines.asset_examples import asset_world

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]


@pytest.fixture
def world(make_pipeline: Any, developer: Any, other_developer: Any, sqlite_connection: Any) -> Any:
    return asset_world(make_pipeline, developer, other_developer, sqlite_connection)


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    return [a["name"] for a in body["results"]]


def test_the_list_shows_each_asset_with_its_last_event_producers_and_consumers(
    world: Any, api_client_for: Any, developer: Any
) -> None:
    body = api_client_for(developer).get(url("assets")).json()
    assert [a["name"] for a in body["results"]] == ["wh.main.a"]
    (asset,) = body["results"]
    assert asset["connection"]["name"] == "wh" and asset["connection"]["kind"] == "sqlite"
    last = asset["last_event"]
    assert last["event_id"] == world["new"].pk
    assert last["pipeline_name"] == "writer"
    assert last["execution_id"] == str(world["run"].pk)
    assert last["task_name"] == "w"
    assert last["consumed_by"] == []
    assert asset["producers"] == [{"pipeline_id": str(world["producer"].pk), "name": "writer"}]
    assert asset["consumers"] == [{"pipeline_id": str(world["consumer"].pk), "name": "reader"}]


def test_the_events_are_the_history_newest_first_with_their_consumers(
    world: Any, api_client_for: Any, developer: Any
) -> None:
    client = api_client_for(developer)
    body = client.get(url("assets/wh.main.a/events")).json()
    assert body["count"] == 2
    assert [e["event_id"] for e in body["results"]] == [world["new"].pk, world["old"].pk]
    assert body["results"][1]["consumed_by"] == [str(world["consumed_by"].pk)]
    assert client.get(url("assets/wh.main.a/events/")).json() == body  # trailing slash
    assert_error(client.get(url("assets/wh.main.nothing/events")), 404)
    assert_error(client.get(url("assets/wh.main.a%0Ab/events")), 404)  # any name: JSON 404


def test_an_asset_is_seen_through_its_connection(
    world: Any,
    api_client_for: Any,
    developer: Any,
    other_developer: Any,
    viewer: Any,
    admin_user: Any,
) -> None:
    dev1, dev2 = api_client_for(developer), api_client_for(other_developer)
    assert names(dev1.get(url("assets"))) == ["wh.main.a"]
    assert names(dev2.get(url("assets"))) == ["theirs.main.x"]
    assert names(api_client_for(viewer).get(url("assets"))) == []
    assert names(api_client_for(admin_user).get(url("assets"))) == ["theirs.main.x", "wh.main.a"]
    # The other's asset is not found, exactly as one that does not exist.
    assert_error(dev1.get(url("assets/theirs.main.x/events")), 404)
    assert_error(dev2.get(url("assets/wh.main.a/events")), 404)
    assert_error(api_client_for(viewer).get(url("assets/wh.main.a/events")), 404)


def test_a_shared_connection_shows_the_asset_but_not_the_pipelines_behind_it(
    world: Any, api_client_for: Any, developer: Any, other_developer: Any
) -> None:
    share(
        world["wh"],
        other_developer,
        Level.VIEW,
    )
    client = api_client_for(other_developer)
    body = client.get(url("assets")).json()
    (mine,) = [a for a in body["results"] if a["name"] == "wh.main.a"]
    assert mine["producers"] == [] and mine["consumers"] == []
    last = mine["last_event"]
    assert (last["pipeline_id"], last["pipeline_name"], last["execution_id"]) == (None, None, None)
    assert last["task_name"] is None
    events = client.get(url("assets/wh.main.a/events")).json()["results"]
    assert [e["consumed_by"] for e in events] == [[], []]
    assert all(e["pipeline_id"] is None for e in events)
    # Sharing the consumer pipeline shows it, and the run that consumed the event.
    share(world["consumer"], other_developer, Level.VIEW)
    (mine,) = [a for a in client.get(url("assets")).json()["results"] if a["name"] == "wh.main.a"]
    assert [p["name"] for p in mine["consumers"]] == ["reader"]
    events = client.get(url("assets/wh.main.a/events")).json()["results"]
    assert events[1]["consumed_by"] == [str(world["consumed_by"].pk)]


def test_a_file_asset_name_with_its_folder_is_one_path(
    api_client_for: Any, developer: Any, sqlite_connection: Any, settings: Any
) -> None:
    (settings.DATA_ROOT / "exports").mkdir()
    conn = connection_create(
        name="files", kind="csv", config={"path": "exports"}, actor=Actor.of(developer)
    )
    Asset.objects.create(name="files.exports/orders.csv", connection=conn)
    client = api_client_for(developer)
    assert names(client.get(url("assets"))) == ["files.exports/orders.csv"]
    body = client.get(url("assets/files.exports/orders.csv/events")).json()
    assert body["count"] == 0


def test_search_and_errors(world: Any, api_client_for: Any, developer: Any, anon: Any) -> None:
    client = api_client_for(developer)
    assert names(client.get(url("assets"), {"search": "main.A"})) == ["wh.main.a"]
    assert names(client.get(url("assets"), {"search": "zzz"})) == []
    assert_error(client.get(url("assets"), {"search": "x" * 401}), 400, "search")
    assert anon.get(url("assets")).status_code == 401
    assert anon.get(url("assets/wh.main.a/events")).status_code == 401


def test_an_asset_triggered_execution_lists_the_events_it_consumed(
    world: Any, api_client_for: Any, developer: Any
) -> None:
    client = api_client_for(developer)
    detail = client.get(url(f"executions/{world['consumed_by'].pk}")).json()
    assert detail["trigger"] == "asset"
    (consumed,) = detail["triggered_by"]
    assert consumed["event_id"] == world["old"].pk
    assert consumed["asset"] == "wh.main.a"
    listed = client.get(url("executions"), {"pipeline": str(world["consumer"].pk)}).json()
    assert [e["triggered_by"] for e in listed["results"]] == [detail["triggered_by"]]
    other = client.get(url(f"executions/{world['run'].pk}")).json()
    assert other["triggered_by"] == []


def test_a_pipeline_is_scheduled_on_assets_through_the_api(
    api_client_for: Any, developer: Any, wh: Any
) -> None:
    client = api_client_for(developer)
    body = {
        "name": "reader",
        "schedule": {"assets": ["wh.a", "wh.main.b"]},
        "tasks": [{"name": "t", "type": "sql", "connection": "wh", "sql": "SELECT 1"}],
    }
    created = client.post(url("pipelines"), body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["schedule"] == {"assets": ["wh.main.a", "wh.main.b"]}
    shown = client.get(url(f"pipelines/{created.json()['pipeline_id']}")).json()
    assert shown["schedule"] == {"assets": ["wh.main.a", "wh.main.b"]}
    body["name"] = "bad"
    body["schedule"] = {"assets": ["nowhere.a"], "every": 5}
    refused = assert_error(client.post(url("pipelines"), body, format="json"), 400)
    assert [e["path"] for e in refused["errors"]] == ["schedule.every"]
    body["schedule"] = {"assets": ["nowhere.a"]}
    refused = assert_error(client.post(url("pipelines"), body, format="json"), 400)
    assert refused["errors"] == [
        {"path": "schedule.assets[0]", "message": "unknown connection 'nowhere'"}
    ]


def test_a_pipeline_on_assets_has_no_intervals_to_backfill(
    api_client_for: Any, developer: Any, make_pipeline: Any, wh: Any
) -> None:
    pipeline = make_pipeline("reader", user=developer, schedule={"assets": ["wh.a"]})
    response = api_client_for(developer).post(
        url(f"pipelines/{pipeline.pk}/backfill"),
        {"start": "2026-01-01", "end": "2026-01-02"},
        format="json",
    )
    body = assert_error(response, 400, "schedule")
    assert body["errors"] == [
        {
            "path": "schedule",
            "message": "a backfill needs a cron schedule "
            "(this pipeline runs when its assets have events)",
        }
    ]
