"""The assets pages, the pipeline page's "Waits for" and the run page of an asset-triggered run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from accounts.permissions import Level
from pipelines.models import Asset, AssetEvent
from tests.factories import share
from tests.http import HTMX
from tests.pipelines.asset_examples import asset_world

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]


@pytest.fixture
def world(make_pipeline: Any, developer: Any, other_developer: Any, sqlite_connection: Any) -> Any:
    return asset_world(make_pipeline, developer, other_developer, sqlite_connection)


def text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_assets_page_lists_assets_with_producers_consumers_and_last_event(
    world: Any, client_for: Any, developer: Any
) -> None:
    page = text(client_for(developer).get("/assets"))
    assert '<a href="/assets" aria-current="page">Assets</a>' in page  # in the nav
    assert '<a href="/assets/wh.main.a"><strong>wh.main.a</strong></a>' in page
    assert f'<a href="/pipelines/{world["producer"].pk}">writer</a>' in page
    assert f'<a href="/pipelines/{world["consumer"].pk}">reader</a>' in page
    assert f'<a href="/runs/{world["run"].pk}">writer · w</a>' in page
    assert "theirs.main.x" not in page
    fragment = text(client_for(developer).get("/assets", {"q": "zzz"}, **HTMX))
    assert "<html" not in fragment and "No assets match" in fragment


def test_the_asset_page_shows_its_events_and_the_runs_they_started(
    world: Any, client_for: Any, developer: Any, other_developer: Any
) -> None:
    page = text(client_for(developer).get("/assets/wh.main.a"))
    assert "<h1>wh.main.a</h1>" in page
    assert page.count(f'<a href="/runs/{world["run"].pk}">writer · w</a>') == 2
    assert f'<a href="/runs/{world["consumed_by"].pk}">' in page
    assert client_for(developer).get("/assets/theirs.main.x").status_code == 404
    assert client_for(other_developer).get("/assets/wh.main.a").status_code == 404
    assert client_for(developer).get("/assets/wh.main.none").status_code == 404
    share(world["wh"], other_developer, Level.VIEW)  # the connection, not the pipelines
    page = text(client_for(other_developer).get("/assets/wh.main.a"))
    assert "writer" not in page and "reader" not in page
    assert page.count("a run you cannot see") == 2


def test_the_pipeline_page_shows_what_it_waits_for(
    world: Any, client_for: Any, developer: Any
) -> None:
    url = f"/pipelines/{world['consumer'].pk}"
    page = text(client_for(developer).get(url))
    assert "Waits for" in page
    assert '<a href="/assets/wh.main.a"><code>wh.main.a</code></a>' in page
    assert "waiting</span>" in page and "event in" not in page  # its events predate it
    AssetEvent.objects.create(
        asset=Asset.objects.get(name="wh.main.a"), at=timezone.now(), pipeline=world["producer"]
    )
    assert "event in" in text(client_for(developer).get(url))
    writer = text(client_for(developer).get(f"/pipelines/{world['producer'].pk}"))
    assert "Waits for" not in writer


def test_the_run_page_of_an_asset_triggered_run_names_its_events(
    world: Any, client_for: Any, developer: Any
) -> None:
    page = text(client_for(developer).get(f"/runs/{world['consumed_by'].pk}"))
    assert "asset run of v1" in page
    assert 'after events of <a href="/assets/wh.main.a">wh.main.a</a>' in page


def test_the_pipeline_list_says_a_pipeline_runs_after_its_assets(
    world: Any, client_for: Any, developer: Any
) -> None:
    page = text(client_for(developer).get("/pipelines"))
    assert 'after 1 asset <span class="muted small">(wh.main.a)</span>' in page
